//! The writer thread: takes finished records off the bounded channel, formats them and writes them
//! in batches, flushing whenever the channel runs dry, then resting briefly so the next lines
//! arrive as a batch too. Only this thread ever waits on the sink.

use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use tracing::warn;

use super::format::write_line;
use super::record::AccessRecord;
use super::wall_time::WallAnchor;
use crate::config::LogFormat;

pub(super) enum Message {
    /// Boxed since the request was received (`AccessLog::begin`).
    Line(Box<AccessRecord>),
    /// Flush and end: the gateway is stopping.
    Stop,
}

/// How long the writer rests after writing a batch before it looks at the channel again. A line
/// submitted while the writer waits on an empty channel costs the request's thread a futex wake
/// and the writer a context switch; under load that was a fifth of casegate's CPU time
/// (benches/load/compare.sh, `perf record`). Resting lets lines pile up into one batch instead,
/// at the price of a line reaching the sink up to this much later. The queue (`[log] buffer`,
/// default 8192 lines) holds far more than arrives in this time.
const BATCH_REST: Duration = Duration::from_millis(5);

pub(super) struct Writer {
    pub sink: BufWriter<Box<dyn Write + Send>>,
    pub format: LogFormat,
    pub dropped: Arc<AtomicU64>,
}

impl Writer {
    pub(super) fn run(mut self, receiver: Receiver<Message>) {
        let mut line = Vec::with_capacity(512);
        let mut failing = false;
        let mut buffered = 0u64;
        while let Ok(message) = receiver.recv() {
            // Every line of the batch takes its wall-clock time from this one reading.
            let clock = WallAnchor::now();
            let mut next = Some(message);
            // Everything already queued goes out in one batch before the flush.
            while let Some(message) = next.take() {
                match message {
                    Message::Line(record) => {
                        line.clear();
                        let time = clock.wall_time_of(record.started());
                        write_line(&mut line, &record, time, self.format);
                        match self.sink.write_all(&line) {
                            Ok(()) => buffered += 1,
                            Err(error) => self.lost(1, &error, &mut failing),
                        }
                    }
                    Message::Stop => {
                        self.flush(&mut buffered, &mut failing);
                        return;
                    }
                }
                next = receiver.try_recv().ok();
            }
            self.flush(&mut buffered, &mut failing);
            std::thread::sleep(BATCH_REST);
        }
        self.flush(&mut buffered, &mut failing);
    }

    fn flush(&mut self, buffered: &mut u64, failing: &mut bool) {
        match self.sink.flush() {
            Ok(()) => *failing = false,
            // The lines still buffered may or may not have reached the sink; count them lost.
            Err(error) => self.lost(*buffered, &error, failing),
        }
        *buffered = 0;
    }

    /// Counts lines that could not be written and says so once per run of failures, not per line.
    fn lost(&self, lines: u64, error: &std::io::Error, failing: &mut bool) {
        self.dropped.fetch_add(lines, Ordering::Relaxed);
        if !*failing {
            *failing = true;
            warn!(%error, "cannot write the access log; lines are being dropped");
        }
    }
}
