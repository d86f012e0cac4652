//! The invitation a recipient receives: the link, the case, who shared it and until when, in the
//! share's language (Swedish for `sv`, `sv-SE`...; English otherwise).

use super::OutgoingMail;
use crate::clock::format_utc;

/// What an invitation says; everything comes from the share as recorded.
#[derive(Debug)]
pub struct Invitation<'a> {
    pub url: &'a str,
    pub case: &'a str,
    /// Unix seconds; shown as a UTC date and time.
    pub expires_at: i64,
    /// The share's `lang` tag, if any.
    pub lang: Option<&'a str>,
    /// Who shared it (the share's `created_by`).
    pub sender: Option<&'a str>,
    /// The sharer's note.
    pub note: Option<&'a str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Language {
    En,
    Sv,
}

/// The invitation mail to `to`.
pub fn invitation_mail(to: &str, invitation: &Invitation<'_>) -> OutgoingMail {
    let language = language(invitation.lang);
    let expires_at = format_utc(invitation.expires_at);
    let sender = invitation
        .sender
        .map(one_line)
        .filter(|text| !text.is_empty());
    let note = invitation
        .note
        .map(one_line)
        .filter(|text| !text.is_empty());
    let (url, case) = (invitation.url, invitation.case);
    let (subject, text) = match language {
        Language::En => (
            "A case has been shared with you",
            format!(
                "Hello,\n\n\
                 Case {case} has been shared with you{by}.\n\n\
                 {note}\
                 Open it with this link:\n\n\
                 {url}\n\n\
                 The link works until {expires_at}. It is meant for you alone: please do not \
                 forward it.\n\
                 If you did not expect this mail, you can ignore it.\n",
                by = sender.map_or(String::new(), |sender| format!(" by {sender}")),
                note = note.map_or(String::new(), |note| format!("Message: {note}\n\n")),
            ),
        ),
        Language::Sv => (
            "Ett fall har delats med dig",
            format!(
                "Hej,\n\n\
                 Fall {case} har delats med dig{by}.\n\n\
                 {note}\
                 Öppna det med den här länken:\n\n\
                 {url}\n\n\
                 Länken fungerar till {expires_at}. Den är bara till dig: vidarebefordra den inte.\n\
                 Om du inte väntade dig det här brevet kan du bortse från det.\n",
                by = sender.map_or(String::new(), |sender| format!(" av {sender}")),
                note = note.map_or(String::new(), |note| format!("Meddelande: {note}\n\n")),
            ),
        ),
    };
    OutgoingMail {
        to: to.to_owned(),
        subject: subject.to_owned(),
        text,
    }
}

/// The primary subtag decides: `sv`, `SV-se` -> Swedish; anything else, or none, English.
fn language(tag: Option<&str>) -> Language {
    let primary = tag.and_then(|tag| tag.split(['-', '_']).next());
    match primary {
        Some(primary) if primary.eq_ignore_ascii_case("sv") => Language::Sv,
        _ => Language::En,
    }
}

/// Free text from the API on one line: a note cannot add lines that look like part of the mail.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invitation(lang: Option<&str>) -> Invitation<'_> {
        Invitation {
            url: "https://share.example.org/s/x.y.z",
            case: "42",
            expires_at: 1_800_000_000,
            lang,
            sender: Some("dr.lind"),
            note: Some("second\nopinion"),
        }
    }

    #[test]
    fn the_language_follows_the_primary_subtag_and_defaults_to_english() {
        let cases = [
            (None, "A case has been shared with you"),
            (Some("en"), "A case has been shared with you"),
            (Some("de-DE"), "A case has been shared with you"),
            (Some("sv"), "Ett fall har delats med dig"),
            (Some("sv-SE"), "Ett fall har delats med dig"),
            (Some("SV"), "Ett fall har delats med dig"),
            (Some("svx"), "A case has been shared with you"),
        ];
        for (lang, subject) in cases {
            let mail = invitation_mail("a@b.example", &invitation(lang));
            assert_eq!(mail.subject, subject, "{lang:?}");
        }
    }

    #[test]
    fn an_invitation_carries_the_link_case_sender_note_and_expiry() {
        let mail = invitation_mail("a@b.example", &invitation(Some("sv")));
        assert_eq!(mail.to, "a@b.example");
        assert!(mail.text.contains("\nhttps://share.example.org/s/x.y.z\n"));
        assert!(mail.text.contains("Fall 42 har delats med dig av dr.lind."));
        assert!(mail.text.contains("Meddelande: second opinion\n"));
        assert!(
            mail.text.contains("2027-01-15 08:00:00 UTC"),
            "{}",
            mail.text
        );
    }

    #[test]
    fn without_sender_or_note_those_lines_are_left_out() {
        let mut bare = invitation(None);
        bare.sender = None;
        bare.note = Some(" \n");
        let mail = invitation_mail("a@b.example", &bare);
        assert!(mail.text.contains("Case 42 has been shared with you.\n"));
        assert!(!mail.text.contains("Message:"));
    }
}
