//! A strict reader for the top level of a JWS header or claims object. It refuses duplicate keys
//! (serde_json keeps the last, other JWT libraries the first: a parser differential), bounds the
//! number of members, and keeps only the scalar types a claim may have.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One member value, reduced to what header and claim checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    /// `true` or `false` (the admin API's `send_email`).
    Bool(bool),
    /// Floats, null, arrays, objects and integers outside `i64`.
    Other,
}

/// The members of a JSON object, in document order, keys unique.
#[derive(Debug)]
pub(crate) struct Object<'a> {
    members: Vec<(Cow<'a, str>, Value<'a>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonError {
    /// Not a single JSON object (bad syntax, another type, or trailing data).
    NotAnObject,
    /// The same key appears twice (after unescaping).
    DuplicateKey,
    /// More members than the caller allows.
    TooManyMembers,
}

impl<'a> Object<'a> {
    /// Parses `bytes` as one JSON object of at most `max_members` members.
    pub(crate) fn parse(bytes: &'a [u8], max_members: usize) -> Result<Object<'a>, JsonError> {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let parsed = ObjectSeed { max_members }
            .deserialize(&mut deserializer)
            .map_err(|_| JsonError::NotAnObject)?;
        deserializer.end().map_err(|_| JsonError::NotAnObject)?;
        parsed.map(|members| Object { members })
    }

    /// The member names in document order (the admin API refuses names it does not know).
    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|(name, _)| name.as_ref())
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.members
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value)
    }

    /// The string member `key`, if present.
    pub(crate) fn str(&self, key: &str) -> Result<Option<&str>, Mistyped> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Str(text)) => Ok(Some(text)),
            Some(Value::Int(_) | Value::Bool(_) | Value::Other) => Err(Mistyped),
        }
    }

    /// The integer member `key`, if present.
    pub(crate) fn int(&self, key: &str) -> Result<Option<i64>, Mistyped> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Int(number)) => Ok(Some(*number)),
            Some(Value::Str(_) | Value::Bool(_) | Value::Other) => Err(Mistyped),
        }
    }

    /// The boolean member `key`, if present.
    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, Mistyped> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(Value::Str(_) | Value::Int(_) | Value::Other) => Err(Mistyped),
        }
    }
}

/// A member is present but of another JSON type than asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mistyped;

/// Carries the member bound into the visitor. The visitor's value is itself a `Result` so that a
/// duplicate key surfaces as a typed error after the whole document has been checked for syntax.
struct ObjectSeed {
    max_members: usize,
}

type Members<'a> = Vec<(Cow<'a, str>, Value<'a>)>;

impl<'de> DeserializeSeed<'de> for ObjectSeed {
    type Value = Result<Members<'de>, JsonError>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed {
    type Value = Result<Members<'de>, JsonError>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members: Members<'de> = Vec::new();
        let mut problem = None;
        // Keep reading after a problem so that syntax errors later in the document still win:
        // returning early would leave serde_json mid-object.
        while let Some(Key(key)) = map.next_key()? {
            if problem.is_some() {
                map.next_value::<IgnoredAny>()?;
            } else if members.iter().any(|(seen, _)| *seen == key) {
                problem = Some(JsonError::DuplicateKey);
                map.next_value::<IgnoredAny>()?;
            } else if members.len() >= self.max_members {
                problem = Some(JsonError::TooManyMembers);
                map.next_value::<IgnoredAny>()?;
            } else {
                let value = map.next_value::<Value<'de>>()?;
                members.push((key, value));
            }
        }
        Ok(match problem {
            Some(problem) => Err(problem),
            None => Ok(members),
        })
    }
}

/// A key, borrowed from the input unless it contained escapes. (serde's own `Cow` impl always
/// allocates.)
struct Key<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

impl<'de> de::Deserialize<'de> for Value<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Value::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Value::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Value::Str(Cow::Owned(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).map_or(Value::Other, Value::Int))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Value::Other)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Value::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Value::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<(String, Value<'_>)>, JsonError> {
        Object::parse(text.as_bytes(), 4).map(|object| {
            object
                .members
                .into_iter()
                .map(|(k, v)| (k.into_owned(), v))
                .collect()
        })
    }

    fn s(text: &str) -> Value<'_> {
        Value::Str(Cow::Borrowed(text))
    }

    #[test]
    fn objects_are_read_member_by_member() {
        type Members<'a> = Vec<(&'a str, Value<'a>)>;
        let cases: &[(&str, &str, Result<Members<'_>, JsonError>)] = &[
            ("an empty object has no members", "{}", Ok(vec![])),
            (
                "strings and integers are kept",
                r#"{"a":"x","b":7}"#,
                Ok(vec![("a", s("x")), ("b", Value::Int(7))]),
            ),
            (
                "surrounding whitespace is fine",
                " {\"a\" : -1 }\n",
                Ok(vec![("a", Value::Int(-1))]),
            ),
            (
                "escapes in values are decoded",
                r#"{"a":"\u0041"}"#,
                Ok(vec![("a", s("A"))]),
            ),
            (
                "floats are not integers",
                r#"{"a":1.0}"#,
                Ok(vec![("a", Value::Other)]),
            ),
            (
                "exponents are not integers",
                r#"{"a":1e3}"#,
                Ok(vec![("a", Value::Other)]),
            ),
            (
                "integers beyond i64 are other",
                r#"{"a":9223372036854775808}"#,
                Ok(vec![("a", Value::Other)]),
            ),
            (
                "booleans are kept",
                r#"{"a":true,"b":false}"#,
                Ok(vec![("a", Value::Bool(true)), ("b", Value::Bool(false))]),
            ),
            (
                "null is other",
                r#"{"a":null}"#,
                Ok(vec![("a", Value::Other)]),
            ),
            (
                "nested values are skipped",
                r#"{"a":[1,{"b":2}],"c":{"d":[]}}"#,
                Ok(vec![("a", Value::Other), ("c", Value::Other)]),
            ),
            (
                "duplicate keys are refused",
                r#"{"a":1,"a":1}"#,
                Err(JsonError::DuplicateKey),
            ),
            (
                "escaped duplicates are refused",
                r#"{"alg":"HS256","\u0061lg":"none"}"#,
                Err(JsonError::DuplicateKey),
            ),
            (
                "too many members are refused",
                r#"{"a":1,"b":2,"c":3,"d":4,"e":5}"#,
                Err(JsonError::TooManyMembers),
            ),
            (
                "an array is not an object",
                "[]",
                Err(JsonError::NotAnObject),
            ),
            (
                "a string is not an object",
                r#""{}""#,
                Err(JsonError::NotAnObject),
            ),
            (
                "trailing data is refused",
                "{}{}",
                Err(JsonError::NotAnObject),
            ),
            (
                "a syntax error after a duplicate is still a syntax error",
                r#"{"a":1,"a":2,}"#,
                Err(JsonError::NotAnObject),
            ),
            (
                "a lone surrogate is refused",
                r#"{"a":"\ud800"}"#,
                Err(JsonError::NotAnObject),
            ),
            ("empty input is refused", "", Err(JsonError::NotAnObject)),
        ];
        for (name, text, want) in cases {
            let want = want.clone().map(|members| {
                members
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect::<Vec<_>>()
            });
            assert_eq!(parse(text), want, "{name}");
        }
    }

    #[test]
    fn keys_without_escapes_are_borrowed() {
        let object = Object::parse(br#"{"kid":"k1"}"#, 4);
        let borrowed = object.as_ref().map(|o| {
            o.members.iter().all(|(k, v)| {
                matches!(k, Cow::Borrowed(_)) && matches!(v, Value::Str(Cow::Borrowed(_)))
            })
        });
        assert_eq!(borrowed, Ok(true));
        assert_eq!(
            object.ok().and_then(|o| o.get("kid").cloned()),
            Some(s("k1"))
        );
    }

    #[test]
    fn typed_getters_tell_absent_from_mistyped() {
        let object = Object::parse(br#"{"s":"x","i":3,"f":3.5}"#, 4);
        let Ok(object) = object else {
            panic!("fixture must parse: {object:?}")
        };
        assert_eq!(object.str("s"), Ok(Some("x")));
        assert_eq!(object.str("missing"), Ok(None));
        assert_eq!(object.str("i"), Err(Mistyped));
        assert_eq!(object.int("i"), Ok(Some(3)));
        assert_eq!(object.int("s"), Err(Mistyped));
        assert_eq!(object.int("f"), Err(Mistyped));
        assert_eq!(object.int("missing"), Ok(None));
    }
}
