//! Small text formats for people reading `casegate share` output: durations ("23h 12m"),
//! relative times ("5m ago"), UTC timestamps, and text from the API made safe for a terminal.

use std::borrow::Cow;

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// The two largest units of a duration, rounded down, a zero second unit left out:
/// 59 -> "59s", 90 -> "1m 30s", 83_520 -> "23h 12m", 356_400 -> "4d 3h", 3_600 -> "1h".
/// Rounded down so that a link never looks as if it lasts longer than it does.
pub fn format_duration(seconds: u64) -> String {
    let units = [(DAY, "d"), (HOUR, "h"), (MINUTE, "m"), (1, "s")];
    let Some(first) = units.iter().position(|(size, _)| seconds >= *size) else {
        return "0s".to_owned();
    };
    let (size, name) = units[first];
    let mut text = format!("{}{name}", seconds / size);
    if let Some((next_size, next_name)) = units.get(first + 1) {
        let rest = seconds % size / next_size;
        if rest > 0 {
            text.push_str(&format!(" {rest}{next_name}"));
        }
    }
    text
}

/// How long ago `then` was, as seen at `now` ("5m ago"); "just now" within a second, and also for
/// a time slightly in the future (clocks of two hosts disagree a little).
pub fn format_ago(then: i64, now: i64) -> String {
    match u64::try_from(now.saturating_sub(then)) {
        Ok(elapsed) if elapsed >= 1 => format!("{} ago", format_duration(elapsed)),
        _ => "just now".to_owned(),
    }
}

pub use casegate::clock::format_utc;

/// Text that came from the API (notes, names) with control characters replaced, so a note cannot
/// move the cursor, recolour the terminal or fake a line of output.
pub fn printable(text: &str) -> Cow<'_, str> {
    if text.chars().any(char::is_control) {
        Cow::Owned(
            text.chars()
                .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

/// At most `max_chars` characters, the last one an ellipsis when something was cut.
pub fn truncate(text: &str, max_chars: usize) -> Cow<'_, str> {
    if text.chars().count() <= max_chars {
        return Cow::Borrowed(text);
    }
    let kept: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    Cow::Owned(format!("{kept}…"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_show_their_two_largest_units_rounded_down() {
        for (seconds, expected) in [
            (0, "0s"),
            (1, "1s"),
            (59, "59s"),
            (60, "1m"),
            (90, "1m 30s"),
            (3_599, "59m 59s"),
            (3_600, "1h"),
            (3_661, "1h 1m"),
            (83_520, "23h 12m"),
            (86_399, "23h 59m"),
            (86_400, "1d"),
            (356_400, "4d 3h"),
            (30 * 86_400 + 59, "30d"),
        ] {
            assert_eq!(format_duration(seconds), expected, "{seconds}");
        }
    }

    #[test]
    fn relative_times_say_how_long_ago_and_tolerate_small_skew() {
        assert_eq!(format_ago(1_000, 1_300), "5m ago");
        assert_eq!(format_ago(1_000, 1_001), "1s ago");
        assert_eq!(format_ago(1_000, 1_000), "just now");
        assert_eq!(format_ago(1_002, 1_000), "just now");
        assert_eq!(format_ago(i64::MIN, i64::MAX), format_ago(0, i64::MAX));
    }

    #[test]
    fn utc_timestamps_match_known_dates() {
        for (unix, expected) in [
            (0, "1970-01-01 00:00:00 UTC"),
            (951_782_400, "2000-02-29 00:00:00 UTC"),
            (1_700_000_000, "2023-11-14 22:13:20 UTC"),
            (4_107_542_399, "2100-02-28 23:59:59 UTC"),
            (-1, "1969-12-31 23:59:59 UTC"),
        ] {
            assert_eq!(format_utc(unix), expected, "{unix}");
        }
    }

    #[test]
    fn control_characters_from_the_api_never_reach_the_terminal() {
        assert_eq!(printable("plain note"), "plain note");
        assert_eq!(
            printable("red\u{1b}[31m\nfake line\r"),
            "red\u{FFFD}[31m\u{FFFD}fake line\u{FFFD}"
        );
    }

    #[test]
    fn truncation_counts_characters_and_marks_the_cut() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("exactly10!", 10), "exactly10!");
        assert_eq!(truncate("a longer note here", 10), "a longer …");
        assert_eq!(truncate("åäöåäöåäöåäö", 4), "åäö…");
    }
}
