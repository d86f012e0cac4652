//! The recipient's address as pages show it: enough to recognise it as one's own, not enough to
//! learn it from a forwarded link (`jane@clinic.example` -> `j***@clinic.example`).

/// The first character of the local part, `***`, and the whole domain. Control characters never
/// get here: link emails are checked when the token is verified.
pub fn mask_email(email: &str) -> String {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return "***".to_owned();
    };
    let first = local.chars().next().map(String::from).unwrap_or_default();
    format!("{first}***@{domain}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_letter_and_the_domain_are_shown() {
        let cases = [
            ("jane.doe@clinic.example", "j***@clinic.example"),
            ("j@clinic.example", "j***@clinic.example"),
            ("\"a@b\"@clinic.example", "\"***@clinic.example"),
            ("åsa@klinik.example", "å***@klinik.example"),
            ("no-at-sign", "***"),
        ];
        for (email, masked) in cases {
            assert_eq!(mask_email(email), masked, "{email}");
        }
    }
}
