//! Rebuilding the view on start: the newest snapshot, then every journal of that generation or
//! later, in order. Only the newest journal may end in a torn record (a crash mid-write); it is
//! cut off with a warning. Everything else that does not read back cleanly refuses the start.

use std::fs::{File, OpenOptions};

use tracing::{info, warn};

use super::OpenError;
use super::frame::{self, Ending, FileKind, HEADER_LEN};
use super::journal::create_journal_file;
use super::layout::Layout;
use super::record::Record;
use super::snapshot;
use super::view::View;

/// The journal writes go to after replay.
pub(crate) struct Replayed {
    pub(crate) generation: u64,
    pub(crate) journal: File,
    pub(crate) journal_len: u64,
}

fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn replay(layout: &Layout, view: &View) -> Result<Replayed, OpenError> {
    let found = layout.scan().map_err(io_error(layout.dir()))?;
    for leftover in &found.leftovers {
        info!(file = %leftover.display(), "state: removing a snapshot a crash left unfinished");
        std::fs::remove_file(leftover).map_err(io_error(leftover))?;
    }
    let base = found.snapshots.last().copied();
    if let Some(generation) = base {
        snapshot::load(layout, generation, view)?;
    }
    let base = base.unwrap_or(0);
    let journals: Vec<u64> = found.journals.range(base..).copied().collect();
    let mut current = None;
    for (index, &generation) in journals.iter().enumerate() {
        let newest = index + 1 == journals.len();
        current = Some((
            generation,
            replay_journal(layout, generation, newest, view)?,
        ));
    }
    let (generation, journal, journal_len) = match current {
        Some((generation, JournalEnd::Len(len))) => {
            let path = layout.journal(generation);
            let file = OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(io_error(&path))?;
            (generation, file, len)
        }
        Some((_, JournalEnd::NoHeader)) | None => {
            let generation = current.map_or(base, |(generation, _)| generation);
            let path = layout.journal(generation);
            let file = create_journal_file(layout, generation).map_err(io_error(&path))?;
            (generation, file, HEADER_LEN as u64)
        }
    };
    remove_stale(layout, base, &found)?;
    Ok(Replayed {
        generation,
        journal,
        journal_len,
    })
}

/// Files older than the snapshot in use: a crash interrupted the cleanup after a compaction.
fn remove_stale(layout: &Layout, base: u64, found: &super::layout::Found) -> Result<(), OpenError> {
    let stale_snapshots = found.snapshots.range(..base).map(|g| layout.snapshot(*g));
    let stale_journals = found.journals.range(..base).map(|g| layout.journal(*g));
    let mut removed = false;
    for path in stale_snapshots.chain(stale_journals) {
        info!(file = %path.display(), "state: removing a file an earlier compaction superseded");
        std::fs::remove_file(&path).map_err(io_error(&path))?;
        removed = true;
    }
    if removed {
        layout.sync_dir().map_err(io_error(layout.dir()))?;
    }
    Ok(())
}

enum JournalEnd {
    /// Replayed; this many sound bytes.
    Len(u64),
    /// The newest journal was cut short before its header was complete: a crash while creating
    /// it. It holds no record; it is created afresh.
    NoHeader,
}

fn replay_journal(
    layout: &Layout,
    generation: u64,
    newest: bool,
    view: &View,
) -> Result<JournalEnd, OpenError> {
    let path = layout.journal(generation);
    let corrupt = |offset: u64, reason: &'static str| OpenError::Corrupt {
        path: path.clone(),
        offset,
        reason,
    };
    let bytes = std::fs::read(&path).map_err(io_error(&path))?;
    if bytes.len() < HEADER_LEN && newest {
        warn!(file = %path.display(), len = bytes.len(), "state: journal header torn by a crash; starting it afresh");
        return Ok(JournalEnd::NoHeader);
    }
    frame::check_header(&bytes, FileKind::Journal, generation)
        .map_err(|fault| corrupt(fault.offset, fault.reason))?;
    let ending = frame::read_frames(&bytes, |_, payload| match Record::decode(payload)? {
        Record::End { .. } => Err("a snapshot end record inside a journal"),
        record => {
            view.apply(record);
            Ok(())
        }
    })
    .map_err(|fault| corrupt(fault.offset, fault.reason))?;
    match ending {
        Ending::Clean => Ok(JournalEnd::Len(bytes.len() as u64)),
        Ending::Torn(fault) if newest => {
            warn!(
                file = %path.display(),
                offset = fault.offset,
                reason = fault.reason,
                dropped_bytes = bytes.len() as u64 - fault.offset,
                "state: dropping a torn last record (a write a crash interrupted, never acknowledged)"
            );
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_error(&path))?;
            file.set_len(fault.offset).map_err(io_error(&path))?;
            file.sync_all().map_err(io_error(&path))?;
            Ok(JournalEnd::Len(fault.offset))
        }
        // An older journal was complete when the next generation began; damage there is not a
        // crash's doing.
        Ending::Torn(fault) => Err(corrupt(fault.offset, fault.reason)),
    }
}
