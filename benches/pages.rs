//! A refusal page in the recipient's language: choose the language from Accept-Language and
//! render the whole HTML response; target <= 10 us, so a flood of bad links costs little.

use std::hint::black_box;

use casegate::pages::{Lang, Page, Templates, render};
use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderValue;

fn refusal_page(c: &mut Criterion) {
    let templates = Templates::embedded();
    let accept =
        HeaderValue::from_static("fi-FI,fi;q=0.9,sv-FI;q=0.8,sv;q=0.7,en-US;q=0.6,en;q=0.5");
    c.bench_function("choose language and render the invalid_link page", |b| {
        b.iter(|| {
            let lang = Lang::choose(None, Some(black_box(&accept)));
            render(&templates, black_box(Page::InvalidLink), lang, false)
        })
    });
    c.bench_function("render the invalid_link page as JSON", |b| {
        b.iter(|| render(&templates, black_box(Page::InvalidLink), Lang::Sv, true))
    });
}

criterion_group!(benches, refusal_page);
criterion_main!(benches);
