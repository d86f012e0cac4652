//! Link verification <= 2 us, cookie verification <= 1 us on this machine: the cost of
//! `token::verify` on a typical link and `cookie::open` on a typical guest cookie.

use std::hint::black_box;

use casegate::share::keys::Secret;
use casegate::share::token::{self, DEFAULT_CLOCK_SKEW_SECS};
use casegate::share::{CaseGrammar, Guest, KeyRing, LinkClaims, LinkRules, cookie};
use criterion::{Criterion, criterion_group, criterion_main};

const NOW: i64 = 1_750_000_000;

fn ring() -> KeyRing {
    let keys = vec![
        ("k0".to_owned(), Secret::from_bytes(vec![0x11; 32])),
        ("k1".to_owned(), Secret::from_bytes(vec![0x22; 32])),
    ];
    KeyRing::new("k1", keys).expect("bench ring")
}

fn typical_claims() -> LinkClaims {
    LinkClaims {
        share_id: "Vb3m0qf1Zl8wXk2Rr9TnYA".to_owned(),
        case: "C-2025-001042".to_owned(),
        scope: "read".to_owned(),
        issued_at: NOW - 3600,
        expires_at: NOW + 7 * 24 * 3600,
        not_before: None,
        email: Some("recipient@example.org".to_owned()),
        lang: Some("de-CH".to_owned()),
    }
}

fn verify_link(c: &mut Criterion) {
    let keys = ring();
    let link = token::mint(&keys, &typical_claims());
    let grammar = CaseGrammar::default();
    let scopes = |scope: &str| scope == "read" || scope == "comment";
    let rules = LinkRules {
        now: NOW,
        max_ttl_secs: 30 * 24 * 3600,
        clock_skew_secs: DEFAULT_CLOCK_SKEW_SECS,
        case_grammar: &grammar,
        scope_exists: &scopes,
    };
    assert!(token::verify(&keys, &link, &rules).is_ok());
    c.bench_function("share/verify_link", |b| {
        b.iter(|| token::verify(&keys, black_box(&link), &rules))
    });
}

fn open_cookie(c: &mut Criterion) {
    let keys = ring();
    let guest = Guest::from_link(typical_claims());
    let value = cookie::seal(&keys, &guest).expect("typical guest fits");
    assert!(cookie::open(&keys, &value, NOW).is_ok());
    c.bench_function("share/open_cookie", |b| {
        b.iter(|| cookie::open(&keys, black_box(&value), NOW))
    });
}

criterion_group!(benches, verify_link, open_cookie);
criterion_main!(benches);
