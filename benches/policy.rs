//! canonicalise + match a typical guest request against a 50-rule policy: target <= 1 us.

use std::hint::black_box;

use casegate::policy::{Decision, ScopeSpec, canonicalise, compile};
use criterion::{Criterion, criterion_group, criterion_main};

const SECTIONS: [&str; 36] = [
    "summary",
    "notes",
    "documents",
    "images",
    "labs",
    "vitals",
    "orders",
    "allergies",
    "medications",
    "timeline",
    "letters",
    "referrals",
    "imaging",
    "pathology",
    "consents",
    "episodes",
    "contacts",
    "devices",
    "procedures",
    "problems",
    "plans",
    "observations",
    "results",
    "forms",
    "appointments",
    "encounters",
    "immunisations",
    "diagnoses",
    "history",
    "family",
    "social",
    "nursing",
    "therapy",
    "discharge",
    "transfers",
    "audit-view",
];

/// A guest scope of 50 rules: literals under the case, wildcards, query pins and denies.
fn fifty_rules() -> Vec<(String, ScopeSpec)> {
    let mut allow: Vec<String> = SECTIONS
        .iter()
        .map(|section| format!("GET /cases/{{case}}/{section}/**"))
        .collect();
    allow.extend(
        [
            "GET /cases/{case}",
            "GET /static/**",
            "GET /files/*/thumb",
            "GET /cases/{case}/docs/*/pages/*",
            "GET /legacy/case.php?id={case}",
            "GET /legacy/video.php?id={case}&part=*",
            "POST /api/cases/{case}/comments",
            "DELETE /api/cases/{case}/team/{share}",
            "GET,POST /api/cases/{case}/drafts/*",
            "GET /api/me",
        ]
        .map(String::from),
    );
    let deny = [
        "GET /cases/{case}/billing/**",
        "GET /cases/{case}/documents/restricted/**",
        "POST /api/cases/{case}/comments/*",
        "GET /static/private/**",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(allow.len() + deny.len(), 50);
    let guest = ScopeSpec {
        allow,
        deny,
        extends: Vec::new(),
        upgrade: Vec::new(),
    };
    vec![("guest".to_owned(), guest)]
}

fn bench(c: &mut Criterion) {
    let policy = compile(&fifty_rules()).unwrap_or_else(|errors| panic!("{errors:?}"));
    let requests: [(&str, &[u8], Decision); 3] = [
        (
            "allowed",
            b"/cases/12345/documents/2024/report.pdf?page=3",
            Decision::Allow,
        ),
        (
            "denied by rule",
            b"/cases/12345/billing/invoices/7?x=1",
            Decision::DenyExplicit,
        ),
        (
            "denied, other case",
            b"/cases/12346/documents/2024/report.pdf",
            Decision::DenyNoRule,
        ),
    ];
    let mut group = c.benchmark_group("canonicalise+decide");
    for (name, raw, expected) in requests {
        let decide = |raw: &[u8]| {
            canonicalise(raw)
                .map(|target| policy.decide("guest", "GET", &target, "12345", "s-9f2c"))
                .unwrap_or(Decision::DenyNoRule)
        };
        assert_eq!(decide(raw), expected, "{name}");
        group.bench_function(name, |b| b.iter(|| decide(black_box(raw))));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
