//! What one access-log line says: borrowed from a record as its request ends, or from the copy of
//! it a worker's shelf holds until the writer formats it ([`PackedLine`]).

use std::net::IpAddr;
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

    /// The line, its strings read from the `text` it was packed into.
    pub(super) fn line<'a>(&self, text: &'a str) -> Line<'a> {
        let piece = |index: usize| {
            let from = index
                .checked_sub(1)
                .map_or(self.start, |before| self.ends[before]);
            text.get(from..self.ends[index]).unwrap_or_default()
        };
        Line {
            facts: self.facts,
            method: piece(0),
            path: piece(1),
            share: self.has_share.then(|| [piece(2), piece(3), piece(4)]),
        }
    }
}
