//! Reading what a browser would from casegate's answers: the cookie it set, the form token of a
//! verification page, the code in a mail.

use super::raw_client::RawResponse;

/// The `name=value` of the cookie a response sets.
pub fn cookie_of(response: &RawResponse) -> Option<String> {
    let set_cookie = response.header("set-cookie")?;
    Some(set_cookie.split(';').next()?.to_owned())
}

/// The `csrf` value of the form on a verification page.
pub fn form_token(html: &str) -> Option<String> {
    let start = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

/// The six-digit code in a mail's text.
pub fn code_in(body: &str) -> Option<String> {
    body.split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == 6)
        .map(str::to_owned)
}
