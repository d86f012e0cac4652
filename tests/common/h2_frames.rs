//! Raw HTTP/2 frames, written by hand so a test can send what no well-behaved client would
//! (thousands of HEADERS each cancelled at once, a header block that never ends) and read
//! exactly what the server answers (SETTINGS values, RST_STREAM and GOAWAY codes). HPACK is
//! encoded without Huffman coding and without the dynamic table, which every decoder accepts.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const GOAWAY: u8 = 0x7;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const CANCEL: u32 = 0x8;
pub const REFUSED_STREAM: u32 = 0x7;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// One frame as it goes on the wire.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).expect("a frame under 16 MiB");
    let mut bytes = Vec::with_capacity(9 + payload.len());
    bytes.extend_from_slice(&length.to_be_bytes()[1..]);
    bytes.push(kind);
    bytes.push(flags);
    bytes.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

/// HPACK integer with an `prefix_bits`-bit prefix, the high bits of the first byte set to `high`.
fn hpack_integer(out: &mut Vec<u8>, high: u8, prefix_bits: u8, mut value: usize) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.push(high | value as u8);
        return;
    }
    out.push(high | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

fn hpack_string(out: &mut Vec<u8>, text: &str) {
    hpack_integer(out, 0x00, 7, text.len());
    out.extend_from_slice(text.as_bytes());
}

/// A header field as a literal without indexing, with a literal name.
pub fn hpack_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0x00);
    hpack_string(out, name);
    hpack_string(out, value);
}

/// The header block of a plain-text `GET path` for `share.test`, with `cookie` if any.
pub fn get_block(path: &str, cookie: Option<&str>) -> Vec<u8> {
    // Static table: 2 = :method GET, 6 = :scheme http.
    let mut block = vec![0x82, 0x86];
    hpack_field(&mut block, ":path", path);
    hpack_field(&mut block, ":authority", "share.test");
    if let Some(cookie) = cookie {
        hpack_field(&mut block, "cookie", cookie);
    }
    block
}

/// A frame the server sent.
#[derive(Debug)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The error code of a RST_STREAM or GOAWAY.
    pub fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            RST_STREAM => 0,
            GOAWAY => 4,
            _ => return None,
        };
        let bytes = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes(bytes.try_into().ok()?))
    }

    /// A SETTINGS frame's value for `id`.
    pub fn setting(&self, id: u16) -> Option<u32> {
        (self.kind == SETTINGS).then_some(())?;
        self.payload.chunks_exact(6).find_map(|entry| {
            (u16::from_be_bytes([entry[0], entry[1]]) == id)
                .then(|| u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]))
        })
    }
}

/// The next frame, or `None` once the server closed the connection (or reset it).
pub async fn read_frame(stream: &mut (impl AsyncReadExt + Unpin)) -> Option<Frame> {
    let mut head = [0u8; 9];
    stream.read_exact(&mut head).await.ok()?;
    let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload).await.ok()?;
    Some(Frame {
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
        payload,
    })
}

/// Opens an HTTP/2 connection with prior knowledge: the preface and empty SETTINGS, then the
/// server's SETTINGS acknowledged. Returns the server's SETTINGS frame.
pub async fn handshake(stream: &mut TcpStream) -> Frame {
    let mut opening = PREFACE.to_vec();
    opening.extend(frame(SETTINGS, 0, 0, &[]));
    stream.write_all(&opening).await.expect("send the preface");
    loop {
        let frame = read_frame(stream)
            .await
            .expect("the server's SETTINGS before it closes");
        if frame.kind == SETTINGS && frame.flags & ACK == 0 {
            stream
                .write_all(&self::frame(SETTINGS, ACK, 0, &[]))
                .await
                .expect("acknowledge SETTINGS");
            return frame;
        }
    }
}
