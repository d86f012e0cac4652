//! The access log: one structured line per request (JSON or `key=value` text) with what an
//! operator needs to see who opened which share, and nothing that grants access: never a token,
//! cookie, code, `Authorization` or query string.
//!
//! Request handling never waits for the log: each worker copies its finished requests' records
//! onto a shelf of its own, which a writer thread empties every few milliseconds, formatting and
//! writing the lines; when a shelf is full the record is dropped and counted
//! ([`AccessLog::dropped`]).

mod body;
mod format;
mod line;
mod outbox;
mod record;
mod redact;
mod shelf;
mod unanswered;
mod wall_time;
mod writer;

use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use http::Method;
use tracing::warn;

pub use body::{LoggedBody, RequestBody};
pub use record::AccessRecord;
pub use unanswered::Unanswered;

use self::outbox::Outbox;
use self::shelf::{Put, Shelf};
use self::writer::Writer;
use crate::config::{AccessTarget, Log};

/// Writes to a pipe of at most this many bytes (`PIPE_BUF`) are atomic, so on a shared stderr or
/// stdout a write of whole lines cannot be cut by a line of the process log.
const PIPE_WRITE_BYTES: usize = 4096;
const FILE_WRITE_BYTES: usize = 64 * 1024;
/// How long stopping waits for the writer to write what is shelved; a sink that blocks (a full
/// pipe nobody reads) must not stop the process from exiting.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Why the access log could not be opened.
#[derive(Debug)]
pub struct OpenError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "log.access: cannot open {}: {}",
            self.path.display(),
            self.source
        )
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The process's access log, shared by every connection.
pub struct AccessLog {
    /// Where this handle's records wait for the writer; `None` when the log is off.
    shelf: Option<(Arc<Shelf>, Arc<Outbox>)>,
    dropped: Arc<AtomicU64>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl AccessLog {
    /// Opens the configured sink (a file is created if missing and appended to) and starts the
    /// writer thread.
    pub fn open(config: &Log) -> Result<AccessLog, OpenError> {
        let (sink, write_bytes): (Box<dyn Write + Send>, usize) = match &config.access {
            AccessTarget::Off => return Ok(AccessLog::off()),
            AccessTarget::Stderr => (Box::new(std::io::stderr()), PIPE_WRITE_BYTES),
            AccessTarget::Stdout => (Box::new(std::io::stdout()), PIPE_WRITE_BYTES),
            AccessTarget::File(path) => {
                // Who opened which case, from where: readable by casegate's user and its group
                // (a log shipper), not by everyone, whatever the umask it was started with.
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o640)
                    .open(path)
                    .map_err(|source| OpenError {
                        path: path.clone(),
                        source,
                    })?;
                (Box::new(file), FILE_WRITE_BYTES)
            }
        };
        let dropped = Arc::new(AtomicU64::new(0));
        let outbox = Arc::new(Outbox::new(config.buffer));
        let writer = Writer::new(sink, config.format, write_bytes, Arc::clone(&dropped));
        let writer_outbox = Arc::clone(&outbox);
        let thread = std::thread::Builder::new()
            .name("casegate-access-log".into())
            .spawn(move || writer.run(&writer_outbox))
            .map_err(|source| OpenError {
                path: PathBuf::from("(writer thread)"),
                source,
            })?;
        Ok(AccessLog {
            shelf: Some((outbox.shelf(), outbox)),
            dropped,
            writer: Mutex::new(Some(thread)),
        })
    }

    /// A handle for one worker thread, with a shelf of its own for the same writer: a shelf
    /// shared by every worker would move between the cores on each request. Closing is left to
    /// the log the handle came from.
    pub fn worker_handle(&self) -> AccessLog {
        AccessLog {
            shelf: self
                .shelf
                .as_ref()
                .map(|(_, outbox)| (outbox.shelf(), Arc::clone(outbox))),
            dropped: Arc::clone(&self.dropped),
            writer: Mutex::new(None),
        }
    }

    /// The live count behind [`AccessLog::dropped`], for the metrics to export.
    pub fn dropped_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.dropped)
    }

    /// A log that writes nothing (`access = "off"`).
    pub fn off() -> AccessLog {
        AccessLog {
            shelf: None,
            dropped: Arc::new(AtomicU64::new(0)),
            writer: Mutex::new(None),
        }
    }

    /// A record for a request just received; it collects nothing when the log is off.
    ///
    /// Boxed: the record goes from the request's future to the response, through the response's
    /// moves to its body's end. By value, each of those moves copied its 232 bytes. The box, one
    /// allocation, saved 750 of 34,800 instructions and 34 of 400 L1 data misses a guest request
    /// (`callgrind.sh --cache-sim`, stock build, when the box itself went to the writer).
    pub fn begin(&self, client: IpAddr, method: &Method) -> Box<AccessRecord> {
        Box::new(AccessRecord::begin(self.shelf.is_some(), client, method))
    }

    /// Logs a request whose head could not be read (hyper answered `status` itself): its
    /// method and path are unknown, and logged as `-` and empty.
    pub fn submit_unreadable(
        &self,
        client: IpAddr,
        status: http::StatusCode,
        reason: &'static str,
    ) {
        let unknown = Method::from_bytes(b"-").unwrap_or_default();
        let mut record = self.begin(client, &unknown);
        record.set_refused(crate::metrics::Decision::BadRequest.as_str(), reason);
        record.set_status(status);
        record.finish(0);
        self.submit(record);
    }

    /// Shelves a finished record without ever waiting: a full shelf drops it, counted.
    pub fn submit(&self, record: Box<AccessRecord>) {
        let Some((shelf, outbox)) = &self.shelf else {
            return;
        };
        match shelf.put(&record) {
            Put::Added => {}
            Put::First => outbox.ring(),
            Put::Dropped => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lines not written since the start: a shelf was full, the log was closed, or the sink
    /// refused them.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes what is shelved and stops the writer; lines submitted afterwards are dropped and
    /// counted. Waits at most [`CLOSE_WAIT`] for a sink that does not take the lines.
    pub async fn close(&self) {
        let thread = match self.writer.lock() {
            Ok(mut writer) => writer.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        let (Some(thread), Some((_, outbox))) = (thread, &self.shelf) else {
            return;
        };
        outbox.stop();
        let (done, stopped) = tokio::sync::oneshot::channel();
        // A plain thread rather than `spawn_blocking`: a runtime waits for its blocking tasks when
        // it is dropped, and a stuck sink must not hold the process.
        let stopping = std::thread::Builder::new()
            .name("casegate-access-log-close".into())
            .spawn(move || {
                let _ = thread.join();
                let _ = done.send(());
            });
        if stopping.is_err() {
            warn!("cannot start closing the access log; shelved lines may be lost");
            return;
        }
        if tokio::time::timeout(CLOSE_WAIT, stopped).await.is_err() {
            warn!(
                wait = ?CLOSE_WAIT,
                "the access log sink is not taking lines; stopping without writing the rest"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::path::Path;
    use std::time::Instant;

    use super::*;
    use crate::config::LogFormat;

    fn log_to(path: &Path) -> AccessLog {
        AccessLog::open(&Log {
            format: LogFormat::Json,
            level: "info".into(),
            access: AccessTarget::File(path.to_path_buf()),
            buffer: 16,
        })
        .expect("access log opens")
    }

    fn submit(log: &AccessLog, path: &str) {
        let mut record = log.begin(IpAddr::V4(Ipv4Addr::LOCALHOST), &Method::GET);
        record.set_path(path);
        record.finish(0);
        log.submit(record);
    }

    /// Waits up to 5 s for the file to hold `lines` lines, without closing the log.
    fn wait_for_lines(path: &Path, lines: usize) -> String {
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.lines().count() >= lines || started.elapsed() > Duration::from_secs(5) {
                return text;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The writer sleeps while every shelf is empty; the first record after a quiet spell must
    /// wake it, or the line would wait for the next busy moment or the shutdown.
    #[test]
    fn a_record_after_a_quiet_spell_is_written_without_waiting_for_the_next() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("access.log");
        let log = log_to(&path);
        let worker = log.worker_handle();
        for round in 0..3 {
            // Long enough for the writer to find every shelf empty and fall asleep.
            std::thread::sleep(Duration::from_millis(50));
            submit(&worker, &format!("/quiet/{round}"));
            let text = wait_for_lines(&path, round + 1);
            assert!(text.contains(&format!("\"/quiet/{round}\"")), "{text}");
        }
        assert_eq!(log.dropped(), 0);
    }

    #[tokio::test]
    async fn closing_writes_what_is_shelved_and_later_records_are_dropped_and_counted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("access.log");
        let log = log_to(&path);
        let worker = log.worker_handle();
        for index in 0..10 {
            submit(&worker, &format!("/before/{index}"));
        }
        log.close().await;
        let text = std::fs::read_to_string(&path).expect("log written");
        assert_eq!(text.lines().count(), 10, "{text}");
        submit(&worker, "/after");
        submit(&log, "/after");
        assert_eq!(log.dropped(), 2);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn a_full_shelf_drops_and_counts_instead_of_waiting() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("access.log");
        let log = log_to(&path);
        // Faster than any writer: the shelf (16 records) fills before the writer's next turn.
        for index in 0..1000 {
            submit(&log, &format!("/burst/{index}"));
        }
        let dropped = log.dropped();
        assert!(dropped > 0, "no record dropped");
        let text = wait_for_lines(&path, 1000 - usize::try_from(dropped).unwrap());
        assert_eq!(
            u64::try_from(text.lines().count()).unwrap() + dropped,
            1000,
            "every record is written or counted dropped"
        );
    }
}
