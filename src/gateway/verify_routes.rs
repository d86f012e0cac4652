//! Verified shares on the request path: the landing page where a guest asks for a code
//! (`GET {prefix}verify`), sending it (`POST {prefix}verify/send`), checking it
//! (`POST {prefix}verify/code`), and the gate that keeps an unverified guest of a `verify_email`
//! scope away from the upstream. A JWT always has two dots, these paths none, so they never
//! collide with a link.
//!
//! Both forms carry a token bound to the guest's session ([`crate::verify::csrf`]) and are refused
//! when the browser says they come from another origin. Every refusal and limit is decided before
//! anything is compared or mailed; no code, token or cookie is ever logged.

use std::cmp::Reverse;

use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tracing::{info, warn};

use super::Gateway;
use super::authenticate::{open_guest, open_guest_cookies};
use super::error::{Credential, FormRefusal, GatewayError};
use super::form::Form;
use super::origin::comes_from_our_origin;
use super::session_cookies::{SessionCookies, session_cookie_names};
use super::share_context::ShareContext;
use crate::access_log::{AccessRecord, RequestBody};
use crate::mail::OutgoingMail;
use crate::pages::{Lang, Vars};
use crate::proxy::{Body, empty_body};
use crate::server::ConnectionInfo;
use crate::share::{Guest, cookie};
use crate::verify::limits::Limited;
use crate::verify::mask::mask_email;
use crate::verify::{
    AttemptRefusal, ClientKey, Code, CodeMac, CodeStatus, CodeStoreUnavailable, PendingCode, csrf,
};

/// The verification paths, after the link prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyRoute {
    Landing,
    Send,
    Check,
}

impl VerifyRoute {
    pub(super) fn parse(rest: &str) -> Option<VerifyRoute> {
        match rest {
            "verify" => Some(VerifyRoute::Landing),
            "verify/send" => Some(VerifyRoute::Send),
            "verify/code" => Some(VerifyRoute::Check),
            _ => None,
        }
    }
}

/// A guest of a `verify_email` scope, not yet verified, with the address to verify.
struct Unverified {
    guest: Guest,
    email: String,
    lang: Lang,
}

impl Gateway {
    /// Whether this guest still has to prove their address before reaching the case.
    pub(super) fn needs_verification(&self, guest: &Guest) -> bool {
        !guest.email_verified && self.verify_scopes.contains(&guest.scope)
    }

    /// The answer to an unverified guest's request for the case: a navigation is sent to the
    /// landing page, anything else (fetches, API calls) gets 401 `email_not_verified`.
    pub(super) fn verification_required<B>(
        &self,
        request: &Request<B>,
        guest: &Guest,
    ) -> Result<Response<Body>, GatewayError> {
        info!(share = %guest.share_id, case = %guest.case, "guest has not verified their email yet");
        if is_navigation(request) {
            return self.redirect(&self.verify_path(VerifyRoute::Landing), None);
        }
        let lang = self.lang_for(guest, request.headers());
        // The landing page's own message says what is missing, in the share's language.
        let body = serde_json::json!({
            "error": {
                "code": "email_not_verified",
                "message": self.templates.message("verify.message", lang),
            }
        })
        .to_string();
        Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CACHE_CONTROL, "no-store")
            .header(header::CONTENT_LANGUAGE, lang.tag())
            .body(
                http_body_util::Full::new(bytes::Bytes::from(body))
                    .map_err(|never| match never {})
                    .boxed(),
            )
            .map_err(GatewayError::Internal)
    }

    pub(super) async fn verify_route(
        &self,
        route: VerifyRoute,
        request: Request<RequestBody>,
        connection: &ConnectionInfo,
        now: i64,
        context: &mut ShareContext,
        record: &mut AccessRecord,
    ) -> Result<Response<Body>, GatewayError> {
        let method = request.method().clone();
        let bodiless = method == Method::GET || method == Method::HEAD;
        match route {
            VerifyRoute::Landing if bodiless => {}
            VerifyRoute::Send | VerifyRoute::Check if method == Method::POST => {}
            VerifyRoute::Landing | VerifyRoute::Send | VerifyRoute::Check => {
                return Err(GatewayError::LinkMethod);
            }
        }
        let guest = self.guest_of(request.headers(), now, context)?;
        record.set_share(&guest.share_id, &guest.case, &guest.scope);
        context.learn_lang(guest.lang.as_deref());
        let landing = self.links.landing_for(&guest);
        let Some(unverified) = self.unverified(guest, request.headers()) else {
            // Verified already, or nothing to verify: the case is where they belong.
            return self.redirect(&landing, None);
        };
        let client = ClientKey::of(connection.client.ip);
        match route {
            VerifyRoute::Landing => self.landing(&unverified, client, now).await,
            VerifyRoute::Send => {
                self.check_origin(request.headers())?;
                let form = Form::read(request).await?;
                self.check_form_token(&unverified.guest, &form)?;
                self.send_code(&unverified, client, now).await
            }
            VerifyRoute::Check => {
                self.check_origin(request.headers())?;
                let form = Form::read(request).await?;
                self.check_form_token(&unverified.guest, &form)?;
                self.check_code(&unverified, form.get("code"), client, now)
                    .await
            }
        }
    }

    /// The session these pages are about: the only one, or, in a browser with sessions of
    /// several cases, the newest share still waiting for its address to be proven (else the
    /// newest). Checked against revocations like on any guest request.
    fn guest_of(
        &self,
        headers: &HeaderMap,
        now: i64,
        context: &mut ShareContext,
    ) -> Result<Guest, GatewayError> {
        let base = &self.session.cookie_name;
        let cookies = SessionCookies::read(headers, base).inspect_err(|_| {
            context.dead_cookies = session_cookie_names(headers, base);
        })?;
        let (name, guest) = match cookies.all() {
            [] => return Err(GatewayError::NoSession),
            [only] => {
                let guest = open_guest(only, &self.keys, now).inspect_err(|_| {
                    context.dead_cookies = vec![only.name.to_owned()];
                })?;
                (only.name, guest)
            }
            _ => {
                let mut opened = open_guest_cookies(&cookies, &self.keys, now);
                opened.sort_by_key(|(_, guest)| {
                    (!self.needs_verification(guest), Reverse(guest.issued_at))
                });
                opened.into_iter().next().ok_or(GatewayError::NoSession)?
            }
        };
        self.refuse_revoked(
            Credential::Cookie,
            &guest.share_id,
            &guest.case,
            guest.issued_at,
        )
        .inspect_err(|_| context.dead_cookies = vec![name.to_owned()])?;
        Ok(guest)
    }

    fn unverified(&self, guest: Guest, headers: &HeaderMap) -> Option<Unverified> {
        if !self.needs_verification(&guest) {
            return None;
        }
        // The link exchange refuses a verify_email link without an address, so a cookie of such
        // a scope always has one; should it not, there is nothing to verify against.
        let email = guest.email.clone()?;
        let lang = self.lang_for(&guest, headers);
        Some(Unverified { guest, email, lang })
    }

    /// `GET {prefix}verify`: the page that fits where the guest's code stands.
    async fn landing(
        &self,
        unverified: &Unverified,
        client: ClientKey,
        now: i64,
    ) -> Result<Response<Body>, GatewayError> {
        let share_id = &unverified.guest.share_id;
        let status = self
            .codes
            .status(share_id, now, &self.verify)
            .await
            .map_err(code_store_unavailable)?;
        match status {
            CodeStatus::NoCode => {
                self.verify_page(unverified, "verify", StatusCode::OK, |vars| vars)
            }
            CodeStatus::Pending { .. } => {
                self.verify_page(unverified, "code_sent", StatusCode::OK, |vars| vars)
            }
            CodeStatus::Expired => {
                self.verify_page(unverified, "code_expired", StatusCode::OK, |vars| vars)
            }
            CodeStatus::Exhausted => self.too_many_attempts(unverified, client, now).await,
        }
    }

    /// `POST {prefix}verify/send`: counts the send against every limit, then stores the code's MAC
    /// and mails the code. A mail that fails takes its code back.
    async fn send_code(
        &self,
        unverified: &Unverified,
        client: ClientKey,
        now: i64,
    ) -> Result<Response<Body>, GatewayError> {
        let guest = &unverified.guest;
        // Fail closed: a code is never sent while its limits cannot be counted.
        if let Err(limited) = self
            .codes
            .reserve_send(&guest.share_id, client, now, &self.verify)
            .await
            .map_err(code_store_unavailable)?
        {
            info!(share = %guest.share_id, case = %guest.case, %limited, "verification code not sent");
            return self.rate_limited(unverified, limited);
        }
        let code = Code::generate().map_err(|_| GatewayError::NoRandomness)?;
        let mac = code
            .mac(&self.keys, &guest.share_id)
            .ok_or(GatewayError::NoRandomness)?;
        self.codes
            .put_code(
                &guest.share_id,
                PendingCode {
                    mac: mac.clone(),
                    expires_at: now.saturating_add(self.verify.code_ttl_secs()),
                },
                now,
            )
            .await
            .map_err(code_store_unavailable)?;
        let minutes = ttl_minutes(self.verify.code_ttl_secs()).to_string();
        let text = self.templates.text(
            "code",
            unverified.lang,
            &Vars::new()
                .set("code", code.as_str())
                .set("code_ttl_minutes", minutes.as_str()),
        );
        let mail = OutgoingMail {
            to: unverified.email.clone(),
            subject: self
                .templates
                .message("code.subject", unverified.lang)
                .to_owned(),
            text,
        };
        let Some(mailer) = &self.mailer else {
            self.take_code_back(&guest.share_id, &mac).await;
            return Err(GatewayError::MailNotConfigured);
        };
        if let Err(error) = mailer.send(mail).await {
            self.take_code_back(&guest.share_id, &mac).await;
            return Err(GatewayError::Mail {
                share_id: guest.share_id.clone(),
                error,
            });
        }
        self.metrics.record_code_sent();
        info!(share = %guest.share_id, case = %guest.case, "verification code sent");
        self.redirect(&self.verify_path(VerifyRoute::Landing), None)
    }

    /// A code whose mail was not sent is forgotten, so the landing page does not say one was.
    /// Should the store be out of reach now, the code stays until it expires: nobody knows it,
    /// so it only costs the guest a wait for the resend cooldown.
    async fn take_code_back(&self, share_id: &str, mac: &CodeMac) {
        if let Err(error) = self.codes.drop_code(share_id, mac).await {
            warn!(share = %share_id, %error, "verification code whose mail failed not taken back");
        }
    }

    /// `POST {prefix}verify/code`: the guess is counted before it is compared; the right code is
    /// used up and the cookie comes back marked verified.
    async fn check_code(
        &self,
        unverified: &Unverified,
        typed: Option<&str>,
        client: ClientKey,
        now: i64,
    ) -> Result<Response<Body>, GatewayError> {
        let guest = &unverified.guest;
        // Fail closed: no guess is compared while it cannot be counted.
        let attempt = match self
            .codes
            .begin_attempt(&guest.share_id, client, now, &self.verify)
            .await
            .map_err(code_store_unavailable)?
        {
            Ok(attempt) => attempt,
            Err(AttemptRefusal::NoCode) => {
                return self.redirect(&self.verify_path(VerifyRoute::Landing), None);
            }
            Err(AttemptRefusal::Expired) => {
                return self.verify_page(
                    unverified,
                    "code_expired",
                    StatusCode::BAD_REQUEST,
                    |v| v,
                );
            }
            Err(AttemptRefusal::Exhausted) => {
                self.metrics.record_code_failed();
                info!(share = %guest.share_id, case = %guest.case, "code guess refused: no tries left");
                return self.too_many_attempts(unverified, client, now).await;
            }
            Err(AttemptRefusal::Limited(limited)) => {
                self.metrics.record_code_failed();
                info!(share = %guest.share_id, case = %guest.case, %limited, "code guess refused");
                return self.rate_limited(unverified, limited);
            }
        };
        // Something that is not six digits is wrong like any other guess, and counted like one.
        let right = typed
            .and_then(Code::parse)
            .is_some_and(|code| code.matches(&self.keys, &guest.share_id, &attempt.code.mac));
        if !right {
            self.metrics.record_code_failed();
            info!(share = %guest.share_id, case = %guest.case, attempts_left = attempt.attempts_left, "wrong verification code");
            if attempt.attempts_left == 0 {
                return self.too_many_attempts(unverified, client, now).await;
            }
            let left = attempt.attempts_left.to_string();
            return self.verify_page(unverified, "wrong_code", StatusCode::BAD_REQUEST, |vars| {
                vars.set("attempts_left", left)
            });
        }
        // The guess was right; a store that cannot record it now must not keep the guest out, and
        // the code expires on its own (within `code_ttl`).
        if let Err(error) = self
            .codes
            .code_used(&guest.share_id, client, &attempt.code.mac)
            .await
        {
            warn!(share = %guest.share_id, %error, "a used verification code could not be marked used");
        }
        let mut verified = guest.clone();
        verified.email_verified = true;
        // The address was needed to send the code; the long-lived verified cookie drops it, so it
        // stays as small as any other guest cookie.
        verified.email = None;
        let sealed = cookie::seal(&self.keys, &verified).map_err(GatewayError::Seal)?;
        let set_cookie =
            self.session
                .set_session_header(&verified, &sealed, verified.expires_at - now);
        self.metrics.record_code_verified();
        info!(share = %guest.share_id, case = %guest.case, "guest verified their email");
        self.redirect(&self.links.landing_for(&verified), Some(set_cookie))
    }

    /// A form posted from a page of any other origin is refused before its body is read
    /// (see `origin.rs`).
    fn check_origin(&self, headers: &HeaderMap) -> Result<(), GatewayError> {
        if comes_from_our_origin(headers, &self.public) {
            Ok(())
        } else {
            Err(GatewayError::FormRefused(FormRefusal::CrossOrigin))
        }
    }

    fn check_form_token(&self, guest: &Guest, form: &Form) -> Result<(), GatewayError> {
        match form.get("csrf") {
            None => Err(GatewayError::FormRefused(FormRefusal::MissingToken)),
            Some(token) if csrf::check(&self.keys, guest, token) => Ok(()),
            Some(_) => Err(GatewayError::FormRefused(FormRefusal::WrongToken)),
        }
    }

    async fn too_many_attempts(
        &self,
        unverified: &Unverified,
        client: ClientKey,
        now: i64,
    ) -> Result<Response<Body>, GatewayError> {
        let wait = self
            .codes
            .next_send_in(&unverified.guest.share_id, client, now, &self.verify)
            .await
            .map_err(code_store_unavailable)?
            .max(1);
        let minutes = ttl_minutes(wait).to_string();
        let mut response = self.verify_page(
            unverified,
            "too_many_attempts",
            StatusCode::TOO_MANY_REQUESTS,
            |vars| vars.set("retry_after_minutes", minutes),
        )?;
        set_retry_after(&mut response, wait);
        Ok(response)
    }

    fn rate_limited(
        &self,
        unverified: &Unverified,
        limited: Limited,
    ) -> Result<Response<Body>, GatewayError> {
        let seconds = limited.retry_after_secs.to_string();
        let back = self.verify_path(VerifyRoute::Landing);
        let mut response = self.verify_page(
            unverified,
            "rate_limited",
            StatusCode::TOO_MANY_REQUESTS,
            |vars| {
                vars.set("retry_after_seconds", seconds)
                    .set("back_url", back)
            },
        )?;
        set_retry_after(&mut response, limited.retry_after_secs);
        Ok(response)
    }

    /// Renders one of the verification pages with the variables every one of them may use.
    fn verify_page(
        &self,
        unverified: &Unverified,
        name: &str,
        status: StatusCode,
        extra: impl FnOnce(Vars<'_>) -> Vars<'_>,
    ) -> Result<Response<Body>, GatewayError> {
        let masked = mask_email(&unverified.email);
        let token = csrf::token(&self.keys, &unverified.guest);
        let send = self.verify_path(VerifyRoute::Send);
        let check = self.verify_path(VerifyRoute::Check);
        let ttl = ttl_minutes(self.verify.code_ttl_secs()).to_string();
        let form_action = if name == "verify" {
            send.clone()
        } else {
            check
        };
        let mut vars = Vars::new()
            .set("masked_email", masked)
            .set("form_action", form_action)
            .set("resend_action", send)
            .set("csrf", token)
            .set("code_ttl_minutes", ttl);
        if let Some(login_url) = &self.login_url {
            vars = vars.set("login_url", login_url.as_str());
        }
        let response = crate::pages::respond(
            &self.templates,
            status,
            name,
            unverified.lang,
            &extra(vars),
            false,
        );
        Ok(response.map(|body| body.map_err(|never| match never {}).boxed()))
    }

    fn lang_for(&self, guest: &Guest, headers: &HeaderMap) -> Lang {
        Lang::choose(guest.lang.as_deref(), headers.get(header::ACCEPT_LANGUAGE))
    }

    fn verify_path(&self, route: VerifyRoute) -> String {
        let rest = match route {
            VerifyRoute::Landing => "verify",
            VerifyRoute::Send => "verify/send",
            VerifyRoute::Check => "verify/code",
        };
        format!("{}{rest}", self.links.prefix)
    }

    /// A 303 to one of our own paths, on the public origin.
    pub(super) fn redirect(
        &self,
        path: &str,
        set_cookie: Option<String>,
    ) -> Result<Response<Body>, GatewayError> {
        let mut builder = Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(
                header::LOCATION,
                format!("{}{path}", self.public.as_url_prefix()),
            )
            .header(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
            .header(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
        if let Some(set_cookie) = set_cookie {
            builder = builder.header(header::SET_COOKIE, set_cookie);
        }
        builder.body(empty_body()).map_err(GatewayError::Internal)
    }
}

/// The codes store is out of reach: refuse (503, "temporarily unavailable") rather than send or
/// compare a code whose limits cannot be checked.
fn code_store_unavailable(error: CodeStoreUnavailable) -> GatewayError {
    GatewayError::StateUnavailable {
        reason: error.to_string(),
    }
}

/// A top-level page load the browser makes (a link followed, an address typed), which can be
/// redirected to a page; a script's fetch cannot make use of one.
fn is_navigation<B>(request: &Request<B>) -> bool {
    let method = request.method();
    (method == Method::GET || method == Method::HEAD)
        && request
            .headers()
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(|accept| accept.contains("text/html"))
}

/// Whole minutes, rounded up, at least one: "valid for 1 minute" rather than "0 minutes".
fn ttl_minutes(secs: i64) -> i64 {
    // Saturating: the seconds may come from the shared store (Redis), which is not trusted to
    // keep them sane.
    (secs.saturating_add(59) / 60).max(1)
}

fn set_retry_after(response: &mut Response<Body>, secs: i64) {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_three_verification_paths_are_routes() {
        let cases = [
            ("verify", Some(VerifyRoute::Landing)),
            ("verify/send", Some(VerifyRoute::Send)),
            ("verify/code", Some(VerifyRoute::Check)),
            ("verify/", None),
            ("Verify", None),
            ("verify/code/x", None),
            ("eyJhbGciOiJIUzI1NiJ9.e30.sig", None),
        ];
        for (rest, want) in cases {
            assert_eq!(VerifyRoute::parse(rest), want, "{rest}");
        }
    }

    #[test]
    fn navigations_are_page_loads_that_accept_html() {
        let cases = [
            (
                Method::GET,
                Some("text/html,application/xhtml+xml,*/*;q=0.8"),
                true,
            ),
            (Method::HEAD, Some("text/html"), true),
            (Method::GET, Some("application/json"), false),
            (Method::GET, None, false),
            (Method::POST, Some("text/html"), false),
        ];
        for (method, accept, want) in cases {
            let mut builder = Request::builder().method(method.clone()).uri("/cases/42");
            if let Some(accept) = accept {
                builder = builder.header(header::ACCEPT, accept);
            }
            let request = builder.body(()).unwrap();
            assert_eq!(is_navigation(&request), want, "{method} {accept:?}");
        }
    }

    #[test]
    fn minutes_are_rounded_up_and_never_zero() {
        for (secs, minutes) in [(1, 1), (59, 1), (60, 1), (61, 2), (300, 5), (0, 1)] {
            assert_eq!(ttl_minutes(secs), minutes, "{secs}");
        }
    }

    #[test]
    fn minutes_of_an_absurd_wait_from_the_store_do_not_overflow() {
        assert_eq!(ttl_minutes(i64::MAX), i64::MAX / 60);
        assert_eq!(ttl_minutes(i64::MIN), 1);
    }
}
