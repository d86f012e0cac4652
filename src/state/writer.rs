//! The journal's writer thread: the only code that appends to the journal and the only code that
//! mutates the view after start. It group-commits (everything queued goes out in one write and
//! one fdatasync), applies what it committed to the view, then acknowledges. Compaction runs on
//! the same thread, so a snapshot always matches the journal position it replaces.

use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;

use tokio::sync::oneshot;
use tracing::{error, info, warn};

use super::StoreError;
use super::backend::Durability;
use super::frame::{self, HEADER_LEN, MAX_PAYLOAD};
use super::journal::create_journal_file;
use super::layout::Layout;
use super::record::Record;
use super::snapshot;
use super::view::View;

pub(crate) enum Command {
    Commit {
        records: Vec<Record>,
        durability: Durability,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    Compact {
        now: i64,
        force: bool,
        done: oneshot::Sender<Result<bool, StoreError>>,
    },
}

pub(crate) struct Writer {
    pub(crate) layout: Layout,
    pub(crate) view: Arc<View>,
    pub(crate) journal: File,
    pub(crate) generation: u64,
    pub(crate) journal_len: u64,
    pub(crate) compact_after_bytes: u64,
    pub(crate) retention_secs: i64,
    /// Set after a failed write or sync: the journal's tail is unknown, so nothing more is
    /// acknowledged until a restart replays (and, if need be, truncates) it. Shared with the
    /// backend, so readiness can report it.
    pub(crate) failed: Arc<AtomicBool>,
}

struct Queued {
    records: Vec<Record>,
    durability: Durability,
    done: oneshot::Sender<Result<(), StoreError>>,
}

impl Writer {
    /// Serves commands until every sender is gone.
    pub(crate) fn run(mut self, commands: Receiver<Command>) {
        while let Ok(command) = commands.recv() {
            let mut batch = Vec::new();
            let mut compaction = None;
            match command {
                Command::Commit {
                    records,
                    durability,
                    done,
                } => batch.push(Queued {
                    records,
                    durability,
                    done,
                }),
                Command::Compact { now, force, done } => compaction = Some((now, force, done)),
            }
            while compaction.is_none() {
                match commands.try_recv() {
                    Ok(Command::Commit {
                        records,
                        durability,
                        done,
                    }) => batch.push(Queued {
                        records,
                        durability,
                        done,
                    }),
                    Ok(Command::Compact { now, force, done }) => {
                        compaction = Some((now, force, done));
                    }
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.commit(batch);
            }
            if let Some((now, force, done)) = compaction {
                let _ = done.send(self.compact(now, force));
            }
        }
    }

    fn commit(&mut self, batch: Vec<Queued>) {
        if self.failed.load(Ordering::Relaxed) {
            for queued in batch {
                let _ = queued.done.send(Err(StoreError::Failed));
            }
            return;
        }
        let mut bytes = Vec::new();
        let mut payload = Vec::new();
        let mut accepted = Vec::with_capacity(batch.len());
        let mut sync = false;
        for queued in batch {
            let start = bytes.len();
            match frame_all(&queued.records, &mut bytes, &mut payload) {
                Ok(()) => {
                    sync |= queued.durability == Durability::Synced;
                    accepted.push(queued);
                }
                Err(refused) => {
                    bytes.truncate(start);
                    let _ = queued.done.send(Err(refused));
                }
            }
        }
        if accepted.is_empty() {
            return;
        }
        if let Err(source) = self.append(&bytes, sync) {
            self.failed.store(true, Ordering::Relaxed);
            error!(
                file = %self.layout.journal(self.generation).display(),
                error = %source,
                "state: journal write failed; refusing every further write until restart"
            );
            for queued in accepted {
                let copy = io::Error::new(source.kind(), source.to_string());
                let _ = queued.done.send(Err(StoreError::Io(copy)));
            }
            return;
        }
        for queued in accepted {
            for record in queued.records {
                self.view.apply(record);
            }
            let _ = queued.done.send(Ok(()));
        }
    }

    fn append(&mut self, bytes: &[u8], sync: bool) -> io::Result<()> {
        self.journal.write_all(bytes)?;
        self.journal_len += bytes.len() as u64;
        if sync {
            self.journal.sync_data()?;
        }
        Ok(())
    }

    /// Snapshot `generation + 1` from the view, then switch to a fresh journal of that
    /// generation, then delete the older files. A crash between any two steps replays to the
    /// same view: before the rename the old snapshot + journal rule, after it the new snapshot
    /// (with no or an empty journal after it) does.
    fn compact(&mut self, now: i64, force: bool) -> Result<bool, StoreError> {
        if self.failed.load(Ordering::Relaxed) {
            return Err(StoreError::Failed);
        }
        if !force && self.journal_len < self.compact_after_bytes {
            return Ok(false);
        }
        let previous = self.generation;
        let next = previous + 1;
        if let Err(source) =
            snapshot::write(&self.layout, next, &self.view, now, self.retention_secs)
        {
            warn!(
                file = %self.layout.snapshot(next).display(),
                error = %source,
                "state: compaction failed; still appending to the current journal"
            );
            return Err(StoreError::Io(source));
        }
        // From here the new snapshot is the base: appending to the old journal would be ignored
        // by the next replay, so without the new journal no write may be acknowledged.
        match create_journal_file(&self.layout, next) {
            Ok(journal) => {
                self.journal = journal;
                self.generation = next;
                self.journal_len = HEADER_LEN as u64;
            }
            Err(source) => {
                self.failed.store(true, Ordering::Relaxed);
                error!(
                    file = %self.layout.journal(next).display(),
                    error = %source,
                    "state: cannot start the journal after a snapshot; refusing every further write until restart"
                );
                return Err(StoreError::Io(source));
            }
        }
        self.view.forget_outlived(now, self.retention_secs);
        for stale in [
            self.layout.journal(previous),
            self.layout.snapshot(previous),
        ] {
            match std::fs::remove_file(&stale) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                // Harmless: the next start removes files older than its snapshot.
                Err(error) => {
                    warn!(file = %stale.display(), %error, "state: cannot remove a superseded file")
                }
            }
        }
        if let Err(error) = self.layout.sync_dir() {
            warn!(dir = %self.layout.dir().display(), %error, "state: cannot sync the directory after compaction");
        }
        info!(
            generation = next,
            shares = self.view.share_count(),
            revoked = self.view.revoked_count(),
            "state: compacted into a snapshot"
        );
        Ok(true)
    }
}

/// Frames a command's records, or refuses the whole command if one is too large.
fn frame_all(
    records: &[Record],
    out: &mut Vec<u8>,
    payload: &mut Vec<u8>,
) -> Result<(), StoreError> {
    for record in records {
        payload.clear();
        record.encode(payload);
        if payload.len() > MAX_PAYLOAD {
            return Err(StoreError::TooLarge {
                bytes: payload.len(),
            });
        }
        frame::append_frame(out, payload);
    }
    Ok(())
}
