//! The embedded backend: a directory with a lock, snapshots and journals (see [`super::layout`]),
//! written by one thread ([`super::writer`]). Open replays it into the view.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::backend::{Ack, Backend, Durability};
use super::frame::{self, FileKind};
use super::layout::{Layout, PRIVATE_DIR, PRIVATE_FILE};
use super::record::Record;
use super::replay::{Replayed, replay};
use super::view::View;
use super::writer::{Command, Writer};
use super::{OpenError, StateSettings};

pub(crate) struct JournalBackend {
    /// Set by the writer once a write failed; it then refuses every write until a restart.
    failed: Arc<AtomicBool>,
    commands: Option<Sender<Command>>,
    writer: Option<JoinHandle<()>>,
    /// Held (and locked) for the backend's life; the OS releases the lock if the process dies.
    _lock: File,
}

impl JournalBackend {
    /// Locks the directory, replays it into `view` and starts the writer.
    pub(crate) fn open(
        settings: &StateSettings,
        view: Arc<View>,
    ) -> Result<JournalBackend, OpenError> {
        let (layout, lock) = lock_directory(settings)?;
        let replayed = replay(&layout, &view)?;
        Self::start(settings, layout, view, replayed, lock)
    }

    /// As [`Self::open`], but the writer appends to `journal` instead of the replayed journal.
    /// Tests hand it a real file whose writes fail (`/dev/full`) to see what a full or failing
    /// disk does to the real writer and view.
    #[cfg(test)]
    pub(crate) fn open_appending_to(
        settings: &StateSettings,
        view: Arc<View>,
        journal: File,
    ) -> Result<JournalBackend, OpenError> {
        let (layout, lock) = lock_directory(settings)?;
        let replayed = replay(&layout, &view)?;
        let replayed = Replayed {
            journal,
            ..replayed
        };
        Self::start(settings, layout, view, replayed, lock)
    }

    fn start(
        settings: &StateSettings,
        layout: Layout,
        view: Arc<View>,
        replayed: Replayed,
        lock: File,
    ) -> Result<JournalBackend, OpenError> {
        let failed = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            layout,
            view,
            journal: replayed.journal,
            generation: replayed.generation,
            journal_len: replayed.journal_len,
            compact_after_bytes: settings.compact_after_bytes,
            retention_secs: settings.retention_secs,
            failed: Arc::clone(&failed),
        };
        let (commands, receiver) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("casegate-state-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(|source| OpenError::Io {
                path: settings.path.clone(),
                source,
            })?;
        Ok(JournalBackend {
            failed,
            commands: Some(commands),
            writer: Some(writer),
            _lock: lock,
        })
    }

    fn send(&self, command: Command) {
        // A send fails only once the writer is gone; the dropped reply then reads as Closed.
        if let Some(commands) = &self.commands {
            let _ = commands.send(command);
        }
    }
}

impl Backend for JournalBackend {
    fn commit(&self, records: Vec<Record>, durability: Durability) -> Ack<()> {
        let (done, ack) = oneshot::channel();
        self.send(Command::Commit {
            records,
            durability,
            done,
        });
        ack
    }

    fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    fn compact(&self, now: i64, force: bool) -> Ack<bool> {
        let (done, ack) = oneshot::channel();
        self.send(Command::Compact { now, force, done });
        ack
    }
}

impl Drop for JournalBackend {
    /// Lets the writer finish what is queued before the lock is released, so a reopen right
    /// after sees every acknowledged write and no second writer.
    fn drop(&mut self) {
        self.commands = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// Creates the directory if needed and takes its lock: one store per directory, in this process
/// or another.
fn lock_directory(settings: &StateSettings) -> Result<(Layout, File), OpenError> {
    let io_error = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| OpenError::Io { path, source }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR)
        .create(&settings.path)
        .map_err(io_error(&settings.path))?;
    let layout = Layout::new(&settings.path);
    let lock_path = layout.lock();
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(PRIVATE_FILE)
        .open(&lock_path)
        .map_err(io_error(&lock_path))?;
    match lock.try_lock() {
        Ok(()) => Ok((layout, lock)),
        Err(std::fs::TryLockError::WouldBlock) => Err(OpenError::Locked { path: lock_path }),
        Err(std::fs::TryLockError::Error(source)) => Err(OpenError::Io {
            path: lock_path,
            source,
        }),
    }
}

/// Creates (or restarts) journal `generation` with its header, durably.
pub(crate) fn create_journal_file(layout: &Layout, generation: u64) -> io::Result<File> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(PRIVATE_FILE)
        .open(layout.journal(generation))?;
    file.write_all(&frame::header(FileKind::Journal, generation))?;
    file.sync_all()?;
    layout.sync_dir()?;
    Ok(file)
}
