//! The request path, top to bottom:
//! `canonicalise(target)` -> `admit` (`admit.rs`: the sharing switch -> `authenticate` (link or
//! cookie -> `Guest`, then the store: revoked?) -> `authorise(guest, method, target)`) ->
//! `rewrite_request` -> `forward` -> `sanitise_response`.
//!
//! [`Gateway`] is one immutable snapshot of everything the path needs, built from a validated config.
//! `handle` never fails: it turns any [`GatewayError`] into the recipient's page and logs it once.

mod admit;
mod answer;
mod authenticate;
mod build;
mod error;
mod form;
mod forward;
mod framing;
mod link_exchange;
mod mint;
mod origin;
mod session_cookies;
mod session_memo;
mod settings;
mod share_context;
mod verify_routes;

use std::collections::HashSet;
use std::net::IpAddr;
use std::pin::pin;
use std::sync::Arc;

use http::header::HeaderValue;
use http::{HeaderMap, Request};
use http_body_util::BodyExt;
use tracing::{info, warn};

pub use admit::Admission;
pub use answer::{Answer, boxed_answer};
pub use build::BuildError;
pub use error::GatewayError;
pub use mint::{LinkMinter, MintError, MintedLink, ShareRequest};
pub use session_cookies::session_cookie_name;
pub use session_memo::{GuestSession, SessionMemo};
pub use settings::{LinkSettings, SessionSettings};
pub use share_context::ShareContext;
pub use verify_routes::VerifyRoute;

use self::forward::Route;
use crate::access_log::{AccessRecord, RequestBody};
use crate::caught_panic::CatchPanic;
use crate::clock::unix_now;
use crate::mail::Mailer;
use crate::metrics::{self, Metrics};
use crate::pages::{self, Lang, PageChoice, Templates};
use crate::policy::{CanonicalTarget, Policy, ScopeNameHasher, canonicalise_text};
use crate::proxy::cidr::TrustedProxies;
use crate::proxy::client::ClientSettings;
use crate::proxy::client_address::ClientAddress;
use crate::proxy::request::Origin;
use crate::proxy::response::PublicOrigin;
use crate::proxy::upstream::Upstream;
use crate::server::ConnectionInfo;
use crate::share::KeyRing;
use crate::share::token::LinkError;
use crate::state::StateStore;
use crate::verify::{CodeStore, VerifySettings};

/// One immutable snapshot of the gateway's configuration, shared by all connections.
pub struct Gateway {
    keys: Arc<KeyRing>,
    policy: Arc<Policy>,
    links: LinkSettings,
    session: SessionSettings,
    passthrough: bool,
    upstream: Upstream,
    /// Timeouts for the upstream; the connections are the worker's (`ConnectionInfo::upstream`).
    client: ClientSettings,
    public: PublicOrigin,
    public_host: HeaderValue,
    max_body_bytes: u64,
    /// A WebSocket tunnel with no bytes moving for this long is closed (the listener's idle timeout).
    tunnel_idle_timeout: std::time::Duration,
    /// Scopes whose `pin_language` is on: the share's lang is sent upstream as Accept-Language.
    language_pinned_scopes: HashSet<String, ScopeNameHasher>,
    /// `[links] enabled`: the organisation's switch for external sharing.
    sharing_enabled: bool,
    minter: mint::LinkMinter,
    /// Every page a recipient can see, in every language, with the operator's overrides.
    templates: Arc<Templates>,
    /// Revocations are looked up here on every link and guest request, and uses recorded.
    store: Arc<StateStore>,
    /// Scopes with `verify_email`: their guests type a mailed code before reaching the case.
    verify_scopes: Arc<HashSet<String>>,
    verify: VerifySettings,
    /// Pending codes and abuse counters, shared between snapshots.
    codes: Arc<dyn CodeStore>,
    /// Sends the codes; `None` only when no scope verifies (validation sees to that).
    mailer: Option<Mailer>,
    /// `[links] login_url`, offered on the verification pages.
    login_url: Option<String>,
    /// Shared with the listener and the admin API; outlives this snapshot.
    metrics: Arc<Metrics>,
    /// `[server] trusted_proxies`: whose `X-Forwarded-For` names the client.
    trusted_proxies: TrustedProxies,
    /// `[server] hsts`: sent on every response over TLS or under an https `public_url`.
    hsts: Option<HeaderValue>,
}

impl Gateway {
    /// Whether the organisation allows external sharing (`[links] enabled`). When it does not,
    /// every link and guest session is refused, and the admin API creates no shares.
    pub fn sharing_enabled(&self) -> bool {
        self.sharing_enabled
    }

    /// Where the upstream listens (host and port), for the readiness probe.
    pub fn upstream_address(&self) -> (&str, u16) {
        self.upstream.connect_address()
    }

    /// Sends verification codes and invitations; `None` when the config has no `[mail]`.
    pub fn mailer(&self) -> Option<&Mailer> {
        self.mailer.as_ref()
    }

    /// Pending codes, abuse counters and invitation cooldowns: shared by every snapshot, and by
    /// every replica when it is kept in Redis.
    pub fn codes(&self) -> &Arc<dyn CodeStore> {
        &self.codes
    }

    /// Whom a request from `peer` is from: `peer`, unless it is one of `[server] trusted_proxies`
    /// and its `X-Forwarded-For` names someone (see `proxy::client_address`).
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> ClientAddress {
        ClientAddress::resolve(peer, headers, &self.trusted_proxies)
    }

    /// Whether `peer` is one of `[server] trusted_proxies`: a load balancer carries many clients,
    /// so the per-address connection cap does not apply to it.
    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.contains(peer)
    }

    /// The `Strict-Transport-Security` value for a response on a connection (`tls`: whether it
    /// arrived over casegate's own TLS); `None` over plain http with an http `public_url`, or
    /// when `[server] hsts = false`.
    pub fn hsts(&self, tls: bool) -> Option<&HeaderValue> {
        self.hsts.as_ref().filter(|_| tls || self.public.is_https())
    }

    /// The metrics every request of this gateway is counted in.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Serves one request. Never fails: errors become pages (HTML or JSON, as the client prefers).
    /// `record` receives what the access log says about the request: path, share, decision.
    ///
    /// The request comes boxed: it goes down through `handle_inner` to `forward`, and each of
    /// those calls (and the future made of it) copied its 328 bytes when it was passed by value.
    pub async fn handle(
        &self,
        request: Box<Request<RequestBody>>,
        connection: &ConnectionInfo,
        record: &mut AccessRecord,
    ) -> Box<Answer> {
        let method = request.method().clone();
        let started = record.started();
        let mut context = ShareContext::default();
        let handled = {
            let handling = pin!(self.handle_inner(request, connection, &mut context, record));
            CatchPanic::new(handling).await
        };
        match handled.unwrap_or(Err(GatewayError::Panicked)) {
            Ok(answer) => {
                // Left by `forward`; requests the gateway answered itself waited on no upstream.
                let wait = record.upstream().unwrap_or_default();
                let answered = record.answered().unwrap_or_else(std::time::Instant::now);
                self.metrics.record_request(
                    metrics::Decision::Allowed,
                    answered.saturating_duration_since(started),
                    Some(wait),
                );
                record.set_allowed();
                answer
            }
            Err(error) => {
                let page = error.page();
                let decision = metrics::Decision::of(&error);
                record.set_refused(decision.as_str(), page.code());
                // The path is not logged here: under the link prefix it is the token itself.
                if error.is_failure() {
                    warn!(peer = %connection.peer, client = %connection.client.ip, %method, code = page.code(), %error, "request failed");
                } else {
                    info!(peer = %connection.peer, client = %connection.client.ip, %method, code = page.code(), %error, "request refused");
                }
                // Read by whoever refused the request; none after a panic (the default: HTML).
                let choice = context.page.take().unwrap_or_default();
                let lang = context
                    .lang
                    .unwrap_or_else(|| Lang::choose(None, choice.accept_language.as_ref()));
                let mut response = pages::render(&self.templates, page, lang, choice.wants_json)
                    .map(|body| body.map_err(|never| match never {}).boxed());
                if error.ends_session() {
                    // A revoked cookie is dropped by the browser, so it is not sent again.
                    self.session
                        .append_clears(response.headers_mut(), &context.dead_cookies);
                }
                // An upstream that failed leaves no measured wait: only the total is observed.
                let upstream_failed = matches!(
                    error,
                    GatewayError::Upstream(_) | GatewayError::UnexpectedSwitch
                );
                let wait = (!upstream_failed).then_some(std::time::Duration::ZERO);
                self.metrics
                    .record_request(decision, started.elapsed(), wait);
                boxed_answer(response)
            }
        }
    }

    /// `context` learns the share's language once a verified link or cookie names it, so even a
    /// refusal after that point (revoked, not allowed) is in the share's language, which of our
    /// cookies a refusal drops, and, from whoever refuses the request, the fields its page is
    /// written from.
    async fn handle_inner(
        &self,
        request: Box<Request<RequestBody>>,
        connection: &ConnectionInfo,
        context: &mut ShareContext,
        record: &mut AccessRecord,
    ) -> Result<Box<Answer>, GatewayError> {
        let now = unix_now();
        let target = match self.target_of(&request, record) {
            Ok(target) => target,
            Err(error) => return Err(refusing(error, &request, context)),
        };
        let admission = match self.admit(&request, &target, connection, now, context, record) {
            Ok(admission) => admission,
            Err(error) => return Err(refusing(error, &request, context)),
        };
        match admission {
            Admission::Link(token) => self
                .exchange_link(token, request.headers(), now, context, record)
                .map(boxed_answer)
                .map_err(|error| refusing(error, &request, context)),
            Admission::Verify(route) => {
                // Read before the form consumes the request: these requests are few.
                context.page = Some(PageChoice::of(request.headers()));
                self.verify_route(route, *request, connection, now, context, record)
                    .await
                    .map(boxed_answer)
            }
            Admission::VerifyFirst(session) => self
                .verification_required(&request, &session.guest)
                .map(boxed_answer)
                .map_err(|error| refusing(error, &request, context)),
            Admission::Guest {
                session,
                pin_language,
                upgrade,
            } => {
                let route = Route::Guest {
                    session: &session,
                    pin_language,
                };
                let page = &mut context.page;
                self.forward(request, route, upgrade, connection, now, page, record)
                    .await
            }
            Admission::Passthrough { upgrade } => {
                let route = Route::Passthrough;
                let page = &mut context.page;
                self.forward(request, route, upgrade, connection, now, page, record)
                    .await
            }
        }
    }

    /// The request's target, canonical; refused when it is not one casegate judges.
    fn target_of<'r>(
        &self,
        request: &'r Request<RequestBody>,
        record: &mut AccessRecord,
    ) -> Result<CanonicalTarget<'r>, GatewayError> {
        let raw_target = request
            .uri()
            .path_and_query()
            .map(|target| target.as_str())
            .ok_or(GatewayError::NoPath)?;
        // HTTP/1 absolute-form carries a scheme in the request line; HTTP/2 always has one (from
        // :scheme), which is why only the HTTP/1 case is refused here.
        if request.version() < http::Version::HTTP_2 && request.uri().scheme().is_some() {
            return Err(GatewayError::BadTarget(
                crate::policy::TargetError::NotOriginForm,
            ));
        }
        canonicalise_text(raw_target).map_err(|error| {
            // Under the link prefix, a target refused here is a link with something stuck to it
            // (a full stop or slash after it, pasted from a mail) or cut short: the recipient is
            // told the link is damaged, not that their browser sent nonsense.
            if raw_target.starts_with(self.links.prefix.as_str()) {
                // Logged as every link is: the prefix, never the token.
                record.set_path(self.links.prefix.as_str());
                GatewayError::Link(LinkError::Malformed)
            } else {
                GatewayError::BadTarget(error)
            }
        })
    }

    fn origin<'a>(&'a self, connection: &'a ConnectionInfo) -> Origin<'a> {
        Origin {
            forwarded_for: &connection.client.forwarded_for,
            https: connection.tls,
            public_host: &self.public_host,
        }
    }
}

/// `error`, with the request's fields a refusal's page is written from noted in `context`.
fn refusing(
    error: GatewayError,
    request: &Request<RequestBody>,
    context: &mut ShareContext,
) -> GatewayError {
    context.page = Some(PageChoice::of(request.headers()));
    error
}
