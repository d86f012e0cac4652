//! Request-target canonicalisation, compiled route rules, and the allow/deny decision.
//!
//! The order is fixed: [`canonicalise`] judges the raw target and refuses anything with a second
//! spelling; [`compile`] turns the configured scopes into tries once per config snapshot;
//! [`Policy::decide`] answers for one guest request. Whatever is allowed is canonical, and was
//! matched against the bytes that will be forwarded.

pub mod canonical;
mod cut_path;
pub mod matcher;
pub mod rule;

pub use canonical::{
    CanonicalTarget, MAX_TARGET_LEN, Segments, TargetError, canonicalise, canonicalise_text,
};
pub use matcher::{
    Decision, EffectiveRules, Entry, List, Policy, PolicyError, PolicyErrorKind, ScopeNameHasher,
    ScopeSpec, compile,
};
pub use rule::{
    Effect, QueryPin, Rule, RuleError, SegmentPattern, Subject, ValuePattern, parse_rule,
};
