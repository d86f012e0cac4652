//! Snapshots: the whole view written as records into `snapshot-<gen>.cgs.tmp`, fsynced, then
//! renamed into place, so a snapshot file under its final name is always complete. Loading one
//! refuses any damage, a torn end included: a snapshot is never legitimately cut short.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::OpenError;
use super::frame::{self, Ending, FileKind, MAX_PAYLOAD};
use super::layout::Layout;
use super::layout::PRIVATE_FILE;
use super::record::Record;
use super::view::View;

/// Writes the view as snapshot `generation`, leaving out revocations that no longer matter at
/// `now`. Durable (file and directory fsynced) when it returns Ok.
pub(crate) fn write(
    layout: &Layout,
    generation: u64,
    view: &View,
    now: i64,
    retention: i64,
) -> io::Result<()> {
    let temp = layout.snapshot_in_progress(generation);
    let result = write_temp(&temp, generation, view, now, retention).and_then(|()| {
        std::fs::rename(&temp, layout.snapshot(generation))?;
        layout.sync_dir()
    });
    if result.is_err() {
        // Best effort: a leftover .tmp is ignored and removed at the next start anyway.
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn write_temp(
    path: &Path,
    generation: u64,
    view: &View,
    now: i64,
    retention: i64,
) -> io::Result<()> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(PRIVATE_FILE)
        .open(path)?;
    let mut out = SnapshotWriter {
        file: BufWriter::with_capacity(1 << 20, file),
        payload: Vec::with_capacity(256),
        frame: Vec::with_capacity(256),
        records: 0,
        failure: None,
    };
    out.file
        .write_all(&frame::header(FileKind::Snapshot, generation))?;
    view.for_each_share(|id, state| {
        out.put(&Record::Share {
            id: id.into(),
            state: state.clone(),
        });
    });
    view.for_each_revoked(|id, at| {
        if !view.revocation_outlived(id, at, now, retention) {
            out.put(&Record::RevokedShare { id: id.into(), at });
        }
    });
    view.for_each_case(|case, not_before| {
        if !View::case_outlived(not_before, now, retention) {
            out.put(&Record::RevokedCase {
                case: case.into(),
                not_before,
            });
        }
    });
    let records = out.records;
    out.put(&Record::End { records });
    if let Some(error) = out.failure {
        return Err(error);
    }
    let file = out
        .file
        .into_inner()
        .map_err(io::IntoInnerError::into_error)?;
    file.sync_all()
}

/// Frames records into a buffered file, keeping the first error (the view's iterators take
/// closures that cannot return one).
struct SnapshotWriter {
    file: BufWriter<File>,
    payload: Vec<u8>,
    frame: Vec<u8>,
    records: u64,
    failure: Option<io::Error>,
}

impl SnapshotWriter {
    fn put(&mut self, record: &Record) {
        if self.failure.is_some() {
            return;
        }
        self.payload.clear();
        record.encode(&mut self.payload);
        if self.payload.len() > MAX_PAYLOAD {
            self.failure = Some(io::Error::other(
                "a snapshot record exceeds the frame limit",
            ));
            return;
        }
        self.frame.clear();
        frame::append_frame(&mut self.frame, &self.payload);
        match self.file.write_all(&self.frame) {
            Ok(()) => self.records += 1,
            Err(error) => self.failure = Some(error),
        }
    }
}

/// Loads snapshot `generation` into `view`; any damage is corruption.
pub(crate) fn load(layout: &Layout, generation: u64, view: &View) -> Result<(), OpenError> {
    let path = layout.snapshot(generation);
    let corrupt = |offset: u64, reason: &'static str| OpenError::Corrupt {
        path: path.clone(),
        offset,
        reason,
    };
    let bytes = std::fs::read(&path).map_err(|source| OpenError::Io {
        path: path.clone(),
        source,
    })?;
    frame::check_header(&bytes, FileKind::Snapshot, generation)
        .map_err(|fault| corrupt(fault.offset, fault.reason))?;
    let mut records: u64 = 0;
    let mut ended = false;
    let ending = frame::read_frames(&bytes, |_, payload| {
        if ended {
            return Err("records follow the snapshot's end record");
        }
        match Record::decode(payload)? {
            Record::End { records: expected } if expected == records => ended = true,
            Record::End { .. } => {
                return Err("snapshot end record counts a different number of records");
            }
            record => {
                view.apply(record);
                records += 1;
            }
        }
        Ok(())
    })
    .map_err(|fault| corrupt(fault.offset, fault.reason))?;
    if let Ending::Torn(fault) = ending {
        return Err(corrupt(fault.offset, fault.reason));
    }
    if !ended {
        return Err(corrupt(
            bytes.len() as u64,
            "snapshot ends without its end record",
        ));
    }
    Ok(())
}
