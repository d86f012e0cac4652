//! The writer thread: takes the records every worker shelved, formats and writes their lines, then
//! rests briefly so the next records arrive as a batch too; with nothing shelved it sleeps until a
//! worker rings. Only this thread ever formats a line or waits on the sink.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tracing::warn;

use super::format::write_line;
use super::outbox::Outbox;
use super::shelf::Records;
use super::wall_time::WallAnchor;
use crate::config::LogFormat;

/// How long the writer rests after writing a batch before it takes the shelves again. A writer
/// woken for each line costs the request's thread a futex wake and the writer a context switch;
/// under load that was a fifth of casegate's CPU time (benches/load/compare.sh, `perf record`).
/// Resting lets lines pile up into one batch instead, at the price of a line reaching the sink up
/// to this much later. A shelf (`[log] buffer`, default 8192 records) holds far more than arrives
/// in this time.
const BATCH_REST: Duration = Duration::from_millis(5);

pub(super) struct Writer {
    sink: Box<dyn Write + Send>,
    format: LogFormat,
    /// The most one write carries (but for a longer line, alone): on a pipe, at most `PIPE_BUF`
    /// so that the write is atomic and the process log cannot cut a line in half.
    write_bytes: usize,
    dropped: Arc<AtomicU64>,
    /// Whole lines gathered for the next write, and how many; while a line is formatted, it
    /// follows them.
    pending: Vec<u8>,
    pending_lines: u64,
    /// Writes are failing: said once in the process log, not again until one succeeds.
    failing: bool,
}

impl Writer {
    pub(super) fn new(
        sink: Box<dyn Write + Send>,
        format: LogFormat,
        write_bytes: usize,
        dropped: Arc<AtomicU64>,
    ) -> Writer {
        Writer {
            sink,
            format,
            write_bytes,
            dropped,
            pending: Vec::new(),
            pending_lines: 0,
            failing: false,
        }
    }

    pub(super) fn run(mut self, outbox: &Outbox) {
        outbox.register_writer();
        let mut spares = Vec::new();
        loop {
            let stopping = outbox.is_stopping();
            let mut taken = outbox.take_all(&mut spares, stopping);
            let wrote_some = !taken.is_empty();
            if wrote_some {
                // Every line of the batch takes its wall-clock time from this one reading.
                let clock = WallAnchor::now();
                self.write_in_order(&taken, clock);
            }
            for mut records in taken.drain(..) {
                records.clear();
                spares.push(records);
            }
            if wrote_some && let Err(error) = self.sink.flush() {
                self.report(&error);
            }
            if stopping {
                return;
            }
            if wrote_some {
                std::thread::sleep(BATCH_REST);
            } else {
                outbox.sleep_until_rung();
            }
        }
    }

    /// Writes the lines of every shelf's records interleaved in the order their requests ended,
    /// in writes of whole lines of at most `write_bytes`.
    fn write_in_order(&mut self, shelves: &[Records], clock: WallAnchor) {
        let mut next = vec![0; shelves.len()];
        loop {
            let earliest = (0..shelves.len())
                .filter_map(|shelf| {
                    let shelved = shelves[shelf].shelved.get(next[shelf])?;
                    Some((shelved.finished, shelf))
                })
                .min();
            let Some((_, shelf)) = earliest else { break };
            let records = &shelves[shelf];
            let shelved = &records.shelved[next[shelf]];
            next[shelf] += 1;
            let time = clock.wall_time_of(shelved.started);
            // Formatted where it is written from, rather than apart and then copied there (a
            // `memcpy` of the whole line, every line).
            let start = self.pending.len();
            write_line(
                &mut self.pending,
                shelved.packed(),
                &records.text,
                time,
                self.format,
            );
            if self.pending.len() > self.write_bytes {
                // The lines before this one go in a write of their own, this one starts the next.
                self.write_first(start);
            }
            self.pending_lines += 1;
        }
        self.write_first(self.pending.len());
    }

    /// Writes the whole lines in the first `end` bytes of `pending` and removes them.
    fn write_first(&mut self, end: usize) {
        if self.pending_lines == 0 {
            return;
        }
        match self.sink.write_all(&self.pending[..end]) {
            Ok(()) => self.failing = false,
            Err(error) => {
                self.dropped
                    .fetch_add(self.pending_lines, Ordering::Relaxed);
                self.report(&error);
            }
        }
        self.pending.drain(..end);
        self.pending_lines = 0;
    }

    /// Says once per run of failures, not per write, that lines are being lost.
    fn report(&mut self, error: &std::io::Error) {
        if !self.failing {
            self.failing = true;
            warn!(%error, "cannot write the access log; lines are being dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use http::Method;

    use super::super::AccessRecord;
    use super::super::shelf::Shelf;
    use super::*;

    /// A sink that keeps each write, refusing those after the first `accept`.
    struct Sink {
        accept: usize,
        writes: Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let mut writes = self.writes.lock().unwrap();
            if writes.len() == self.accept {
                return Err(std::io::Error::other("full"));
            }
            writes.push(String::from_utf8(bytes.to_vec()).unwrap());
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A writer of text lines, at most `write_bytes` a write, to a sink taking `accept` writes;
    /// its writes and its count of dropped lines.
    fn writer(
        write_bytes: usize,
        accept: usize,
    ) -> (Writer, Arc<std::sync::Mutex<Vec<String>>>, Arc<AtomicU64>) {
        let writes = Arc::default();
        let dropped = Arc::new(AtomicU64::new(0));
        let sink = Box::new(Sink {
            accept,
            writes: Arc::clone(&writes),
        });
        let writer = Writer::new(sink, LogFormat::Text, write_bytes, Arc::clone(&dropped));
        (writer, writes, dropped)
    }

    /// Requests for `paths`, ended in that order, each shelved on the shelf of the number given;
    /// what the shelves then hold.
    fn shelved(paths: &[(&str, usize)]) -> Vec<Records> {
        let shelves: Vec<Shelf> = (0..2).map(|_| Shelf::new(64)).collect();
        for (path, shelf) in paths {
            let mut record =
                AccessRecord::begin(true, IpAddr::V4(Ipv4Addr::LOCALHOST), &Method::GET);
            record.set_path(path);
            // Each ends strictly after the one before, whatever the clock's resolution.
            std::thread::sleep(Duration::from_millis(1));
            record.finish(0);
            shelves[*shelf].put(&record);
        }
        shelves
            .iter()
            .filter_map(|shelf| shelf.take(&mut Records::default()))
            .collect()
    }

    /// Each write's lines, by their paths.
    fn paths_written(writes: &[String]) -> Vec<Vec<&str>> {
        writes
            .iter()
            .map(|write| {
                write
                    .lines()
                    .map(|line| {
                        let path = line.split_once(" path=").expect("a path").1;
                        path.split_once(' ').expect("more fields").0
                    })
                    .collect()
            })
            .collect()
    }

    /// Writes the shelves' lines; whether writing failed.
    fn write(writer: &mut Writer, shelves: &[Records]) -> bool {
        writer.write_in_order(shelves, WallAnchor::now());
        writer.failing
    }

    #[test]
    fn the_shelves_lines_are_written_in_the_order_their_requests_ended() {
        let shelves = shelved(&[
            ("/a1", 0),
            ("/b2", 1),
            ("/b3", 1),
            ("/a4", 0),
            ("/a5", 0),
            ("/b6", 1),
        ]);
        let (mut writer, writes, dropped) = writer(4096, usize::MAX);
        assert!(!write(&mut writer, &shelves));
        assert_eq!(
            paths_written(&writes.lock().unwrap()),
            [["/a1", "/b2", "/b3", "/a4", "/a5", "/b6"]]
        );
        assert_eq!(dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_write_holds_whole_lines_up_to_its_limit_and_a_longer_line_alone() {
        // A short line is some 170 bytes: two fit in a write of 400, three do not.
        let long = format!("/{}", "x".repeat(400));
        let shelves = shelved(&[("/a", 0), ("/b", 0), ("/c", 0), (&long, 0), ("/d", 0)]);
        let (mut writer, writes, _) = writer(400, usize::MAX);
        write(&mut writer, &shelves);
        let writes = writes.lock().unwrap();
        for write in writes.iter() {
            assert!(write.ends_with('\n'), "{write:?}");
            assert!(
                write.len() <= 400 || write.lines().count() == 1,
                "{write:?}"
            );
        }
        let long = long.as_str();
        assert_eq!(
            paths_written(&writes),
            [vec!["/a", "/b"], vec!["/c"], vec![long], vec!["/d"]]
        );
    }

    #[test]
    fn the_lines_of_refused_writes_are_counted_dropped() {
        let shelves = shelved(&[("/a", 0), ("/b", 0), ("/c", 0), ("/d", 0)]);
        // Room for one line a write: the first is taken, the other three refused.
        let (mut writer, writes, dropped) = writer(150, 1);
        assert!(write(&mut writer, &shelves));
        assert_eq!(paths_written(&writes.lock().unwrap()), [["/a"]]);
        assert_eq!(dropped.load(Ordering::Relaxed), 3);
    }
}
