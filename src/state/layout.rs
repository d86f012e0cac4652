//! Which files live in the state directory and what their names mean: `LOCK`,
//! `snapshot-<gen>.cgs` (a complete state), `journal-<gen>.cgj` (records after that snapshot),
//! and `*.tmp` (a snapshot still being written, or abandoned by a crash).

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// The state directory's mode when casegate creates it, and its files': only casegate's user
/// reads share records (recipients' addresses, notes), whatever the umask it was started with.
pub const PRIVATE_DIR: u32 = 0o700;
pub(crate) const PRIVATE_FILE: u32 = 0o600;

pub(crate) struct Layout {
    dir: PathBuf,
}

/// The generations found in the directory.
#[derive(Debug, Default)]
pub(crate) struct Found {
    pub(crate) snapshots: BTreeSet<u64>,
    pub(crate) journals: BTreeSet<u64>,
    pub(crate) leftovers: Vec<PathBuf>,
}

fn generation(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl Layout {
    pub(crate) fn new(dir: &Path) -> Layout {
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn lock(&self) -> PathBuf {
        self.dir.join("LOCK")
    }

    pub(crate) fn journal(&self, generation: u64) -> PathBuf {
        self.dir.join(format!("journal-{generation}.cgj"))
    }

    pub(crate) fn snapshot(&self, generation: u64) -> PathBuf {
        self.dir.join(format!("snapshot-{generation}.cgs"))
    }

    pub(crate) fn snapshot_in_progress(&self, generation: u64) -> PathBuf {
        self.dir.join(format!("snapshot-{generation}.cgs.tmp"))
    }

    pub(crate) fn scan(&self) -> io::Result<Found> {
        let mut found = Found::default();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(generation) = generation(name, "snapshot-", ".cgs") {
                found.snapshots.insert(generation);
            } else if let Some(generation) = generation(name, "journal-", ".cgj") {
                found.journals.insert(generation);
            } else if name.ends_with(".tmp") {
                found.leftovers.push(entry.path());
            }
        }
        Ok(found)
    }

    /// Makes renames, creations and deletions in the directory durable.
    pub(crate) fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_parse_only_from_exact_names() {
        assert_eq!(generation("journal-12.cgj", "journal-", ".cgj"), Some(12));
        assert_eq!(generation("journal-.cgj", "journal-", ".cgj"), None);
        assert_eq!(generation("journal-+1.cgj", "journal-", ".cgj"), None);
        assert_eq!(generation("snapshot-3.cgs.tmp", "snapshot-", ".cgs"), None);
    }
}
