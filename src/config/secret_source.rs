//! Turns `{ env = "NAME" }`, `{ file = "path" }` or `{ value = "..." }` into the secret's text,
//! without ever putting the text into a message or a `Debug` print.

use std::fmt;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::file::SecretRef;

/// Secret files hold a key or a header value; anything larger is the wrong file (or a device).
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// The text of a secret. `Debug` prints `***` and there is no `Display`, so it cannot end up in a
/// log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(String);

impl SecretText {
    /// The secret itself, for the code that decodes the key or sets the header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Best effort without a zeroize dependency, as for the decoded keys: the text is overwritten
/// when dropped, so it does not linger in freed memory. `black_box` keeps the writes from being
/// optimised away as dead stores.
impl Drop for SecretText {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&mut bytes);
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why a secret could not be read. Messages name the variable or file, never the value.
#[derive(Debug)]
pub enum SecretError {
    NoSource,
    SeveralSources,
    /// A key other than env, file or value. Its name is not shown either, in case the secret was
    /// written as a key.
    UnknownKey,
    EnvNameInvalid {
        name: String,
    },
    EnvMissing {
        name: String,
    },
    EnvEmpty {
        name: String,
    },
    FileUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    FileTooLarge {
        path: PathBuf,
    },
    FileNotText {
        path: PathBuf,
    },
    FileEmpty {
        path: PathBuf,
    },
    ValueEmpty,
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretError::NoSource => {
                f.write_str("needs exactly one of env, file or value, e.g. { env = \"NAME\" }")
            }
            SecretError::SeveralSources => {
                f.write_str("needs exactly one of env, file or value, not several")
            }
            SecretError::UnknownKey => f.write_str(
                "takes only env, file or value, e.g. { env = \"NAME\" } \
                 (the other key is not shown: it may be the secret)",
            ),
            SecretError::EnvNameInvalid { name } => {
                write!(f, "{name:?} is not a usable environment variable name")
            }
            SecretError::EnvMissing { name } => {
                write!(f, "environment variable {name} is not set")
            }
            SecretError::EnvEmpty { name } => write!(f, "environment variable {name} is empty"),
            SecretError::FileUnreadable { path, source } => {
                write!(f, "cannot read secret file {}: {source}", path.display())
            }
            SecretError::FileTooLarge { path } => write!(
                f,
                "secret file {} is larger than {MAX_SECRET_FILE_BYTES} bytes; is it the right file?",
                path.display()
            ),
            SecretError::FileNotText { path } => {
                write!(f, "secret file {} is not UTF-8 text", path.display())
            }
            SecretError::FileEmpty { path } => {
                write!(f, "secret file {} is empty", path.display())
            }
            SecretError::ValueEmpty => f.write_str("value is empty"),
        }
    }
}

impl std::error::Error for SecretError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SecretError::FileUnreadable { source, .. } => Some(source),
            SecretError::NoSource
            | SecretError::SeveralSources
            | SecretError::UnknownKey
            | SecretError::EnvNameInvalid { .. }
            | SecretError::EnvMissing { .. }
            | SecretError::EnvEmpty { .. }
            | SecretError::FileTooLarge { .. }
            | SecretError::FileNotText { .. }
            | SecretError::FileEmpty { .. }
            | SecretError::ValueEmpty => None,
        }
    }
}

/// Reads the secret a source names. A relative file is found beside the config file (`base_dir`),
/// so a config behaves the same whatever directory casegate starts in. On failure, returns the
/// span to blame: the offending value, or the whole `{ ... }` when the shape is wrong.
pub fn resolve(
    source: &Spanned<SecretRef>,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SecretText, (Range<usize>, SecretError)> {
    let SecretRef {
        env: env_name,
        file,
        value,
        unknown_key,
    } = source.get_ref();
    if *unknown_key {
        // Whatever else the source holds, the operator has to rewrite it.
        return Err((source.span(), SecretError::UnknownKey));
    }
    match (env_name, file, value) {
        (Some(name), None, None) => from_env(name.get_ref(), env).map_err(|e| (name.span(), e)),
        (None, Some(path), None) => {
            from_file(&base_dir.join(path.get_ref())).map_err(|e| (path.span(), e))
        }
        (None, None, Some(text)) if text.get_ref().is_empty() => {
            Err((text.span(), SecretError::ValueEmpty))
        }
        (None, None, Some(text)) => Ok(SecretText(text.get_ref().clone())),
        (None, None, None) => Err((source.span(), SecretError::NoSource)),
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
            Err((source.span(), SecretError::SeveralSources))
        }
    }
}

fn from_env(name: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<SecretText, SecretError> {
    // `std::env::var` panics on these names; refuse them before asking.
    if name.is_empty() || name.contains(['=', '\0']) {
        return Err(SecretError::EnvNameInvalid {
            name: name.to_owned(),
        });
    }
    match env(name) {
        None => Err(SecretError::EnvMissing {
            name: name.to_owned(),
        }),
        Some(text) if text.is_empty() => Err(SecretError::EnvEmpty {
            name: name.to_owned(),
        }),
        Some(text) => Ok(SecretText(text)),
    }
}

/// Reads a secret file, dropping the line ending editors and `echo` leave at its end.
fn from_file(path: &Path) -> Result<SecretText, SecretError> {
    let unreadable = |source| SecretError::FileUnreadable {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if u64::try_from(bytes.len()).map_or(true, |len| len > MAX_SECRET_FILE_BYTES) {
        return Err(SecretError::FileTooLarge {
            path: path.to_path_buf(),
        });
    }
    let text = String::from_utf8(bytes).map_err(|_| SecretError::FileNotText {
        path: path.to_path_buf(),
    })?;
    let trimmed = text.trim_end_matches(['\n', '\r']);
    if trimmed.is_empty() {
        return Err(SecretError::FileEmpty {
            path: path.to_path_buf(),
        });
    }
    Ok(SecretText(trimmed.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(env: Option<&str>, file: Option<&str>, value: Option<&str>) -> Spanned<SecretRef> {
        let field = |text: Option<&str>, start: usize| {
            text.map(|t| Spanned::new(start..start + 1, t.to_owned()))
        };
        Spanned::new(
            0..100,
            SecretRef {
                env: field(env, 10),
                file: field(file, 20),
                value: field(value, 30),
                unknown_key: false,
            },
        )
    }

    fn environment(name: &str) -> Option<String> {
        match name {
            "SET" => Some("s3cret".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    /// A fresh directory, removed when the test drops it.
    fn temp_dir(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("casegate-secret-{name}-"))
            .tempdir()
            .unwrap()
    }

    #[test]
    fn each_source_yields_its_text() {
        let home = temp_dir("ok");
        let dir = home.path();
        std::fs::write(dir.join("key.txt"), "from-file\r\n").unwrap();
        let cases = [
            (
                "an environment variable is read by name",
                source(Some("SET"), None, None),
                "s3cret",
            ),
            (
                "a relative file is read beside the config",
                source(None, Some("key.txt"), None),
                "from-file",
            ),
            (
                "an inline value is taken as written",
                source(None, None, Some("inline")),
                "inline",
            ),
        ];
        for (name, raw, expected) in cases {
            let text = resolve(&raw, dir, &environment).map_err(|(_, e)| e.to_string());
            assert_eq!(
                text.as_ref().map(SecretText::expose),
                Ok(expected),
                "{name}"
            );
        }
    }

    #[test]
    fn unusable_sources_are_refused_at_the_value_to_blame() {
        let home = temp_dir("bad");
        let dir = home.path();
        std::fs::write(dir.join("empty.txt"), "\n").unwrap();
        std::fs::write(dir.join("binary.bin"), [0xff, 0xfe]).unwrap();
        let cases = [
            (
                "no source at all blames the table",
                source(None, None, None),
                0,
                "exactly one of env, file or value",
            ),
            (
                "two sources blame the table",
                source(Some("SET"), None, Some("x")),
                0,
                "not several",
            ),
            (
                "an unknown key blames the table, even beside a usable source",
                Spanned::new(
                    0..100,
                    SecretRef {
                        unknown_key: true,
                        ..source(Some("SET"), None, None).into_inner()
                    },
                ),
                0,
                "takes only env, file or value",
            ),
            (
                "an unset variable is named",
                source(Some("UNSET_VAR"), None, None),
                10,
                "environment variable UNSET_VAR is not set",
            ),
            (
                "an empty variable is named",
                source(Some("EMPTY"), None, None),
                10,
                "environment variable EMPTY is empty",
            ),
            (
                "a variable name with = is refused",
                source(Some("A=B"), None, None),
                10,
                "not a usable environment variable name",
            ),
            (
                "a missing file is named",
                source(None, Some("nope.txt"), None),
                20,
                "cannot read secret file",
            ),
            (
                "a file of only a newline is empty",
                source(None, Some("empty.txt"), None),
                20,
                "is empty",
            ),
            (
                "a binary file is not text",
                source(None, Some("binary.bin"), None),
                20,
                "is not UTF-8 text",
            ),
            (
                "an empty inline value is refused",
                source(None, None, Some("")),
                30,
                "value is empty",
            ),
        ];
        for (name, raw, expected_start, fragment) in cases {
            match resolve(&raw, dir, &environment) {
                Ok(_) => panic!("{name}: accepted"),
                Err((span, error)) => {
                    assert_eq!(span.start, expected_start, "{name}");
                    assert!(error.to_string().contains(fragment), "{name}: {error}");
                }
            }
        }
    }

    #[test]
    fn an_oversized_file_is_refused_without_reading_it_all() {
        let home = temp_dir("large");
        let dir = home.path();
        std::fs::write(dir.join("large.txt"), vec![b'a'; 70 * 1024]).unwrap();
        let error = resolve(&source(None, Some("large.txt"), None), dir, &environment)
            .unwrap_err()
            .1;
        assert!(matches!(error, SecretError::FileTooLarge { .. }), "{error}");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let text = SecretText("hunter2".to_owned());
        assert_eq!(format!("{text:?}"), "***");
    }
}
