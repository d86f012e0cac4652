//! Parses one route rule (`GET,POST /cases/{case}/**?id={case}`) and matches it against one request.
//!
//! ```abnf
//! rule      = methods 1*SP path-pat [ "?" query-pat ]
//! methods   = method *( "," method )        ; GET implies HEAD
//! method    = 1*20%x41-5A                   ; "A"-"Z"; "*", "ANY" and "ALL" are refused
//! path-pat  = "/" / 1*( "/" seg-pat )
//! seg-pat   = literal / "{case}" / "{share}" / "*" / "**"   ; "**" only last; no partial segments
//! query-pat = pin *( "&" pin )              ; names unique
//! pin       = name "=" ( literal / "{case}" / "{share}" / "*" )
//! ```
//!
//! Literals are held to the same grammar as request targets ([`super::canonical`]), so a rule can
//! only name a spelling a request can actually have. The trie in [`super::matcher`] is the fast
//! path; [`Rule::matches`] is the plain statement of what a rule means and the oracle the trie is
//! tested against.

use std::fmt;

use super::canonical::{self, CanonicalTarget, TargetError};
use crate::ascii_case::same_ignoring_ascii_case;

/// Longer than any registered method (the longest, `UPDATEREDIRECTREF`, has 17 letters).
pub const MAX_METHOD_LEN: usize = 20;

/// More query pins than this is a configuration mistake, and it keeps the seen-set a `u32`.
pub const MAX_QUERY_PINS: usize = 32;
/// Path segments in one rule. Far deeper than any app's routes; the trie a rule compiles into is
/// walked (and dropped) recursively, one level per segment, so the depth has to stop somewhere.
pub const MAX_RULE_SEGMENTS: usize = 64;

/// One parsed rule; only [`parse_rule`] builds one, so `**` is always last and literals canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    methods: Vec<String>,
    path: Vec<SegmentPattern>,
    query: Option<Vec<QueryPin>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentPattern {
    Literal(String),
    Case,
    Share,
    /// `*`: exactly one segment.
    Any,
    /// `**`: zero or more trailing segments.
    Rest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryPin {
    pub name: String,
    pub value: ValuePattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValuePattern {
    Literal(String),
    Case,
    Share,
    /// `*`: any non-empty value.
    Any,
}

/// Whether a rule is matched as an allow or a deny rule.
///
/// Allow rules match strictly; deny rules match literals and bindings ignoring ASCII case, because
/// a case-insensitive upstream (IIS, Windows file names) reads `/BILLING` as `/billing`. Either way
/// a difference of spelling can only make a request less allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// The request being judged, with the guest's bindings.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub method: &'a str,
    pub target: &'a CanonicalTarget<'a>,
    pub case: &'a str,
    pub share: &'a str,
}

/// Why a rule string was refused; shown to an operator by `casegate check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleError {
    ExpectedMethodsAndPath,
    EmptyMethod,
    LowercaseMethod(String),
    BadMethodCharacter(String),
    MethodTooLong(String),
    /// `*`, `ANY` or `ALL`: would be a literal method that no request has, so a deny would fail open.
    WildcardMethod(String),
    DuplicateMethod(String),
    PathNotAbsolute,
    EmptySegment,
    RestNotLast,
    PartialSegment(String),
    BadLiteral {
        literal: String,
        reason: TargetError,
    },
    EmptyQuery,
    PinWithoutValue(String),
    EmptyPinName,
    EmptyPinValue(String),
    PartialPinValue(String),
    DuplicatePinName(String),
    TooManyPins,
    TooManySegments,
}

/// Parses `METHOD[,METHOD] /path/pattern[?query-pattern]`.
pub fn parse_rule(text: &str) -> Result<Rule, RuleError> {
    let mut words = text.split_ascii_whitespace();
    let (Some(methods), Some(target), None) = (words.next(), words.next(), words.next()) else {
        return Err(RuleError::ExpectedMethodsAndPath);
    };
    let methods = parse_methods(methods)?;
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(parse_query(query)?)),
        None => (target, None),
    };
    let path = parse_path(path)?;
    Ok(Rule {
        methods,
        path,
        query,
    })
}

fn parse_methods(text: &str) -> Result<Vec<String>, RuleError> {
    let mut methods: Vec<String> = Vec::new();
    for method in text.split(',') {
        if method.is_empty() {
            return Err(RuleError::EmptyMethod);
        }
        // Any token is a valid method name, so `*` would compile into a method no client sends
        // and a deny rule written with it would deny nothing.
        if ["*", "ANY", "ALL"]
            .iter()
            .any(|wildcard| method.eq_ignore_ascii_case(wildcard))
        {
            return Err(RuleError::WildcardMethod(method.to_owned()));
        }
        if method.bytes().any(|b| b.is_ascii_lowercase()) {
            return Err(RuleError::LowercaseMethod(method.to_owned()));
        }
        if !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(RuleError::BadMethodCharacter(method.to_owned()));
        }
        if method.len() > MAX_METHOD_LEN {
            return Err(RuleError::MethodTooLong(method.to_owned()));
        }
        if methods.iter().any(|known| known == method) {
            return Err(RuleError::DuplicateMethod(method.to_owned()));
        }
        methods.push(method.to_owned());
    }
    // A HEAD is a GET without the body; allowing one and not the other only breaks clients.
    if methods.iter().any(|m| m == "GET") && !methods.iter().any(|m| m == "HEAD") {
        methods.push("HEAD".to_owned());
    }
    Ok(methods)
}

fn parse_path(path: &str) -> Result<Vec<SegmentPattern>, RuleError> {
    if path == "/" {
        return Ok(Vec::new());
    }
    let rest = path.strip_prefix('/').ok_or(RuleError::PathNotAbsolute)?;
    let mut patterns = Vec::new();
    for segment in rest.split('/') {
        if patterns.last() == Some(&SegmentPattern::Rest) {
            return Err(RuleError::RestNotLast);
        }
        let pattern = match segment {
            "" => return Err(RuleError::EmptySegment),
            "{case}" => SegmentPattern::Case,
            "{share}" => SegmentPattern::Share,
            "*" => SegmentPattern::Any,
            "**" => SegmentPattern::Rest,
            _ if segment.contains(['{', '}', '*']) => {
                return Err(RuleError::PartialSegment(segment.to_owned()));
            }
            _ => {
                canonical::check_segment(segment).map_err(|reason| RuleError::BadLiteral {
                    literal: segment.to_owned(),
                    reason,
                })?;
                SegmentPattern::Literal(segment.to_owned())
            }
        };
        if patterns.len() == MAX_RULE_SEGMENTS {
            return Err(RuleError::TooManySegments);
        }
        patterns.push(pattern);
    }
    Ok(patterns)
}

fn parse_query(query: &str) -> Result<Vec<QueryPin>, RuleError> {
    if query.is_empty() {
        return Err(RuleError::EmptyQuery);
    }
    let mut pins: Vec<QueryPin> = Vec::new();
    for pair in query.split('&') {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| RuleError::PinWithoutValue(pair.to_owned()))?;
        if name.is_empty() {
            return Err(RuleError::EmptyPinName);
        }
        check_query_literal(name)?;
        if pins.iter().any(|pin| pin.name == name) {
            return Err(RuleError::DuplicatePinName(name.to_owned()));
        }
        let value = match value {
            "" => return Err(RuleError::EmptyPinValue(name.to_owned())),
            "{case}" => ValuePattern::Case,
            "{share}" => ValuePattern::Share,
            "*" => ValuePattern::Any,
            _ if value.contains(['{', '}', '*']) => {
                return Err(RuleError::PartialPinValue(value.to_owned()));
            }
            _ => {
                check_query_literal(value)?;
                ValuePattern::Literal(value.to_owned())
            }
        };
        pins.push(QueryPin {
            name: name.to_owned(),
            value,
        });
    }
    if pins.len() > MAX_QUERY_PINS {
        return Err(RuleError::TooManyPins);
    }
    Ok(pins)
}

fn check_query_literal(literal: &str) -> Result<(), RuleError> {
    canonical::check_query(literal).map_err(|reason| RuleError::BadLiteral {
        literal: literal.to_owned(),
        reason,
    })
}

/// Whether a raw segment or value equals a literal, in the way `effect` compares.
pub(crate) fn literal_matches(raw: &str, literal: &str, effect: Effect) -> bool {
    match effect {
        Effect::Allow => raw == literal,
        Effect::Deny => same_ignoring_ascii_case(raw.as_bytes(), literal.as_bytes()),
    }
}

/// Whether a raw segment or value equals the guest's case or share id. An empty binding matches
/// nothing, so a guest without one cannot match `?id=` with an empty value.
pub(crate) fn binding_matches(raw: &str, bound: &str, effect: Effect) -> bool {
    !bound.is_empty() && literal_matches(raw, bound, effect)
}

/// Whether the request's query satisfies `pins`: exactly the pinned names, each exactly once.
pub(crate) fn query_matches(
    pins: Option<&[QueryPin]>,
    subject: &Subject<'_>,
    effect: Effect,
) -> bool {
    let Some(pins) = pins else {
        return true;
    };
    let Some(query) = subject.target.query() else {
        return false;
    };
    let mut seen: u32 = 0;
    for pair in query.split('&') {
        let Some((name, value)) = pair.split_once('=') else {
            return false;
        };
        let Some(index) = pins.iter().position(|pin| pin.name == name) else {
            return false;
        };
        let bit = 1u32 << index;
        if seen & bit != 0
            || !pins
                .get(index)
                .is_some_and(|pin| pin.value.admits(value, subject, effect))
        {
            return false;
        }
        seen |= bit;
    }
    seen.count_ones() as usize == pins.len()
}

// === impl Rule ===

impl Rule {
    /// The methods this rule names, with HEAD added when GET is named.
    pub fn methods(&self) -> &[String] {
        &self.methods
    }

    pub fn path(&self) -> &[SegmentPattern] {
        &self.path
    }

    pub fn query(&self) -> Option<&[QueryPin]> {
        self.query.as_deref()
    }

    /// Whether this rule, read as `effect`, covers the request.
    pub fn matches(&self, subject: &Subject<'_>, effect: Effect) -> bool {
        self.methods.iter().any(|m| m == subject.method)
            && path_matches(&self.path, subject.target.segments(), subject, effect)
            && query_matches(self.query(), subject, effect)
    }
}

fn path_matches(
    patterns: &[SegmentPattern],
    mut segments: canonical::Segments<'_>,
    subject: &Subject<'_>,
    effect: Effect,
) -> bool {
    match patterns.split_first() {
        None => segments.next().is_none(),
        Some((SegmentPattern::Rest, _)) => true,
        Some((pattern, tail)) => segments.next().is_some_and(|segment| {
            pattern.admits(segment, subject, effect)
                && path_matches(tail, segments, subject, effect)
        }),
    }
}

// === impl SegmentPattern ===

impl SegmentPattern {
    fn admits(&self, segment: &str, subject: &Subject<'_>, effect: Effect) -> bool {
        match self {
            SegmentPattern::Literal(literal) => literal_matches(segment, literal, effect),
            SegmentPattern::Case => binding_matches(segment, subject.case, effect),
            SegmentPattern::Share => binding_matches(segment, subject.share, effect),
            SegmentPattern::Any | SegmentPattern::Rest => true,
        }
    }
}

// === impl ValuePattern ===

impl ValuePattern {
    fn admits(&self, value: &str, subject: &Subject<'_>, effect: Effect) -> bool {
        match self {
            ValuePattern::Literal(literal) => literal_matches(value, literal, effect),
            ValuePattern::Case => binding_matches(value, subject.case, effect),
            ValuePattern::Share => binding_matches(value, subject.share, effect),
            ValuePattern::Any => !value.is_empty(),
        }
    }
}

// === impl RuleError ===

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleError::ExpectedMethodsAndPath => {
                f.write_str("expected `METHOD[,METHOD] /path`, e.g. `GET /cases/{case}/**`")
            }
            RuleError::EmptyMethod => f.write_str("empty method in the method list (stray `,`?)"),
            RuleError::LowercaseMethod(m) => {
                write!(f, "method `{m}` must be uppercase (methods are case-sensitive)")
            }
            RuleError::BadMethodCharacter(m) => {
                write!(f, "method `{m}` must be uppercase letters `A`-`Z` only")
            }
            RuleError::MethodTooLong(m) => {
                write!(f, "method `{m}` is longer than {MAX_METHOD_LEN} letters")
            }
            RuleError::WildcardMethod(m) => write!(
                f,
                "method `{m}` is not a wildcard and would match no request; list the methods explicitly, e.g. `GET,POST,PUT,PATCH,DELETE`"
            ),
            RuleError::DuplicateMethod(m) => write!(f, "method `{m}` is listed twice"),
            RuleError::PathNotAbsolute => f.write_str("the path must start with `/`"),
            RuleError::EmptySegment => f.write_str(
                "empty path segment (`//` or a trailing `/`; requests with them are refused anyway)",
            ),
            RuleError::RestNotLast => f.write_str("`**` may only be the last path segment"),
            RuleError::PartialSegment(s) => write!(
                f,
                "segment `{s}` mixes text with a pattern; `{{case}}`, `{{share}}`, `*` and `**` must be whole segments"
            ),
            RuleError::BadLiteral { literal, reason } => write!(
                f,
                "`{literal}` can never match a request: {reason}"
            ),
            RuleError::EmptyQuery => f.write_str("`?` must be followed by `name=value` pins"),
            RuleError::PinWithoutValue(p) => {
                write!(f, "query pin `{p}` needs `=` and a value (or `=*` for any value)")
            }
            RuleError::EmptyPinName => f.write_str("query pin with an empty name"),
            RuleError::EmptyPinValue(n) => {
                write!(f, "query pin `{n}=` has an empty value; use `{n}=*` for any value")
            }
            RuleError::PartialPinValue(v) => write!(
                f,
                "query value `{v}` mixes text with a pattern; `{{case}}`, `{{share}}` and `*` must be the whole value"
            ),
            RuleError::DuplicatePinName(n) => write!(f, "query name `{n}` is pinned twice"),
            RuleError::TooManyPins => write!(f, "more than {MAX_QUERY_PINS} query pins"),
            RuleError::TooManySegments => {
                write!(f, "more than {MAX_RULE_SEGMENTS} path segments")
            }
        }
    }
}

impl std::error::Error for RuleError {}

#[cfg(test)]
mod tests {
    use super::*;

    use RuleError::*;
    use SegmentPattern as S;

    fn lit(s: &str) -> SegmentPattern {
        S::Literal(s.to_owned())
    }

    fn bad(literal: &str, reason: TargetError) -> RuleError {
        BadLiteral {
            literal: literal.to_owned(),
            reason,
        }
    }

    fn pin(name: &str, value: ValuePattern) -> QueryPin {
        QueryPin {
            name: name.to_owned(),
            value,
        }
    }

    #[test]
    fn well_formed_rules_parse_into_their_parts() {
        /// (what the row shows, rule, methods, path, query)
        type Row = (
            &'static str,
            &'static str,
            Vec<&'static str>,
            Vec<SegmentPattern>,
            Option<Vec<QueryPin>>,
        );
        #[rustfmt::skip]
        let rows: Vec<Row> = vec![
            ("GET implies HEAD", "GET /cases/{case}", vec!["GET", "HEAD"], vec![lit("cases"), S::Case], None),
            ("an explicit HEAD is not doubled", "GET,HEAD /a", vec!["GET", "HEAD"], vec![lit("a")], None),
            ("several methods keep their order", "POST,PUT /a", vec!["POST", "PUT"], vec![lit("a")], None),
            ("extension methods are letters", "PROPFIND,MKCOL /dav", vec!["PROPFIND", "MKCOL"], vec![lit("dav")], None),
            ("a method of twenty letters is fine", "ABCDEFGHIJKLMNOPQRST /a", vec!["ABCDEFGHIJKLMNOPQRST"], vec![lit("a")], None),
            ("an explicit list is how to name every method", "GET,POST,PUT,PATCH,DELETE /a", vec!["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"], vec![lit("a")], None),
            ("a tilde literal before a letter is fine", "GET /~user", vec!["GET", "HEAD"], vec![lit("~user")], None),
            ("a colon is fine in a query literal", "GET /a?t=12:30", vec!["GET", "HEAD"], vec![lit("a")], Some(vec![pin("t", ValuePattern::Literal("12:30".to_owned()))])),
            ("the root rule has no segments", "GET /", vec!["GET", "HEAD"], vec![], None),
            ("rest may be the only segment", "GET /**", vec!["GET", "HEAD"], vec![S::Rest], None),
            ("share and any are whole segments", "DELETE /t/{share}/*", vec!["DELETE"], vec![lit("t"), S::Share, S::Any], None),
            ("surrounding whitespace is ignored", "  GET   /a  ", vec!["GET", "HEAD"], vec![lit("a")], None),
            ("encoded literals are kept raw", "GET /caf%C3%A9", vec!["GET", "HEAD"], vec![lit("caf%C3%A9")], None),
            (
                "query pins keep their order",
                "GET /v.php?id={case}&part=*&s={share}&k=v",
                vec!["GET", "HEAD"],
                vec![lit("v.php")],
                Some(vec![
                    pin("id", ValuePattern::Case),
                    pin("part", ValuePattern::Any),
                    pin("s", ValuePattern::Share),
                    pin("k", ValuePattern::Literal("v".to_owned())),
                ]),
            ),
        ];
        for (name, text, methods, path, query) in rows {
            let rule = parse_rule(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(rule.methods(), methods.as_slice(), "{name}");
            assert_eq!(rule.path(), path.as_slice(), "{name}");
            assert_eq!(rule.query(), query.as_deref(), "{name}");
        }
    }

    #[test]
    fn malformed_rules_are_refused_with_a_reason() {
        #[rustfmt::skip]
        let rows: &[(&str, &str, RuleError)] = &[
            ("an empty rule", "", ExpectedMethodsAndPath),
            ("a path without a method", "/cases", ExpectedMethodsAndPath),
            ("a method without a path", "GET", ExpectedMethodsAndPath),
            ("three words", "GET /a /b", ExpectedMethodsAndPath),
            ("a lowercase method", "get /a", LowercaseMethod("get".to_owned())),
            ("a mixed-case method", "Get /a", LowercaseMethod("Get".to_owned())),
            ("a stray comma", "GET, /a", EmptyMethod),
            ("a method with a slash", "GE/T /a", BadMethodCharacter("GE/T".to_owned())),
            ("a method with a hyphen", "M-SEARCH /a", BadMethodCharacter("M-SEARCH".to_owned())),
            ("a method with a digit", "GET2 /a", BadMethodCharacter("GET2".to_owned())),
            ("a method with a dot", "GET. /a", BadMethodCharacter("GET.".to_owned())),
            ("a method of twenty-one letters", "ABCDEFGHIJKLMNOPQRSTU /a", MethodTooLong("ABCDEFGHIJKLMNOPQRSTU".to_owned())),
            ("a star method", "* /cases/{case}/admin/**", WildcardMethod("*".to_owned())),
            ("an ANY method", "ANY /a", WildcardMethod("ANY".to_owned())),
            ("an ALL method", "ALL /a", WildcardMethod("ALL".to_owned())),
            ("a lowercase any method", "any /a", WildcardMethod("any".to_owned())),
            ("a star among other methods", "GET,* /a", WildcardMethod("*".to_owned())),
            ("a method named twice", "GET,GET /a", DuplicateMethod("GET".to_owned())),
            ("a relative path", "GET cases", PathNotAbsolute),
            ("a double slash", "GET /a//b", EmptySegment),
            ("a trailing slash", "GET /a/", EmptySegment),
            ("rest in the middle", "GET /a/**/b", RestNotLast),
            ("a partial case binding", "GET /a{case}", PartialSegment("a{case}".to_owned())),
            ("a partial wildcard", "GET /a*", PartialSegment("a*".to_owned())),
            ("an unknown binding", "GET /{user}", PartialSegment("{user}".to_owned())),
            ("a triple star", "GET /***", PartialSegment("***".to_owned())),
            ("a dot-dot literal", "GET /a/..", bad("..", TargetError::DotSegment)),
            ("a path parameter literal", "GET /a;b", bad("a;b", TargetError::PathParameter)),
            ("a lowercase escape literal", "GET /a%2f", bad("a%2f", TargetError::LowercaseEscape)),
            ("an encoded letter literal", "GET /%41", bad("%41", TargetError::EncodedUnreserved)),
            ("a raw non-ASCII literal", "GET /caf\u{e9}", bad("caf\u{e9}", TargetError::NonAscii)),
            ("a colon literal", "GET /a:b", bad("a:b", TargetError::Colon)),
            ("a stream literal", "GET /a::$DATA", bad("a::$DATA", TargetError::Colon)),
            ("an encoded colon literal", "GET /a%3Ab", bad("a%3Ab", TargetError::EncodedColon)),
            ("a short-name literal", "GET /BILLIN~1", bad("BILLIN~1", TargetError::ShortName)),
            ("a dotless i literal", "GET /b%C4%B1lling", bad("b%C4%B1lling", TargetError::CaseFoldsToAscii)),
            ("a dotless i query literal", "GET /a?f=%C4%B1", bad("%C4%B1", TargetError::CaseFoldsToAscii)),
            ("an empty query", "GET /a?", EmptyQuery),
            ("a pin without a value", "GET /a?id", PinWithoutValue("id".to_owned())),
            ("a pin with an empty value", "GET /a?id=", EmptyPinValue("id".to_owned())),
            ("a pin with an empty name", "GET /a?=1", EmptyPinName),
            ("a name pinned twice", "GET /a?id=1&id=2", DuplicatePinName("id".to_owned())),
            ("a partial pin value", "GET /a?id=x{case}", PartialPinValue("x{case}".to_owned())),
            ("a query literal with a fragment", "GET /a?id=1#x", bad("1#x", TargetError::Fragment)),
            ("a query literal with double encoding", "GET /a?id=%2541", bad("%2541", TargetError::DoubleEncoding)),
        ];
        for (name, text, expected) in rows {
            assert_eq!(parse_rule(text).as_ref(), Err(expected), "{name}");
        }
    }

    #[test]
    fn a_rule_deeper_than_the_segment_cap_is_refused() {
        let at_cap = format!("GET {}", "/*".repeat(MAX_RULE_SEGMENTS));
        assert_eq!(parse_rule(&at_cap).unwrap().path.len(), MAX_RULE_SEGMENTS);
        let over = format!("GET {}", "/*".repeat(MAX_RULE_SEGMENTS + 1));
        assert_eq!(parse_rule(&over), Err(TooManySegments));
        // A config of one such rule per line: each refused at once, not compiled into a trie
        // deep enough to overflow the stack.
        let huge = format!("GET {}", "/a".repeat(200_000));
        assert_eq!(parse_rule(&huge), Err(TooManySegments));
    }

    #[test]
    fn too_many_pins_are_refused() {
        let pins: Vec<String> = (0..=MAX_QUERY_PINS).map(|i| format!("p{i}=*")).collect();
        let text = format!("GET /a?{}", pins.join("&"));
        assert_eq!(parse_rule(&text), Err(TooManyPins));
    }

    #[test]
    fn every_error_explains_itself() {
        let message = parse_rule("get /a").unwrap_err().to_string();
        assert!(message.contains("uppercase"), "{message}");
        let message = parse_rule("* /a").unwrap_err().to_string();
        assert!(
            message.contains("explicitly") && message.contains("GET,POST,PUT,PATCH,DELETE"),
            "{message}"
        );
        let message = parse_rule("GET /a/..").unwrap_err().to_string();
        assert!(
            message.contains("`..`") && message.contains("dot"),
            "{message}"
        );
    }

    /// (what the row shows, rule, effect, method, target, whether it matches) with case 42, share s1.
    #[rustfmt::skip]
    const MATCHES: &[(&str, &str, Effect, &str, &str, bool)] = &[
        ("a literal path matches itself", "GET /a/b", Effect::Allow, "GET", "/a/b", true),
        ("HEAD rides on GET", "GET /a", Effect::Allow, "HEAD", "/a", true),
        ("POST does not ride on GET", "GET /a", Effect::Allow, "POST", "/a", false),
        ("a lowercase method never matches", "GET /a", Effect::Allow, "get", "/a", false),
        ("a case binding matches the case", "GET /c/{case}", Effect::Allow, "GET", "/c/42", true),
        ("a case binding refuses another case", "GET /c/{case}", Effect::Allow, "GET", "/c/43", false),
        ("a case binding refuses a longer id", "GET /c/{case}", Effect::Allow, "GET", "/c/42x", false),
        ("a share binding matches the share", "GET /t/{share}", Effect::Allow, "GET", "/t/s1", true),
        ("allow literals are case-sensitive", "GET /a/b", Effect::Allow, "GET", "/A/b", false),
        ("deny literals ignore ASCII case", "GET /a/b", Effect::Deny, "GET", "/A/B", true),
        ("deny case bindings ignore ASCII case", "GET /c/{case}/x", Effect::Deny, "GET", "/c/42/X", true),
        ("a deny listing every method covers DELETE", "GET,POST,PUT,PATCH,DELETE /c/{case}/admin/**", Effect::Deny, "DELETE", "/c/42/admin/x", true),
        ("a deny listing every method covers HEAD", "GET,POST,PUT,PATCH,DELETE /c/{case}/admin/**", Effect::Deny, "HEAD", "/c/42/admin", true),
        ("a star needs exactly one segment", "GET /a/*", Effect::Allow, "GET", "/a", false),
        ("a star takes one segment", "GET /a/*", Effect::Allow, "GET", "/a/b", true),
        ("a star does not take two", "GET /a/*", Effect::Allow, "GET", "/a/b/c", false),
        ("rest takes zero segments", "GET /a/**", Effect::Allow, "GET", "/a", true),
        ("rest takes many segments", "GET /a/**", Effect::Allow, "GET", "/a/b/c", true),
        ("rest keeps its prefix", "GET /a/**", Effect::Allow, "GET", "/ab", false),
        ("the root rule matches the root", "GET /", Effect::Allow, "GET", "/", true),
        ("the root rule matches only the root", "GET /", Effect::Allow, "GET", "/a", false),
        ("an unpinned rule lets any query through", "GET /a", Effect::Allow, "GET", "/a?x=1&y", true),
        ("a pinned rule needs a query", "GET /a?id={case}", Effect::Allow, "GET", "/a", false),
        ("a pinned rule matches its pins", "GET /a?id={case}", Effect::Allow, "GET", "/a?id=42", true),
        ("a pinned rule refuses a repeated name", "GET /a?id={case}", Effect::Allow, "GET", "/a?id=42&id=42", false),
        ("a pinned rule refuses an extra name", "GET /a?id={case}", Effect::Allow, "GET", "/a?id=42&x=1", false),
        ("a pinned rule refuses a missing name", "GET /a?id={case}&p=*", Effect::Allow, "GET", "/a?id=42", false),
        ("pins match in any order", "GET /a?id={case}&p=*", Effect::Allow, "GET", "/a?p=1&id=42", true),
        ("a star value refuses an empty value", "GET /a?p=*", Effect::Allow, "GET", "/a?p=", false),
        ("a star value refuses a bare name", "GET /a?p=*", Effect::Allow, "GET", "/a?p", false),
        ("a literal value must match raw", "GET /a?v=x%20y", Effect::Allow, "GET", "/a?v=x+y", false),
        ("an empty pair is an extra name", "GET /a?id={case}", Effect::Allow, "GET", "/a?id=42&", false),
    ];

    #[test]
    fn rules_match_requests_as_the_table_says() {
        for (name, text, effect, method, raw, expected) in MATCHES {
            let rule = parse_rule(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let target =
                canonical::canonicalise(raw.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
            let subject = Subject {
                method,
                target: &target,
                case: "42",
                share: "s1",
            };
            assert_eq!(rule.matches(&subject, *effect), *expected, "{name}");
        }
    }

    #[test]
    fn an_empty_binding_matches_nothing() {
        let rule = parse_rule("GET /a?id={case}").unwrap_or_else(|e| panic!("{e}"));
        let target = canonical::canonicalise(b"/a?id=").unwrap_or_else(|e| panic!("{e}"));
        let subject = Subject {
            method: "GET",
            target: &target,
            case: "",
            share: "",
        };
        assert!(!rule.matches(&subject, Effect::Allow));
    }
}
