//! What a request is and whether it may go on: everything the request path decides before it
//! does any IO. The sharing switch, the credential (link or cookie), the store's word on
//! revocation, email verification, the policy, the origin check and the upgrade are settled
//! here; `mod.rs` then acts on the [`Admission`] (exchange a link, serve a verification page,
//! forward). Kept apart from acting so that the decision is one function, which
//! `benches/guest_request.rs` measures as the gateway runs it.

use std::sync::Arc;

use http::{Method, Request};

use super::Gateway;
use super::authenticate::{Chosen, open_guest};
use super::error::{Credential, GatewayError};
use super::framing::{
    RareFields, check_declared_body, check_host, is_bodiless, refuse_method_override_query,
};
use super::origin::comes_from_our_origin;
use super::session_cookies::{SessionCookies, carries_session_cookie, session_cookie_names};
use super::session_memo::GuestSession;
use super::share_context::ShareContext;
use super::verify_routes::VerifyRoute;
use crate::access_log::AccessRecord;
use crate::policy::{CanonicalTarget, Decision};
use crate::proxy::upgrade::{UpgradeAsk, upgrade_ask};
use crate::server::ConnectionInfo;
use crate::share::Guest;
use crate::share::token;

/// What the request path does with a request it did not refuse.
#[derive(Debug)]
pub enum Admission<'t> {
    /// A link (`/s/<token>`): exchanged for a guest cookie.
    Link(&'t str),
    /// One of the email verification routes under the link prefix.
    Verify(VerifyRoute),
    /// A guest whose scope verifies email and who has not yet: no route of the case, only the
    /// way to verify.
    VerifyFirst(Arc<GuestSession>),
    /// A guest's request the policy allows: forwarded.
    Guest {
        session: Arc<GuestSession>,
        /// The scope sends the share's language upstream as `Accept-Language`.
        pin_language: bool,
        /// The request switches to WebSocket, which the scope allows.
        upgrade: bool,
    },
    /// Staff traffic without a share session, with `passthrough` on: forwarded as it is.
    Passthrough { upgrade: bool },
}

impl Gateway {
    /// Decides `request`, whose target canonicalised to `target`. `context` learns the share's
    /// language once a verified cookie names it, and the cookies a refusal drops; `record` the
    /// path and the share. A guest's first request in a second records the share's use in the
    /// store.
    pub fn admit<'t, B>(
        &self,
        request: &Request<B>,
        target: &'t CanonicalTarget<'_>,
        connection: &ConnectionInfo,
        now: i64,
        context: &mut ShareContext,
        record: &mut AccessRecord,
    ) -> Result<Admission<'t>, GatewayError> {
        let via_trusted_proxy = self.trusted_proxies.contains(connection.peer.ip());
        check_host(request, &self.public, via_trusted_proxy)?;
        let rare = RareFields::of(request.headers());
        check_declared_body(request, rare)?;
        // Classified here, where the request's fields are known to hold no `Upgrade` at all
        // (nearly always), and judged below for a guest or for staff.
        let asked = match rare.upgrade {
            true => upgrade_ask(request),
            false => UpgradeAsk::None,
        };

        let link_token = target.path().strip_prefix(self.links.prefix.as_str());
        // Under the link prefix the rest of the path is the token: only the prefix is logged.
        record.set_path(match link_token {
            Some(_) => self.links.prefix.as_str(),
            None => target.path(),
        });
        // Decided before any credential is judged: with sharing off, none is worth the work
        // beyond finding the share's language, so the recipient is told in it.
        if !self.sharing_enabled
            && (link_token.is_some()
                || carries_session_cookie(request.headers(), &self.session.cookie_name))
        {
            context.learn_lang(self.credential_lang(request, link_token, now).as_deref());
            return Err(GatewayError::SharingDisabled);
        }

        if let Some(rest) = link_token {
            if let Some(route) = VerifyRoute::parse(rest) {
                return Ok(Admission::Verify(route));
            }
            if request.method() != Method::GET && request.method() != Method::HEAD {
                return Err(GatewayError::LinkMethod);
            }
            return Ok(Admission::Link(rest));
        }

        let base = &self.session.cookie_name;
        let cookies = match SessionCookies::read(request.headers(), base) {
            Ok(cookies) => cookies,
            Err(error) => {
                context.dead_cookies = session_cookie_names(request.headers(), base);
                return Err(error);
            }
        };
        if cookies.is_empty() {
            if !self.passthrough {
                return Err(GatewayError::NoSession);
            }
            // Staff applications may use WebSockets; other switches are refused for everyone.
            let upgrade = match asked {
                UpgradeAsk::None => false,
                UpgradeAsk::WebSocket => true,
                UpgradeAsk::Unsupported => return Err(GatewayError::UpgradeRefused),
            };
            return Ok(Admission::Passthrough { upgrade });
        }
        let method = request.method();
        let memo = &connection.shared.session_memo;
        let Chosen {
            cookie_name,
            session,
        } = self
            .choose_session(&cookies, method, target, memo, now)
            .map_err(|not_chosen| {
                context.dead_cookies = not_chosen.dead_cookies;
                context.learn_lang(not_chosen.lang.as_deref());
                not_chosen.error
            })?;
        self.admit_guest(request, asked, target, session, now, context, record)
            .inspect_err(|error| {
                if error.ends_session() {
                    context.dead_cookies = vec![cookie_name.to_owned()];
                }
            })
    }

    /// The rest of [`Gateway::admit`] for a guest, once the request's session is chosen. `asked`
    /// is the request's protocol switch, if any.
    #[allow(clippy::too_many_arguments)]
    fn admit_guest<'t, B>(
        &self,
        request: &Request<B>,
        asked: UpgradeAsk,
        target: &'t CanonicalTarget<'_>,
        session: Arc<GuestSession>,
        now: i64,
        context: &mut ShareContext,
        record: &mut AccessRecord,
    ) -> Result<Admission<'t>, GatewayError> {
        let guest = &session.guest;
        record.set_share(&guest.share_id, &guest.case, &guest.scope);
        context.lang = session.lang;
        // Checked on every request, so a revoke takes effect on the guest's next one.
        self.refuse_revoked(
            Credential::Cookie,
            &guest.share_id,
            &guest.case,
            guest.issued_at,
        )?;
        // Nothing of the case, not even a refusal naming a route, before the address is proven.
        if self.needs_verification(guest) {
            return Ok(Admission::VerifyFirst(session));
        }
        if session.first_request_in(now) {
            self.store.record_activity(&guest.share_id, now);
        }
        refuse_method_override_query(target)?;
        let pin_language = self.authorise(guest, request.method(), target)?;
        // After the policy would allow it, before anything reaches the case: a page of another
        // site must not act with the guest's cookie (see `origin.rs`).
        if !is_bodiless(request.method()) && !comes_from_our_origin(request.headers(), &self.public)
        {
            return Err(GatewayError::CrossSite);
        }
        let upgrade = self.guest_upgrade(asked, request, guest, target)?;
        Ok(Admission::Guest {
            session,
            pin_language,
            upgrade,
        })
    }

    /// The language of the share a request's link or first session cookie names, if it is
    /// genuine (its MAC checks out); nothing else about the credential is judged.
    fn credential_lang<B>(
        &self,
        request: &Request<B>,
        link_token: Option<&str>,
        now: i64,
    ) -> Option<String> {
        if let Some(token) = link_token {
            return token::authentic_lang(&self.keys, token);
        }
        let cookies = SessionCookies::read(request.headers(), &self.session.cookie_name).ok()?;
        let first = cookies.all().first()?;
        open_guest(first, &self.keys, now).ok()?.lang
    }

    /// Refuses a link or cookie whose share, or whole case, was revoked: one in-memory lookup, and
    /// an allocation only for the refusal. With shared state that has been out of reach for
    /// longer than `max_staleness`, a revocation made elsewhere may be missing from memory, so
    /// every credential is refused instead (fail closed).
    pub(super) fn refuse_revoked(
        &self,
        credential: Credential,
        share_id: &str,
        case: &str,
        issued_at: i64,
    ) -> Result<(), GatewayError> {
        if let Some(silent_for) = self.store.refuses_guests() {
            return Err(GatewayError::StateUnavailable {
                reason: format!(
                    "no word from the shared state store for {:.1}s, past [state] max_staleness",
                    silent_for.as_secs_f64()
                ),
            });
        }
        match self.store.revocation(share_id, case, issued_at) {
            None => Ok(()),
            Some(revocation) => Err(GatewayError::Revoked {
                credential,
                share_id: share_id.to_owned(),
                case: case.to_owned(),
                revocation,
            }),
        }
    }

    /// Whether the guest's request switches to WebSocket, which needs an `upgrade` rule of its scope.
    fn guest_upgrade<B>(
        &self,
        asked: UpgradeAsk,
        request: &Request<B>,
        guest: &Guest,
        target: &CanonicalTarget<'_>,
    ) -> Result<bool, GatewayError> {
        match asked {
            UpgradeAsk::None => Ok(false),
            UpgradeAsk::WebSocket
                if self.policy.allows_upgrade(
                    &guest.scope,
                    request.method().as_str(),
                    target,
                    &guest.case,
                    &guest.share_id,
                ) =>
            {
                Ok(true)
            }
            UpgradeAsk::WebSocket | UpgradeAsk::Unsupported => Err(GatewayError::UpgradeRefused),
        }
    }

    /// Asks the policy whether the guest's scope allows this request; answers whether the scope
    /// pins the share's language.
    pub(super) fn authorise(
        &self,
        guest: &Guest,
        method: &Method,
        target: &CanonicalTarget<'_>,
    ) -> Result<bool, GatewayError> {
        match self.policy.decide(
            &guest.scope,
            method.as_str(),
            target,
            &guest.case,
            &guest.share_id,
        ) {
            Decision::Allow => Ok(self.language_pinned_scopes.contains(&guest.scope)),
            Decision::DenyNoRule | Decision::DenyExplicit => Err(GatewayError::NotAllowed),
            Decision::UnknownScope => Err(GatewayError::UnknownScope),
        }
    }
}
