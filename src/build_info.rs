//! Which casegate this is: its version, how it was built and from which commit. `casegate
//! --version`, the `casegate_build_info` metric, the "casegate listening" log line and a panic's
//! report all say it, so that an operator (and a performance report) can tell a profile-guided
//! build from a plain `cargo build --release`: the same source, a different cost a request
//! (README, "Install").
//!
//! The build and the commit are compile-time environment variables: `benches/load/pgo.sh` sets
//! them for its builds; a plain `cargo build` sets neither, and a build from a source archive has
//! no commit to name. They are not read from git by a build script, which would rebuild the whole
//! crate on every commit, documentation ones included.

/// The crate's version, as in `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How the binary was built: `CASEGATE_BUILD` when the build set it (`pgo.sh`: "profile-guided",
/// and "profile-instrumented" for its training build), otherwise the cargo profile's kind.
pub const BUILD: &str = match option_env!("CASEGATE_BUILD") {
    Some(build) => build,
    None if cfg!(debug_assertions) => "debug",
    None => "release",
};

/// The commit the binary was built from when the build named it (`CASEGATE_COMMIT`), with
/// "-dirty" when `pgo.sh` built a work tree with uncommitted changes.
pub const COMMIT: Option<&str> = option_env!("CASEGATE_COMMIT");

// Both go into a metric's labels and a log line unescaped: hold them to a plain word at compile
// time, so that a stray quote or newline in the builder's environment fails the build instead.
const _: () = assert!(
    is_plain_word(BUILD),
    "CASEGATE_BUILD: only letters, digits, '-', '_' and '.'"
);
const _: () = assert!(
    match COMMIT {
        Some(commit) => is_plain_word(commit),
        None => true,
    },
    "CASEGATE_COMMIT: only letters, digits, '-', '_' and '.'"
);

/// The words after the version in `casegate --version`: "profile-guided build of c8f4d45",
/// "release build".
fn describe() -> String {
    match COMMIT {
        Some(commit) => format!("{BUILD} build of {commit}"),
        None => format!("{BUILD} build"),
    }
}

/// What `casegate --version` prints after the name: "0.1.0 (profile-guided build of c8f4d45)".
pub fn version_line() -> String {
    format!("{VERSION} ({})", describe())
}

const fn is_plain_word(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() > 64 {
        return false;
    }
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if !(byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' || byte == b'.') {
            return false;
        }
        index += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_build_and_the_commit_when_given() {
        let described = describe();
        assert!(described.starts_with(BUILD), "{described}");
        assert!(described.ends_with(" build") || described.contains(" build of "));
        if let Some(commit) = COMMIT {
            assert!(described.ends_with(commit), "{described}");
        }
        // The test binary is built by cargo with no CASEGATE_BUILD, in the test profile.
        if option_env!("CASEGATE_BUILD").is_none() {
            let expected = if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            };
            assert_eq!(BUILD, expected);
        }
    }

    #[test]
    fn plain_words_only() {
        for word in [
            "profile-guided",
            "release",
            "c8f4d45",
            "c8f4d45-dirty",
            "v1.2_3",
        ] {
            assert!(is_plain_word(word), "{word}");
        }
        let too_long = "a".repeat(65);
        for word in [
            "",
            "a b",
            "a\"b",
            "a\nb",
            "a}b",
            "a,b",
            "é",
            too_long.as_str(),
        ] {
            assert!(!is_plain_word(word), "{word:?}");
        }
    }
}
