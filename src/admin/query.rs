//! The filters of `GET /v1/shares`: `case` and `status`, each at most once, nothing else. Values
//! are taken literally: case ids (by their grammar) and statuses never need percent-encoding, so a
//! `%` is refused rather than decoded into something that might then be read two ways.

use super::error::{ApiError, QueryProblem};
use crate::state::ShareStatus;

/// The filters of one list request; `None` lists everything.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ListFilter<'a> {
    /// Not yet checked against the case pattern (the caller holds the gateway that knows it).
    pub case: Option<&'a str>,
    pub status: Option<ShareStatus>,
}

impl<'a> ListFilter<'a> {
    pub fn parse(query: Option<&'a str>) -> Result<ListFilter<'a>, ApiError> {
        let mut filter = ListFilter::default();
        let Some(query) = query else {
            return Ok(filter);
        };
        let refuse = |problem| Err(ApiError::InvalidQuery(problem));
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name: &'static str = match name {
                "case" => "case",
                "status" => "status",
                _ => return refuse(QueryProblem::UnknownParameter),
            };
            if value.is_empty() {
                return refuse(QueryProblem::Empty(name));
            }
            if value.contains('%') {
                return refuse(QueryProblem::Encoded(name));
            }
            let repeated = match name {
                "case" => filter.case.replace(value).is_some(),
                _ => {
                    let Some(status) = ShareStatus::parse(value) else {
                        return refuse(QueryProblem::BadStatus);
                    };
                    filter.status.replace(status).is_some()
                }
            };
            if repeated {
                return refuse(QueryProblem::Repeated(name));
            }
        }
        Ok(filter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_read_from_the_query() {
        let cases: &[(&str, Option<&str>, ListFilter<'_>)] = &[
            ("no query lists everything", None, ListFilter::default()),
            (
                "a case",
                Some("case=42"),
                ListFilter {
                    case: Some("42"),
                    status: None,
                },
            ),
            (
                "a status",
                Some("status=active"),
                ListFilter {
                    case: None,
                    status: Some(ShareStatus::Active),
                },
            ),
            (
                "both, in any order",
                Some("status=revoked&case=C-7"),
                ListFilter {
                    case: Some("C-7"),
                    status: Some(ShareStatus::Revoked),
                },
            ),
        ];
        for (name, query, want) in cases {
            assert_eq!(
                ListFilter::parse(*query).ok().as_ref(),
                Some(want),
                "{name}"
            );
        }
    }

    #[test]
    fn anything_else_is_an_invalid_query() {
        let cases = [
            ("an empty query", ""),
            ("an unknown parameter", "case=42&limit=10"),
            ("a parameter without value", "case"),
            ("an empty value", "status="),
            ("an unknown status", "status=open"),
            ("a status in capitals", "status=Active"),
            ("a repeated case", "case=42&case=43"),
            ("a repeated status", "status=active&status=expired"),
            ("a percent-encoded value", "case=4%32"),
            ("a trailing ampersand", "case=42&"),
            ("a case-variant name", "Case=42"),
        ];
        for (name, query) in cases {
            match ListFilter::parse(Some(query)) {
                Ok(filter) => panic!("{name}: accepted as {filter:?}"),
                Err(error) => assert_eq!(error.status_and_code().1, "invalid_query", "{name}"),
            }
        }
    }
}
