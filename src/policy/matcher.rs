//! Compiles named scopes of rules into segment tries and decides whether a guest's request is allowed.
//!
//! Each scope becomes two tries, deny and allow, holding its own rules and those of every scope it
//! `extends` (transitively). A request walks the deny trie first: deny wins over allow, and a
//! request no allow rule covers is denied. A walk visits one literal child (binary search), then
//! the `{case}`, `{share}` and `*` edges, backtracking until a leaf admits the method and query,
//! so its cost follows the depth of the rules, not their number.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::fmt;

use super::canonical::CanonicalTarget;
use super::cut_path::CutPath;
use super::rule::{
    self, Effect, QueryPin, Rule, RuleError, SegmentPattern, Subject, binding_matches, parse_rule,
};
use crate::ascii_case::same_ignoring_ascii_case;

/// One scope as the operator wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSpec {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    pub extends: Vec<String>,
    /// Rules under which a guest may switch protocols (WebSocket). A request must also be allowed.
    pub upgrade: Vec<String>,
}

/// Compiled scopes, immutable and cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Policy {
    scopes: HashMap<String, CompiledScope, ScopeNameHasher>,
}

/// The hasher of maps keyed by scope name, looked up on every guest request. The keys come from
/// the config and the name a guest's request looks up from a MAC-verified cookie, so nobody can
/// choose them to collide; foldhash (seeded per process) spared the guest-request bench 270 of
/// SipHash's instructions on its two lookups (callgrind).
pub type ScopeNameHasher = foldhash::fast::RandomState;

/// The rules a scope ends up with after `extends`, in the order they were pulled in.
#[derive(Debug, Clone, Copy)]
pub struct EffectiveRules<'a> {
    pub allow: &'a [Rule],
    pub deny: &'a [Rule],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// No allow rule of the scope covers the request.
    DenyNoRule,
    /// A deny rule of the scope covers the request.
    DenyExplicit,
    /// The guest's scope is not in the policy (e.g. removed by a reload).
    UnknownScope,
}

/// One problem in the policy, located by scope, list and index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub scope: String,
    /// `None` when the problem is the scope itself.
    pub entry: Option<Entry>,
    pub kind: PolicyErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub list: List,
    pub index: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Allow,
    Deny,
    Extends,
    Upgrade,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyErrorKind {
    BadRule(RuleError),
    /// A deny rule that pins its query would stop matching once a client adds one more name.
    QueryPinInDeny,
    UnknownScope(String),
    /// The scopes on the cycle, starting and ending with the reported scope.
    ExtendsCycle(Vec<String>),
    DuplicateScope,
}

/// Compiles every scope, or returns every problem found in any of them.
pub fn compile(scopes: &[(String, ScopeSpec)]) -> Result<Policy, Vec<PolicyError>> {
    let mut errors = Vec::new();
    let mut specs: HashMap<&str, &ScopeSpec> = HashMap::new();
    for (name, spec) in scopes {
        if specs.insert(name, spec).is_some() {
            errors.push(PolicyError {
                scope: name.clone(),
                entry: None,
                kind: PolicyErrorKind::DuplicateScope,
            });
        }
    }
    let mut parsed: HashMap<&str, ParsedScope> = HashMap::new();
    for (name, spec) in scopes {
        let allow = parse_list(name, List::Allow, &spec.allow, &mut errors);
        let deny = parse_list(name, List::Deny, &spec.deny, &mut errors);
        let upgrade = parse_list(name, List::Upgrade, &spec.upgrade, &mut errors);
        check_extends(name, spec, &specs, &mut errors);
        parsed.insert(
            name,
            ParsedScope {
                allow,
                deny,
                upgrade,
            },
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let scopes = specs
        .keys()
        .map(|name| {
            let compiled = CompiledScope::build(name, &specs, &parsed);
            ((*name).to_owned(), compiled)
        })
        .collect();
    Ok(Policy { scopes })
}

fn parse_list(
    scope: &str,
    list: List,
    texts: &[String],
    errors: &mut Vec<PolicyError>,
) -> Vec<Rule> {
    let mut rules = Vec::new();
    for (index, text) in texts.iter().enumerate() {
        let kind = match parse_rule(text) {
            Ok(rule) if list == List::Deny && rule.query().is_some() => {
                PolicyErrorKind::QueryPinInDeny
            }
            Ok(rule) => {
                rules.push(rule);
                continue;
            }
            Err(error) => PolicyErrorKind::BadRule(error),
        };
        errors.push(PolicyError {
            scope: scope.to_owned(),
            entry: Some(Entry { list, index }),
            kind,
        });
    }
    rules
}

fn check_extends(
    scope: &str,
    spec: &ScopeSpec,
    specs: &HashMap<&str, &ScopeSpec>,
    errors: &mut Vec<PolicyError>,
) {
    for (index, parent) in spec.extends.iter().enumerate() {
        let kind = if !specs.contains_key(parent.as_str()) {
            PolicyErrorKind::UnknownScope(parent.clone())
        } else if let Some(cycle) = find_cycle(scope, parent, specs) {
            PolicyErrorKind::ExtendsCycle(cycle)
        } else {
            continue;
        };
        errors.push(PolicyError {
            scope: scope.to_owned(),
            entry: Some(Entry {
                list: List::Extends,
                index,
            }),
            kind,
        });
    }
}

/// The path `scope -> parent -> ... -> scope`, if following `extends` from `parent` leads back.
fn find_cycle(scope: &str, parent: &str, specs: &HashMap<&str, &ScopeSpec>) -> Option<Vec<String>> {
    fn reaches<'a>(
        from: &'a str,
        goal: &str,
        specs: &HashMap<&str, &'a ScopeSpec>,
        path: &mut Vec<&'a str>,
        visited: &mut HashSet<&'a str>,
    ) -> bool {
        path.push(from);
        if from == goal {
            return true;
        }
        if visited.insert(from)
            && let Some(spec) = specs.get(from)
            && spec
                .extends
                .iter()
                .any(|next| reaches(next, goal, specs, path, visited))
        {
            return true;
        }
        path.pop();
        false
    }
    let mut path = vec![scope];
    let mut visited = HashSet::new();
    reaches(parent, scope, specs, &mut path, &mut visited)
        .then(|| path.into_iter().map(str::to_owned).collect())
}

// === impl Policy ===

impl Policy {
    pub fn scope_exists(&self, name: &str) -> bool {
        self.scopes.contains_key(name)
    }

    /// The rules `scope` ends up with, for `casegate check` and for tests.
    pub fn rules(&self, scope: &str) -> Option<EffectiveRules<'_>> {
        self.scopes.get(scope).map(|compiled| EffectiveRules {
            allow: &compiled.allow_rules,
            deny: &compiled.deny_rules,
        })
    }

    /// Decides a request of a guest bound to `case` and `share` under `scope`.
    pub fn decide(
        &self,
        scope: &str,
        method: &str,
        target: &CanonicalTarget<'_>,
        case: &str,
        share: &str,
    ) -> Decision {
        let Some(compiled) = self.scopes.get(scope) else {
            return Decision::UnknownScope;
        };
        let subject = Subject {
            method,
            target,
            case,
            share,
        };
        // Cut once, for both walks.
        let path = CutPath::cut(target, compiled.deny.depth.max(compiled.allow.depth));
        if compiled.deny.matches(&subject, &path) {
            Decision::DenyExplicit
        } else if compiled.allow.matches(&subject, &path) {
            Decision::Allow
        } else {
            Decision::DenyNoRule
        }
    }

    /// Whether an `upgrade` rule of `scope` lets this (already allowed) request switch protocols.
    pub fn allows_upgrade(
        &self,
        scope: &str,
        method: &str,
        target: &CanonicalTarget<'_>,
        case: &str,
        share: &str,
    ) -> bool {
        self.scopes.get(scope).is_some_and(|compiled| {
            let subject = Subject {
                method,
                target,
                case,
                share,
            };
            let path = CutPath::cut(target, compiled.upgrade.depth);
            compiled.upgrade.matches(&subject, &path)
        })
    }
}

// === impl Decision ===

impl Decision {
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
    }
}

/// One scope's own rules, parsed, before `extends` is followed.
struct ParsedScope {
    allow: Vec<Rule>,
    deny: Vec<Rule>,
    upgrade: Vec<Rule>,
}

#[derive(Debug)]
struct CompiledScope {
    allow: Trie,
    deny: Trie,
    upgrade: Trie,
    allow_rules: Vec<Rule>,
    deny_rules: Vec<Rule>,
}

// === impl CompiledScope ===

impl CompiledScope {
    fn build(
        name: &str,
        specs: &HashMap<&str, &ScopeSpec>,
        parsed: &HashMap<&str, ParsedScope>,
    ) -> Self {
        let mut allow_rules = Vec::new();
        let mut deny_rules = Vec::new();
        let mut upgrade_rules = Vec::new();
        let mut pending = vec![name];
        let mut visited = HashSet::new();
        // Depth-first, own rules first; `visited` keeps a diamond of extends from doubling rules.
        while let Some(scope) = pending.pop() {
            if !visited.insert(scope) {
                continue;
            }
            if let Some(own) = parsed.get(scope) {
                allow_rules.extend(own.allow.iter().cloned());
                deny_rules.extend(own.deny.iter().cloned());
                upgrade_rules.extend(own.upgrade.iter().cloned());
            }
            if let Some(spec) = specs.get(scope) {
                pending.extend(spec.extends.iter().rev().map(String::as_str));
            }
        }
        CompiledScope {
            allow: Trie::build(Effect::Allow, &allow_rules),
            deny: Trie::build(Effect::Deny, &deny_rules),
            upgrade: Trie::build(Effect::Allow, &upgrade_rules),
            allow_rules,
            deny_rules,
        }
    }
}

#[derive(Debug)]
struct Trie {
    effect: Effect,
    root: Node,
    /// The most segments any of its rules consumes (`**` consumes none): how much of a path a
    /// walk can reach.
    depth: usize,
}

#[derive(Debug, Default)]
struct Node {
    /// Sorted by [`compare`] under the trie's effect, so lookups can binary search.
    literals: Vec<(String, Node)>,
    case: Option<Box<Node>>,
    share: Option<Box<Node>>,
    any: Option<Box<Node>>,
    /// Rules whose pattern ends at this node.
    ends: Vec<Leaf>,
    /// Rules whose pattern ends with `**` at this node.
    rest: Vec<Leaf>,
}

#[derive(Debug)]
struct Leaf {
    methods: Vec<String>,
    query: Option<Vec<QueryPin>>,
}

// === impl Trie ===

impl Trie {
    fn build(effect: Effect, rules: &[Rule]) -> Self {
        let mut trie = Trie {
            effect,
            root: Node::default(),
            depth: 0,
        };
        for rule in rules {
            trie.insert(rule);
        }
        trie
    }

    fn insert(&mut self, rule: &Rule) {
        let leaf = Leaf {
            methods: rule.methods().to_vec(),
            query: rule.query().map(<[QueryPin]>::to_vec),
        };
        let mut node = &mut self.root;
        for (consumed, pattern) in rule.path().iter().enumerate() {
            if *pattern != SegmentPattern::Rest {
                self.depth = self.depth.max(consumed + 1);
            }
            node = match pattern {
                SegmentPattern::Literal(literal) => node.literal_child_mut(literal, self.effect),
                SegmentPattern::Case => node.case.get_or_insert_default(),
                SegmentPattern::Share => node.share.get_or_insert_default(),
                SegmentPattern::Any => node.any.get_or_insert_default(),
                SegmentPattern::Rest => {
                    node.rest.push(leaf);
                    return;
                }
            };
        }
        node.ends.push(leaf);
    }

    /// Whether a rule of the trie covers the request; `path` is cut at least [`Trie::depth`] deep.
    fn matches(&self, subject: &Subject<'_>, path: &CutPath<'_>) -> bool {
        self.walk(&self.root, 0, path, subject)
    }

    /// Whether a rule below `node`, which the path's first `consumed` segments reached, covers
    /// the request.
    fn walk(
        &self,
        node: &Node,
        consumed: usize,
        path: &CutPath<'_>,
        subject: &Subject<'_>,
    ) -> bool {
        let effect = self.effect;
        if node.rest.iter().any(|leaf| leaf.admits(subject, effect)) {
            return true;
        }
        // No segment is cut past the trie's depth, where no node has children.
        let Some(segment) = path.segment(consumed) else {
            return path.ends_after(consumed)
                && node.ends.iter().any(|leaf| leaf.admits(subject, effect));
        };
        let next = consumed + 1;
        // Recursion depth is bounded by the longest rule, not by the request.
        let bound_edges = [
            (node.case.as_deref(), subject.case),
            (node.share.as_deref(), subject.share),
        ];
        node.literal_child(segment, effect)
            .is_some_and(|child| self.walk(child, next, path, subject))
            || bound_edges.into_iter().any(|(child, bound)| {
                child.is_some_and(|child| {
                    binding_matches(segment, bound, effect) && self.walk(child, next, path, subject)
                })
            })
            || node
                .any
                .as_deref()
                .is_some_and(|child| self.walk(child, next, path, subject))
    }
}

// === impl Node ===

impl Node {
    fn literal_child(&self, segment: &str, effect: Effect) -> Option<&Node> {
        let index = self
            .literals
            .binary_search_by(|(key, _)| compare(key, segment, effect))
            .ok()?;
        self.literals.get(index).map(|(_, child)| child)
    }

    fn literal_child_mut(&mut self, literal: &str, effect: Effect) -> &mut Node {
        let index = match self
            .literals
            .binary_search_by(|(key, _)| compare(key, literal, effect))
        {
            Ok(index) => index,
            Err(index) => {
                self.literals
                    .insert(index, (literal.to_owned(), Node::default()));
                index
            }
        };
        // `index` was just found or inserted, so this never panics; the input is config, not wire.
        &mut self.literals[index].1
    }
}

/// Orders literals shorter first, then the way [`rule::literal_matches`] compares them under
/// `effect` (ASCII case folding keeps lengths): a lookup whose segment has no literal of its
/// length compares no bytes at all. Inlined into the binary searches, which call it a few times a
/// lookup: out of line, with its lengths' `then_with`, it was a quarter of the 50-rule policy
/// bench's `decide` (callgrind).
#[inline(always)]
fn compare(a: &str, b: &str, effect: Effect) -> Ordering {
    if a.len() != b.len() {
        return a.len().cmp(&b.len());
    }
    match effect {
        Effect::Allow => a.as_bytes().cmp(b.as_bytes()),
        // Equal is what a lookup that finds its literal ends on: asked first, without working
        // out an order.
        Effect::Deny if same_ignoring_ascii_case(a.as_bytes(), b.as_bytes()) => Ordering::Equal,
        Effect::Deny => a
            .bytes()
            .map(|byte| byte.to_ascii_lowercase())
            .cmp(b.bytes().map(|byte| byte.to_ascii_lowercase())),
    }
}

// === impl Leaf ===

impl Leaf {
    fn admits(&self, subject: &Subject<'_>, effect: Effect) -> bool {
        self.methods.iter().any(|method| method == subject.method)
            && rule::query_matches(self.query.as_deref(), subject, effect)
    }
}

// === impl PolicyError ===

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "scope `{}`", self.scope)?;
        if let Some(Entry { list, index }) = self.entry {
            let list = match list {
                List::Allow => "allow",
                List::Deny => "deny",
                List::Extends => "extends",
                List::Upgrade => "upgrade",
            };
            write!(f, ", {list}[{index}]")?;
        }
        match &self.kind {
            PolicyErrorKind::BadRule(error) => write!(f, ": {error}"),
            PolicyErrorKind::QueryPinInDeny => f.write_str(
                ": a deny rule cannot pin a query (one more name would slip past it); deny the path, or allow only the queries you want",
            ),
            PolicyErrorKind::UnknownScope(parent) => write!(f, ": extends unknown scope `{parent}`"),
            PolicyErrorKind::ExtendsCycle(cycle) => {
                write!(f, ": extends cycle {}", cycle.join(" -> "))
            }
            PolicyErrorKind::DuplicateScope => f.write_str(": scope is defined twice"),
        }
    }
}

impl std::error::Error for PolicyError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::canonical::{TargetError, canonicalise};
    use crate::policy::rule::ValuePattern;
    use proptest::prelude::*;

    fn spec(allow: &[&str], deny: &[&str], extends: &[&str]) -> ScopeSpec {
        let owned = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
        ScopeSpec {
            allow: owned(allow),
            deny: owned(deny),
            extends: owned(extends),
            upgrade: Vec::new(),
        }
    }

    /// The example from the issue, plus a scope that needs backtracking across edges.
    fn example_scopes() -> Vec<(String, ScopeSpec)> {
        vec![
            (
                "view".to_owned(),
                spec(
                    &[
                        "GET /cases/{case}",
                        "GET /cases/{case}/**",
                        "GET /static/**",
                    ],
                    &[],
                    &[],
                ),
            ),
            (
                "guest".to_owned(),
                spec(
                    &[
                        "POST /api/cases/{case}/comments",
                        "DELETE /api/cases/{case}/team/{share}",
                    ],
                    &[
                        "GET /cases/{case}/billing/**",
                        "GET /cases/{case}/billing-reports/**",
                        "GET,POST,PUT,PATCH,DELETE /cases/{case}/admin/**",
                    ],
                    &["view"],
                ),
            ),
            (
                "legacy".to_owned(),
                spec(
                    &[
                        "GET /legacy/case.php?id={case}",
                        "GET /legacy/video.php?id={case}&part=*",
                    ],
                    &[],
                    &[],
                ),
            ),
            (
                "wild".to_owned(),
                spec(
                    &[
                        "GET /w/*/end",
                        "GET /w/lit/other",
                        "GET /w/{case}/*/deep",
                        "GET /w/lit",
                    ],
                    &["GET /w/*/secret"],
                    &[],
                ),
            ),
        ]
    }

    fn example_policy() -> Policy {
        compile(&example_scopes()).unwrap_or_else(|errors| panic!("{errors:?}"))
    }

    /// (what the row shows, scope, method, target, expected) for a guest of case 42, share s1.
    #[rustfmt::skip]
    const DECISIONS: &[(&str, &str, &str, &str, Decision)] = &[
        ("view reads its case", "view", "GET", "/cases/42", Decision::Allow),
        ("view reads below its case", "view", "GET", "/cases/42/notes/7", Decision::Allow),
        ("view reads static files", "view", "GET", "/static/app.css", Decision::Allow),
        ("HEAD is allowed by GET", "view", "HEAD", "/cases/42", Decision::Allow),
        ("view is denied another case", "view", "GET", "/cases/43", Decision::DenyNoRule),
        ("view is denied below another case", "view", "GET", "/cases/43/notes", Decision::DenyNoRule),
        ("a longer case id is another case", "view", "GET", "/cases/42x", Decision::DenyNoRule),
        ("a prefix of the case id is another case", "view", "GET", "/cases/4", Decision::DenyNoRule),
        ("view cannot POST", "view", "POST", "/cases/42", Decision::DenyNoRule),
        ("view cannot comment", "view", "POST", "/api/cases/42/comments", Decision::DenyNoRule),
        ("view reads billing", "view", "GET", "/cases/42/billing/2024", Decision::Allow),
        ("view cannot list all cases", "view", "GET", "/cases", Decision::DenyNoRule),
        ("view cannot read the root", "view", "GET", "/", Decision::DenyNoRule),
        ("guest inherits reading its case", "guest", "GET", "/cases/42/notes", Decision::Allow),
        ("guest comments on its case", "guest", "POST", "/api/cases/42/comments", Decision::Allow),
        ("guest cannot comment on another case", "guest", "POST", "/api/cases/43/comments", Decision::DenyNoRule),
        ("guest removes its own share", "guest", "DELETE", "/api/cases/42/team/s1", Decision::Allow),
        ("guest cannot remove another share", "guest", "DELETE", "/api/cases/42/team/s2", Decision::DenyNoRule),
        ("guest is denied billing", "guest", "GET", "/cases/42/billing", Decision::DenyExplicit),
        ("guest is denied below billing", "guest", "GET", "/cases/42/billing/2024", Decision::DenyExplicit),
        ("guest is denied billing by HEAD", "guest", "HEAD", "/cases/42/billing", Decision::DenyExplicit),
        ("guest is denied billing in upper case", "guest", "GET", "/cases/42/BILLING/x", Decision::DenyExplicit),
        ("guest is denied billing whatever the query", "guest", "GET", "/cases/42/billing?x=1", Decision::DenyExplicit),
        ("billings is not billing", "guest", "GET", "/cases/42/billings", Decision::Allow),
        ("guest is denied billing reports", "guest", "GET", "/cases/42/billing-reports/x", Decision::DenyExplicit),
        ("guest is denied billing reports in upper case", "guest", "GET", "/cases/42/BILLING-REPORTS/x", Decision::DenyExplicit),
        ("a tilde then a letter is another name", "guest", "GET", "/cases/42/BILLIN~A/x", Decision::Allow),
        ("guest is denied admin by GET", "guest", "GET", "/cases/42/admin", Decision::DenyExplicit),
        ("guest is denied admin by DELETE", "guest", "DELETE", "/cases/42/admin/users/1", Decision::DenyExplicit),
        ("guest is denied admin by PATCH", "guest", "PATCH", "/cases/42/ADMIN/x", Decision::DenyExplicit),
        ("a method the deny does not list falls to the allow rules", "guest", "PROPFIND", "/cases/42/admin", Decision::DenyNoRule),
        ("legacy reads its case", "legacy", "GET", "/legacy/case.php?id=42", Decision::Allow),
        ("legacy needs the query", "legacy", "GET", "/legacy/case.php", Decision::DenyNoRule),
        ("legacy is denied another case", "legacy", "GET", "/legacy/case.php?id=43", Decision::DenyNoRule),
        ("legacy is denied a repeated id", "legacy", "GET", "/legacy/case.php?id=42&id=43", Decision::DenyNoRule),
        ("legacy is denied a repeated id in either order", "legacy", "GET", "/legacy/case.php?id=43&id=42", Decision::DenyNoRule),
        ("legacy is denied an extra name", "legacy", "GET", "/legacy/case.php?id=42&x=1", Decision::DenyNoRule),
        ("legacy is denied an empty id", "legacy", "GET", "/legacy/case.php?id=", Decision::DenyNoRule),
        ("legacy is denied a case-spelled id in upper case", "legacy", "GET", "/legacy/case.php?ID=42", Decision::DenyNoRule),
        ("legacy video takes pins in any order", "legacy", "GET", "/legacy/video.php?part=1&id=42", Decision::Allow),
        ("legacy video needs a part", "legacy", "GET", "/legacy/video.php?id=42", Decision::DenyNoRule),
        ("legacy video needs a non-empty part", "legacy", "GET", "/legacy/video.php?id=42&part=", Decision::DenyNoRule),
        ("legacy cannot read cases", "legacy", "GET", "/cases/42", Decision::DenyNoRule),
        ("a literal edge falls back to a star edge", "wild", "GET", "/w/lit/end", Decision::Allow),
        ("a star edge matches other segments", "wild", "GET", "/w/x/end", Decision::Allow),
        ("a literal edge still matches itself", "wild", "GET", "/w/lit/other", Decision::Allow),
        ("a literal end matches", "wild", "GET", "/w/lit", Decision::Allow),
        ("a case edge falls back from a literal", "wild", "GET", "/w/42/x/deep", Decision::Allow),
        ("a case edge needs the case", "wild", "GET", "/w/43/x/deep", Decision::DenyNoRule),
        ("a star deny covers a literal", "wild", "GET", "/w/lit/secret", Decision::DenyExplicit),
        ("a star stops at one segment", "wild", "GET", "/w/a/b/end", Decision::DenyNoRule),
        ("an unknown scope is its own decision", "admin", "GET", "/cases/42", Decision::UnknownScope),
    ];

    #[test]
    fn the_example_policy_decides_as_the_table_says() {
        let policy = example_policy();
        for (name, scope, method, raw, expected) in DECISIONS {
            let target = canonicalise(raw.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
            let got = policy.decide(scope, method, &target, "42", "s1");
            assert_eq!(got, *expected, "{name}");
        }
    }

    /// (what the row shows, target, why canonicalise refuses it) for targets that would slip past
    /// the example policy's deny rules against a case-insensitive or Windows upstream.
    #[rustfmt::skip]
    const BYPASSES: &[(&str, &str, TargetError)] = &[
        ("a dotless i does not reach billing", "/cases/42/b%C4%B1lling/x", TargetError::CaseFoldsToAscii),
        ("a dotted capital I does not reach billing", "/cases/42/B%C4%B0LLING/x", TargetError::CaseFoldsToAscii),
        ("a long s does not reach billing reports", "/cases/42/billing-report%C5%BF/x", TargetError::NfkcConfusable),
        ("an index allocation stream does not reach billing reports", "/cases/42/billing-reports::$INDEX_ALLOCATION/x", TargetError::Colon),
        ("a named stream does not reach billing reports", "/cases/42/billing-reports:x/y", TargetError::Colon),
        ("an encoded stream does not reach billing reports", "/cases/42/billing-reports%3A%3A$INDEX_ALLOCATION/x", TargetError::EncodedColon),
        ("a short name does not reach billing reports", "/cases/42/BILLIN~1/x", TargetError::ShortName),
        ("a dotless i does not reach admin", "/cases/42/adm%C4%B1n", TargetError::CaseFoldsToAscii),
    ];

    #[test]
    fn deny_bypass_probes_never_reach_a_decision() {
        for (name, raw, reason) in BYPASSES {
            assert_eq!(
                canonicalise(raw.as_bytes()).map(|_| ()),
                Err(*reason),
                "{name}"
            );
        }
    }

    #[test]
    fn a_wildcard_method_is_refused_rather_than_denying_nothing() {
        let scopes = vec![(
            "s".to_owned(),
            spec(
                &["GET /cases/{case}/**"],
                &["* /cases/{case}/admin/**"],
                &[],
            ),
        )];
        let expected = vec![error(
            "s",
            Some((List::Deny, 0)),
            PolicyErrorKind::BadRule(RuleError::WildcardMethod("*".to_owned())),
        )];
        assert_eq!(compile(&scopes).err(), Some(expected));
    }

    #[test]
    fn a_trailing_slash_never_reaches_a_decision() {
        // `/cases/42/` is refused by canonicalise, so no rule can be asked about it.
        assert!(canonicalise(b"/cases/42/").is_err());
        assert!(parse_rule("GET /cases/{case}/").is_err());
    }

    #[test]
    fn scopes_are_known_by_name() {
        let policy = example_policy();
        assert!(policy.scope_exists("guest"));
        assert!(!policy.scope_exists("Guest"));
        let guest = policy.rules("guest").unwrap_or_else(|| panic!("guest"));
        assert_eq!((guest.allow.len(), guest.deny.len()), (5, 3));
    }

    #[test]
    fn a_diamond_of_extends_pulls_each_scope_in_once() {
        let scopes = vec![
            ("base".to_owned(), spec(&["GET /a"], &[], &[])),
            ("left".to_owned(), spec(&[], &[], &["base"])),
            ("right".to_owned(), spec(&[], &[], &["base"])),
            ("top".to_owned(), spec(&[], &[], &["left", "right"])),
        ];
        let policy = compile(&scopes).unwrap_or_else(|errors| panic!("{errors:?}"));
        let top = policy.rules("top").unwrap_or_else(|| panic!("top"));
        assert_eq!(top.allow.len(), 1);
    }

    fn error(scope: &str, entry: Option<(List, usize)>, kind: PolicyErrorKind) -> PolicyError {
        PolicyError {
            scope: scope.to_owned(),
            entry: entry.map(|(list, index)| Entry { list, index }),
            kind,
        }
    }

    #[test]
    fn compile_reports_every_problem_with_its_place() {
        type Row = (&'static str, Vec<(String, ScopeSpec)>, Vec<PolicyError>);
        let rows: Vec<Row> = vec![
            (
                "a bad allow rule and a bad deny rule are both reported",
                vec![(
                    "s".to_owned(),
                    spec(&["GET /ok", "get /a"], &["GET /a//b"], &[]),
                )],
                vec![
                    error(
                        "s",
                        Some((List::Allow, 1)),
                        PolicyErrorKind::BadRule(RuleError::LowercaseMethod("get".to_owned())),
                    ),
                    error(
                        "s",
                        Some((List::Deny, 0)),
                        PolicyErrorKind::BadRule(RuleError::EmptySegment),
                    ),
                ],
            ),
            (
                "a deny rule may not pin a query",
                vec![("s".to_owned(), spec(&[], &["GET /a?x=1"], &[]))],
                vec![error(
                    "s",
                    Some((List::Deny, 0)),
                    PolicyErrorKind::QueryPinInDeny,
                )],
            ),
            (
                "extending an unknown scope is reported",
                vec![
                    ("s".to_owned(), spec(&[], &[], &["view", "nope"])),
                    ("view".to_owned(), ScopeSpec::default()),
                ],
                vec![error(
                    "s",
                    Some((List::Extends, 1)),
                    PolicyErrorKind::UnknownScope("nope".to_owned()),
                )],
            ),
            (
                "a scope extending itself is a cycle",
                vec![("s".to_owned(), spec(&[], &[], &["s"]))],
                vec![error(
                    "s",
                    Some((List::Extends, 0)),
                    PolicyErrorKind::ExtendsCycle(vec!["s".to_owned(), "s".to_owned()]),
                )],
            ),
            (
                "every scope on a longer cycle is reported",
                vec![
                    ("a".to_owned(), spec(&[], &[], &["b"])),
                    ("b".to_owned(), spec(&[], &[], &["c"])),
                    ("c".to_owned(), spec(&[], &[], &["a"])),
                ],
                vec![
                    error(
                        "a",
                        Some((List::Extends, 0)),
                        PolicyErrorKind::ExtendsCycle(
                            ["a", "b", "c", "a"].map(String::from).to_vec(),
                        ),
                    ),
                    error(
                        "b",
                        Some((List::Extends, 0)),
                        PolicyErrorKind::ExtendsCycle(
                            ["b", "c", "a", "b"].map(String::from).to_vec(),
                        ),
                    ),
                    error(
                        "c",
                        Some((List::Extends, 0)),
                        PolicyErrorKind::ExtendsCycle(
                            ["c", "a", "b", "c"].map(String::from).to_vec(),
                        ),
                    ),
                ],
            ),
            (
                "a scope defined twice is reported",
                vec![
                    ("s".to_owned(), ScopeSpec::default()),
                    ("s".to_owned(), ScopeSpec::default()),
                ],
                vec![error("s", None, PolicyErrorKind::DuplicateScope)],
            ),
        ];
        for (name, scopes, expected) in rows {
            assert_eq!(compile(&scopes).err(), Some(expected), "{name}");
        }
    }

    #[test]
    fn policy_errors_say_where_and_why() {
        let message = error(
            "guest",
            Some((List::Allow, 2)),
            PolicyErrorKind::BadRule(RuleError::RestNotLast),
        )
        .to_string();
        assert_eq!(
            message,
            "scope `guest`, allow[2]: `**` may only be the last path segment"
        );
    }

    fn decide_linearly(policy: &Policy, scope: &str, subject: &Subject<'_>) -> Decision {
        let Some(rules) = policy.rules(scope) else {
            return Decision::UnknownScope;
        };
        if rules
            .deny
            .iter()
            .any(|rule| rule.matches(subject, Effect::Deny))
        {
            Decision::DenyExplicit
        } else if rules
            .allow
            .iter()
            .any(|rule| rule.matches(subject, Effect::Allow))
        {
            Decision::Allow
        } else {
            Decision::DenyNoRule
        }
    }

    /// What every allowed request must satisfy, checked against the trie and the plain rules.
    fn check_invariants(policy: &Policy, raw: &[u8]) -> Result<(), TestCaseError> {
        let Ok(target) = canonicalise(raw) else {
            return Ok(());
        };
        for scope in ["view", "guest", "legacy", "wild"] {
            for method in ["GET", "HEAD", "POST", "DELETE"] {
                let subject = Subject {
                    method,
                    target: &target,
                    case: "42",
                    share: "s1",
                };
                let decision = policy.decide(scope, method, &target, "42", "s1");
                prop_assert_eq!(decision, decide_linearly(policy, scope, &subject));
                if decision != Decision::Allow {
                    continue;
                }
                prop_assert_eq!(canonicalise(target.raw().as_bytes()), Ok(target));
                let rules = policy.rules(scope).unwrap_or_else(|| panic!("{scope}"));
                let rule = rules
                    .allow
                    .iter()
                    .find(|rule| rule.matches(&subject, Effect::Allow));
                prop_assert!(rule.is_some(), "an allowed request matches an allow rule");
                let Some(rule) = rule else { continue };
                for (pattern, segment) in rule.path().iter().zip(target.segments()) {
                    if *pattern == SegmentPattern::Case {
                        prop_assert_eq!(segment, "42");
                    }
                }
                let pairs: Vec<&str> = target
                    .query()
                    .map(|q| q.split('&').collect())
                    .unwrap_or_default();
                for pin in rule.query().unwrap_or_default() {
                    if pin.value == ValuePattern::Case {
                        let bound = format!("{}=42", pin.name);
                        let named: Vec<&str> = pairs
                            .iter()
                            .copied()
                            .filter(|pair| {
                                pair.split_once('=').map(|(name, _)| name) == Some(&pin.name)
                            })
                            .collect();
                        prop_assert_eq!(named, vec![bound.as_str()]);
                    }
                }
            }
        }
        Ok(())
    }

    /// Targets built from the pieces the example policy cares about and the pieces attacks use.
    fn path_like() -> impl Strategy<Value = Vec<u8>> {
        let word = prop_oneof![
            Just("42"),
            Just("43"),
            Just("cases"),
            Just("billing"),
            Just("BILLING"),
            Just("billing-reports"),
            Just("admin"),
            Just("static"),
            Just("api"),
            Just("comments"),
            Just("team"),
            Just("s1"),
            Just("legacy"),
            Just("case.php"),
            Just("video.php"),
            Just("w"),
            Just("lit"),
            Just("end"),
            Just("secret"),
            Just("deep"),
        ];
        let attack = prop_oneof![
            Just("."),
            Just(".."),
            Just("%2E"),
            Just("%2e"),
            Just("%2F"),
            Just("\\"),
            Just(";"),
            Just("#"),
            Just("%"),
            Just("**"),
            Just("%EF%BC%8F"),
            Just("%C0%AE"),
            Just(":"),
            Just("::$DATA"),
            Just("~1"),
            Just("%C4%B1"),
            Just(""),
            Just("42"),
        ];
        let segment = prop_oneof![
            6 => word.clone().prop_map(str::to_owned),
            1 => (word, attack.clone()).prop_map(|(a, b)| format!("{a}{b}")),
            1 => attack.prop_map(str::to_owned),
        ];
        let pair = (
            prop_oneof![Just("id"), Just("part"), Just("ID"), Just("x"), Just("")],
            prop_oneof![
                Just("=42"),
                Just("=43"),
                Just("=1"),
                Just("="),
                Just(""),
                Just("=%2F"),
                Just("=4%32")
            ],
        )
            .prop_map(|(name, value)| format!("{name}{value}"));
        let query = proptest::option::of(proptest::collection::vec(pair, 0..4));
        let prefix = prop_oneof![
            Just(""),
            Just("/cases/42"),
            Just("/cases/43"),
            Just("/static"),
            Just("/api/cases/42"),
            Just("/api/cases/42/team"),
            Just("/legacy"),
            Just("/w/lit"),
            Just("/w/42"),
            Just("/w"),
        ];
        let shape = (prefix, proptest::collection::vec(segment, 0..4), query);
        shape.prop_map(|(prefix, segments, query)| {
            let mut raw = prefix.to_owned();
            for segment in segments {
                raw.push('/');
                raw.push_str(&segment);
            }
            if raw.is_empty() {
                raw.push('/');
            }
            if let Some(pairs) = query {
                raw.push('?');
                raw.push_str(&pairs.join("&"));
            }
            raw.into_bytes()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn allowed_arbitrary_bytes_are_canonical_and_bound_to_the_case(
            raw in proptest::collection::vec(any::<u8>(), 0..48)
        ) {
            check_invariants(&example_policy(), &raw)?;
        }

        #[test]
        fn allowed_path_like_targets_are_canonical_and_bound_to_the_case(raw in path_like()) {
            check_invariants(&example_policy(), &raw)?;
        }
    }
}
