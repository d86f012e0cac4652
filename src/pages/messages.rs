//! Reading a `messages.toml`: short texts by key (page titles, JSON error messages, email
//! subjects). Tables give the key's first part, so `[revoked_link] title = ".."` is the
//! message `revoked_link.title`.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::engine::SyntaxError;

/// One message as written, with the byte offset of its key for problem reports.
#[derive(Debug)]
pub struct Message {
    pub key: String,
    pub text: String,
    pub offset: usize,
}

/// Every message in `text`, and every problem: TOML syntax, and values that are not text. Keys
/// are not checked here; only the caller knows which exist.
pub fn parse(text: &str) -> (Vec<Message>, Vec<SyntaxError>) {
    let (document, syntax_errors) = DeTable::parse_recoverable(text);
    let mut errors: Vec<SyntaxError> = syntax_errors
        .iter()
        .map(|error| SyntaxError {
            offset: error.span().map_or(0, |span| span.start),
            message: format!("TOML syntax: {}", error.message()),
        })
        .collect();
    let mut messages = Vec::new();
    collect("", document.into_inner(), &mut messages, &mut errors);
    (messages, errors)
}

fn collect(
    prefix: &str,
    table: DeTable<'_>,
    messages: &mut Vec<Message>,
    errors: &mut Vec<SyntaxError>,
) {
    for (key, value) in table {
        let offset = key.span().start;
        let key = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        match Spanned::into_inner(value) {
            DeValue::String(text) => messages.push(Message {
                key,
                text: text.into_owned(),
                offset,
            }),
            DeValue::Table(inner) => collect(&key, inner, messages, errors),
            DeValue::Integer(_)
            | DeValue::Float(_)
            | DeValue::Boolean(_)
            | DeValue::Datetime(_)
            | DeValue::Array(_) => errors.push(SyntaxError {
                offset,
                message: format!("{key}: must be text in quotes"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_and_dotted_keys_both_name_messages() {
        let (messages, errors) =
            parse("top = \"a\"\n[revoked_link]\ntitle = \"b\"\n[code]\nsubject = \"c\"\n");
        assert!(errors.is_empty(), "{errors:?}");
        let mut pairs: Vec<(&str, &str, usize)> = messages
            .iter()
            .map(|m| (m.key.as_str(), m.text.as_str(), m.offset))
            .collect();
        pairs.sort_by_key(|(_, _, offset)| *offset);
        assert_eq!(
            pairs,
            [
                ("top", "a", 0),
                ("revoked_link.title", "b", 25),
                ("code.subject", "c", 44)
            ]
        );
    }

    #[test]
    fn values_that_are_not_text_and_syntax_errors_are_problems() {
        let (_, errors) = parse("[a]\ntitle = 3\nbroken = \n");
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert!(
            messages.contains(&"a.title: must be text in quotes"),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.starts_with("TOML syntax:")),
            "{messages:?}"
        );
    }
}
