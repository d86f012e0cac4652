//! Durations as operators write them: `250ms`, `30s`, `5m`, `12h`, `30d`, or compound `1h30m`.

use std::fmt;
use std::time::Duration;

/// Why a duration text was refused. Displayed after the field name, so it never repeats it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DurationError {
    Empty,
    Negative,
    /// A number with nothing after it: `30` is ambiguous, so a unit is required.
    MissingUnit,
    /// A unit with no number before it, such as `h` or `1h m`.
    MissingNumber,
    /// The unit as written, cut to [`MAX_ECHOED_UNIT_CHARS`]: the text may come from an admin
    /// API body, and an error should name the typo, not reflect the whole input.
    UnknownUnit(String),
    /// `1.5h`: fractions are refused rather than rounded.
    Fraction,
    /// Units must go from largest to smallest, each at most once, so `30m1h` is not a puzzle.
    UnitOrder,
    UnexpectedCharacter(char),
    Overflow,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::Empty => {
                f.write_str("is empty; write a number and a unit such as 30s, 5m, 12h or 30d")
            }
            DurationError::Negative => f.write_str("cannot be negative"),
            DurationError::MissingUnit => {
                f.write_str("has no unit; add one of ms, s, m, h or d (e.g. 30s)")
            }
            DurationError::MissingNumber => f.write_str("has a unit without a number before it"),
            DurationError::UnknownUnit(unit) => {
                write!(f, "has an unknown unit `{unit}`; use ms, s, m, h or d")
            }
            DurationError::Fraction => {
                f.write_str("cannot have a fraction; use a smaller unit (90m instead of 1.5h)")
            }
            DurationError::UnitOrder => {
                f.write_str("must list units from largest to smallest, each once (e.g. 1h30m)")
            }
            DurationError::UnexpectedCharacter(c) => {
                write!(
                    f,
                    "has an unexpected character {c:?}; write a number and a unit, e.g. 90s, 15m, 12h, 7d or 1h30m"
                )
            }
            DurationError::Overflow => f.write_str("is too large"),
        }
    }
}

impl std::error::Error for DurationError {}

/// The units, largest first; the index doubles as the order compound durations must follow.
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// The longest unit is two letters; this is enough to recognise `days` or `minutes` in a message.
pub const MAX_ECHOED_UNIT_CHARS: usize = 16;

/// Parses a duration such as `250ms`, `30s`, `5m`, `12h`, `30d` or `1h30m`. Zero is accepted
/// (`0s`); callers refuse it where it means nothing.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.starts_with('-') {
        return Err(DurationError::Negative);
    }
    let mut rest = text;
    let mut total_ms: u64 = 0;
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let (number, after_number) = rest.split_at(digits);
        if after_number.starts_with(['.', ',']) {
            return Err(DurationError::Fraction);
        }
        let unit_len = after_number.len()
            - after_number
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let (unit, after_unit) = after_number.split_at(unit_len);
        if number.is_empty() {
            return Err(match after_number.chars().next() {
                Some(c) if c.is_ascii_alphabetic() => DurationError::MissingNumber,
                Some(c) => DurationError::UnexpectedCharacter(c),
                None => DurationError::Empty,
            });
        }
        if unit.is_empty() {
            return Err(match after_number.chars().next() {
                Some(c) => DurationError::UnexpectedCharacter(c),
                None => DurationError::MissingUnit,
            });
        }
        let position = UNITS
            .iter()
            .position(|(name, _)| *name == unit)
            .ok_or_else(|| DurationError::UnknownUnit(echoed_unit(unit)))?;
        if position < next_unit {
            return Err(DurationError::UnitOrder);
        }
        next_unit = position + 1;
        let scale = UNITS.get(position).map_or(1, |(_, scale)| *scale);
        let count: u64 = number.parse().map_err(|_| DurationError::Overflow)?;
        total_ms = count
            .checked_mul(scale)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or(DurationError::Overflow)?;
        rest = after_unit;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Parses a lifetime given on the command line (`casegate mint --ttl`): a duration such as `90m`,
/// `24h` or `1h30m`, or bare digits read as whole seconds (`3600`), as `casegate share create
/// --ttl` sends them and the admin API reads a JSON integer `ttl`. Config durations stay strict:
/// there [`parse_duration`] refuses a bare number as ambiguous.
pub fn parse_ttl(text: &str) -> Result<Duration, DurationError> {
    if is_whole_seconds(text) {
        return text
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| DurationError::Overflow);
    }
    parse_duration(text)
}

/// Whether a lifetime is written as bare digits, which [`parse_ttl`] reads as whole seconds.
pub fn is_whole_seconds(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// An unknown unit as an error names it: whole when short, else its start and `...`.
fn echoed_unit(unit: &str) -> String {
    match unit.char_indices().nth(MAX_ECHOED_UNIT_CHARS) {
        Some((cut, _)) => format!("{}...", &unit[..cut]),
        None => unit.to_owned(),
    }
}

/// Writes a duration the way [`parse_duration`] reads it, in the largest unit that is exact,
/// so messages quote bounds in the operator's own notation.
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    for (name, scale) in UNITS {
        let scale = u128::from(scale);
        if ms.is_multiple_of(scale) {
            return format!("{}{name}", ms / scale);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000;

    #[test]
    fn durations_parse_as_operators_write_them() {
        let cases = [
            ("milliseconds are read as milliseconds", "250ms", 250),
            ("seconds are read as seconds", "30s", 30 * SECOND),
            ("minutes are read as minutes", "5m", 300 * SECOND),
            ("hours are read as hours", "12h", 12 * 3_600 * SECOND),
            ("days are read as days", "30d", 30 * 86_400 * SECOND),
            (
                "a compound duration adds its parts",
                "1h30m",
                5_400 * SECOND,
            ),
            (
                "every unit may appear once in order",
                "1d2h3m4s5ms",
                93_784_005,
            ),
            ("zero is a duration", "0s", 0),
            ("leading zeros are harmless", "007s", 7 * SECOND),
        ];
        for (name, text, expected_ms) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(expected_ms)),
                "{name}"
            );
        }
    }

    #[test]
    fn malformed_durations_are_refused_with_the_reason() {
        let cases = [
            ("an empty text is refused", "", DurationError::Empty),
            (
                "a negative duration is refused",
                "-5s",
                DurationError::Negative,
            ),
            (
                "a bare number has no unit",
                "30",
                DurationError::MissingUnit,
            ),
            (
                "a bare unit has no number",
                "h",
                DurationError::MissingNumber,
            ),
            (
                "an unknown unit is named",
                "3w",
                DurationError::UnknownUnit("w".into()),
            ),
            (
                "units are case sensitive",
                "5S",
                DurationError::UnknownUnit("S".into()),
            ),
            (
                "a sixteen-letter unit is named whole",
                "5abcdefghijklmnop",
                DurationError::UnknownUnit("abcdefghijklmnop".into()),
            ),
            // Found by the admin_json fuzz target: a `ttl` with a 183-letter unit came back
            // whole in the admin API's error message.
            (
                "a longer unit is cut when named",
                &format!("3{}1d", "M".repeat(200)),
                DurationError::UnknownUnit("MMMMMMMMMMMMMMMM...".into()),
            ),
            (
                "a word is not a unit",
                "5 minutes",
                DurationError::UnexpectedCharacter(' '),
            ),
            ("a fraction is refused", "1.5h", DurationError::Fraction),
            (
                "units out of order are refused",
                "30m1h",
                DurationError::UnitOrder,
            ),
            (
                "a repeated unit is refused",
                "1h1h",
                DurationError::UnitOrder,
            ),
            (
                "a plus sign is refused",
                "+5s",
                DurationError::UnexpectedCharacter('+'),
            ),
            (
                "surrounding spaces are refused",
                " 5s",
                DurationError::UnexpectedCharacter(' '),
            ),
            (
                "a number too large for u64 overflows",
                "99999999999999999999s",
                DurationError::Overflow,
            ),
            (
                "a product too large overflows",
                "999999999999999d",
                DurationError::Overflow,
            ),
            (
                "a trailing unit without number is refused",
                "1h m",
                DurationError::UnexpectedCharacter(' '),
            ),
        ];
        for (name, text, expected) in cases {
            assert_eq!(parse_duration(text), Err(expected), "{name}");
        }
    }

    #[test]
    fn ttls_are_whole_seconds_when_bare_digits_and_durations_otherwise() {
        let cases = [
            ("bare digits are seconds", "90", Ok(Duration::from_secs(90))),
            ("zero seconds is read", "0", Ok(Duration::ZERO)),
            ("a unit still works", "90m", Ok(Duration::from_secs(5_400))),
            (
                "a compound still works",
                "1d12h",
                Ok(Duration::from_secs(129_600)),
            ),
            (
                "too many seconds overflow",
                "99999999999999999999",
                Err(DurationError::Overflow),
            ),
            (
                "a sign is not a digit",
                "+90",
                Err(DurationError::UnexpectedCharacter('+')),
            ),
            ("a negative is refused", "-90", Err(DurationError::Negative)),
            ("a fraction is refused", "1.5", Err(DurationError::Fraction)),
            ("empty is refused", "", Err(DurationError::Empty)),
        ];
        for (name, text, expected) in cases {
            assert_eq!(parse_ttl(text), expected, "{name}");
        }
    }

    #[test]
    fn formatting_uses_the_largest_exact_unit() {
        let cases = [
            ("zero is written in seconds", Duration::ZERO, "0s"),
            (
                "whole days are written in days",
                Duration::from_secs(30 * 86_400),
                "30d",
            ),
            (
                "whole hours are written in hours",
                Duration::from_secs(7_200),
                "2h",
            ),
            (
                "ninety minutes stay in minutes",
                Duration::from_secs(5_400),
                "90m",
            ),
            (
                "sub-second values are in milliseconds",
                Duration::from_millis(1_500),
                "1500ms",
            ),
        ];
        for (name, duration, expected) in cases {
            assert_eq!(format_duration(duration), expected, "{name}");
        }
    }

    #[test]
    fn formatted_durations_parse_back_to_themselves() {
        for ms in [0, 1, 999, 1_000, 60_000, 3_600_000, 86_400_000, 90_061_001] {
            let duration = Duration::from_millis(ms);
            assert_eq!(
                parse_duration(&format_duration(duration)),
                Ok(duration),
                "{ms}ms"
            );
        }
    }
}
