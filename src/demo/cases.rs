//! The demo cases (invented, patient-free) and the pages and JSON the demo app shows for them.

use std::fmt::Write;

use http::HeaderMap;

/// One recorded procedure as the legacy case app would show it.
#[derive(Debug)]
pub(super) struct Case {
    pub id: &'static str,
    pub procedure: &'static str,
    pub surgeon_initials: &'static str,
    pub date: &'static str,
    pub theatre: &'static str,
    pub chapters: &'static [Chapter],
}

/// A moment in the recording worth jumping to.
#[derive(Debug)]
pub(super) struct Chapter {
    pub at: &'static str,
    pub title: &'static str,
}

static CASES: [Case; 2] = [
    Case {
        id: "42",
        procedure: "Laparoscopic cholecystectomy",
        surgeon_initials: "A.M.",
        date: "2025-03-14",
        theatre: "Theatre 3",
        chapters: &[
            Chapter {
                at: "00:00",
                title: "Port placement",
            },
            Chapter {
                at: "00:12",
                title: "Exposure of Calot's triangle",
            },
            Chapter {
                at: "00:26",
                title: "Critical view of safety",
            },
            Chapter {
                at: "00:38",
                title: "Clipping and division",
            },
            Chapter {
                at: "00:50",
                title: "Gallbladder extraction",
            },
        ],
    },
    Case {
        id: "43",
        procedure: "Arthroscopic knee meniscectomy",
        surgeon_initials: "J.K.",
        date: "2025-03-15",
        theatre: "Theatre 1",
        chapters: &[
            Chapter {
                at: "00:00",
                title: "Diagnostic arthroscopy",
            },
            Chapter {
                at: "00:20",
                title: "Meniscal tear assessment",
            },
            Chapter {
                at: "00:40",
                title: "Partial meniscectomy",
            },
        ],
    },
];

/// Headers the gateway adds to forwarded requests; the case page shows them so the demo makes
/// visible what the upstream learns about a guest.
const GATEWAY_HEADER_PREFIX: &str = "x-casegate-";
/// Bounds on what is echoed, because a direct (non-gateway) client can send anything.
const MAX_ECHOED_HEADERS: usize = 16;
const MAX_ECHOED_CHARS: usize = 200;

pub(super) fn find(id: &str) -> Option<&'static Case> {
    CASES.iter().find(|case| case.id == id)
}

/// The case page: details, the video, chapters, the links and form a guest will try.
pub(super) fn case_page(case: &Case, headers: &HeaderMap) -> String {
    let id = case.id;
    let mut html = page_head(&format!("Case {id}: {}", case.procedure));
    let _ = write!(
        html,
        "<h1>Case {id}</h1>\n\
         <p class=\"procedure\">{procedure}</p>\n\
         {provenance}\
         <video controls preload=\"metadata\" src=\"/cases/{id}/video\">Your browser cannot play this video.</video>\n\
         <dl>\n\
         <dt>Surgeon</dt><dd>{surgeon}</dd>\n\
         <dt>Date</dt><dd>{date}</dd>\n\
         <dt>Theatre</dt><dd>{theatre}</dd>\n\
         </dl>\n\
         <h2>Chapters</h2>\n<ol class=\"chapters\">\n",
        procedure = case.procedure,
        provenance = provenance(headers),
        surgeon = case.surgeon_initials,
        date = case.date,
        theatre = case.theatre,
    );
    for chapter in case.chapters {
        let _ = writeln!(
            html,
            "<li><time>{}</time> {}</li>",
            chapter.at, chapter.title
        );
    }
    let _ = write!(
        html,
        "</ol>\n\
         <h2>More</h2>\n<ul>\n\
         <li><a href=\"/cases/{id}/summary.json\">Case summary (JSON)</a></li>\n\
         <li><a href=\"/cases/{id}/billing\">Billing for this case</a></li>\n"
    );
    for other in CASES.iter().filter(|other| other.id != id) {
        let _ = writeln!(
            html,
            "<li><a href=\"/cases/{0}\">Case {0}: {1}</a></li>",
            other.id, other.procedure
        );
    }
    let _ = write!(
        html,
        "</ul>\n\
         <h2>Add a comment</h2>\n\
         <form method=\"post\" action=\"/api/cases/{id}/comments\">\n\
         <label for=\"comment\">Comment</label>\n\
         <textarea id=\"comment\" name=\"comment\" rows=\"3\" maxlength=\"1000\"></textarea>\n\
         <button type=\"submit\">Post comment</button>\n\
         </form>\n"
    );
    html.push_str(PAGE_FOOT);
    html
}

/// A page a view-only share must never reach; the app serves it, the gateway's policy refuses it.
pub(super) fn billing_page(case: &Case) -> String {
    let id = case.id;
    let mut html = page_head(&format!("Billing for case {id}"));
    let _ = write!(
        html,
        "<h1>Billing for case {id}</h1>\n\
         <p class=\"procedure\">{procedure}</p>\n\
         <dl>\n\
         <dt>Tariff code</dt><dd>DEMO-{id}-01</dd>\n\
         <dt>Theatre time</dt><dd>48 min</dd>\n\
         <dt>Status</dt><dd>Invoiced</dd>\n\
         </dl>\n\
         <p><a href=\"/cases/{id}\">Back to the case</a></p>\n",
        procedure = case.procedure,
    );
    html.push_str(PAGE_FOOT);
    html
}

pub(super) fn summary_json(case: &Case) -> String {
    let chapters: Vec<serde_json::Value> = case
        .chapters
        .iter()
        .map(|chapter| serde_json::json!({ "at": chapter.at, "title": chapter.title }))
        .collect();
    serde_json::json!({
        "case": case.id,
        "procedure": case.procedure,
        "surgeon_initials": case.surgeon_initials,
        "date": case.date,
        "theatre": case.theatre,
        "video": format!("/cases/{}/video", case.id),
        "chapters": chapters,
    })
    .to_string()
}

fn page_head(title: &str) -> String {
    format!(
        "<!doctype html>\n\
         <html lang=\"en\">\n\
         <head>\n\
         <meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} - Demo case app</title>\n\
         <link rel=\"stylesheet\" href=\"/static/demo.css\">\n\
         </head>\n\
         <body>\n\
         <header>Demo case app (invented data, no patients)</header>\n\
         <main>\n"
    )
}

const PAGE_FOOT: &str = "</main>\n</body>\n</html>\n";

/// The "what did the upstream receive" box: every X-Casegate-* header, escaped and bounded.
fn provenance(headers: &HeaderMap) -> String {
    let mut echoed = headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with(GATEWAY_HEADER_PREFIX))
        .take(MAX_ECHOED_HEADERS)
        .peekable();
    if echoed.peek().is_none() {
        return "<p class=\"provenance direct\">Opened directly: no X-Casegate-* headers arrived, \
                so this request did not come through casegate.</p>\n"
            .to_owned();
    }
    let mut html = String::from(
        "<section class=\"provenance\">\n<p>Shared by casegate. The gateway told this app:</p>\n<dl>\n",
    );
    for (name, value) in echoed {
        let value = value.to_str().unwrap_or("(not text)");
        let shown: String = value.chars().take(MAX_ECHOED_CHARS).collect();
        let _ = writeln!(
            html,
            "<dt>{}</dt><dd>{}</dd>",
            escape(name.as_str()),
            escape(&shown)
        );
    }
    html.push_str("</dl>\n</section>\n");
    html
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    #[test]
    fn cases_are_found_by_exact_id_only() {
        let table = [
            ("the shared case exists", "42", true),
            ("the other case exists", "43", true),
            ("an unknown case does not", "44", false),
            ("a padded id does not match", "042", false),
            ("an empty id does not match", "", false),
        ];
        for (name, id, found) in table {
            assert_eq!(find(id).is_some(), found, "{name}");
        }
    }

    #[test]
    fn the_case_page_has_everything_the_demo_needs() {
        let case = find("42").expect("case 42 exists");
        let html = case_page(case, &HeaderMap::new());
        let table = [
            (
                "it embeds the video",
                "<video controls preload=\"metadata\" src=\"/cases/42/video\">",
            ),
            ("it links the summary", "href=\"/cases/42/summary.json\""),
            ("it links the billing page", "href=\"/cases/42/billing\""),
            ("it links the other case", "href=\"/cases/43\""),
            (
                "it posts comments to the API",
                "action=\"/api/cases/42/comments\"",
            ),
            ("it uses the demo stylesheet", "href=\"/static/demo.css\""),
            ("it is readable on a phone", "name=\"viewport\""),
            ("it says it was opened directly", "Opened directly"),
        ];
        for (name, expected) in table {
            assert!(html.contains(expected), "{name}");
        }
    }

    #[test]
    fn gateway_headers_are_shown_escaped_and_others_are_not() {
        let sent = headers(&[
            ("x-casegate-share", "s-123"),
            ("x-casegate-scope", "view"),
            ("x-casegate-note", "<script>alert(1)</script>"),
            ("cookie", "casegate_guest=secret"),
        ]);
        let html = case_page(find("42").expect("case 42 exists"), &sent);
        let table = [
            (
                "the share is shown",
                "<dt>x-casegate-share</dt><dd>s-123</dd>",
                true,
            ),
            (
                "the scope is shown",
                "<dt>x-casegate-scope</dt><dd>view</dd>",
                true,
            ),
            (
                "markup is escaped",
                "&lt;script&gt;alert(1)&lt;/script&gt;",
                true,
            ),
            ("markup is never raw", "<script>", false),
            ("other headers are not echoed", "secret", false),
            (
                "it no longer claims a direct visit",
                "Opened directly",
                false,
            ),
        ];
        for (name, needle, present) in table {
            assert_eq!(html.contains(needle), present, "{name}");
        }
    }

    #[test]
    fn echoed_headers_are_bounded_in_number_and_length() {
        let mut sent = HeaderMap::new();
        let long = "v".repeat(MAX_ECHOED_CHARS * 3);
        for _ in 0..MAX_ECHOED_HEADERS * 2 {
            sent.append(
                HeaderName::from_static("x-casegate-flood"),
                HeaderValue::from_str(&long).expect("ASCII value"),
            );
        }
        let html = provenance(&sent);
        assert_eq!(html.matches("<dt>").count(), MAX_ECHOED_HEADERS);
        assert!(!html.contains(&"v".repeat(MAX_ECHOED_CHARS + 1)));
    }

    #[test]
    fn the_summary_is_json_describing_the_case() {
        let json: serde_json::Value =
            serde_json::from_str(&summary_json(find("43").expect("case 43 exists")))
                .expect("valid JSON");
        assert_eq!(json["case"], "43");
        assert_eq!(json["video"], "/cases/43/video");
        assert_eq!(json["chapters"].as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn escape_neutralises_every_markup_character() {
        let table = [
            ("plain text is unchanged", "view", "view"),
            ("angle brackets", "<b>", "&lt;b&gt;"),
            ("ampersand first", "&lt;", "&amp;lt;"),
            ("quotes", "\"'", "&quot;&#39;"),
        ];
        for (name, input, expected) in table {
            assert_eq!(escape(input), expected, "{name}");
        }
    }
}
