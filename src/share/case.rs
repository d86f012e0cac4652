//! The grammar a case id must match: a set of allowed ASCII characters and a length range,
//! written in config as a tiny regex-like pattern such as `[A-Za-z0-9_-]{1,64}`.

use std::fmt;

/// Cookies are sized for case ids of at most this many bytes.
pub const MAX_CASE_LEN: usize = 64;

/// Which characters and how many of them make a case id.
///
/// A case id is put into upstream paths as one segment, so the grammar may only allow characters
/// that are RFC 3986 `pchar` without percent-encoding, minus `.` (dot segments) and `;` (path
/// parameters, which legacy servers such as Tomcat strip). That rules out `/ \ % ? #`, spaces,
/// controls and anything non-ASCII.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseGrammar {
    /// Bit `c` set means ASCII character `c` is allowed.
    allowed: u128,
    min_len: usize,
    max_len: usize,
}

/// Why a case grammar pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseGrammarError {
    /// Not of the shape `[<chars and ranges>]{min,max}`.
    Shape,
    /// The class allows a character that could escape a path segment.
    ForbiddenChar(char),
    /// A range such as `z-a` runs backwards.
    ReversedRange { from: char, to: char },
    /// The class allows no character at all.
    EmptyClass,
    /// Not `1 <= min <= max <= 64`.
    Bounds { min: usize, max: usize },
}

/// Characters a case id may ever contain, whatever the config says.
fn segment_safe(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'-' | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b'='
                | b':'
                | b'@'
        )
}

const fn range_bits(from: u8, to: u8) -> u128 {
    let mut bits = 0u128;
    let mut c = from;
    while c <= to {
        bits |= 1u128 << c;
        c += 1;
    }
    bits
}

// === impl CaseGrammar ===

impl CaseGrammar {
    /// Parses exactly `[<class>]{min,max}`, where the class lists ASCII characters and `a-z` style
    /// ranges; a `-` first or last in the class is literal. No negation, escapes or other regex.
    pub fn parse(pattern: &str) -> Result<CaseGrammar, CaseGrammarError> {
        let rest = pattern.strip_prefix('[').ok_or(CaseGrammarError::Shape)?;
        let (class, bounds) = rest.split_once(']').ok_or(CaseGrammarError::Shape)?;
        let allowed = parse_class(class)?;
        let bounds = bounds
            .strip_prefix('{')
            .and_then(|b| b.strip_suffix('}'))
            .ok_or(CaseGrammarError::Shape)?;
        let (min, max) = bounds.split_once(',').ok_or(CaseGrammarError::Shape)?;
        let min = parse_count(min)?;
        let max = parse_count(max)?;
        if min == 0 || min > max || max > MAX_CASE_LEN {
            return Err(CaseGrammarError::Bounds { min, max });
        }
        Ok(CaseGrammar {
            allowed,
            min_len: min,
            max_len: max,
        })
    }

    /// Whether `case` is a case id under this grammar.
    pub fn matches(&self, case: &str) -> bool {
        (self.min_len..=self.max_len).contains(&case.len())
            && case
                .bytes()
                .all(|b| b < 128 && self.allowed & (1u128 << b) != 0)
    }
}

impl Default for CaseGrammar {
    /// `[A-Za-z0-9_-]{1,64}`.
    fn default() -> CaseGrammar {
        CaseGrammar {
            allowed: range_bits(b'A', b'Z')
                | range_bits(b'a', b'z')
                | range_bits(b'0', b'9')
                | range_bits(b'_', b'_')
                | range_bits(b'-', b'-'),
            min_len: 1,
            max_len: MAX_CASE_LEN,
        }
    }
}

fn parse_class(class: &str) -> Result<u128, CaseGrammarError> {
    if class.starts_with('^') {
        return Err(CaseGrammarError::Shape);
    }
    let mut allowed = 0u128;
    let mut chars = class.chars().peekable();
    while let Some(from) = chars.next() {
        let is_range = chars.peek() == Some(&'-') && {
            let mut ahead = chars.clone();
            ahead.next();
            ahead.peek().is_some()
        };
        let to = if is_range {
            chars.next();
            chars.next().unwrap_or(from)
        } else {
            from
        };
        allowed |= class_range(from, to)?;
    }
    if allowed == 0 {
        return Err(CaseGrammarError::EmptyClass);
    }
    Ok(allowed)
}

/// Bits for `from..=to`, refusing the range if any character in it is unsafe.
fn class_range(from: char, to: char) -> Result<u128, CaseGrammarError> {
    for c in [from, to] {
        if !c.is_ascii() || !segment_safe(c as u8) {
            return Err(CaseGrammarError::ForbiddenChar(c));
        }
    }
    let (lo, hi) = (from as u8, to as u8);
    if lo > hi {
        return Err(CaseGrammarError::ReversedRange { from, to });
    }
    if let Some(bad) = (lo..=hi).find(|&c| !segment_safe(c)) {
        return Err(CaseGrammarError::ForbiddenChar(char::from(bad)));
    }
    Ok(range_bits(lo, hi))
}

fn parse_count(text: &str) -> Result<usize, CaseGrammarError> {
    // `usize::from_str` would accept a leading `+`; only plain digits are the documented shape.
    if text.is_empty() || text.len() > 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CaseGrammarError::Shape);
    }
    text.parse().map_err(|_| CaseGrammarError::Shape)
}

impl fmt::Display for CaseGrammarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaseGrammarError::Shape => f.write_str(
                "case grammar must look like [A-Za-z0-9_-]{1,64}: a character class, then {min,max}",
            ),
            CaseGrammarError::ForbiddenChar(c) => write!(
                f,
                "case grammar allows {c:?}, which could let a case id escape its path segment",
            ),
            CaseGrammarError::ReversedRange { from, to } => {
                write!(f, "case grammar range {from}-{to} runs backwards")
            }
            CaseGrammarError::EmptyClass => f.write_str("case grammar allows no characters"),
            CaseGrammarError::Bounds { min, max } => write!(
                f,
                "case grammar length {{{min},{max}}} must satisfy 1 <= min <= max <= {MAX_CASE_LEN}",
            ),
        }
    }
}

impl std::error::Error for CaseGrammarError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_grammar_is_the_documented_pattern() {
        assert_eq!(
            CaseGrammar::parse("[A-Za-z0-9_-]{1,64}"),
            Ok(CaseGrammar::default())
        );
    }

    #[test]
    fn patterns_parse_only_in_the_documented_shape() {
        use CaseGrammarError::*;
        let cases: &[(&str, &str, Result<(), CaseGrammarError>)] = &[
            ("the default parses", "[A-Za-z0-9_-]{1,64}", Ok(())),
            ("a dash first is literal", "[-A-Z]{1,8}", Ok(())),
            ("digits only with a fixed length", "[0-9]{8,8}", Ok(())),
            ("colon and at are segment-safe", "[a-z:@]{1,10}", Ok(())),
            (
                "a slash is forbidden",
                "[a-z/]{1,8}",
                Err(ForbiddenChar('/')),
            ),
            (
                "a backslash is forbidden",
                "[a-z\\]{1,8}",
                Err(ForbiddenChar('\\')),
            ),
            ("a dot is forbidden", "[a-z.]{1,8}", Err(ForbiddenChar('.'))),
            (
                "a percent is forbidden",
                "[a-z%]{1,8}",
                Err(ForbiddenChar('%')),
            ),
            (
                "a question mark is forbidden",
                "[a-z?]{1,8}",
                Err(ForbiddenChar('?')),
            ),
            (
                "a hash is forbidden",
                "[a-z#]{1,8}",
                Err(ForbiddenChar('#')),
            ),
            (
                "a semicolon is forbidden",
                "[a-z;]{1,8}",
                Err(ForbiddenChar(';')),
            ),
            (
                "a space is forbidden",
                "[a-z ]{1,8}",
                Err(ForbiddenChar(' ')),
            ),
            (
                "a tab is forbidden",
                "[a-z\t]{1,8}",
                Err(ForbiddenChar('\t')),
            ),
            (
                "non-ascii is forbidden",
                "[a-zé]{1,8}",
                Err(ForbiddenChar('é')),
            ),
            (
                "a range over a slash is forbidden",
                "[+-9]{1,8}",
                Err(ForbiddenChar('.')),
            ),
            (
                "a backwards range is refused",
                "[z-a]{1,8}",
                Err(ReversedRange { from: 'z', to: 'a' }),
            ),
            ("negation is refused", "[^/]{1,8}", Err(Shape)),
            ("a missing class is refused", "{1,8}", Err(Shape)),
            ("a missing length is refused", "[a-z]", Err(Shape)),
            ("a single count is refused", "[a-z]{8}", Err(Shape)),
            ("a plus quantifier is refused", "[a-z]+", Err(Shape)),
            ("trailing text is refused", "[a-z]{1,8}x", Err(Shape)),
            ("a signed count is refused", "[a-z]{+1,8}", Err(Shape)),
            ("an empty class is refused", "[]{1,8}", Err(EmptyClass)),
            (
                "zero minimum is refused",
                "[a-z]{0,8}",
                Err(Bounds { min: 0, max: 8 }),
            ),
            (
                "min above max is refused",
                "[a-z]{9,8}",
                Err(Bounds { min: 9, max: 8 }),
            ),
            (
                "max above 64 is refused",
                "[a-z]{1,65}",
                Err(Bounds { min: 1, max: 65 }),
            ),
        ];
        for (name, pattern, want) in cases {
            assert_eq!(CaseGrammar::parse(pattern).map(|_| ()), *want, "{name}");
        }
    }

    #[test]
    fn case_ids_match_only_inside_the_grammar() {
        let default = CaseGrammar::default();
        let digits = CaseGrammar::parse("[0-9]{3,5}").unwrap_or_default();
        let long = "a".repeat(65);
        let cases: &[(&str, &CaseGrammar, &str, bool)] = &[
            ("a typical case id matches", &default, "C-1042_b", true),
            ("64 characters is the limit", &default, &long[..64], true),
            ("65 characters is too long", &default, &long, false),
            ("empty never matches", &default, "", false),
            ("a dot-dot segment does not match", &default, "..", false),
            ("a slash does not match", &default, "a/b", false),
            ("an encoded slash does not match", &default, "a%2Fb", false),
            ("a NUL does not match", &default, "a\0", false),
            ("non-ascii does not match", &default, "café", false),
            (
                "a byte above 127 is not mistaken for a bit",
                &default,
                "\u{80}",
                false,
            ),
            ("digits within bounds match", &digits, "1234", true),
            ("too few digits do not match", &digits, "12", false),
            (
                "letters do not match a digit grammar",
                &digits,
                "12a",
                false,
            ),
        ];
        for (name, grammar, case, want) in cases {
            assert_eq!(grammar.matches(case), *want, "{name}");
        }
    }
}
