//! The invitation a recipient receives: the link, the case, who shared it and until when, in the
//! share's language, from the operator's (or the embedded) `invite` template.

use super::OutgoingMail;
use crate::clock::format_utc;
use crate::pages::{Lang, Templates, Vars};

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

/// The invitation mail to `to`, from the `invite` text template and the `invite.subject`
/// message, in the share's language (else English: there is no browser to ask).
pub fn invitation_mail(
    templates: &Templates,
    to: &str,
    invitation: &Invitation<'_>,
) -> OutgoingMail {
    let lang = Lang::choose(invitation.lang, None);
    let mut vars = Vars::new()
        .set("url", invitation.url)
        .set("case", invitation.case)
        .set("expires_at", format_utc(invitation.expires_at));
    // Unset, the template's {{#sender}} and {{#note}} sections are left out.
    for (name, value) in [("sender", invitation.sender), ("note", invitation.note)] {
        if let Some(text) = value.map(one_line).filter(|text| !text.is_empty()) {
            vars = vars.set(name, text);
        }
    }
    OutgoingMail {
        to: to.to_owned(),
        subject: templates.message("invite.subject", lang).to_owned(),
        text: templates.text("invite", lang, &vars),
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
    fn the_language_follows_the_share_and_defaults_to_english() {
        let templates = Templates::embedded();
        let english = templates.message("invite.subject", Lang::En);
        let swedish = templates.message("invite.subject", Lang::Sv);
        assert!(!english.is_empty() && english != swedish);
        let cases = [
            (None, english),
            (Some("en"), english),
            (Some("de-DE"), english),
            (Some("sv"), swedish),
            (Some("sv-SE"), swedish),
        ];
        for (lang, subject) in cases {
            let mail = invitation_mail(&templates, "a@b.example", &invitation(lang));
            assert_eq!(mail.subject, subject, "{lang:?}");
        }
    }

    #[test]
    fn an_invitation_carries_the_link_case_sender_note_and_expiry() {
        let templates = Templates::embedded();
        let mail = invitation_mail(&templates, "a@b.example", &invitation(Some("sv")));
        assert_eq!(mail.to, "a@b.example");
        assert!(
            mail.text.contains("\nhttps://share.example.org/s/x.y.z\n"),
            "{}",
            mail.text
        );
        assert!(mail.text.contains("42"));
        assert!(mail.text.contains("dr.lind"));
        assert!(
            mail.text.contains("second opinion\n"),
            "notes stay on one line: {}",
            mail.text
        );
        assert!(
            mail.text.contains("2027-01-15 08:00:00 UTC"),
            "{}",
            mail.text
        );
    }

    #[test]
    fn without_sender_or_note_those_sections_are_left_out() {
        let templates = Templates::embedded();
        let mut with = invitation(None);
        with.note = Some("see the video");
        let mut bare = invitation(None);
        bare.sender = None;
        bare.note = Some(" \n");
        let full = invitation_mail(&templates, "a@b.example", &with).text;
        let short = invitation_mail(&templates, "a@b.example", &bare).text;
        assert!(full.contains("dr.lind") && full.contains("see the video"));
        assert!(!short.contains("dr.lind"));
        assert!(short.lines().count() < full.lines().count(), "{short}");
        assert!(short.contains("https://share.example.org/s/x.y.z"));
    }
}
