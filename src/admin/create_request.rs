//! The body of `POST /v1/shares`, read strictly: one JSON object, no duplicate or unknown fields,
//! each field of its one type, free text bounded. What the fields *mean* (a configured scope, a
//! case inside the pattern, a ttl under max_ttl) is judged later, by the gateway's minting.

use std::time::Duration;

use super::error::{ApiError, JsonProblem, TtlProblem};
use crate::config::parse_duration;
use crate::share::json::{JsonError, Mistyped, Object, Value};

pub const MAX_NOTE_CHARS: usize = 500;
pub const MAX_CREATED_BY_CHARS: usize = 200;

/// Every field the body may have.
const FIELDS: [&str; 8] = [
    "case",
    "scope",
    "ttl",
    "email",
    "lang",
    "note",
    "created_by",
    "send_email",
];

/// Enough room for every field, so that an extra one is reported by name rather than as "too many".
const MAX_MEMBERS: usize = 2 * FIELDS.len();

/// Names echoed in an error are cut to this many characters.
const MAX_ECHOED_NAME_CHARS: usize = 64;

/// What a client asks to share.
#[derive(Debug, PartialEq, Eq)]
pub struct CreateShare {
    pub case: String,
    pub scope: String,
    /// `None`: the configured `links.default_ttl`.
    pub ttl: Option<Duration>,
    pub email: Option<String>,
    pub lang: Option<String>,
    pub note: Option<String>,
    pub created_by: Option<String>,
    /// Email the link to `email` once the share is recorded.
    pub send_email: bool,
}

impl CreateShare {
    pub fn parse(body: &[u8]) -> Result<CreateShare, ApiError> {
        let object = Object::parse(body, MAX_MEMBERS).map_err(|error| {
            ApiError::BadJson(match error {
                JsonError::NotAnObject => JsonProblem::NotAnObject,
                JsonError::DuplicateKey => JsonProblem::DuplicateField,
                JsonError::TooManyMembers => JsonProblem::TooManyFields,
            })
        })?;
        if let Some(unknown) = object.keys().find(|name| !FIELDS.contains(name)) {
            return Err(ApiError::UnknownField(
                unknown.chars().take(MAX_ECHOED_NAME_CHARS).collect(),
            ));
        }
        let case = text(&object, "case")?;
        let scope = text(&object, "scope")?;
        let ttl = ttl(&object)?;
        let email = text(&object, "email")?;
        let lang = text(&object, "lang")?;
        let note = bounded_text(&object, "note", MAX_NOTE_CHARS)?;
        let created_by = bounded_text(&object, "created_by", MAX_CREATED_BY_CHARS)?;
        let send_email = object.bool("send_email").map_err(|Mistyped| {
            ApiError::BadJson(JsonProblem::WrongType {
                field: "send_email",
                expected: "true or false",
            })
        })?;
        Ok(CreateShare {
            case: case.ok_or(ApiError::MissingField("case"))?,
            scope: scope.ok_or(ApiError::MissingField("scope"))?,
            ttl,
            email,
            lang,
            note,
            created_by,
            send_email: send_email.unwrap_or(false),
        })
    }
}

fn text(object: &Object<'_>, field: &'static str) -> Result<Option<String>, ApiError> {
    object
        .str(field)
        .map(|found| found.map(str::to_owned))
        .map_err(|Mistyped| {
            ApiError::BadJson(JsonProblem::WrongType {
                field,
                expected: "a string",
            })
        })
}

fn bounded_text(
    object: &Object<'_>,
    field: &'static str,
    max_chars: usize,
) -> Result<Option<String>, ApiError> {
    let found = text(object, field)?;
    if found
        .as_deref()
        .is_some_and(|text| text.chars().count() > max_chars)
    {
        return Err(ApiError::FieldTooLong { field, max_chars });
    }
    Ok(found)
}

/// `"24h"`, `"90m"` (the config's duration notation) or an integer number of seconds.
fn ttl(object: &Object<'_>) -> Result<Option<Duration>, ApiError> {
    match object.get("ttl") {
        None => Ok(None),
        Some(Value::Int(seconds)) => u64::try_from(*seconds)
            .map(|seconds| Some(Duration::from_secs(seconds)))
            .map_err(|_| ApiError::InvalidTtl(TtlProblem::Negative)),
        Some(Value::Str(text)) => {
            let duration = parse_duration(text)
                .map_err(|error| ApiError::InvalidTtl(TtlProblem::Unparseable(error)))?;
            if duration.subsec_nanos() != 0 {
                return Err(ApiError::InvalidTtl(TtlProblem::Fraction));
            }
            Ok(Some(duration))
        }
        Some(Value::Bool(_) | Value::Other) => Err(ApiError::BadJson(JsonProblem::WrongType {
            field: "ttl",
            expected: "a duration such as \"24h\" or an integer number of seconds",
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal(case: &str, scope: &str) -> CreateShare {
        CreateShare {
            case: case.to_owned(),
            scope: scope.to_owned(),
            ttl: None,
            email: None,
            lang: None,
            note: None,
            created_by: None,
            send_email: false,
        }
    }

    #[test]
    fn well_formed_bodies_are_read_field_by_field() {
        let full = CreateShare {
            ttl: Some(Duration::from_secs(90 * 60)),
            email: Some("a@b.example".to_owned()),
            lang: Some("sv-SE".to_owned()),
            note: Some("for the second opinion".to_owned()),
            created_by: Some("dr.lind".to_owned()),
            send_email: true,
            ..minimal("42", "view")
        };
        let cases: &[(&str, &str, CreateShare)] = &[
            (
                "case and scope are enough",
                r#"{"case":"42","scope":"view"}"#,
                minimal("42", "view"),
            ),
            (
                "every field",
                r#"{"case":"42","scope":"view","ttl":"90m","email":"a@b.example","lang":"sv-SE",
                    "note":"for the second opinion","created_by":"dr.lind","send_email":true}"#,
                full,
            ),
            (
                "a ttl in whole seconds",
                r#"{"case":"42","scope":"view","ttl":3600}"#,
                CreateShare {
                    ttl: Some(Duration::from_secs(3600)),
                    ..minimal("42", "view")
                },
            ),
            (
                "a compound ttl",
                r#"{"case":"42","scope":"view","ttl":"1d12h"}"#,
                CreateShare {
                    ttl: Some(Duration::from_secs(36 * 3600)),
                    ..minimal("42", "view")
                },
            ),
            (
                "a zero ttl is read (the gateway refuses it)",
                r#"{"case":"42","scope":"view","ttl":0}"#,
                CreateShare {
                    ttl: Some(Duration::ZERO),
                    ..minimal("42", "view")
                },
            ),
        ];
        for (name, body, want) in cases {
            assert_eq!(
                CreateShare::parse(body.as_bytes()).as_ref().ok(),
                Some(want),
                "{name}"
            );
        }
    }

    #[test]
    fn malformed_bodies_are_refused_with_a_stable_code() {
        let long_note = format!(
            r#"{{"case":"42","scope":"view","note":"{}"}}"#,
            "é".repeat(501)
        );
        let long_author = format!(
            r#"{{"case":"42","scope":"view","created_by":"{}"}}"#,
            "a".repeat(201)
        );
        let long_name = format!(r#"{{"{}":1}}"#, "x".repeat(200));
        let cases: &[(&str, &str, &str)] = &[
            ("empty body", "", "bad_json"),
            (
                "send_email as a string",
                r#"{"case":"42","scope":"view","send_email":"yes"}"#,
                "bad_json",
            ),
            ("syntax error", r#"{"case":"42","#, "bad_json"),
            ("an array", r#"[{"case":"42"}]"#, "bad_json"),
            (
                "trailing data",
                r#"{"case":"42","scope":"view"} {}"#,
                "bad_json",
            ),
            (
                "a duplicate field",
                r#"{"case":"42","case":"43","scope":"view"}"#,
                "bad_json",
            ),
            (
                "case as a number",
                r#"{"case":42,"scope":"view"}"#,
                "bad_json",
            ),
            ("scope as null", r#"{"case":"42","scope":null}"#, "bad_json"),
            (
                "ttl as a float",
                r#"{"case":"42","scope":"view","ttl":1.5}"#,
                "bad_json",
            ),
            (
                "ttl as a bool",
                r#"{"case":"42","scope":"view","ttl":true}"#,
                "bad_json",
            ),
            (
                "an unknown field",
                r#"{"case":"42","scope":"view","nbf":1}"#,
                "unknown_field",
            ),
            ("an unknown field alone", &long_name, "unknown_field"),
            ("no case", r#"{"scope":"view"}"#, "missing_field"),
            ("no scope", r#"{"case":"42"}"#, "missing_field"),
            (
                "a ttl without unit",
                r#"{"case":"42","scope":"view","ttl":"30"}"#,
                "invalid_ttl",
            ),
            (
                "a ttl in words",
                r#"{"case":"42","scope":"view","ttl":"a day"}"#,
                "invalid_ttl",
            ),
            (
                "a negative ttl",
                r#"{"case":"42","scope":"view","ttl":-5}"#,
                "invalid_ttl",
            ),
            (
                "a sub-second ttl",
                r#"{"case":"42","scope":"view","ttl":"1500ms"}"#,
                "invalid_ttl",
            ),
            ("a note over 500 characters", &long_note, "field_too_long"),
            (
                "created_by over 200 characters",
                &long_author,
                "field_too_long",
            ),
        ];
        for (name, body, code) in cases {
            match CreateShare::parse(body.as_bytes()) {
                Ok(parsed) => panic!("{name}: accepted as {parsed:?}"),
                Err(error) => assert_eq!(error.status_and_code().1, *code, "{name}: {error}"),
            }
        }
    }

    #[test]
    fn an_unknown_field_is_named_but_never_echoed_at_length() {
        let body = format!(r#"{{"case":"42","scope":"view","{}":1}}"#, "z".repeat(300));
        let Err(error) = CreateShare::parse(body.as_bytes()) else {
            panic!("accepted");
        };
        let message = error.to_string();
        assert!(message.contains(&"z".repeat(64)), "{message}");
        assert!(!message.contains(&"z".repeat(65)), "{message}");
    }

    #[test]
    fn exactly_500_characters_of_note_are_accepted() {
        let body = format!(
            r#"{{"case":"42","scope":"view","note":"{}"}}"#,
            "é".repeat(500)
        );
        let parsed = CreateShare::parse(body.as_bytes()).expect("accepted");
        assert_eq!(parsed.note.map(|note| note.chars().count()), Some(500));
    }
}
