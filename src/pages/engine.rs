//! The template language, and nothing more: `{{name}}` inserts a value, `{{#name}}..{{/name}}`
//! keeps its inside only when `name` is set and non-empty. Templates are parsed once, when the
//! config is loaded, against the list of names they may use, so a typo is a load-time error with
//! a position and never a blank in front of a recipient.

use std::borrow::Cow;
use std::ops::Range;

/// A parsed template, ready to render any number of times.
#[derive(Clone, Debug)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Clone, Debug)]
enum Node {
    Text(Box<str>),
    /// The names point into the template's list of allowed names, so rendering compares but
    /// never allocates for them.
    Value(&'static str),
    Section(&'static str, Vec<Node>),
}

/// One problem in a template's text, at a byte offset into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub offset: usize,
    pub message: String,
}

/// How values are inserted: escaped for HTML, or as they are for plain text (emails).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escape {
    Html,
    None,
}

/// A value as a template sees it. `Markup` is HTML the gateway built itself (the page inside the
/// layout); it is never made from anything a recipient or operator typed into a variable.
#[derive(Clone, Copy, Debug)]
pub enum Value<'v> {
    Text(&'v str),
    Markup(&'v str),
}

/// Where a template's values come from.
pub trait Lookup {
    fn lookup(&self, name: &str) -> Option<Value<'_>>;
}

/// The values one render of a page or email gets. Setting a name the template does not use is
/// harmless; a name the template uses but nobody set renders as nothing.
#[derive(Clone, Debug, Default)]
pub struct Vars<'a> {
    entries: Vec<(&'a str, Cow<'a, str>)>,
}

// === impl Vars ===

impl<'a> Vars<'a> {
    pub fn new() -> Vars<'a> {
        Vars::default()
    }

    /// Sets `name`, replacing an earlier value; takes `&str` or `String`.
    pub fn set(mut self, name: &'a str, value: impl Into<Cow<'a, str>>) -> Vars<'a> {
        let value = value.into();
        match self.entries.iter_mut().find(|(known, _)| *known == name) {
            Some((_, old)) => *old = value,
            None => self.entries.push((name, value)),
        }
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, value)| value.as_ref())
    }
}

impl Lookup for Vars<'_> {
    fn lookup(&self, name: &str) -> Option<Value<'_>> {
        self.get(name).map(Value::Text)
    }
}

// === impl Template ===

impl Template {
    /// Parses `text`, allowing only the names in `allowed`. Every problem is reported, not just
    /// the first, so an operator fixes an override file in one go.
    pub fn parse(text: &str, allowed: &[&'static str]) -> Result<Template, Vec<SyntaxError>> {
        Parser {
            text,
            allowed,
            errors: Vec::new(),
        }
        .parse()
    }

    /// Appends the rendered template to `out`.
    pub fn render(&self, values: &dyn Lookup, escape: Escape, out: &mut String) {
        render_nodes(&self.nodes, values, escape, out);
    }

    /// Whether the template uses `name` anywhere, as a value or a section.
    #[cfg(test)]
    pub fn uses(&self, name: &str) -> bool {
        fn any(nodes: &[Node], name: &str) -> bool {
            nodes.iter().any(|node| match node {
                Node::Text(_) => false,
                Node::Value(used) => *used == name,
                Node::Section(used, inner) => *used == name || any(inner, name),
            })
        }
        any(&self.nodes, name)
    }
}

fn render_nodes(nodes: &[Node], values: &dyn Lookup, escape: Escape, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Value(name) => match (values.lookup(name), escape) {
                (Some(Value::Text(text)), Escape::Html) => escape_html(text, out),
                (Some(Value::Text(text) | Value::Markup(text)), _) => out.push_str(text),
                (None, _) => {}
            },
            Node::Section(name, inner) => {
                let set = match values.lookup(name) {
                    Some(Value::Text(text) | Value::Markup(text)) => !text.is_empty(),
                    None => false,
                };
                if set {
                    render_nodes(inner, values, escape, out);
                }
            }
        }
    }
}

/// Escapes the five characters that can end an HTML text or a quoted attribute value.
pub fn escape_html(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

struct Parser<'t> {
    text: &'t str,
    allowed: &'t [&'static str],
    errors: Vec<SyntaxError>,
}

/// How deeply sections may nest. A real page needs two or three; a template is rendered (and
/// dropped) recursively, one level per section, so an override file must not choose the depth.
const MAX_SECTION_DEPTH: usize = 16;

/// A section being parsed: its name, where its opening tag is, and what it holds so far.
struct Open {
    name: &'static str,
    offset: usize,
    nodes: Vec<Node>,
}

impl Parser<'_> {
    fn parse(mut self) -> Result<Template, Vec<SyntaxError>> {
        let text = self.text;
        let mut stack: Vec<Open> = Vec::new();
        let mut nodes: Vec<Node> = Vec::new();
        let mut pos = 0;
        while let Some(found) = text[pos..].find("{{") {
            let tag_start = pos + found;
            let Some(found_end) = text[tag_start + 2..].find("}}") else {
                self.error(tag_start, "`{{` is never closed with `}}`");
                break;
            };
            let tag_end = tag_start + 2 + found_end + 2;
            let inner = text[tag_start + 2..tag_end - 2].trim();
            let (kind, name) = match inner.as_bytes().first() {
                Some(b'#') => (TagKind::Open, inner[1..].trim()),
                Some(b'/') => (TagKind::Close, inner[1..].trim()),
                _ => (TagKind::Value, inner),
            };
            // A section tag alone on its line takes the line with it, so text templates (emails)
            // can put sections on lines of their own without leaving blank lines behind.
            let (text_end, next) = match kind {
                TagKind::Value => (tag_start, tag_end),
                TagKind::Open | TagKind::Close => {
                    standalone(text, pos..tag_start, tag_end).unwrap_or((tag_start, tag_end))
                }
            };
            let current = stack.last_mut().map_or(&mut nodes, |open| &mut open.nodes);
            if text_end > pos {
                current.push(Node::Text(text[pos..text_end].into()));
            }
            pos = next;
            let Some(name) = self.known(name, tag_start) else {
                continue;
            };
            match kind {
                TagKind::Value => current.push(Node::Value(name)),
                TagKind::Open if stack.len() == MAX_SECTION_DEPTH => {
                    self.error(
                        tag_start,
                        format!("sections nest deeper than {MAX_SECTION_DEPTH}"),
                    );
                    // The rest is not read: its closing tags would all be reported again.
                    stack.clear();
                    break;
                }
                TagKind::Open => stack.push(Open {
                    name,
                    offset: tag_start,
                    nodes: Vec::new(),
                }),
                TagKind::Close => match stack.pop() {
                    Some(open) if open.name == name => {
                        let parent = stack.last_mut().map_or(&mut nodes, |open| &mut open.nodes);
                        parent.push(Node::Section(open.name, open.nodes));
                    }
                    Some(open) => {
                        self.error(
                            tag_start,
                            format!(
                                "`{{{{/{name}}}}}` closes a section that is not open; \
                                 the open one is `{{{{#{}}}}}`",
                                open.name
                            ),
                        );
                        stack.push(open);
                    }
                    None => self.error(
                        tag_start,
                        format!("`{{{{/{name}}}}}` closes a section that is not open"),
                    ),
                },
            }
        }
        let current = stack.last_mut().map_or(&mut nodes, |open| &mut open.nodes);
        if pos < text.len() {
            current.push(Node::Text(text[pos..].into()));
        }
        for open in stack.into_iter().rev() {
            self.error(
                open.offset,
                format!(
                    "`{{{{#{}}}}}` is never closed with `{{{{/{}}}}}`",
                    open.name, open.name
                ),
            );
        }
        if self.errors.is_empty() {
            Ok(Template { nodes })
        } else {
            self.errors.sort_by_key(|error| error.offset);
            Err(self.errors)
        }
    }

    /// The allowed name `name` is, or `None` after recording why it is not one.
    fn known(&mut self, name: &str, offset: usize) -> Option<&'static str> {
        if let Some(known) = self.allowed.iter().find(|known| **known == name) {
            return Some(known);
        }
        let message = if self.allowed.is_empty() {
            format!("unknown placeholder `{name}`; this template has no placeholders")
        } else {
            format!(
                "unknown placeholder `{name}`; this template knows {}",
                self.allowed.join(", ")
            )
        };
        self.error(offset, message);
        None
    }

    fn error(&mut self, offset: usize, message: impl Into<String>) {
        self.errors.push(SyntaxError {
            offset,
            message: message.into(),
        });
    }
}

#[derive(Clone, Copy)]
enum TagKind {
    Value,
    Open,
    Close,
}

/// When the tag at `tag_start..tag_end` is the only thing on its line (besides spaces and tabs),
/// where the text before it ends and where the text after it starts, so the line disappears.
fn standalone(text: &str, before: Range<usize>, tag_end: usize) -> Option<(usize, usize)> {
    let line_start = text[..before.end]
        .rfind('\n')
        .map_or(0, |newline| newline + 1);
    if line_start < before.start {
        // The line began before the previous tag ended: that tag shares the line.
        return None;
    }
    if !text[line_start..before.end]
        .bytes()
        .all(|b| b == b' ' || b == b'\t')
    {
        return None;
    }
    let rest = &text[tag_end..];
    let spaces = rest.len() - rest.trim_start_matches([' ', '\t']).len();
    let after = &rest[spaces..];
    let newline = if after.starts_with("\r\n") {
        2
    } else if after.starts_with('\n') {
        1
    } else if after.is_empty() {
        0
    } else {
        return None;
    };
    Some((line_start, tag_end + spaces + newline))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: &[&str] = &["name", "note", "url"];

    fn render(text: &str, vars: &Vars, escape: Escape) -> String {
        let template = Template::parse(text, NAMES).expect("parses");
        let mut out = String::new();
        template.render(vars, escape, &mut out);
        out
    }

    fn errors(text: &str) -> Vec<(usize, String)> {
        Template::parse(text, NAMES)
            .expect_err("refused")
            .into_iter()
            .map(|error| (error.offset, error.message))
            .collect()
    }

    #[test]
    fn values_and_sections_render_as_written() {
        let vars = Vars::new().set("name", "Ann").set("note", "");
        let table = [
            ("plain text is kept", "no tags here", "no tags here"),
            ("a value is inserted", "Hi {{name}}!", "Hi Ann!"),
            ("spaces inside a tag are fine", "Hi {{ name }}!", "Hi Ann!"),
            ("an unset value is empty", "[{{url}}]", "[]"),
            ("a set section is kept", "{{#name}}yes{{/name}}", "yes"),
            ("an empty section is dropped", "{{#note}}no{{/note}}", ""),
            ("an unset section is dropped", "{{#url}}no{{/url}}", ""),
            (
                "sections nest",
                "{{#name}}a{{#note}}b{{/note}}c{{/name}}",
                "ac",
            ),
            ("a lone brace is text", "{ name } }}", "{ name } }}"),
        ];
        for (what, text, expected) in table {
            assert_eq!(render(text, &vars, Escape::Html), expected, "{what}");
        }
    }

    #[test]
    fn html_escapes_every_value_and_text_escapes_none() {
        let vars = Vars::new().set("name", "<b>\"Tom\" & 'Jerry'</b>");
        assert_eq!(
            render("<p title=\"{{name}}\">{{name}}</p>", &vars, Escape::Html),
            "<p title=\"&lt;b&gt;&quot;Tom&quot; &amp; &#39;Jerry&#39;&lt;/b&gt;\">\
             &lt;b&gt;&quot;Tom&quot; &amp; &#39;Jerry&#39;&lt;/b&gt;</p>"
        );
        assert_eq!(
            render("{{name}}", &vars, Escape::None),
            "<b>\"Tom\" & 'Jerry'</b>"
        );
    }

    #[test]
    fn section_tags_alone_on_a_line_take_the_line_with_them() {
        let text =
            "Hello\n{{#note}}\nNote: {{note}}\n{{/note}}\n  {{#url}}  \r\n{{url}}\n{{/url}}\nBye";
        let with = Vars::new().set("note", "n").set("url", "u");
        assert_eq!(render(text, &with, Escape::None), "Hello\nNote: n\nu\nBye");
        assert_eq!(render(text, &Vars::new(), Escape::None), "Hello\nBye");
        // Inline sections keep their surroundings.
        assert_eq!(
            render("a {{#note}}b{{/note}} c\n", &with, Escape::None),
            "a b c\n"
        );
    }

    #[test]
    fn sections_nested_deeper_than_the_cap_are_one_error_at_the_first_too_deep() {
        let within = format!("{}x{}", "{{#name}}".repeat(16), "{{/name}}".repeat(16));
        assert!(Template::parse(&within, NAMES).is_ok());
        let text = format!(
            "{}x{}",
            "{{#name}}".repeat(20_000),
            "{{/name}}".repeat(20_000)
        );
        let errors = Template::parse(&text, NAMES).expect_err("too deep");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].offset, 16 * "{{#name}}".len());
        assert!(errors[0].message.contains("nest deeper than 16"));
    }

    #[test]
    fn every_mistake_is_reported_with_its_offset() {
        /// What the test is about, the template, and the problems expected at their offsets.
        type Case = (&'static str, &'static str, Vec<(usize, &'static str)>);
        let table: [Case; 6] = [
            (
                "an unknown name",
                "Hi {{nmae}}",
                vec![(
                    3,
                    "unknown placeholder `nmae`; this template knows name, note, url",
                )],
            ),
            (
                "an unclosed tag",
                "Hi {{name",
                vec![(3, "`{{` is never closed with `}}`")],
            ),
            (
                "an unclosed section",
                "{{#name}}x",
                vec![(0, "`{{#name}}` is never closed with `{{/name}}`")],
            ),
            (
                "a stray close",
                "x{{/name}}",
                vec![(1, "`{{/name}}` closes a section that is not open")],
            ),
            (
                "crossed sections",
                "{{#name}}{{#note}}{{/name}}{{/note}}",
                vec![
                    (
                        18,
                        "`{{/name}}` closes a section that is not open; the open one is `{{#note}}`",
                    ),
                    (0, "`{{#name}}` is never closed with `{{/name}}`"),
                ],
            ),
            (
                "several problems at once",
                "{{a}} {{b}}",
                vec![
                    (
                        0,
                        "unknown placeholder `a`; this template knows name, note, url",
                    ),
                    (
                        6,
                        "unknown placeholder `b`; this template knows name, note, url",
                    ),
                ],
            ),
        ];
        for (what, text, expected) in table {
            let mut expected: Vec<(usize, String)> = expected
                .into_iter()
                .map(|(offset, message)| (offset, message.to_owned()))
                .collect();
            expected.sort_by_key(|(offset, _)| *offset);
            assert_eq!(errors(text), expected, "{what}");
        }
    }

    #[test]
    fn later_values_replace_earlier_ones() {
        let vars = Vars::new().set("name", "a").set("name", String::from("b"));
        assert_eq!(vars.get("name"), Some("b"));
    }
}
