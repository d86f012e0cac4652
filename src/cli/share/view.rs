//! How `casegate share` shows the admin API's answers to a person: the share table, `show`'s
//! key: value lines, and one-paragraph summaries of create and revoke. `--json` bypasses all of this.

use std::fmt::Write as _;

use serde::Deserialize;

use super::format::{format_ago, format_duration, format_utc, printable, truncate};

/// A share as the API reports it (ShareView, plus `url` in a create answer). Unknown fields are
/// ignored so a newer gateway does not break an older CLI.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ShareRow {
    pub id: String,
    pub url: Option<String>,
    pub case: Option<String>,
    pub scope: Option<String>,
    pub status: String,
    pub created_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub remaining_seconds: i64,
    pub first_used_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub uses: u64,
    pub revoked_at: Option<i64>,
    pub email: Option<String>,
    pub lang: Option<String>,
    pub note: Option<String>,
    pub created_by: Option<String>,
    pub client: Option<String>,
    pub origin: Option<String>,
}

/// `{"shares": [...]}` from `GET /v1/shares`.
#[derive(Debug, Deserialize)]
pub struct ShareList {
    pub shares: Vec<ShareRow>,
}

/// `{"case", "not_before", "revoked_shares"}` from `POST /v1/cases/{case}/revoke`.
#[derive(Debug, Deserialize)]
pub struct CaseRevoked {
    pub case: String,
    pub not_before: i64,
    pub revoked_shares: u64,
}

const NOTE_WIDTH: usize = 32;
const CREATED_BY_WIDTH: usize = 24;

impl ShareRow {
    /// Whether its link opens: pending or active, neither revoked nor expired.
    pub fn is_live(&self) -> bool {
        matches!(self.status.as_str(), "pending" | "active")
    }

    /// Time left, or "-" for a share that no longer opens (or whose expiry is unknown).
    fn left(&self) -> String {
        match u64::try_from(self.remaining_seconds) {
            Ok(seconds) if self.is_live() && seconds > 0 => format_duration(seconds),
            _ => "-".to_owned(),
        }
    }
}

/// The `list` table, columns padded to their widest cell; "no shares" when empty.
pub fn share_table(shares: &[ShareRow], now: i64) -> String {
    if shares.is_empty() {
        return "no shares\n".to_owned();
    }
    let header = [
        "ID",
        "CASE",
        "SCOPE",
        "STATUS",
        "LEFT",
        "USES",
        "LAST USED",
        "CREATED BY",
        "NOTE",
    ]
    .map(str::to_owned);
    let rows: Vec<[String; 9]> = shares
        .iter()
        .map(|share| {
            [
                printable(&share.id).into_owned(),
                optional(share.case.as_deref()),
                optional(share.scope.as_deref()),
                printable(&share.status).into_owned(),
                share.left(),
                share.uses.to_string(),
                share
                    .last_used_at
                    .map_or_else(|| "never".to_owned(), |at| format_ago(at, now)),
                truncate(&optional(share.created_by.as_deref()), CREATED_BY_WIDTH).into_owned(),
                truncate(&optional(share.note.as_deref()), NOTE_WIDTH).into_owned(),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|cell| cell.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut table = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (index, (cell, width)) in row.iter().zip(widths).enumerate() {
            if index > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
        }
        table.push_str(line.trim_end());
        table.push('\n');
    }
    table
}

/// `show`: one `key: value` line per field, keys as in the JSON, times in UTC with a relative hint.
pub fn share_details(share: &ShareRow, now: i64) -> String {
    let time = |at: Option<i64>, none: &str| {
        at.map_or_else(
            || none.to_owned(),
            |at| {
                let hint = if at > now {
                    format!("in {}", format_duration(at.abs_diff(now)))
                } else {
                    format_ago(at, now)
                };
                format!("{} ({hint})", format_utc(at))
            },
        )
    };
    let lines = [
        ("id", printable(&share.id).into_owned()),
        ("case", optional(share.case.as_deref())),
        ("scope", optional(share.scope.as_deref())),
        ("status", printable(&share.status).into_owned()),
        ("created_at", time(share.created_at, "-")),
        ("expires_at", time(share.expires_at, "-")),
        ("left", share.left()),
        ("uses", share.uses.to_string()),
        ("first_used_at", time(share.first_used_at, "never")),
        ("last_used_at", time(share.last_used_at, "never")),
        ("revoked_at", time(share.revoked_at, "-")),
        ("email", optional(share.email.as_deref())),
        ("lang", optional(share.lang.as_deref())),
        ("note", optional(share.note.as_deref())),
        ("created_by", optional(share.created_by.as_deref())),
        ("client", optional(share.client.as_deref())),
        ("origin", optional(share.origin.as_deref())),
    ];
    let mut text = String::new();
    for (key, value) in lines {
        // Writing to a String cannot fail.
        let _ = writeln!(text, "{:<15}{value}", format!("{key}:"));
    }
    text
}

/// `create`: the link alone on the first line (easy to copy or `| head -1`), then a summary.
pub fn created_summary(share: &ShareRow) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "{}", optional(share.url.as_deref()));
    let _ = writeln!(text, "share {}", printable(&share.id));
    let _ = writeln!(
        text,
        "case {}, scope {}",
        optional(share.case.as_deref()),
        optional(share.scope.as_deref())
    );
    let expires = share
        .expires_at
        .map_or_else(String::new, |at| format!(" ({})", format_utc(at)));
    // The API reports no time left for a share that does not open: "expires in 0s" would hide
    // that it is revoked (or expired), so the status is said instead.
    let _ = if share.is_live() {
        writeln!(
            text,
            "expires in {}{expires}",
            format_duration(u64::try_from(share.remaining_seconds).unwrap_or(0))
        )
    } else {
        writeln!(text, "{}: the link does not open", printable(&share.status))
    };
    text
}

/// `create --send-email` and `resend`: where the link was mailed.
pub fn invitation_summary(share: &ShareRow) -> String {
    format!(
        "invitation for share {} sent to {}\n",
        printable(&share.id),
        optional(share.email.as_deref())
    )
}

/// `revoke`: which share, and for an id never seen what that means.
pub fn revoked_summary(share: &ShareRow) -> String {
    match (&share.case, &share.scope) {
        (Some(case), Some(scope)) => format!(
            "revoked share {} (case {}, scope {})\n",
            printable(&share.id),
            printable(case),
            printable(scope)
        ),
        _ => format!(
            "revoked share {} (never seen: a link carrying this id will be refused)\n",
            printable(&share.id)
        ),
    }
}

/// `revoke-case`: the cut-off time and how many known shares it turned to revoked.
pub fn case_revoked_summary(answer: &CaseRevoked) -> String {
    let shares = match answer.revoked_shares {
        1 => "1 known share".to_owned(),
        count => format!("{count} known shares"),
    };
    format!(
        "revoked case {}: every link issued up to {} is refused ({shares} revoked)\n",
        printable(&answer.case),
        format_utc(answer.not_before)
    )
}

fn optional(value: Option<&str>) -> String {
    value.map_or_else(|| "-".to_owned(), |text| printable(text).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn share(id: &str, status: &str) -> ShareRow {
        ShareRow {
            id: id.to_owned(),
            case: Some("42".to_owned()),
            scope: Some("view".to_owned()),
            status: status.to_owned(),
            created_at: Some(NOW - 60),
            expires_at: Some(NOW + 83_520),
            remaining_seconds: 83_520,
            ..ShareRow::default()
        }
    }

    #[test]
    fn table_columns_line_up_and_show_time_left_and_last_use() {
        let mut used = share("aaaaaaaaaaaaaaaaaaaaaa", "active");
        used.uses = 3;
        used.last_used_at = Some(NOW - 300);
        used.created_by = Some("dr.lind".to_owned());
        used.note = Some("second opinion for the referral from the county hospital".to_owned());
        let mut revoked = share("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "revoked");
        revoked.remaining_seconds = 0;
        let table = share_table(&[used, revoked], NOW);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("ID  "), "{table}");
        let note_column = lines[0].find("NOTE").unwrap();
        assert_eq!(&lines[1][note_column..], "second opinion for the referral…");
        let left_column = lines[0].find("LEFT").unwrap();
        assert!(
            lines[1][left_column..].starts_with("23h 12m  3 "),
            "{table}"
        );
        assert!(lines[2][left_column..].starts_with("-  "), "{table}");
        assert!(
            lines[1].contains("5m ago") && lines[2].contains("never"),
            "{table}"
        );
        assert!(
            lines[2].ends_with(" -"),
            "no trailing padding: {:?}",
            lines[2]
        );
    }

    #[test]
    fn an_empty_list_says_so() {
        assert_eq!(share_table(&[], NOW), "no shares\n");
    }

    #[test]
    fn expired_and_unknown_shares_have_no_time_left() {
        let mut expired = share("a", "expired");
        expired.remaining_seconds = 5;
        assert_eq!(expired.left(), "-");
        let mut unknown = share("a", "pending");
        unknown.remaining_seconds = -1;
        assert_eq!(unknown.left(), "-");
        assert_eq!(share("a", "pending").left(), "23h 12m");
    }

    #[test]
    fn details_are_key_value_lines_with_utc_times() {
        let mut row = share("cccccccccccccccc", "pending");
        row.note = Some("evil\u{1b}[2J".to_owned());
        let text = share_details(&row, NOW);
        assert!(text.contains("id:            cccccccccccccccc\n"), "{text}");
        assert!(
            text.contains("created_at:    2023-11-14 22:12:20 UTC (1m ago)\n"),
            "{text}"
        );
        assert!(text.contains("(in 23h 12m)"), "{text}");
        assert!(text.contains("first_used_at: never\n"), "{text}");
        assert!(text.contains("note:          evil\u{FFFD}[2J\n"), "{text}");
        assert_eq!(text.lines().count(), 17);
    }

    #[test]
    fn the_link_comes_first_in_a_create_summary() {
        let mut row = share("dddddddddddddddd", "pending");
        row.url = Some("https://share.example.org/s/tok".to_owned());
        let text = created_summary(&row);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("https://share.example.org/s/tok"));
        assert_eq!(lines.next(), Some("share dddddddddddddddd"));
        assert!(
            text.contains("expires in 23h 12m (2023-11-15 21:25:20 UTC)"),
            "{text}"
        );
    }

    #[test]
    fn a_create_summary_of_a_share_that_does_not_open_says_so_instead_of_expires_in_0s() {
        let mut row = share("dddddddddddddddd", "revoked");
        row.remaining_seconds = 0;
        let text = created_summary(&row);
        assert!(!text.contains("expires in"), "{text}");
        assert!(text.contains("revoked: the link does not open\n"), "{text}");
    }

    #[test]
    fn revoke_summaries_name_what_was_revoked() {
        assert_eq!(
            revoked_summary(&share("eeeeeeeeeeeeeeee", "revoked")),
            "revoked share eeeeeeeeeeeeeeee (case 42, scope view)\n"
        );
        let external = ShareRow {
            id: "ffffffffffffffff".to_owned(),
            status: "revoked".to_owned(),
            ..ShareRow::default()
        };
        assert!(revoked_summary(&external).contains("never seen"));
        let answer = CaseRevoked {
            case: "42".to_owned(),
            not_before: NOW,
            revoked_shares: 1,
        };
        assert_eq!(
            case_revoked_summary(&answer),
            "revoked case 42: every link issued up to 2023-11-14 22:13:20 UTC is refused \
             (1 known share revoked)\n"
        );
    }
}
