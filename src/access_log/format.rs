//! One access-log line: JSON (one object per line) or `key=value` text. Runs on the writer
//! thread, from the records the workers shelved (`shelf.rs`), into a buffer it reuses, so
//! request handling never formats.

use std::cell::RefCell;
use std::io::Write;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use super::line::{Line, PackedLine};
use crate::clock::civil_from_days;
use crate::config::LogFormat;

/// A key as each format spells it, separators included, so that writing one is one copy rather
/// than three (fourteen keys on every line).
#[derive(Clone, Copy)]
struct Key {
    json: &'static [u8],
    text: &'static [u8],
}

/// The [`Key`] of a field name; `first` for the one that opens the line.
macro_rules! key {
    (first $name:literal) => {
        Key {
            json: concat!("{\"", $name, "\":").as_bytes(),
            text: concat!($name, "=").as_bytes(),
        }
    };
    ($name:literal) => {
        Key {
            json: concat!(",\"", $name, "\":").as_bytes(),
            text: concat!(" ", $name, "=").as_bytes(),
        }
    };
}

/// Appends the line packed as `packed` (its strings in `text`), newline included, to `out`.
/// `time` is when the request was received, on the wall clock.
pub(super) fn write_line(
    out: &mut Vec<u8>,
    packed: &PackedLine,
    text: &str,
    time: SystemTime,
    format: LogFormat,
) {
    // One copy of the fields for each format, each with its style a constant: every key is then
    // a copy of known length, made in place, where a key picked at run time was a `memcpy` call
    // (callgrind: 48 -> 33 calls and 3,052 -> 2,643 instructions a line).
    match format {
        LogFormat::Json => write_fields(out, packed, text, time, Style::Json),
        LogFormat::Text => write_fields(out, packed, text, time, Style::Text),
    }
}

/// The fields of a line in `style`. One list for both formats, so that they cannot drift apart.
#[inline(always)]
fn write_fields(
    out: &mut Vec<u8>,
    packed: &PackedLine,
    text: &str,
    time: SystemTime,
    style: Style,
) {
    let facts = packed.facts();
    style.key(out, key!(first "time"));
    style.plain(out, |out| write_time(out, time));
    style.key(out, key!("client"));
    style.plain(out, |out| write_ip(out, facts.client));
    LAST_REQUEST_FIELDS.with_borrow_mut(|last| {
        if !last.were_written_from(packed, text, style) {
            last.write_from(&packed.line(text), style);
        }
        out.extend_from_slice(&last.bytes);
    });
    style.key(out, key!("bytes_in"));
    write_u64(out, facts.bytes_in);
    style.key(out, key!("bytes_out"));
    write_u64(out, facts.bytes_out);
    style.key(out, key!("total_ms"));
    write_millis(out, facts.total);
    style.key(out, key!("upstream_ms"));
    match facts.upstream {
        Some(upstream) => write_millis(out, upstream),
        None => style.missing(out),
    }
    if style == Style::Json {
        out.push(b'}');
    }
    out.push(b'\n');
}

/// The fields of `line` from `method` to `scope`, which [`LastRequestFields`] keeps.
fn write_request_fields(out: &mut Vec<u8>, line: &Line<'_>, style: Style) {
    let facts = &line.facts;
    style.key(out, key!("method"));
    style.string(out, Some(line.method));
    style.key(out, key!("path"));
    style.string(out, Some(line.path));
    style.key(out, key!("status"));
    write_u64(out, u64::from(facts.status));
    style.key(out, key!("decision"));
    style.plain(out, |out| out.extend_from_slice(facts.decision.as_bytes()));
    style.key(out, key!("reason"));
    style.string(out, facts.reason);
    let share = line.share;
    let share_keys = [key!("share"), key!("case"), key!("scope")];
    for (index, key) in share_keys.into_iter().enumerate() {
        style.key(out, key);
        style.string(out, share.map(|parts| parts[index]));
    }
}

/// The fields from `method` to `scope` of the last line written, and the line they were written
/// from. A guest's requests come one after another with the same method, path, outcome and share
/// (a video player's ranges of one recording, a page polling one route), and those fields are
/// then the same bytes: they are copied whole rather than written again (five strings checked for
/// what JSON escapes, eight keys, a number; callgrind: 170 of the writer's some 2,100
/// instructions a line). Whether they are the same is asked of the two packed lines, whose
/// strings are compared in one go, rather than of each cut back into five strings and those
/// compared one by one (`callgrind.sh --per-thread`: the writer's 1,904 -> 1,533 instructions
/// a line).
#[derive(Default)]
struct LastRequestFields {
    /// The format and the line the fields were written for, its strings in `text`; `None` until
    /// a line was written.
    written_for: Option<(Style, PackedLine)>,
    text: String,
    /// The fields as written.
    bytes: Vec<u8>,
}

impl LastRequestFields {
    fn were_written_from(&self, packed: &PackedLine, text: &str, style: Style) -> bool {
        self.written_for.is_some_and(|(written_style, written)| {
            written_style == style && written.same_request_fields(&self.text, packed, text)
        })
    }

    fn write_from(&mut self, line: &Line<'_>, style: Style) {
        self.text.clear();
        self.written_for = Some((style, PackedLine::pack(line, &mut self.text)));
        self.bytes.clear();
        write_request_fields(&mut self.bytes, line, style);
    }
}

/// How keys and values are spelled: a JSON object, or `key=value` pairs separated by spaces.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Json,
    Text,
}

impl Style {
    #[inline(always)]
    fn key(self, out: &mut Vec<u8>, key: Key) {
        out.extend_from_slice(match self {
            Style::Json => key.json,
            Style::Text => key.text,
        });
    }

    /// A value that never needs escaping (time, address, decision): quoted in JSON, bare in text.
    #[inline(always)]
    fn plain(self, out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
        match self {
            Style::Json => {
                out.push(b'"');
                write(out);
                out.push(b'"');
            }
            Style::Text => write(out),
        }
    }

    /// A value from the request or the share, escaped as the format needs; `None` is missing.
    #[inline(always)]
    fn string(self, out: &mut Vec<u8>, value: Option<&str>) {
        match (self, value) {
            (Style::Json, Some(value)) => json_string(out, value),
            (Style::Text, Some(value)) => text_value(out, value),
            (_, None) => self.missing(out),
        }
    }

    #[inline(always)]
    fn missing(self, out: &mut Vec<u8>) {
        out.extend_from_slice(match self {
            Style::Json => b"null",
            Style::Text => b"-",
        });
    }
}

// The writers below replace `write!`: `core::fmt` (padding, float printing, `Display` for
// addresses) was most of the log writer's CPU, a tenth of the gateway's per request. Numbers go
// through `itoa` (two digits per step from a table), where dividing by ten for every digit was
// about a hundred instructions per number, nine numbers a line.

/// A whole number in decimal.
fn write_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// A whole number in decimal, zero-padded to at least `width` digits.
fn write_padded(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(value).as_bytes();
    for _ in digits.len()..width {
        out.push(b'0');
    }
    out.extend_from_slice(digits);
}

/// Milliseconds with three decimals (microsecond resolution, truncated): `12.345`.
fn write_millis(out: &mut Vec<u8>, duration: std::time::Duration) {
    let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
    write_u64(out, micros / 1000);
    out.push(b'.');
    write_padded(out, micros % 1000, 3);
}

fn write_ip(out: &mut Vec<u8>, address: IpAddr) {
    match address {
        IpAddr::V4(v4) => {
            for (index, octet) in v4.octets().into_iter().enumerate() {
                if index > 0 {
                    out.push(b'.');
                }
                write_u64(out, u64::from(octet));
            }
        }
        // Rare enough (and its shortest form subtle enough) to leave to the standard library.
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

thread_local! {
    /// Kept by the writer thread, the only one formatting.
    static LAST_REQUEST_FIELDS: RefCell<LastRequestFields> = RefCell::new(LastRequestFields::default());
}

thread_local! {
    /// The last second written and its text (`2025-01-31T12:00:00.`), the same for every line of
    /// that second; kept by the writer thread, the only one formatting.
    static LAST_SECOND: RefCell<(Option<u64>, Vec<u8>)> = const { RefCell::new((None, Vec::new())) };
}

/// RFC 3339 in UTC with milliseconds: `2025-01-31T12:00:00.123Z`.
fn write_time(out: &mut Vec<u8>, time: SystemTime) {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    LAST_SECOND.with_borrow_mut(|(second, text)| {
        if *second != Some(secs) {
            text.clear();
            write_second(text, secs);
            *second = Some(secs);
        }
        out.extend_from_slice(text);
    });
    write_padded(out, u64::from(since_epoch.subsec_millis()), 3);
    out.push(b'Z');
}

/// `2025-01-31T12:00:00.` for `secs` since the epoch.
fn write_second(out: &mut Vec<u8>, secs: u64) {
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let second_of_day = secs.rem_euclid(86_400).unsigned_abs();
    let fields = [
        (u64::try_from(year).unwrap_or(0), 4, b'-'),
        (u64::from(month), 2, b'-'),
        (u64::from(day), 2, b'T'),
        (second_of_day / 3600, 2, b':'),
        (second_of_day % 3600 / 60, 2, b':'),
        (second_of_day % 60, 2, b'.'),
    ];
    for (value, width, separator) in fields {
        write_padded(out, value, width);
        out.push(separator);
    }
}

/// A JSON string, spelled as serde_json spells it. Nearly every value (method, path, share id,
/// case, scope) has nothing to escape, and is copied between quotes in one go: serde_json's
/// byte-by-byte escape behind `io::Write` cost about 150 instructions a value, five a line. The
/// rest go through serde_json.
fn json_string(out: &mut Vec<u8>, value: &str) {
    if is_left_as_is_in_json(value.as_bytes()) {
        out.reserve(value.len() + 2);
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        // Writing a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, value);
    }
}

/// Whether a JSON string holds `text` as it is (RFC 8259 section 7): no control character, quote
/// or backslash. Bytes of multi-byte UTF-8 characters are held as they are. Eight bytes a step
/// (a byte-at-a-time test was no cheaper than serde_json's table).
fn is_left_as_is_in_json(text: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH_BITS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Whether any byte of `word` is below `bound` (at most 0x80): the lowest such byte sets its
    // high bit in the difference (the borrow it starts can only disturb bytes above it, which
    // cannot change the answer), and a byte whose own high bit is set is excluded by `!word`.
    let any_below =
        |word: u64, bound: u8| word.wrapping_sub(ONES * u64::from(bound)) & !word & HIGH_BITS != 0;
    let any_equal = |word: u64, byte: u8| any_below(word ^ (ONES * u64::from(byte)), 1);
    let is_clean =
        |word: u64| !(any_below(word, 0x20) || any_equal(word, b'"') || any_equal(word, b'\\'));
    if text.len() < 8 {
        return is_clean(short_word(text));
    }
    let mut words = text.chunks_exact(8);
    let whole_words_clean = words.all(|word| {
        is_clean(u64::from_ne_bytes(
            word.try_into().expect("chunks of eight"),
        ))
    });
    // The last few bytes, in the word that ends the text (some of its bytes checked already,
    // which changes nothing): copying them into a padded word was a `memcpy` call a value.
    let last_word = &text[text.len() - 8..];
    whole_words_clean
        && (words.remainder().is_empty()
            || is_clean(u64::from_ne_bytes(
                last_word.try_into().expect("eight bytes"),
            )))
}

/// Up to seven bytes as a word, padded with spaces (clean), each byte put in its lane without a
/// `memcpy` call.
fn short_word(text: &[u8]) -> u64 {
    const SPACES: u64 = u64::from_ne_bytes([b' '; 8]);
    text.iter().enumerate().fold(SPACES, |word, (lane, &byte)| {
        word ^ (u64::from(byte ^ b' ') << (8 * lane))
    })
}

/// A bare value when it is plainly safe, else a JSON-style quoted string, so a space or quote
/// in a path cannot forge another key.
fn text_value(out: &mut Vec<u8>, value: &str) {
    let bare = !value.is_empty()
        && value
            .bytes()
            .all(|byte| byte.is_ascii_graphic() && byte != b'"' && byte != b'=' && byte != b'\\');
    if bare {
        out.extend_from_slice(value.as_bytes());
    } else {
        json_string(out, value);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{Method, StatusCode};

    use super::*;
    use crate::access_log::record::AccessRecord;

    fn record() -> AccessRecord {
        let mut record = AccessRecord::begin(true, "192.0.2.7".parse().unwrap(), &Method::GET);
        record.set_path("/cases/A-1/file name");
        record.set_share("sh_1", "A-1", "view");
        record.set_status(StatusCode::OK);
        let sent = std::time::Instant::now();
        record.set_upstream(sent, sent + Duration::from_micros(1500));
        record.finish(42);
        record
    }

    /// `line` written as the writer writes a shelved one: packed into a text, after another
    /// line's strings, so that its own do not start at the text's start.
    fn write_unpacked(out: &mut Vec<u8>, line: &Line<'_>, time: SystemTime, format: LogFormat) {
        let mut text = String::from("POST/cases/B-2sh_9B-2edit");
        let packed = PackedLine::pack(line, &mut text);
        write_line(out, &packed, &text, time, format);
    }

    fn line(record: &AccessRecord, format: LogFormat) -> String {
        let mut out = Vec::new();
        let time = UNIX_EPOCH + Duration::from_millis(1_738_324_800_123);
        write_unpacked(&mut out, &record.line(), time, format);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn numbers_are_written_without_core_fmt_as_it_would_write_them() {
        for value in [0, 7, 10, 999, 1000, 65_535, u64::MAX] {
            let mut out = Vec::new();
            write_u64(&mut out, value);
            assert_eq!(out, value.to_string().as_bytes());
            for width in [1, 3, 4, 20] {
                let mut out = Vec::new();
                write_padded(&mut out, value, width);
                assert_eq!(out, format!("{value:0width$}").as_bytes());
            }
        }
        let mut out = Vec::new();
        write_millis(&mut out, Duration::from_micros(12_045));
        out.push(b' ');
        write_millis(&mut out, Duration::ZERO);
        out.push(b' ');
        write_ip(&mut out, "10.0.255.1".parse().unwrap());
        out.push(b' ');
        write_ip(&mut out, "2001:db8::1".parse().unwrap());
        assert_eq!(out, b"12.045 0.000 10.0.255.1 2001:db8::1");
    }

    #[test]
    fn a_json_line_is_one_object_with_every_field() {
        let text = line(&record(), LogFormat::Json);
        assert!(text.ends_with('\n') && text.matches('\n').count() == 1);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["time"], "2025-01-31T12:00:00.123Z");
        assert_eq!(value["client"], "192.0.2.7");
        assert_eq!(value["method"], "GET");
        assert_eq!(value["path"], "/cases/A-1/file name");
        assert_eq!(value["status"], 200);
        assert_eq!(value["decision"], "allowed");
        assert!(value["reason"].is_null());
        assert_eq!(value["share"], "sh_1");
        assert_eq!(value["case"], "A-1");
        assert_eq!(value["scope"], "view");
        assert_eq!(value["bytes_in"], 0);
        assert_eq!(value["bytes_out"], 42);
        assert_eq!(value["upstream_ms"], 1.5);
        assert!(value["total_ms"].is_f64());
    }

    #[test]
    fn a_request_without_share_or_upstream_logs_nulls() {
        let mut record = AccessRecord::begin(true, "::1".parse().unwrap(), &Method::POST);
        record.set_path("/s/");
        let value: serde_json::Value =
            serde_json::from_str(&line(&record, LogFormat::Json)).unwrap();
        assert_eq!(value["client"], "::1");
        assert!(value["share"].is_null() && value["upstream_ms"].is_null());
    }

    #[test]
    fn a_refusal_logs_the_metric_decision_and_the_page_code() {
        let mut record = record();
        record.set_refused("revoked", "revoked_link");
        let value: serde_json::Value =
            serde_json::from_str(&line(&record, LogFormat::Json)).unwrap();
        assert_eq!(value["decision"], "revoked");
        assert_eq!(value["reason"], "revoked_link");
        assert!(line(&record, LogFormat::Text).contains(" decision=revoked reason=revoked_link "));
    }

    #[test]
    fn a_text_line_quotes_values_that_could_forge_a_key() {
        let text = line(&record(), LogFormat::Text);
        assert!(text.starts_with("time=2025-01-31T12:00:00.123Z client=192.0.2.7 method=GET "));
        assert!(text.contains(r#" path="/cases/A-1/file name" status=200 decision=allowed reason=- share=sh_1 case=A-1 scope=view bytes_in=0 bytes_out=42 "#), "{text}");
        assert!(text.trim_end().ends_with("upstream_ms=1.500"), "{text}");
    }

    #[test]
    fn the_remembered_second_is_only_reused_within_that_second() {
        let at = |millis: u64| {
            let mut out = Vec::new();
            write_time(&mut out, UNIX_EPOCH + Duration::from_millis(millis));
            String::from_utf8(out).unwrap()
        };
        assert_eq!(at(1_738_324_800_123), "2025-01-31T12:00:00.123Z");
        assert_eq!(at(1_738_324_800_999), "2025-01-31T12:00:00.999Z");
        assert_eq!(at(1_738_324_801_000), "2025-01-31T12:00:01.000Z");
        assert_eq!(at(1_738_324_800_005), "2025-01-31T12:00:00.005Z");
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
    }

    /// A line of the pool below: each field from a few values, so that a sequence of them repeats
    /// some fields and changes others.
    fn pooled_line(pick: [usize; 7]) -> Line<'static> {
        // "/cases/A-1/vide" then "osh_1" are the same bytes as "/cases/A-1/video" then "sh_1":
        // lines alike but for where one string ends and the next begins.
        const SHARES: [Option<[&str; 3]>; 5] = [
            None,
            Some(["sh_1", "A-1", "view"]),
            Some(["sh_1", "A-2", "view"]),
            Some(["", "", ""]),
            Some(["osh_1", "A-1", "view"]),
        ];
        Line {
            facts: crate::access_log::line::Facts {
                client: "192.0.2.7".parse().unwrap(),
                status: [200, 206, 403][pick[0] % 3],
                decision: ["allowed", "revoked"][pick[1] % 2],
                reason: [None, Some("revoked_link")][pick[2] % 2],
                bytes_in: 0,
                bytes_out: 42,
                total: Duration::from_micros(1500),
                upstream: None,
            },
            method: ["GET", "POST"][pick[3] % 2],
            path: [
                "/cases/A-1",
                "/cases/A-1/video",
                "/cases/A-1/file name",
                "/cases/A-1/vide",
            ][pick[4] % 4],
            share: SHARES[pick[5] % 5],
        }
    }

    proptest::proptest! {
        /// The fields kept from the last line are only a shortcut: every line of a sequence, each
        /// field repeated or changed, in either format, comes out as it does written afresh.
        #[test]
        fn a_line_reads_as_written_afresh_after_any_line_before_it(
            picks in proptest::collection::vec(proptest::array::uniform7(0usize..5), 1..40)
        ) {
            let time = UNIX_EPOCH + Duration::from_millis(1_738_324_800_123);
            for pick in picks {
                let line = pooled_line(pick);
                let format = [LogFormat::Json, LogFormat::Text][pick[6] % 2];
                let mut after = Vec::new();
                write_unpacked(&mut after, &line, time, format);
                let kept = LAST_REQUEST_FIELDS.take();
                let mut afresh = Vec::new();
                write_unpacked(&mut afresh, &line, time, format);
                LAST_REQUEST_FIELDS.set(kept);
                proptest::prop_assert_eq!(
                    String::from_utf8(after).unwrap(),
                    String::from_utf8(afresh).unwrap()
                );
            }
        }

        /// The copy between quotes is only a shortcut: every string, escapes, controls, quotes
        /// and non-ASCII included, comes out byte for byte as serde_json writes it.
        #[test]
        fn json_strings_are_spelled_as_serde_json_spells_them(
            value in "(\\PC|[\"\\\\\u{0}-\u{1f}\u{7f}])*"
        ) {
            let mut ours = Vec::new();
            json_string(&mut ours, &value);
            proptest::prop_assert_eq!(ours, serde_json::to_vec(&value).unwrap());
        }

        /// A clean value, non-ASCII included, is copied as it is; one character to escape
        /// anywhere in it (inside an eight-byte step or in the tail) is seen.
        #[test]
        fn one_byte_to_escape_is_seen_wherever_it_sits(
            clean in "[^\\x00-\\x1f\"\\\\]{0,40}",
            at in 0usize..=40,
            special in proptest::sample::select(vec!['"', '\\', '\u{0}', '\n', '\u{1f}']),
        ) {
            let mut value: Vec<char> = clean.chars().collect();
            value.insert(at.min(value.len()), special);
            let value: String = value.into_iter().collect();
            proptest::prop_assert!(!is_left_as_is_in_json(value.as_bytes()));
            proptest::prop_assert!(is_left_as_is_in_json(clean.as_bytes()));
            let mut ours = Vec::new();
            json_string(&mut ours, &value);
            proptest::prop_assert_eq!(ours, serde_json::to_vec(&value).unwrap());
        }
    }
}
