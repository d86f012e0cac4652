//! A change as Redis holds it after a commit, and how it reaches the in-memory view.
//!
//! Unlike the journal's records, every change here can be applied any number of times and in
//! any order with the same result: revocations keep the earliest time, case cut-offs the latest,
//! share records follow the merge rules (the API's metadata wins, link claims only fill gaps),
//! and use counters carry Redis's running totals, kept with max/min. So a replica may see its
//! own commit twice (once from the commit's answer, once from the stream) or meet a change again
//! in a resync without counting anything twice.

use redis::Value;

use super::super::record::Record;
use super::super::view::View;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// A revocation by id, a case cut-off, or a share's record without counters.
    Record(Record),
    /// A share's use counters as Redis totals them now.
    Uses {
        id: Box<str>,
        uses: u64,
        first_used: Option<i64>,
        last_used: Option<i64>,
    },
}

/// Why a stream entry or a hash field cannot be read: someone else wrote the key, or a newer
/// casegate did. The change is skipped with a warning.
pub(crate) type ChangeError = &'static str;

impl Change {
    pub(crate) fn apply(self, view: &View) {
        match self {
            Change::Record(record) => view.apply(record),
            Change::Uses {
                id,
                uses,
                first_used,
                last_used,
            } => view.raise_uses(id, uses, first_used, last_used),
        }
    }

    /// Reads the fields the commit script writes to the stream (and answers with): `k` names
    /// the kind, the rest depend on it.
    pub(crate) fn from_fields<'a>(
        field: impl Fn(&str) -> Option<&'a [u8]>,
    ) -> Result<Change, ChangeError> {
        let text = |name: &str| -> Result<&'a str, ChangeError> {
            let bytes = field(name).ok_or("a field is missing")?;
            std::str::from_utf8(bytes).map_err(|_| "a field is not UTF-8")
        };
        let change = match text("k")? {
            "r" => Change::Record(Record::RevokedShare {
                id: text("id")?.into(),
                at: number(text("at")?)?,
            }),
            "c" => Change::Record(Record::RevokedCase {
                case: text("case")?.into(),
                not_before: number(text("nb")?)?,
            }),
            "s" => share_record(field("rec").ok_or("a field is missing")?)?,
            "u" => Change::Uses {
                id: text("id")?.into(),
                uses: text("n")?
                    .parse()
                    .map_err(|_| "a use count is not a number")?,
                first_used: optional_number(text("f")?)?,
                last_used: optional_number(text("l")?)?,
            },
            _ => return Err("unknown change kind"),
        };
        Ok(change)
    }

    /// Reads one flat `[name, value, name, value, ...]` array, as the commit script answers.
    pub(crate) fn from_value(value: &Value) -> Result<Change, ChangeError> {
        let Value::Array(items) = value else {
            return Err("a change is not an array");
        };
        let pairs: Vec<(&[u8], &[u8])> = items
            .chunks_exact(2)
            .filter_map(|pair| Some((bytes(&pair[0])?, bytes(&pair[1])?)))
            .collect();
        Change::from_fields(|name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name.as_bytes())
                .map(|(_, value)| *value)
        })
    }
}

/// A share record as stored in `{prefix}shares`: the state codec's bytes of a share record.
pub(crate) fn share_record(encoded: &[u8]) -> Result<Change, ChangeError> {
    match Record::decode(encoded)? {
        record @ Record::Share { .. } => Ok(Change::Record(record)),
        _ => Err("a share record holds another kind of record"),
    }
}

pub(crate) fn number(text: &str) -> Result<i64, ChangeError> {
    text.parse().map_err(|_| "a time is not a number")
}

/// An empty field means "not known".
fn optional_number(text: &str) -> Result<Option<i64>, ChangeError> {
    match text {
        "" => Ok(None),
        text => number(text).map(Some),
    }
}

/// The bytes of a string reply.
pub(crate) fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.as_bytes()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &[u8])]) -> Value {
        Value::Array(
            pairs
                .iter()
                .flat_map(|(name, value)| {
                    [
                        Value::BulkString(name.as_bytes().to_vec()),
                        Value::BulkString(value.to_vec()),
                    ]
                })
                .collect(),
        )
    }

    #[test]
    fn each_kind_reads_back() {
        let revoked = fields(&[("k", b"r"), ("id", b"abc"), ("at", b"17")]);
        assert_eq!(
            Change::from_value(&revoked),
            Ok(Change::Record(Record::RevokedShare {
                id: "abc".into(),
                at: 17
            }))
        );
        let cut = fields(&[("k", b"c"), ("case", b"42"), ("nb", b"-5")]);
        assert_eq!(
            Change::from_value(&cut),
            Ok(Change::Record(Record::RevokedCase {
                case: "42".into(),
                not_before: -5
            }))
        );
        let uses = fields(&[
            ("k", b"u"),
            ("id", b"abc"),
            ("n", b"3"),
            ("f", b""),
            ("l", b"9"),
        ]);
        assert_eq!(
            Change::from_value(&uses),
            Ok(Change::Uses {
                id: "abc".into(),
                uses: 3,
                first_used: None,
                last_used: Some(9)
            })
        );
    }

    #[test]
    fn malformed_changes_are_refused_not_guessed() {
        for (name, value) in [
            ("an unknown kind", fields(&[("k", b"x"), ("id", b"a")])),
            ("a missing field", fields(&[("k", b"r"), ("id", b"a")])),
            (
                "a time that is no number",
                fields(&[("k", b"r"), ("id", b"a"), ("at", b"soon")]),
            ),
            ("a share that holds a revocation", {
                let mut encoded = Vec::new();
                Record::RevokedShare {
                    id: "a".into(),
                    at: 1,
                }
                .encode(&mut encoded);
                fields(&[("k", b"s"), ("id", b"a"), ("rec", &encoded)])
            }),
            ("not an array", Value::Int(3)),
        ] {
            assert!(Change::from_value(&value).is_err(), "{name}");
        }
    }

    #[test]
    fn applying_a_use_total_twice_counts_it_once() {
        let view = View::default();
        let total = Change::Uses {
            id: "abc".into(),
            uses: 2,
            first_used: Some(10),
            last_used: Some(20),
        };
        total.clone().apply(&view);
        total.apply(&view);
        let older = Change::Uses {
            id: "abc".into(),
            uses: 1,
            first_used: Some(10),
            last_used: Some(10),
        };
        older.apply(&view);
        let state = view.share("abc").expect("known");
        assert_eq!(state.uses, 2);
        assert_eq!(state.first_used_at, Some(10));
        assert_eq!(state.last_used_at, Some(20));
    }
}
