//! Invitations: emailing a share's link to its recipient, when it is created with
//! `"send_email": true` and again on `POST /v1/shares/{id}/resend`. A mail goes out only after
//! the share is durable, at most once per share per cooldown, and a failure reaches the caller
//! (502 `mail_failed`), never just the log.

use std::time::Instant;

use http::{Response, StatusCode};
use tracing::info;

use super::AdminApi;
use super::auth::Client;
use super::error::ApiError;
use super::respond::{self, ApiBody};
use crate::clock::unix_now;
use crate::gateway::MintError;
use crate::mail::{Invitation, MailError, Mailer, invitation_mail};
use crate::share::LinkClaims;
use crate::state::{ShareStatus, ShareView};

impl AdminApi {
    /// The mailer for an invitation to `email`, or why there can be none.
    pub(super) fn invitation_mailer(&self, email: Option<&str>) -> Result<&Mailer, ApiError> {
        if email.is_none() {
            return Err(ApiError::EmailRequired);
        }
        self.mailer.as_ref().ok_or(ApiError::MailNotConfigured)
    }

    /// Mails `url` to the share's recipient in the share's language. Holds the share's cooldown
    /// while sending and gives it back if the mail was not sent.
    pub(super) async fn send_invitation(
        &self,
        mailer: &Mailer,
        client: &Client,
        url: &str,
        share: &ShareView,
    ) -> Result<(), MailError> {
        let (Some(to), Some(case), Some(expires_at)) = (
            share.email.as_deref(),
            share.case.as_deref(),
            share.expires_at,
        ) else {
            // Callers check these first; a share without them is never mailed.
            return Ok(());
        };
        let mail = invitation_mail(
            self.gateway.templates(),
            to,
            &Invitation {
                url,
                case,
                expires_at,
                lang: share.lang.as_deref(),
                sender: share.created_by.as_deref(),
                note: share.note.as_deref(),
            },
        );
        // A new share has no earlier send: the reservation always succeeds and starts its
        // cooldown, so a resend right after the create is refused as too soon.
        let reservation = self.invite_cooldown.reserve(&share.id, Instant::now());
        let result = mailer.send(mail).await;
        match (result, reservation) {
            (Ok(()), _) => {
                info!(client = client.name(), action = "send_invitation", share = %share.id, "invitation sent");
                Ok(())
            }
            (Err(error), Ok(reservation)) => {
                self.invite_cooldown.release(reservation);
                Err(error)
            }
            (Err(error), Err(_)) => Err(error),
        }
    }

    /// `POST /v1/shares/{id}/resend`: re-signs the recorded share (same id, case, scope, iat, exp,
    /// email, lang) with the active key and mails the link again.
    pub(super) async fn resend_share(
        &self,
        client: &Client,
        id: &str,
    ) -> Result<Response<ApiBody>, ApiError> {
        if !self.gateway.sharing_enabled() {
            return Err(ApiError::SharingDisabled);
        }
        let now = unix_now();
        let share = self.store.share(id, now).ok_or(ApiError::ShareNotFound)?;
        let claims = resendable_claims(&share)?;
        let mailer = self.invitation_mailer(share.email.as_deref())?;
        if !self.gateway.scope_exists(&claims.scope) {
            return Err(ApiError::Mint(MintError::UnknownScope));
        }
        if !client.may_share(&claims.scope) {
            return Err(ApiError::ScopeNotPermitted);
        }
        let reservation = self
            .invite_cooldown
            .reserve(id, Instant::now())
            .map_err(|retry_after| ApiError::ResendTooSoon { retry_after })?;
        let link = self.gateway.sign_link(claims);
        let mail = invitation_mail(
            self.gateway.templates(),
            share.email.as_deref().unwrap_or_default(),
            &Invitation {
                url: &link.url,
                case: &link.case,
                expires_at: link.expires_at,
                lang: share.lang.as_deref(),
                sender: share.created_by.as_deref(),
                note: share.note.as_deref(),
            },
        );
        if let Err(error) = mailer.send(mail).await {
            self.invite_cooldown.release(reservation);
            return Err(ApiError::MailFailed { error, share: None });
        }
        info!(
            client = client.name(),
            action = "resend_invitation",
            share = id,
            case = %link.case,
            "invitation sent again"
        );
        Ok(respond::json(StatusCode::OK, &share))
    }
}

/// The claims a recorded share's link carried, if it may be sent again: not revoked, not
/// expired, with a recipient.
fn resendable_claims(share: &ShareView) -> Result<LinkClaims, ApiError> {
    if matches!(share.status, ShareStatus::Revoked | ShareStatus::Expired) {
        return Err(ApiError::ShareNotActive(Some(share.status)));
    }
    let (Some(case), Some(scope), Some(issued_at), Some(expires_at)) = (
        share.case.clone(),
        share.scope.clone(),
        share.created_at,
        share.expires_at,
    ) else {
        return Err(ApiError::ShareNotActive(None));
    };
    if share.email.is_none() {
        return Err(ApiError::EmailRequired);
    }
    Ok(LinkClaims {
        share_id: share.id.clone(),
        case,
        scope,
        issued_at,
        expires_at,
        not_before: None,
        email: share.email.clone(),
        lang: share.lang.clone(),
    })
}
