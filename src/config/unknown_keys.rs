//! Recovery from unknown keys while a section is deserialized. serde stops a table at its first
//! unknown key (`deny_unknown_fields`), which would hide every other problem of the section until
//! the operator fixed that key; instead the key is reported, taken out of the parsed document and
//! the section is read again.

use toml::de::{DeValue, Error};

/// How many unknown keys one section may shed before the rest are left unreported: enough for any
/// real config, few enough that a file of nothing but typos is not read a thousand times.
pub const MAX_UNKNOWN_KEYS: usize = 100;

/// Whether a deserialization error is serde's refusal of a key the table does not have (a secret
/// source never refuses one: it records it, see `SecretRef::unknown_key`).
pub fn is_unknown_key(error: &Error) -> bool {
    error.message().starts_with("unknown field `")
}

/// Removes the key that starts at byte `offset`, at any depth (tables, arrays of tables, inline
/// tables), with its value. Returns whether a key was there: when not, the error cannot be
/// recovered from and reading the section again would only fail the same way.
pub fn remove_key_at(value: &mut DeValue<'_>, offset: usize) -> bool {
    match value {
        DeValue::Table(table) => {
            let found = table
                .iter()
                .map(|(key, _)| key)
                .find(|key| key.span().start == offset)
                .cloned();
            match found {
                Some(key) => table.remove(&key).is_some(),
                None => table
                    .iter_mut()
                    .any(|(_, value)| remove_key_at(value.get_mut(), offset)),
            }
        }
        DeValue::Array(items) => items
            .iter_mut()
            .any(|item| remove_key_at(item.get_mut(), offset)),
        DeValue::String(_)
        | DeValue::Integer(_)
        | DeValue::Float(_)
        | DeValue::Boolean(_)
        | DeValue::Datetime(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use toml::de::DeTable;

    use super::*;

    /// Whether a key started at `offset`, and the dotted paths of the values left once it is
    /// removed, so a test can compare what is left.
    fn keys_left(text: &str, offset: usize) -> (bool, Vec<String>) {
        let mut document = DeValue::Table(DeTable::parse(text).expect("valid TOML").into_inner());
        let removed = remove_key_at(&mut document, offset);
        (removed, dotted_keys("", &document))
    }

    fn dotted_keys(prefix: &str, value: &DeValue<'_>) -> Vec<String> {
        match value {
            DeValue::Table(table) => table
                .iter()
                .flat_map(|(key, value)| {
                    dotted_keys(&format!("{prefix}{}.", key.get_ref()), value.get_ref())
                })
                .collect(),
            DeValue::Array(items) => items
                .iter()
                .enumerate()
                .flat_map(|(index, item)| dotted_keys(&format!("{prefix}{index}."), item.get_ref()))
                .collect(),
            _ => vec![prefix.trim_end_matches('.').to_owned()],
        }
    }

    #[test]
    fn the_key_at_the_offset_is_removed_wherever_it_is() {
        let cases: &[(&str, &str, &str, &[&str])] = &[
            ("a key at the top", "a = 1\nbogus = 2\n", "bogus", &["a"]),
            (
                "a key in a nested table",
                "[limits]\nmax = 1\nbogus = 2\n",
                "bogus",
                &["limits.max"],
            ),
            (
                "a key in an inline table",
                "k1 = { env = \"A\", bogus = 1 }\n",
                "bogus",
                &["k1.env"],
            ),
            (
                "a key in one entry of an array of tables",
                "[[clients]]\nname = \"a\"\n[[clients]]\nname = \"b\"\nbogus = 1\n",
                "bogus",
                &["clients.0.name", "clients.1.name"],
            ),
            (
                "a whole unknown table",
                "[server]\nlisten = 1\n[server.bogus]\nx = 1\n",
                "bogus",
                &["server.listen"],
            ),
        ];
        for (name, text, key, left) in cases {
            let offset = text.rfind(key).expect("the key is in the text");
            assert_eq!(
                keys_left(text, offset),
                (true, left.iter().map(|key| (*key).to_owned()).collect()),
                "{name}"
            );
        }
    }

    #[test]
    fn an_offset_where_no_key_starts_removes_nothing() {
        let text = "alpha = 1\nb = \"text\"\n";
        let cases = [
            ("inside a value", text.find("text").unwrap()),
            ("inside a key's name", 2),
            ("past the end", text.len() + 10),
        ];
        for (name, offset) in cases {
            assert_eq!(
                keys_left(text, offset),
                (false, vec!["alpha".to_owned(), "b".to_owned()]),
                "{name}"
            );
        }
    }
}
