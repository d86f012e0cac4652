//! On-disk framing shared by journals and snapshots: a checksummed file header, then frames of
//! `len u32 LE | crc32(len ‖ payload) u32 LE | payload`. Reading tells a torn tail (the last write
//! cut short by a crash: droppable) from corruption (anything else: refuse to start).

/// Which kind of file a header announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileKind {
    Journal,
    Snapshot,
}

impl FileKind {
    fn magic(self) -> &'static [u8; 8] {
        match self {
            FileKind::Journal => b"CGSTJRNL",
            FileKind::Snapshot => b"CGSTSNAP",
        }
    }
}

const FORMAT_VERSION: u32 = 1;
/// magic (8) | version u32 | generation u64 | crc32 of the preceding 20 bytes.
pub(crate) const HEADER_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 8;
/// No record comes close (ids and case names are short, notes are bounded by the admin API); a
/// larger length can only be damage, and bounding it keeps a damaged length from hiding data.
pub(crate) const MAX_PAYLOAD: usize = 1 << 20;

/// A problem at a byte offset of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fault {
    pub(crate) offset: u64,
    pub(crate) reason: &'static str,
}

fn fault(offset: usize, reason: &'static str) -> Fault {
    Fault {
        offset: offset as u64,
        reason,
    }
}

pub(crate) fn header(kind: FileKind, generation: u64) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[..8].copy_from_slice(kind.magic());
    out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[12..20].copy_from_slice(&generation.to_le_bytes());
    let crc = crc32fast::hash(&out[..20]);
    out[20..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Checks a file's header (the caller handles files shorter than a header).
pub(crate) fn check_header(bytes: &[u8], kind: FileKind, generation: u64) -> Result<(), Fault> {
    let Some(head) = bytes.get(..HEADER_LEN) else {
        return Err(fault(0, "file is shorter than its header"));
    };
    if &head[..8] != kind.magic() {
        return Err(fault(
            0,
            "not a casegate state file of this kind (bad magic)",
        ));
    }
    let crc = u32::from_le_bytes([head[20], head[21], head[22], head[23]]);
    if crc32fast::hash(&head[..20]) != crc {
        return Err(fault(0, "header checksum mismatch"));
    }
    if head[8..12] != FORMAT_VERSION.to_le_bytes() {
        return Err(fault(8, "unsupported format version"));
    }
    if head[12..20] != generation.to_le_bytes() {
        return Err(fault(
            12,
            "generation in header does not match the file name",
        ));
    }
    Ok(())
}

fn frame_crc(len: [u8; 4], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len);
    hasher.update(payload);
    hasher.finalize()
}

/// Appends one frame. The caller has checked `payload.len() <= MAX_PAYLOAD`.
pub(crate) fn append_frame(out: &mut Vec<u8>, payload: &[u8]) {
    let len = u32::try_from(payload.len())
        .unwrap_or(u32::MAX)
        .to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&frame_crc(len, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// The payload of a sound frame at `offset`, or why there is none.
fn frame_at(bytes: &[u8], offset: usize) -> Result<&[u8], &'static str> {
    let Some(head) = bytes.get(offset..offset.saturating_add(FRAME_HEADER_LEN)) else {
        return Err("file ends inside a record header");
    };
    let len_bytes = [head[0], head[1], head[2], head[3]];
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len == 0 || len > MAX_PAYLOAD {
        return Err("record length out of range");
    }
    let start = offset + FRAME_HEADER_LEN;
    let Some(payload) = bytes.get(start..start.saturating_add(len)) else {
        return Err("file ends inside a record");
    };
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if frame_crc(len_bytes, payload) != crc {
        return Err("record checksum mismatch");
    }
    Ok(payload)
}

/// Whether a sound frame starts anywhere after `offset`: if so, a bad frame at `offset` is not
/// the torn end of the last write but damage in the middle.
fn sound_frame_after(bytes: &[u8], offset: usize) -> bool {
    (offset + 1..bytes.len()).any(|candidate| frame_at(bytes, candidate).is_ok())
}

/// How a file's frames ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The last frame ends exactly at the end of the file.
    Clean,
    /// The frame at `at` is cut short or fails its checksum and nothing sound follows it: the
    /// remains of a write a crash interrupted (never acknowledged).
    Torn(Fault),
}

/// Walks the frames after the header, handing each payload and its offset to `each`. A payload
/// `each` refuses, or a bad frame followed by sound ones, is corruption.
pub(crate) fn read_frames(
    bytes: &[u8],
    mut each: impl FnMut(u64, &[u8]) -> Result<(), &'static str>,
) -> Result<Ending, Fault> {
    let mut offset = HEADER_LEN;
    while offset < bytes.len() {
        match frame_at(bytes, offset) {
            Ok(payload) => {
                each(offset as u64, payload).map_err(|reason| fault(offset, reason))?;
                offset += FRAME_HEADER_LEN + payload.len();
            }
            Err(reason) if sound_frame_after(bytes, offset) => {
                return Err(fault(offset, reason));
            }
            Err(reason) => return Ok(Ending::Torn(fault(offset, reason))),
        }
    }
    Ok(Ending::Clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = header(FileKind::Journal, 3).to_vec();
        for payload in payloads {
            append_frame(&mut out, payload);
        }
        out
    }

    fn payloads(bytes: &[u8]) -> Result<(Vec<Vec<u8>>, Ending), Fault> {
        let mut seen = Vec::new();
        let ending = read_frames(bytes, |_, payload| {
            seen.push(payload.to_vec());
            Ok(())
        })?;
        Ok((seen, ending))
    }

    #[test]
    fn sound_frames_read_back_cleanly() {
        let bytes = file(&[b"one", b"two"]);
        let (seen, ending) = payloads(&bytes).unwrap();
        assert_eq!(seen, vec![b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(ending, Ending::Clean);
    }

    #[test]
    fn a_file_cut_inside_the_last_frame_is_torn_at_that_frame() {
        let whole = file(&[b"one", b"two-two"]);
        let second = HEADER_LEN + FRAME_HEADER_LEN + 3;
        for cut in second + 1..whole.len() {
            let (seen, ending) = payloads(&whole[..cut]).unwrap();
            assert_eq!(seen, vec![b"one".to_vec()], "cut at {cut}");
            assert!(matches!(ending, Ending::Torn(f) if f.offset == second as u64));
        }
    }

    #[test]
    fn zeros_after_the_last_frame_are_torn() {
        let mut bytes = file(&[b"one"]);
        let end = bytes.len();
        bytes.extend_from_slice(&[0; 4096]);
        let (_, ending) = payloads(&bytes).unwrap();
        assert!(matches!(ending, Ending::Torn(f) if f.offset == end as u64));
    }

    #[test]
    fn a_flipped_byte_before_sound_frames_is_corruption() {
        let mut bytes = file(&[b"one", b"two", b"three"]);
        let target = HEADER_LEN + FRAME_HEADER_LEN + 1;
        bytes[target] ^= 0x40;
        let error = payloads(&bytes).unwrap_err();
        assert_eq!(error.offset, HEADER_LEN as u64);
        assert_eq!(error.reason, "record checksum mismatch");
    }

    #[test]
    fn a_damaged_length_before_sound_frames_is_corruption() {
        let mut bytes = file(&[b"one", b"two", b"three"]);
        bytes[HEADER_LEN + 2] = 0x7f;
        assert!(payloads(&bytes).is_err());
    }

    #[test]
    fn headers_are_checked() {
        let bytes = file(&[]);
        assert_eq!(check_header(&bytes, FileKind::Journal, 3), Ok(()));
        assert!(check_header(&bytes, FileKind::Snapshot, 3).is_err());
        assert!(check_header(&bytes, FileKind::Journal, 4).is_err());
        let mut flipped = bytes.clone();
        flipped[9] ^= 1;
        assert!(check_header(&flipped, FileKind::Journal, 3).is_err());
    }
}
