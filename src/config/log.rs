//! Validation of `[log]`: the access log's format, sink and shelf size, and the process log's level.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::Validator;
use super::file::LogSection;

/// How each access-log line is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// `key=value` pairs separated by spaces.
    Text,
}

/// Where access-log lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessTarget {
    Stderr,
    Stdout,
    Off,
    /// A file, resolved against the config file's directory, created if missing (its directory
    /// must exist), appended to.
    File(PathBuf),
}

/// `[log]`, validated.
#[derive(Clone, Debug)]
pub struct Log {
    pub format: LogFormat,
    /// The process log's filter (`info`, `casegate=debug,hyper=warn`...); `RUST_LOG` overrides it.
    pub level: String,
    pub access: AccessTarget,
    /// Lines each worker holds for the writer before new ones are dropped.
    pub buffer: usize,
}

pub const DEFAULT_LOG_LEVEL: &str = "info";
const DEFAULT_BUFFER: usize = 8192;

impl Validator<'_, '_> {
    pub(super) fn log(&mut self, raw: LogSection) -> Option<Log> {
        let format = match raw.format.as_ref() {
            None => Some(LogFormat::Json),
            Some(format) => match format.get_ref().as_str() {
                "json" => Some(LogFormat::Json),
                "text" => Some(LogFormat::Text),
                other => {
                    self.diag.error(
                        format.span(),
                        format_args!("log.format: expected \"json\" or \"text\", not {other:?}"),
                    );
                    None
                }
            },
        };
        let level = match raw.level.as_ref() {
            None => Some(DEFAULT_LOG_LEVEL.to_owned()),
            Some(level) => match tracing_subscriber::EnvFilter::try_new(level.get_ref()) {
                Ok(_) => Some(level.get_ref().clone()),
                Err(error) => {
                    self.diag.error(
                        level.span(),
                        format_args!(
                            "log.level: not a level or filter (e.g. \"info\", \"casegate=debug\"): {error}"
                        ),
                    );
                    None
                }
            },
        };
        let access = match raw.access.as_ref() {
            None => Some(AccessTarget::Stderr),
            Some(access) => match access.get_ref().as_str() {
                "stderr" => Some(AccessTarget::Stderr),
                "stdout" => Some(AccessTarget::Stdout),
                "off" => Some(AccessTarget::Off),
                path if path.trim().is_empty() => {
                    self.diag.error(
                        access.span(),
                        "log.access: is empty; name \"stderr\", \"stdout\", \"off\" or a file",
                    );
                    None
                }
                path => {
                    let file = self.base_dir.join(path);
                    match why_not_writable(&file) {
                        None => Some(AccessTarget::File(file)),
                        Some(reason) => {
                            self.diag.error(
                                access.span(),
                                format_args!(
                                    "log.access: cannot write {}: {reason}",
                                    file.display()
                                ),
                            );
                            None
                        }
                    }
                }
            },
        };
        let buffer = self.count(
            "log.buffer",
            raw.buffer.as_ref(),
            DEFAULT_BUFFER,
            1..=1 << 20,
        );
        Some(Log {
            format: format?,
            level: level?,
            access: access?,
            buffer: buffer?,
        })
    }
}

/// Why the access log could not be created or appended to at `file`, judged without creating
/// anything (`check` has no side effects). Without this, `serve` would stop at start with no
/// position to point the operator at.
fn why_not_writable(file: &Path) -> Option<String> {
    if file.is_dir() {
        return Some("it is a directory; name a file in it".to_owned());
    }
    // A bare file name has an empty parent: the working directory, which exists.
    let dir = file.parent().filter(|dir| !dir.as_os_str().is_empty())?;
    match std::fs::metadata(dir) {
        Ok(found) if found.is_dir() => None,
        Ok(_) => Some(format!("{} is not a directory", dir.display())),
        Err(error) if error.kind() == ErrorKind::NotFound => Some(format!(
            "directory {} does not exist (casegate creates the file, not its directory)",
            dir.display()
        )),
        Err(error) => Some(format!(
            "cannot look at directory {}: {error}",
            dir.display()
        )),
    }
}
