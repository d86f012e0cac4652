//! What one access-log line says: borrowed from a record as its request ends, or from the copy of
//! it a worker's shelf holds until the writer formats it ([`PackedLine`]).

use std::net::IpAddr;
use std::ops::Range;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Line<'a> {
    pub facts: Facts,
    pub method: &'a str,
    pub path: &'a str,
    /// Share id, case and scope, when a credential named them.
    pub share: Option<[&'a str; 3]>,
}

/// Everything a line says but its strings: what a shelf keeps of a record as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Facts {
    pub client: IpAddr,
    pub status: u16,
    pub decision: &'static str,
    pub reason: Option<&'static str>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub total: Duration,
    pub upstream: Option<Duration>,
}

/// A line copied into a text buffer: its facts, and where its strings are in the text (the
/// method, the path and the share's id, case and scope, one after the other). A worker's shelf
/// keeps its records so, and the writer the line whose request fields it last wrote.
#[derive(Clone, Copy, Debug)]
pub(super) struct PackedLine {
    facts: Facts,
    /// Where the method starts in the text; `ends` are where the method, the path and the share's
    /// id, case and scope end (the last three empty without a share).
    start: usize,
    ends: [usize; 5],
    has_share: bool,
}

impl PackedLine {
    /// Appends `line`'s strings to `text`.
    pub(super) fn pack(line: &Line<'_>, text: &mut String) -> PackedLine {
        let start = text.len();
        let share = line.share;
        let pieces = [
            Some(line.method),
            Some(line.path),
            share.map(|[id, _, _]| id),
            share.map(|[_, case, _]| case),
            share.map(|[_, _, scope]| scope),
        ];
        let mut ends = [start; 5];
        for (end, piece) in ends.iter_mut().zip(pieces) {
            text.push_str(piece.unwrap_or_default());
            *end = text.len();
        }
        PackedLine {
            facts: line.facts,
            start,
            ends,
            has_share: share.is_some(),
        }
    }

    /// Everything the line says but its strings.
    pub(super) fn facts(&self) -> &Facts {
        &self.facts
    }

    /// Whether this line (its strings in `text`) and `other` (in `other_text`) have the same
    /// method, path, status, decision, reason and share: [`PackedLine::line`] of each, compared,
    /// without slicing either text into five strings. The strings sit one after the other, so
    /// with the same lengths the same bytes mean the same strings.
    pub(super) fn same_request_fields(
        &self,
        text: &str,
        other: &PackedLine,
        other_text: &str,
    ) -> bool {
        let described = |line: &PackedLine| {
            let facts = &line.facts;
            (
                facts.status,
                facts.decision,
                facts.reason,
                line.has_share,
                line.lengths(),
            )
        };
        described(self) == described(other) && self.strings(text) == other.strings(other_text)
    }

    /// Where the method, the path and the share's id, case and scope are in the text.
    fn ranges(&self) -> [Range<usize>; 5] {
        let mut start = self.start;
        self.ends.map(|end| {
            let range = start..end;
            start = end;
            range
        })
    }

    /// The lengths of the strings [`PackedLine::ranges`] finds.
    fn lengths(&self) -> [usize; 5] {
        self.ranges().map(|range| range.len())
    }

    /// The bytes of all five strings.
    fn strings<'a>(&self, text: &'a str) -> &'a [u8] {
        text.as_bytes()
            .get(self.start..self.ends[4])
            .unwrap_or_default()
    }

    /// The line, its strings read from the `text` it was packed into.
    pub(super) fn line<'a>(&self, text: &'a str) -> Line<'a> {
        let [method, path, id, case, scope] = self
            .ranges()
            .map(|range| text.get(range).unwrap_or_default());
        Line {
            facts: self.facts,
            method,
            path,
            share: self.has_share.then_some([id, case, scope]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(path: &'a str, share: Option<[&'a str; 3]>) -> Line<'a> {
        Line {
            facts: Facts {
                client: "192.0.2.7".parse().unwrap(),
                status: 200,
                decision: "allowed",
                reason: None,
                bytes_in: 0,
                bytes_out: 42,
                total: Duration::from_micros(1500),
                upstream: None,
            },
            method: "GET",
            path,
            share,
        }
    }

    #[test]
    fn lines_are_the_same_request_by_their_strings_not_by_where_they_were_packed() {
        let video = line("/cases/A-1/video", Some(["sh_1", "A-1", "view"]));
        let mut text = String::from("earlier lines' strings");
        let first = PackedLine::pack(&video, &mut text);
        let again = PackedLine::pack(&video, &mut text);
        let mut other_text = String::new();
        let elsewhere = PackedLine::pack(&video, &mut other_text);
        assert!(first.same_request_fields(&text, &again, &text));
        assert!(first.same_request_fields(&text, &elsewhere, &other_text));

        // The same bytes, split differently between the path and the share's id.
        let split_later = line("/cases/A-1/vide", Some(["osh_1", "A-1", "view"]));
        // No share and a share of empty strings: the same (no) bytes, not the same line.
        let no_share = line("/cases/A-1/video", None);
        let empty_share = line("/cases/A-1/video", Some(["", "", ""]));
        let mut refused = video;
        refused.facts.status = 403;
        for different in [split_later, no_share, empty_share, refused] {
            let mut different_text = String::new();
            let packed = PackedLine::pack(&different, &mut different_text);
            assert_ne!(different, video);
            assert!(!first.same_request_fields(&text, &packed, &different_text));
        }
        // What the line says outside its request fields is not compared.
        let mut later = video;
        later.facts.bytes_out = 7;
        later.facts.total = Duration::from_millis(3);
        let mut later_text = String::new();
        let packed = PackedLine::pack(&later, &mut later_text);
        assert!(first.same_request_fields(&text, &packed, &later_text));
    }
}
