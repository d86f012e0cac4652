//! The access log: one structured line per request (JSON or `key=value` text) with what an
//! operator needs to see who opened which share, and nothing that grants access: never a token,
//! cookie, code, `Authorization` or query string.
//!
//! Request handling never waits for the log: finished records go through a bounded channel to a
//! writer thread; when the channel is full the line is dropped and counted ([`AccessLog::dropped`]).

mod body;
mod format;
mod record;
mod redact;
mod unanswered;
mod wall_time;
mod writer;

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use http::Method;
use tracing::warn;

pub use body::{LoggedBody, RequestBody};
pub use record::AccessRecord;
pub use unanswered::Unanswered;

use self::writer::{Message, Writer};
use crate::config::{AccessTarget, Log};

/// Writes to a pipe of at most this many bytes are atomic, so on a shared stderr or stdout a
/// batch of lines cannot be cut by a line of the process log.
const PIPE_BATCH_BYTES: usize = 4096;
const FILE_BATCH_BYTES: usize = 64 * 1024;
/// How long stopping waits for the writer to write what is queued; a sink that blocks (a full
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
    /// `None` when the log is off.
    sender: Option<SyncSender<Message>>,
    dropped: Arc<AtomicU64>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl AccessLog {
    /// Opens the configured sink (a file is created if missing and appended to) and starts the
    /// writer thread.
    pub fn open(config: &Log) -> Result<AccessLog, OpenError> {
        let sink: BufWriter<Box<dyn Write + Send>> = match &config.access {
            AccessTarget::Off => return Ok(AccessLog::off()),
            AccessTarget::Stderr => {
                BufWriter::with_capacity(PIPE_BATCH_BYTES, Box::new(std::io::stderr()))
            }
            AccessTarget::Stdout => {
                BufWriter::with_capacity(PIPE_BATCH_BYTES, Box::new(std::io::stdout()))
            }
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
                BufWriter::with_capacity(FILE_BATCH_BYTES, Box::new(file))
            }
        };
        let dropped = Arc::new(AtomicU64::new(0));
        let (sender, receiver) = sync_channel(config.buffer);
        let writer = Writer {
            sink,
            format: config.format,
            dropped: Arc::clone(&dropped),
        };
        let thread = std::thread::Builder::new()
            .name("casegate-access-log".into())
            .spawn(move || writer.run(receiver))
            .map_err(|source| OpenError {
                path: PathBuf::from("(writer thread)"),
                source,
            })?;
        Ok(AccessLog {
            sender: Some(sender),
            dropped,
            writer: Mutex::new(Some(thread)),
        })
    }

    /// A handle for one worker thread that submits to the same writer. Requests clone the
    /// `Arc` of the log they submit to, and a count shared by every worker would move between
    /// the cores on each request. Closing is left to the log the handle came from.
    pub fn worker_handle(&self) -> AccessLog {
        AccessLog {
            sender: self.sender.clone(),
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
            sender: None,
            dropped: Arc::new(AtomicU64::new(0)),
            writer: Mutex::new(None),
        }
    }

    /// A record for a request just received; it collects nothing when the log is off.
    ///
    /// Boxed: the record goes from the request's future to the response, through the response's
    /// moves to its body's end, then through the writer's channel to its thread. By value, each
    /// of those moves copied its 232 bytes, often into memory not touched for a while (the
    /// channel's slots go round `[log] buffer` lines). The box, one allocation, saved 750 of
    /// 34,800 instructions and 34 of 400 L1 data misses a guest request (`callgrind.sh
    /// --cache-sim`, stock build).
    pub fn begin(&self, client: IpAddr, method: &Method) -> Box<AccessRecord> {
        Box::new(AccessRecord::begin(self.sender.is_some(), client, method))
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

    /// Queues a finished record without ever waiting: a full queue drops it, counted.
    pub fn submit(&self, record: Box<AccessRecord>) {
        let Some(sender) = &self.sender else {
            return;
        };
        match sender.try_send(Message::Line(record)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lines not written since the start: the queue was full, the log was closed, or the sink
    /// refused them.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes what is queued and stops the writer; lines submitted afterwards are dropped and
    /// counted. Waits at most [`CLOSE_WAIT`] for a sink that does not take the lines.
    pub async fn close(&self) {
        let thread = match self.writer.lock() {
            Ok(mut writer) => writer.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        let (Some(thread), Some(sender)) = (thread, self.sender.clone()) else {
            return;
        };
        let (done, stopped) = tokio::sync::oneshot::channel();
        // A plain thread rather than `spawn_blocking`: a runtime waits for its blocking tasks when
        // it is dropped, and a stuck sink must not hold the process.
        let stopping = std::thread::Builder::new()
            .name("casegate-access-log-close".into())
            .spawn(move || {
                // Waits for room behind the lines already queued, which are written first.
                let _ = sender.send(Message::Stop);
                let _ = thread.join();
                let _ = done.send(());
            });
        if stopping.is_err() {
            warn!("cannot start closing the access log; queued lines may be lost");
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
