//! The guest: who a request is from once a link or cookie has been checked. Authentication
//! produces it; authorisation, header rewriting and pages only read it.

use super::token::LinkClaims;

/// A recipient of a share link, bound to one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    /// The link's `jti`, for revocation and audit.
    pub share_id: String,
    pub case: String,
    pub scope: String,
    pub lang: Option<String>,
    /// The address the link was sent to; kept only for shares that verify it.
    pub email: Option<String>,
    /// Unix seconds; the guest cookie never outlives the link.
    pub expires_at: i64,
    /// The link's `iat`, unix seconds: revoking a case refuses every guest whose link was issued
    /// at or before the revocation, so the cookie has to remember it.
    pub issued_at: i64,
    /// Whether the recipient proved control of the link's email address with a code.
    pub email_verified: bool,
}

impl Guest {
    /// The guest a verified link admits, before any email confirmation.
    pub fn from_link(claims: LinkClaims) -> Guest {
        Guest {
            share_id: claims.share_id,
            case: claims.case,
            scope: claims.scope,
            lang: claims.lang,
            email: claims.email,
            expires_at: claims.expires_at,
            issued_at: claims.issued_at,
            email_verified: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_admits_an_unverified_guest_for_its_case_remembering_when_it_was_issued() {
        let claims = LinkClaims {
            share_id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            case: "C-1".into(),
            scope: "read".into(),
            issued_at: 10,
            expires_at: 20,
            not_before: Some(11),
            email: Some("a@b.org".into()),
            lang: Some("fr".into()),
        };
        let want = Guest {
            share_id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            case: "C-1".into(),
            scope: "read".into(),
            lang: Some("fr".into()),
            email: Some("a@b.org".into()),
            expires_at: 20,
            issued_at: 10,
            email_verified: false,
        };
        assert_eq!(Guest::from_link(claims), want);
    }
}
