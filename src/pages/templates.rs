//! Every page, email and message in every language: the embedded defaults with the operator's
//! override files (`[pages] dir`) layered on top, each parsed and checked once, when the config is
//! loaded. Rendering then only walks parsed templates.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use tracing::error;

use super::engine::{Escape, Lookup, SyntaxError, Template, Value, Vars};
use super::lang::Lang;
use super::messages;
use super::specs::{self, Kind, SPECS, Spec};
use super::style::STYLE;
use crate::config::Problem;

/// An override file is a page of HTML or a list of messages; anything larger is the wrong file.
const MAX_OVERRIDE_BYTES: u64 = 256 * 1024;

const MESSAGES_FILE: &str = "messages.toml";

/// Shown if a page that does not exist is asked for, which only a bug in casegate can do. Plain
/// English with no placeholders, so it cannot go wrong itself.
const FALLBACK_PAGE: &str = "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
    <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
    <title>Something went wrong on our side</title>\n</head>\n<body>\n<main>\n\
    <h1>Something went wrong on our side</h1>\n\
    <p>Please try again in a few minutes.</p>\n</main>\n</body>\n</html>\n";

/// Every template and message in every language. Built once per config and shared via `Arc`.
pub struct Templates {
    /// Indexed by [`Lang`] as `usize`, in the order of [`Lang::ALL`].
    sets: Vec<Set>,
}

/// One language's templates and messages.
#[derive(Default)]
struct Set {
    templates: HashMap<&'static str, Template>,
    messages: HashMap<Box<str>, Box<str>>,
}

// === impl Templates ===

impl Templates {
    /// The templates casegate ships, without overrides.
    pub fn embedded() -> Templates {
        // The embedded set is checked by a unit test, so nothing is dropped here in practice; if
        // something were, the affected page would fall back to the generic error page.
        let mut ignored = Vec::new();
        Templates::from_embedded(&mut ignored)
    }

    /// The embedded templates with the override files under `dir/<lang>/` on top. Every problem
    /// (unknown file, unknown placeholder, unbalanced section, unreadable file, unknown message)
    /// is reported at once, with its file and line.
    pub fn load(dir: Option<&Path>) -> Result<Templates, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut templates = Templates::from_embedded(&mut problems);
        if let Some(dir) = dir {
            templates.overlay_dir(dir, &mut problems);
        }
        if problems.is_empty() {
            Ok(templates)
        } else {
            problems.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
            Err(problems)
        }
    }

    /// A whole HTML page: the layout around the named page, every variable HTML-escaped. The
    /// page's `title` is its `<name>.title` message; `error_code`, when set, is shown under it.
    pub fn page(&self, name: &str, lang: Lang, vars: &Vars) -> String {
        let set = self.set(lang);
        let body = set
            .templates
            .get(name)
            .filter(|_| specs::spec(name).is_some_and(|spec| spec.kind == Kind::Page));
        let (Some(body), Some(layout)) = (body, set.templates.get("layout")) else {
            error!(
                page = name,
                "no such page template (a bug); showing the generic error page"
            );
            return FALLBACK_PAGE.to_owned();
        };
        let title = self.message(&format!("{name}.title"), lang);
        let mut content = String::with_capacity(2048);
        body.render(&PageValues { vars, title }, Escape::Html, &mut content);
        let mut page = String::with_capacity(content.len() + STYLE.len() + 1024);
        let layout_values = LayoutValues {
            lang,
            title,
            error_code: vars.get("error_code"),
            content: &content,
        };
        layout.render(&layout_values, Escape::Html, &mut page);
        page
    }

    /// A plain-text template (an email body); values are inserted as they are.
    pub fn text(&self, name: &str, lang: Lang, vars: &Vars) -> String {
        let template = self
            .set(lang)
            .templates
            .get(name)
            .filter(|_| specs::spec(name).is_some_and(|spec| spec.kind == Kind::Text));
        let Some(template) = template else {
            error!(template = name, "no such text template (a bug)");
            return String::new();
        };
        let mut text = String::with_capacity(1024);
        template.render(vars, Escape::None, &mut text);
        text
    }

    /// A short message by key (`<page>.title`, `<page>.message`, `<email>.subject`). Every
    /// language has every key (a unit test holds the embedded ones to it, and overrides can only
    /// replace keys); a key that does not exist is a bug, logged, and comes back empty.
    pub fn message(&self, key: &str, lang: Lang) -> &str {
        match self.set(lang).messages.get(key) {
            Some(text) => text,
            None => {
                error!(key, "no such message (a bug)");
                ""
            }
        }
    }

    fn set(&self, lang: Lang) -> &Set {
        // Every language gets a set in `from_embedded`; the fallback only satisfies the types.
        self.sets.get(lang as usize).unwrap_or(&EMPTY_SET)
    }

    fn from_embedded(problems: &mut Vec<Problem>) -> Templates {
        let mut sets = Vec::with_capacity(Lang::ALL.len());
        for lang in Lang::ALL {
            let mut set = Set::default();
            for (file_name, text) in embedded_files(lang) {
                let file = Path::new("embedded").join(lang.tag()).join(file_name);
                set.add_file(&file, file_name, text, None, problems);
            }
            sets.push(set);
        }
        Templates { sets }
    }

    fn overlay_dir(&mut self, dir: &Path, problems: &mut Vec<Problem>) {
        let entries = match sorted_entries(dir) {
            Ok(entries) => entries,
            Err(reason) => return problems.push(whole_file(dir, reason)),
        };
        let languages = Lang::ALL.map(Lang::tag).join(", ");
        for (name, path) in entries {
            let lang = Lang::ALL.into_iter().find(|lang| lang.tag() == name);
            match lang {
                Some(lang) if path.is_dir() => self.overlay_lang(lang, &path, problems),
                Some(_) | None => problems.push(whole_file(
                    &path,
                    format_args!(
                        "not a language directory; [pages] dir holds one directory per language ({languages})"
                    ),
                )),
            }
        }
    }

    fn overlay_lang(&mut self, lang: Lang, dir: &Path, problems: &mut Vec<Problem>) {
        let entries = match sorted_entries(dir) {
            Ok(entries) => entries,
            Err(reason) => return problems.push(whole_file(dir, reason)),
        };
        let known_keys: HashSet<String> = SPECS.iter().flat_map(Spec::message_keys).collect();
        let Some(set) = self.sets.get_mut(lang as usize) else {
            return;
        };
        for (name, path) in entries {
            match read_override(&path) {
                Ok(text) => set.add_file(&path, &name, &text, Some(&known_keys), problems),
                Err(reason) => problems.push(whole_file(&path, reason)),
            }
        }
    }
}

static EMPTY_SET: std::sync::LazyLock<Set> = std::sync::LazyLock::new(Set::default);

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Templates")
            .field("languages", &Lang::ALL.map(Lang::tag))
            .field("templates", &SPECS.len())
            .finish_non_exhaustive()
    }
}

// === impl Set ===

impl Set {
    /// Parses one file, template or messages, into the set, replacing what it overrides.
    /// `known_keys` limits which messages may be set (`None` for the embedded set, which defines
    /// them).
    fn add_file(
        &mut self,
        file: &Path,
        file_name: &str,
        text: &str,
        known_keys: Option<&HashSet<String>>,
        problems: &mut Vec<Problem>,
    ) {
        if file_name == MESSAGES_FILE {
            return self.add_messages(file, text, known_keys, problems);
        }
        let Some(spec) = specs::spec_for_file(file_name) else {
            let names: Vec<String> = SPECS.iter().map(Spec::file_name).collect();
            return problems.push(whole_file(
                file,
                format_args!(
                    "not a template casegate has; expected {MESSAGES_FILE} or one of {}",
                    names.join(", ")
                ),
            ));
        };
        match Template::parse(text, spec.vars) {
            Ok(template) => {
                self.templates.insert(spec.name, template);
            }
            Err(errors) => problems.extend(located(file, text, errors)),
        }
    }

    fn add_messages(
        &mut self,
        file: &Path,
        text: &str,
        known_keys: Option<&HashSet<String>>,
        problems: &mut Vec<Problem>,
    ) {
        let (messages, mut errors) = messages::parse(text);
        for message in messages {
            let known = known_keys.is_none_or(|known| known.contains(message.key.as_str()));
            if !known {
                errors.push(SyntaxError {
                    offset: message.offset,
                    message: format!(
                        "unknown message `{}`; the embedded messages.toml lists every key",
                        message.key
                    ),
                });
            } else if message.text.trim().is_empty() {
                errors.push(SyntaxError {
                    offset: message.offset,
                    message: format!("{}: is empty", message.key),
                });
            } else {
                self.messages
                    .insert(message.key.into_boxed_str(), message.text.into_boxed_str());
            }
        }
        problems.extend(located(file, text, errors));
    }
}

/// A page's values: the caller's, and its title.
struct PageValues<'a> {
    vars: &'a Vars<'a>,
    title: &'a str,
}

impl Lookup for PageValues<'_> {
    fn lookup(&self, name: &str) -> Option<Value<'_>> {
        match name {
            "title" => Some(Value::Text(self.title)),
            _ => self.vars.lookup(name),
        }
    }
}

/// The layout's values; only the rendered page and the stylesheet are markup.
struct LayoutValues<'a> {
    lang: Lang,
    title: &'a str,
    error_code: Option<&'a str>,
    content: &'a str,
}

impl Lookup for LayoutValues<'_> {
    fn lookup(&self, name: &str) -> Option<Value<'_>> {
        match name {
            "lang" => Some(Value::Text(self.lang.tag())),
            "title" => Some(Value::Text(self.title)),
            "error_code" => self.error_code.map(Value::Text),
            "style" => Some(Value::Markup(STYLE)),
            "content" => Some(Value::Markup(self.content)),
            _ => None,
        }
    }
}

fn whole_file(file: &Path, message: impl fmt::Display) -> Problem {
    Problem {
        file: file.to_path_buf(),
        line: 0,
        column: 0,
        message: message.to_string(),
    }
}

/// Byte offsets into `text` become 1-based lines and character columns.
fn located(file: &Path, text: &str, errors: Vec<SyntaxError>) -> impl Iterator<Item = Problem> {
    errors.into_iter().map(move |error| {
        let before = text.get(..error.offset.min(text.len())).unwrap_or(text);
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        Problem {
            file: file.to_path_buf(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
            message: error.message,
        }
    })
}

/// A directory's entries by name, skipping hidden files (editor swap files, `.DS_Store`).
fn sorted_entries(dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let cannot_read = |error: std::io::Error| format!("cannot read the directory: {error}");
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(cannot_read)? {
        let entry = entry.map_err(cannot_read)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            entries.push((name, entry.path()));
        }
    }
    entries.sort();
    Ok(entries)
}

fn read_override(path: &Path) -> Result<String, String> {
    let cannot_read = |error: std::io::Error| format!("cannot read: {error}");
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(cannot_read)?
        .take(MAX_OVERRIDE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    if u64::try_from(bytes.len()).map_or(true, |len| len > MAX_OVERRIDE_BYTES) {
        return Err(format!(
            "larger than {MAX_OVERRIDE_BYTES} bytes; is it the right file?"
        ));
    }
    String::from_utf8(bytes).map_err(|_| "is not UTF-8 text".to_owned())
}

/// Includes one language's files; the list is checked against [`SPECS`] by a unit test.
macro_rules! embedded_set {
    ($lang:literal: $($file:literal),+ $(,)?) => {
        &[$(($file, include_str!(concat!("templates/", $lang, "/", $file)))),+]
    };
}

macro_rules! embedded_lang {
    ($lang:literal) => {
        embedded_set!($lang:
            "messages.toml",
            "layout.html",
            "invalid_link.html",
            "expired_link.html",
            "link_not_yet_valid.html",
            "revoked_link.html",
            "sharing_disabled.html",
            "no_session.html",
            "session_expired.html",
            "session_invalid.html",
            "not_allowed.html",
            "form_refused.html",
            "bad_request.html",
            "misdirected_request.html",
            "payload_too_large.html",
            "upgrade_refused.html",
            "upstream_unavailable.html",
            "upstream_timeout.html",
            "temporarily_unavailable.html",
            "internal_error.html",
            "verify.html",
            "code_sent.html",
            "wrong_code.html",
            "code_expired.html",
            "too_many_attempts.html",
            "rate_limited.html",
            "invite.txt",
            "code.txt",
        )
    };
}

fn embedded_files(lang: Lang) -> &'static [(&'static str, &'static str)] {
    match lang {
        Lang::En => embedded_lang!("en"),
        Lang::Sv => embedded_lang!("sv"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn the_embedded_set_loads_without_problems() {
        if let Err(problems) = Templates::load(None) {
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            panic!("{}", lines.join("\n"));
        }
    }

    #[test]
    fn every_language_embeds_every_template_and_exactly_the_expected_messages() {
        let templates = Templates::embedded();
        let expected_keys: BTreeSet<String> = SPECS.iter().flat_map(Spec::message_keys).collect();
        for lang in Lang::ALL {
            let set = templates.set(lang);
            for spec in SPECS {
                assert!(
                    set.templates.contains_key(spec.name),
                    "{lang:?} lacks {}",
                    spec.name
                );
            }
            let keys: BTreeSet<String> = set.messages.keys().map(|k| k.to_string()).collect();
            assert_eq!(keys, expected_keys, "{lang:?} messages");
        }
    }

    #[test]
    fn messages_are_short_plain_sentences() {
        let templates = Templates::embedded();
        for lang in Lang::ALL {
            for (key, text) in &templates.set(lang).messages {
                assert!(
                    text.chars().count() <= 200,
                    "{lang:?} {key} is long for a phone"
                );
                assert!(
                    !text.contains(['<', '>', '{', '}']),
                    "{lang:?} {key} has markup"
                );
                if key.ends_with(".message") {
                    assert!(text.ends_with('.'), "{lang:?} {key} is not a sentence");
                }
            }
        }
    }

    #[test]
    fn pages_use_only_the_title_and_their_own_variables() {
        // Each embedded page states its heading, so a recipient always sees what went wrong.
        let templates = Templates::embedded();
        for lang in Lang::ALL {
            for spec in SPECS.iter().filter(|spec| spec.kind == Kind::Page) {
                let page = &templates.set(lang).templates[spec.name];
                assert!(
                    page.uses("title"),
                    "{lang:?} {} has no title heading",
                    spec.name
                );
                for var in spec.vars {
                    assert!(page.uses(var), "{lang:?} {} never uses {var}", spec.name);
                }
            }
        }
    }

    #[test]
    fn a_missing_page_falls_back_to_the_generic_one() {
        let templates = Templates::embedded();
        assert_eq!(
            templates.page("nope", Lang::Sv, &Vars::new()),
            FALLBACK_PAGE
        );
        assert_eq!(
            templates.page("invite", Lang::En, &Vars::new()),
            FALLBACK_PAGE
        );
        assert_eq!(templates.text("verify", Lang::En, &Vars::new()), "");
        assert_eq!(templates.message("no.such", Lang::En), "");
    }

    #[test]
    fn problems_are_located_by_line_and_character_column() {
        let text = "é\nab {{x}}";
        let problems: Vec<(usize, usize)> = located(
            Path::new("f"),
            text,
            vec![SyntaxError {
                offset: text.find("{{").unwrap_or_default(),
                message: String::new(),
            }],
        )
        .map(|p| (p.line, p.column))
        .collect();
        assert_eq!(problems, [(2, 4)]);
    }
}
