//! The endpoints: create, list, show and revoke shares, and revoke a whole case. Each handler
//! judges its input, makes the one store call that does the work (durable before it answers),
//! and logs what the client did, by name, without any token.

use bytes::Bytes;
use http::header::{HeaderValue, LOCATION};
use http::{HeaderMap, Response, StatusCode};
use serde::Serialize;
use tracing::info;

use super::AdminApi;
use super::auth::Client;
use super::body;
use super::create_request::CreateShare;
use super::error::ApiError;
use super::issue_time::issue_time;
use super::query::ListFilter;
use super::respond::{self, ApiBody};
use crate::clock::unix_now;
use crate::gateway::{MintError, ShareRequest};
use crate::metrics::{StateWrite, timed_state_write};
use crate::state::{NewShare, RevokeOutcome, ShareStatus, ShareView};

/// The answer to a create: the share as `GET /v1/shares/{id}` shows it, plus the link. The only
/// answer that ever carries a token.
#[derive(Serialize)]
struct CreatedShare<'a> {
    url: &'a str,
    token: &'a str,
    #[serde(flatten)]
    share: &'a ShareView,
}

#[derive(Serialize)]
struct ShareList<'a> {
    shares: &'a [ShareView],
}

#[derive(Serialize)]
struct CaseRevoked<'a> {
    case: &'a str,
    not_before: i64,
    /// Known shares of the case that this call revoked (tokens minted elsewhere and never used
    /// are revoked too, but cannot be counted).
    revoked_shares: usize,
}

impl AdminApi {
    /// `POST /v1/shares`: mint a link and record the share before answering 201.
    pub(super) async fn create_share<B>(
        &self,
        client: &Client,
        headers: &HeaderMap,
        request_body: B,
    ) -> Result<Response<ApiBody>, ApiError>
    where
        B: hyper::body::Body<Data = Bytes> + Unpin,
        B::Error: Into<crate::proxy::BoxError>,
    {
        // One snapshot for the whole request, even if a reload lands halfway.
        let gateway = self.gateway();
        if !gateway.sharing_enabled() {
            return Err(ApiError::SharingDisabled);
        }
        let bytes = body::read_json(headers, request_body, self.max_body_bytes).await?;
        let ask = CreateShare::parse(&bytes)?;
        // Refused before anything is recorded: an invitation that cannot be sent makes no share.
        let invite = match ask.send_email {
            true => Some(self.invitation_mailer(&gateway, ask.email.as_deref())?),
            false => None,
        };
        // Unknown before not permitted: a client's scopes are all configured, so the other
        // order would never say that a scope does not exist.
        if !gateway.scope_exists(&ask.scope) {
            return Err(ApiError::Mint(MintError::UnknownScope));
        }
        if !client.may_share(&ask.scope) {
            return Err(ApiError::ScopeNotPermitted);
        }
        let now = issue_time(&self.store, &ask.case).await?;
        let link = gateway.mint_link(
            &ShareRequest {
                case: &ask.case,
                scope: &ask.scope,
                ttl: ask.ttl,
                email: ask.email.as_deref(),
                lang: ask.lang.as_deref(),
            },
            now,
        )?;
        let create = self.store.create(NewShare {
            id: link.share_id.clone(),
            case: ask.case,
            scope: ask.scope,
            issued_at: now,
            expires_at: link.expires_at,
            email: ask.email,
            lang: ask.lang,
            note: ask.note,
            created_by: ask.created_by,
            client: client.name().to_owned(),
        });
        timed_state_write(gateway.metrics(), StateWrite::CreateShare, create).await?;
        let share = self
            .store
            .share(&link.share_id, now)
            .ok_or(ApiError::ShareMissingAfterWrite)?;
        info!(
            client = client.name(),
            action = "create_share",
            share = %link.share_id,
            case = %link.case,
            scope = %link.scope,
            expires_at = link.expires_at,
            "share created"
        );
        let created = CreatedShare {
            url: &link.url,
            token: &link.token,
            share: &share,
        };
        if let Some((mailer, to)) = invite {
            // A revoke of the case racing this create can leave the share revoked: its link is
            // not worth a mail.
            if !share.status.is_live() {
                return Err(ApiError::ShareNotActive(Some(share.status)));
            }
            self.invite_new_share(&mailer, client, &to, &link, &share)
                .await
                .map_err(|error| ApiError::MailFailed {
                    error,
                    share: serde_json::to_value(&created).ok().map(Box::new),
                })?;
        }
        let mut response = respond::json(StatusCode::CREATED, &created);
        // Share ids are [A-Za-z0-9_-], always a valid header value.
        if let Ok(location) = HeaderValue::try_from(format!("/v1/shares/{}", link.share_id)) {
            response.headers_mut().insert(LOCATION, location);
        }
        Ok(response)
    }

    /// `GET /v1/shares?case=&status=`: newest first.
    pub(super) fn list_shares(
        &self,
        client: &Client,
        query: Option<&str>,
    ) -> Result<Response<ApiBody>, ApiError> {
        let filter = ListFilter::parse(query)?;
        if filter
            .case
            .is_some_and(|case| !self.gateway().is_valid_case(case))
        {
            return Err(ApiError::InvalidCase);
        }
        let shares = self.store.list(filter.case, filter.status, unix_now());
        info!(
            client = client.name(),
            action = "list_shares",
            case = filter.case,
            status = filter.status.map(ShareStatus::as_str),
            count = shares.len(),
            "shares listed"
        );
        Ok(respond::json(
            StatusCode::OK,
            &ShareList { shares: &shares },
        ))
    }

    /// `GET /v1/shares/{id}`.
    pub(super) fn get_share(
        &self,
        client: &Client,
        id: &str,
    ) -> Result<Response<ApiBody>, ApiError> {
        let share = self
            .store
            .share(id, unix_now())
            .ok_or(ApiError::ShareNotFound)?;
        info!(
            client = client.name(),
            action = "get_share",
            share = id,
            "share shown"
        );
        Ok(respond::json(StatusCode::OK, &share))
    }

    /// `DELETE /v1/shares/{id}`: revoked once the store has it on disk; idempotent, and an id
    /// never seen (a token minted elsewhere) is revoked all the same.
    pub(super) async fn revoke_share(
        &self,
        client: &Client,
        id: &str,
    ) -> Result<Response<ApiBody>, ApiError> {
        let now = unix_now();
        let revoke = self.store.revoke_share(id, now);
        let outcome =
            timed_state_write(self.gateway().metrics(), StateWrite::RevokeShare, revoke).await?;
        let share = self
            .store
            .share(id, now)
            .ok_or(ApiError::ShareMissingAfterWrite)?;
        info!(
            client = client.name(),
            action = "revoke_share",
            share = id,
            case = share.case.as_deref(),
            already_revoked = matches!(outcome, RevokeOutcome::AlreadyRevoked),
            "share revoked"
        );
        Ok(respond::json(StatusCode::OK, &share))
    }

    /// `POST /v1/cases/{case}/revoke`: every credential of the case issued up to now is refused
    /// from the answer on, including tokens minted outside the API.
    pub(super) async fn revoke_case(
        &self,
        client: &Client,
        case: &str,
    ) -> Result<Response<ApiBody>, ApiError> {
        if !self.gateway().is_valid_case(case) {
            return Err(ApiError::InvalidCase);
        }
        let now = unix_now();
        let live_before: Vec<String> = self
            .store
            .list(Some(case), None, now)
            .into_iter()
            .filter(|share| share.status != ShareStatus::Revoked)
            .map(|share| share.id)
            .collect();
        let revoke = self.store.revoke_case(case, now);
        let not_before =
            timed_state_write(self.gateway().metrics(), StateWrite::RevokeCase, revoke).await?;
        let revoked_shares = live_before
            .iter()
            .filter(|id| {
                self.store
                    .share(id, now)
                    .is_some_and(|share| share.status == ShareStatus::Revoked)
            })
            .count();
        info!(
            client = client.name(),
            action = "revoke_case",
            case,
            not_before,
            revoked_shares,
            "case revoked"
        );
        Ok(respond::json(
            StatusCode::OK,
            &CaseRevoked {
                case,
                not_before,
                revoked_shares,
            },
        ))
    }
}
