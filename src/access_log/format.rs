//! One access-log line from a record: JSON (one object per line) or `key=value` text. Runs on
//! the writer thread, into a buffer it reuses, so request handling never formats.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use super::record::AccessRecord;
use crate::clock::civil_from_days;
use crate::config::LogFormat;

/// Appends the record's line, newline included, to `out`.
pub fn write_line(out: &mut Vec<u8>, record: &AccessRecord, format: LogFormat) {
    match format {
        LogFormat::Json => write_json(out, record),
        LogFormat::Text => write_text(out, record),
    }
    out.push(b'\n');
}

fn write_json(out: &mut Vec<u8>, record: &AccessRecord) {
    out.extend_from_slice(b"{\"time\":\"");
    write_time(out, record.time);
    let _ = write!(out, "\",\"client\":\"{}\",\"method\":", record.client);
    json_string(out, record.method.as_str());
    out.extend_from_slice(b",\"path\":");
    json_string(out, record.path());
    let _ = write!(
        out,
        ",\"status\":{},\"decision\":\"{}\",\"reason\":",
        record.status, record.decision
    );
    match record.reason {
        Some(reason) => json_string(out, reason),
        None => out.extend_from_slice(b"null"),
    }
    let share = record.share();
    for (index, name) in ["share", "case", "scope"].into_iter().enumerate() {
        let _ = write!(out, ",\"{name}\":");
        match share {
            Some(parts) => json_string(out, parts[index]),
            None => out.extend_from_slice(b"null"),
        }
    }
    let _ = write!(
        out,
        ",\"bytes_in\":{},\"bytes_out\":{},\"total_ms\":{:.3},\"upstream_ms\":",
        record.bytes_in(),
        record.bytes_out,
        millis(record.total)
    );
    match record.upstream {
        Some(upstream) => {
            let _ = write!(out, "{:.3}", millis(upstream));
        }
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
}

fn write_text(out: &mut Vec<u8>, record: &AccessRecord) {
    out.extend_from_slice(b"time=");
    write_time(out, record.time);
    let _ = write!(out, " client={} method=", record.client);
    text_value(out, record.method.as_str());
    out.extend_from_slice(b" path=");
    text_value(out, record.path());
    let _ = write!(
        out,
        " status={} decision={} reason={}",
        record.status,
        record.decision,
        record.reason.unwrap_or("-")
    );
    let share = record.share();
    for (index, name) in ["share", "case", "scope"].into_iter().enumerate() {
        let _ = write!(out, " {name}=");
        text_value(out, share.map_or("-", |parts| parts[index]));
    }
    let _ = write!(
        out,
        " bytes_in={} bytes_out={} total_ms={:.3} upstream_ms=",
        record.bytes_in(),
        record.bytes_out,
        millis(record.total)
    );
    match record.upstream {
        Some(upstream) => {
            let _ = write!(out, "{:.3}", millis(upstream));
        }
        None => out.push(b'-'),
    }
}

fn millis(duration: std::time::Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// RFC 3339 in UTC with milliseconds: `2025-01-31T12:00:00.123Z`.
fn write_time(out: &mut Vec<u8>, time: SystemTime) {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let second_of_day = secs.rem_euclid(86_400);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
        since_epoch.subsec_millis()
    );
}

fn json_string(out: &mut Vec<u8>, value: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
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
        record.time = UNIX_EPOCH + Duration::from_millis(1_738_324_800_123);
        record.set_path("/cases/A-1/file name");
        record.set_share("sh_1", "A-1", "view");
        record.set_status(StatusCode::OK);
        record.set_upstream(Duration::from_micros(1500));
        record.finish(42);
        record
    }

    fn line(record: &AccessRecord, format: LogFormat) -> String {
        let mut out = Vec::new();
        write_line(&mut out, record, format);
        String::from_utf8(out).unwrap()
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
}
