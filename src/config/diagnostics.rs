//! Collects every config problem with its file:line:column, so one run of `casegate check` lists
//! them all instead of making the operator fix them one at a time.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One thing wrong with the config or a file it names (a page template, say), at a 1-based line and
/// column (columns count characters).
/// Line 0 means the problem is about the file as a whole (it could not be read, for instance).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

/// Every problem found in a config, sorted by position; never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors {
    problems: Vec<Problem>,
}

impl ConfigErrors {
    /// A config that failed before any position could be known, such as an unreadable file.
    pub fn whole_file(file: &Path, message: impl fmt::Display) -> Self {
        ConfigErrors {
            problems: vec![Problem {
                file: file.to_path_buf(),
                line: 0,
                column: 0,
                message: message.to_string(),
            }],
        }
    }

    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

/// One problem per line, in file order: the format editors and CI annotate.
impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl IntoIterator for ConfigErrors {
    type Item = Problem;
    type IntoIter = std::vec::IntoIter<Problem>;

    fn into_iter(self) -> Self::IntoIter {
        self.problems.into_iter()
    }
}

/// The collector validation writes into: byte spans in, file:line:column problems out.
pub struct Diagnostics<'a> {
    file: PathBuf,
    text: &'a str,
    /// Byte offset where each line starts; always begins with 0.
    line_starts: Vec<usize>,
    /// Each problem, flagged when it is a TOML syntax error.
    problems: Vec<(Problem, bool)>,
    /// Lines holding a TOML syntax error. The parser's recovery guesses values there, so what
    /// later checks say about those lines is noise and is dropped.
    syntax_error_lines: Vec<usize>,
}

impl<'a> Diagnostics<'a> {
    pub fn new(file: &Path, text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(index, _)| index + 1))
            .collect();
        Diagnostics {
            file: file.to_path_buf(),
            text,
            line_starts,
            problems: Vec::new(),
            syntax_error_lines: Vec::new(),
        }
    }

    /// Records a problem at the start of `span` (a byte range into the config text).
    pub fn error(&mut self, span: Range<usize>, message: impl fmt::Display) {
        self.record(span, message, false);
    }

    /// Records a problem in another file the config names (a page template), already located.
    pub fn elsewhere(&mut self, problem: Problem) {
        self.problems.push((problem, false));
    }

    /// Records a TOML syntax error; later problems on the same line are dropped as follow-ons.
    pub fn syntax_error(&mut self, span: Range<usize>, message: impl fmt::Display) {
        let (line, _) = self.position(span.start);
        self.syntax_error_lines.push(line);
        self.record(span, format_args!("TOML syntax: {message}"), true);
    }

    fn record(&mut self, span: Range<usize>, message: impl fmt::Display, syntax: bool) {
        let (line, column) = self.position(span.start);
        let problem = Problem {
            file: self.file.clone(),
            line,
            column,
            message: message.to_string(),
        };
        self.problems.push((problem, syntax));
    }

    /// Whether the document had syntax errors, so structure-level checks (a missing section) can
    /// hold back: a section whose header failed to parse is not really missing.
    pub fn has_syntax_errors(&self) -> bool {
        !self.syntax_error_lines.is_empty()
    }

    pub fn has_problems(&self) -> bool {
        !self.problems.is_empty()
    }

    /// The 1-based line and column (in characters) of a byte offset; offsets past the end or
    /// inside a character are clamped rather than trusted.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self
            .line_starts
            .partition_point(|start| *start <= offset)
            .max(1);
        let line_start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let column = match self.text.get(line_start..offset) {
            Some(before) => before.chars().count(),
            None => offset - line_start,
        };
        (line, column + 1)
    }

    /// The validated value when nothing was wrong, otherwise every problem sorted by position.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, ConfigErrors> {
        let Diagnostics {
            file,
            problems,
            syntax_error_lines,
            ..
        } = self;
        if let (Some(value), true) = (value, problems.is_empty()) {
            return Ok(value);
        }
        let mut problems: Vec<Problem> = problems
            .into_iter()
            .filter(|(problem, syntax)| {
                *syntax || problem.file != file || !syntax_error_lines.contains(&problem.line)
            })
            .map(|(problem, _)| problem)
            .collect();
        if problems.is_empty() {
            // Validation returned no value without saying why: refuse rather than run half a config.
            problems.push(Problem {
                file: file.clone(),
                line: 0,
                column: 0,
                message: "the configuration is incomplete".to_owned(),
            });
        }
        // The config file's problems first, then each other file's; stable, so problems at one
        // position keep the order validation found them in.
        problems.sort_by(|a, b| {
            (a.file != file, &a.file, a.line, a.column).cmp(&(
                b.file != file,
                &b.file,
                b.line,
                b.column,
            ))
        });
        problems.dedup();
        Err(ConfigErrors { problems })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_offsets_become_one_based_lines_and_character_columns() {
        let text = "a = 1\nb = \"é\" x\n\nlast";
        let diag = Diagnostics::new(Path::new("c.toml"), text);
        let cases = [
            ("the first byte is line 1 column 1", 0, (1, 1)),
            ("the newline belongs to its line", 5, (1, 6)),
            ("the byte after a newline starts the next line", 6, (2, 1)),
            ("columns count characters, not bytes", 13, (2, 7)),
            ("an empty line has column 1", 17, (3, 1)),
            (
                "the end of the text is after the last character",
                22,
                (4, 5),
            ),
            ("an offset past the end is clamped", 999, (4, 5)),
            (
                "an offset inside a character still yields a position",
                12,
                (2, 7),
            ),
        ];
        for (name, offset, expected) in cases {
            assert_eq!(diag.position(offset), expected, "{name}");
        }
    }

    #[test]
    fn problems_come_out_sorted_by_position_and_display_as_file_line_column() {
        let text = "one\ntwo\nthree\n";
        let mut diag = Diagnostics::new(Path::new("config/casegate.toml"), text);
        diag.error(8..9, "third");
        diag.error(0..1, "first");
        diag.error(5..6, "second");
        let errors = diag.finish(Some(())).unwrap_err();
        assert_eq!(
            errors.to_string(),
            "config/casegate.toml:1:1: first\nconfig/casegate.toml:2:2: second\nconfig/casegate.toml:3:1: third"
        );
    }

    #[test]
    fn follow_on_problems_on_a_syntax_error_line_are_dropped() {
        let text = "a = = 1\nb = 2\n";
        let mut diag = Diagnostics::new(Path::new("c.toml"), text);
        diag.syntax_error(4..5, "extra `=`");
        diag.error(0..1, "a: invalid type");
        diag.error(8..9, "b: unknown field");
        let messages: Vec<String> = diag
            .finish(Some(()))
            .unwrap_err()
            .into_iter()
            .map(|p| p.message)
            .collect();
        assert_eq!(messages, ["TOML syntax: extra `=`", "b: unknown field"]);
    }

    #[test]
    fn a_missing_value_without_problems_is_still_an_error() {
        let diag = Diagnostics::new(Path::new("c.toml"), "");
        let errors = diag.finish::<()>(None).unwrap_err();
        assert_eq!(
            errors.to_string(),
            "c.toml: the configuration is incomplete"
        );
    }

    #[test]
    fn whole_file_problems_have_no_position() {
        let errors = ConfigErrors::whole_file(Path::new("missing.toml"), "cannot read");
        assert_eq!(errors.to_string(), "missing.toml: cannot read");
    }
}
