//! One worker thread's finished records waiting for the writer: copied as each request ends onto
//! a shelf of the worker's own, whose contents the writer swaps for empty buffers after each rest
//! and formats. A line costs the worker an uncontended lock of its own shelf and a copy of a
//! couple of hundred bytes; the writer reads the copies in the order they were written, and
//! nothing allocated by a worker is freed by another thread.
//!
//! The records went through one channel shared by every worker before, each in its own box: each
//! line moved the channel's ends between the cores, and the writer read the record from the
//! other core's memory, scattered, and freed it there.

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use super::line::PackedLine;
use super::record::AccessRecord;

/// Aligned to two cache lines (the pair the CPU fetches together) so that no two workers' shelves
/// share one: each worker writes its own on every request.
#[repr(align(128))]
pub(super) struct Shelf {
    batch: Mutex<Batch>,
    /// Records held before new ones are dropped (`[log] buffer`).
    limit: usize,
}

struct Batch {
    records: Records,
    /// Set by the writer when it stops: a record shelved afterwards would never be written.
    closed: bool,
}

/// Shelved records, their strings one after the other in `text`.
#[derive(Default)]
pub(super) struct Records {
    pub shelved: Vec<Shelved>,
    pub text: String,
}

impl Records {
    pub(super) fn clear(&mut self) {
        self.shelved.clear();
        self.text.clear();
    }
}

/// A finished record as a shelf keeps it: its line, packed into the [`Records::text`] it was
/// shelved with.
#[derive(Clone, Copy, Debug)]
pub(super) struct Shelved {
    pub started: Instant,
    /// When its request ended: the writer interleaves the workers' lines in that order, as a
    /// single queue wrote them.
    pub finished: Instant,
    line: PackedLine,
}

impl Shelved {
    fn new(record: &AccessRecord, text: &mut String) -> Shelved {
        Shelved {
            started: record.started(),
            finished: record.finished(),
            line: PackedLine::pack(&record.line(), text),
        }
    }

    /// The line as packed into the `text` it was shelved with.
    pub(super) fn packed(&self) -> &PackedLine {
        &self.line
    }
}

/// What [`Shelf::put`] did with a record.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Put {
    /// Shelved after others, which the writer will take together.
    Added,
    /// Shelved on an empty shelf: the writer may be asleep, waiting for a first record.
    First,
    /// Not shelved (the shelf is full or the writer stopped); the caller counts it.
    Dropped,
}

impl Shelf {
    pub(super) fn new(limit: usize) -> Shelf {
        Shelf {
            batch: Mutex::new(Batch {
                records: Records::default(),
                closed: false,
            }),
            limit,
        }
    }

    /// Copies `record` onto the shelf, unless it is full or closed.
    pub(super) fn put(&self, record: &AccessRecord) -> Put {
        let mut batch = self.lock();
        let held = batch.records.shelved.len();
        if held >= self.limit || batch.closed {
            return Put::Dropped;
        }
        let records = &mut batch.records;
        let shelved = Shelved::new(record, &mut records.text);
        records.shelved.push(shelved);
        if held == 0 { Put::First } else { Put::Added }
    }

    /// Takes the shelved records, leaving `spare` (emptied) in their place so that the shelf
    /// keeps buffers of the size it needed. `None` when there were none.
    pub(super) fn take(&self, spare: &mut Records) -> Option<Records> {
        let mut batch = self.lock();
        if batch.records.shelved.is_empty() {
            return None;
        }
        spare.clear();
        Some(std::mem::replace(&mut batch.records, std::mem::take(spare)))
    }

    /// Whether records are waiting.
    pub(super) fn is_empty(&self) -> bool {
        self.lock().records.shelved.is_empty()
    }

    /// Takes what is left and refuses every later record.
    pub(super) fn close(&self, spare: &mut Records) -> Option<Records> {
        self.lock().closed = true;
        self.take(spare)
    }

    /// The batch, even if a thread panicked holding it: it is facts and text, whole after each
    /// step, and losing the log for that would be worse than one odd line.
    fn lock(&self) -> MutexGuard<'_, Batch> {
        self.batch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    use http::{Method, StatusCode};

    use super::*;
    use crate::access_log::line::Line;

    fn record(path: &str) -> AccessRecord {
        let mut record = AccessRecord::begin(true, IpAddr::V4(Ipv4Addr::LOCALHOST), &Method::GET);
        record.set_path(path);
        record
    }

    fn take(shelf: &Shelf) -> Option<Records> {
        shelf.take(&mut Records::default())
    }

    #[test]
    fn a_shelved_record_says_what_the_record_said() {
        let shelf = Shelf::new(8);
        let mut shared = record("/cases/42/notes");
        shared.set_share("sh_1", "42", "view");
        shared.set_refused("revoked", "revoked_link");
        shared.set_status(StatusCode::GONE);
        let sent = Instant::now();
        shared.set_upstream(sent, sent + Duration::from_micros(700));
        shared.finish(512);
        let plain = record("/s/");
        for record in [&plain, &shared, &plain] {
            shelf.put(record);
        }
        let taken = take(&shelf).expect("three records");
        let lines: Vec<Line<'_>> = taken
            .shelved
            .iter()
            .map(|shelved| shelved.packed().line(&taken.text))
            .collect();
        assert_eq!(lines, [plain.line(), shared.line(), plain.line()]);
        assert_eq!(taken.shelved[1].started, shared.started());
        assert_eq!(taken.shelved[1].finished, shared.finished());
    }

    #[test]
    fn the_first_record_of_a_batch_says_so_and_later_ones_do_not() {
        let shelf = Shelf::new(8);
        assert_eq!(shelf.put(&record("/a")), Put::First);
        assert_eq!(shelf.put(&record("/b")), Put::Added);
        assert_eq!(take(&shelf).map(|taken| taken.shelved.len()), Some(2));
        assert!(shelf.is_empty());
        assert_eq!(shelf.put(&record("/c")), Put::First);
    }

    #[test]
    fn a_full_shelf_drops_until_the_writer_takes_it() {
        let shelf = Shelf::new(2);
        shelf.put(&record("/a"));
        shelf.put(&record("/b"));
        assert_eq!(shelf.put(&record("/c")), Put::Dropped);
        assert_eq!(take(&shelf).map(|taken| taken.shelved.len()), Some(2));
        assert_eq!(shelf.put(&record("/d")), Put::First);
    }

    #[test]
    fn a_closed_shelf_gives_up_what_it_held_and_takes_nothing_more() {
        let shelf = Shelf::new(8);
        shelf.put(&record("/a"));
        let left = shelf.close(&mut Records::default());
        assert_eq!(left.map(|taken| taken.shelved.len()), Some(1));
        assert_eq!(shelf.put(&record("/b")), Put::Dropped);
        assert!(take(&shelf).is_none());
    }

    #[test]
    fn the_spare_buffers_take_the_place_of_the_records_taken() {
        let shelf = Shelf::new(8);
        shelf.put(&record("/a"));
        let mut spare = Records {
            shelved: Vec::with_capacity(64),
            text: String::with_capacity(4096),
        };
        let spare_text = spare.text.as_ptr();
        shelf.take(&mut spare).expect("one record");
        shelf.put(&record("/b"));
        assert_eq!(take(&shelf).expect("one record").text.as_ptr(), spare_text);
    }
}
