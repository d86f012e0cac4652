//! The languages recipient pages and emails exist in, and choosing one for a request: the share's
//! own language first, then the browser's Accept-Language, then English.

use http::HeaderValue;

/// A language every page, message and email exists in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lang {
    En,
    Sv,
}

/// Accept-Language is read up to this many entries; browsers send a handful, so more is noise
/// and the bound keeps a hostile header's cost fixed.
const MAX_ACCEPT_ENTRIES: usize = 32;

// === impl Lang ===

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Sv];

    /// The share's lang if it names a supported language (primary subtag, case-insensitive: "sv",
    /// "sv-SE"), else the best supported Accept-Language entry (q-values honoured, q=0 excluded),
    /// else English.
    pub fn choose(share_lang: Option<&str>, accept_language: Option<&HeaderValue>) -> Lang {
        share_lang
            .and_then(Lang::from_tag)
            .or_else(|| accept_language.and_then(|value| Lang::negotiate(value.as_bytes())))
            .unwrap_or(Lang::En)
    }

    /// The BCP 47 tag, as written in `lang` attributes and override directory names.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Sv => "sv",
        }
    }

    /// The supported language a tag's primary subtag names: "sv", "SV", "sv-SE", "sv_FI" are
    /// Swedish; "svx" or "" are nothing.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.split(['-', '_']).next().unwrap_or_default().trim();
        Lang::ALL
            .into_iter()
            .find(|lang| primary.eq_ignore_ascii_case(lang.tag()))
    }

    /// The supported language the client prefers most, from an Accept-Language value. Ties keep
    /// the header's order. `*` stands for English, the language every page is written in first.
    /// Anything unparsable is skipped, never an error: the header is only a hint.
    fn negotiate(header: &[u8]) -> Option<Lang> {
        let text = std::str::from_utf8(header).ok()?;
        let mut best: Option<(Lang, u16)> = None;
        for entry in text.split(',').take(MAX_ACCEPT_ENTRIES) {
            let mut parts = entry.split(';');
            let range = parts.next().unwrap_or_default().trim();
            let Some(weight) = weight(parts) else {
                continue;
            };
            let lang = if range == "*" {
                Some(Lang::En)
            } else {
                Lang::from_tag(range)
            };
            if let Some(lang) = lang
                && weight > 0
                && best.is_none_or(|(_, best_weight)| weight > best_weight)
            {
                best = Some((lang, weight));
            }
        }
        best.map(|(lang, _)| lang)
    }
}

/// The entry's q-value in thousandths (RFC 9110: `q=` then 0 or 1 with up to three decimals);
/// 1000 when absent, `None` when malformed so the entry is ignored.
fn weight<'a>(params: impl Iterator<Item = &'a str>) -> Option<u16> {
    let mut weight = 1000;
    for param in params {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("q") {
            return None;
        }
        weight = parse_qvalue(value.trim())?;
    }
    Some(weight)
}

fn parse_qvalue(value: &str) -> Option<u16> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |acc, digit| acc * 10 + u16::from(digit - b'0'));
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_name_languages_by_their_primary_subtag() {
        let table = [
            ("en", Some(Lang::En)),
            ("EN-gb", Some(Lang::En)),
            ("sv", Some(Lang::Sv)),
            ("sv-SE", Some(Lang::Sv)),
            ("sv_FI", Some(Lang::Sv)),
            ("Sv", Some(Lang::Sv)),
            ("svx", None),
            ("de-CH", None),
            ("", None),
            ("-sv", None),
        ];
        for (tag, expected) in table {
            assert_eq!(Lang::from_tag(tag), expected, "{tag:?}");
        }
    }

    #[test]
    fn qvalues_follow_the_rfc_grammar() {
        let table = [
            ("1", Some(1000)),
            ("1.000", Some(1000)),
            ("0", Some(0)),
            ("0.5", Some(500)),
            ("0.05", Some(50)),
            ("0.123", Some(123)),
            ("0.1234", None),
            ("1.5", None),
            ("2", None),
            ("-0.5", None),
            ("0.x", None),
            ("", None),
        ];
        for (text, expected) in table {
            assert_eq!(parse_qvalue(text), expected, "{text:?}");
        }
    }

    #[test]
    fn tags_round_trip() {
        for lang in Lang::ALL {
            assert_eq!(Lang::from_tag(lang.tag()), Some(lang));
        }
    }
}
