//! The pages' one stylesheet and the Content-Security-Policy that allows exactly it.

/// Inline, so a page needs nothing else from the network. Large tap targets and full-width
/// inputs keep the forms usable on a phone.
///
/// The CSPs below allow exactly this text by its hash; `csp_hash_matches_the_inline_style`
/// fails if one changes without the other.
pub const STYLE: &str = concat!(
    ":root{color-scheme:light dark;font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;line-height:1.5}",
    "body{margin:0;padding:1.5rem 1rem;background:Canvas;color:CanvasText}",
    "main{max-width:32rem;margin:10vh auto 0}",
    "h1{font-size:1.5rem;line-height:1.25;margin:0 0 1rem}",
    "p{font-size:1.0625rem;margin:0 0 1rem}",
    "form{margin:0 0 1.5rem}",
    "label{display:block;font-weight:600;margin:0 0 .5rem}",
    "input{box-sizing:border-box;width:100%;min-height:3rem;font-size:1.5rem;letter-spacing:.2em;padding:.5rem .75rem;margin:0 0 1rem;border:2px solid GrayText;border-radius:.5rem}",
    "button{min-height:3rem;width:100%;font-size:1.0625rem;font-weight:600;padding:.75rem 1rem;border:0;border-radius:.5rem;background:LinkText;color:Canvas}",
    "button.secondary{background:transparent;color:LinkText;border:2px solid LinkText}",
    "a{color:LinkText}",
    ".code{font-size:.875rem;opacity:.7}",
);

/// For pages without forms: nothing may load, run, submit or frame; only the style may apply.
pub const CSP: &str = "default-src 'none'; style-src 'sha256-/04Eht6cToDw7iVkTzNGari6fdTSZeEtCsn4ZWOoT1c='; \
                       base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// For pages with forms (verification): the same, but forms may post back to the gateway.
pub const CSP_WITH_FORMS: &str = "default-src 'none'; style-src 'sha256-/04Eht6cToDw7iVkTzNGari6fdTSZeEtCsn4ZWOoT1c='; \
                                  base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use sha2::{Digest, Sha256};

    #[test]
    fn csp_hash_matches_the_inline_style() {
        let hash = STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
        for csp in [CSP, CSP_WITH_FORMS] {
            assert!(
                csp.contains(&format!("'sha256-{hash}'")),
                "update the CSPs to sha256-{hash}"
            );
        }
    }

    #[test]
    fn the_two_policies_differ_only_in_where_forms_may_post() {
        assert_eq!(
            CSP.replace("form-action 'none'", "form-action 'self'"),
            CSP_WITH_FORMS
        );
    }
}
