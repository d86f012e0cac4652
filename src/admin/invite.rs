//! Invitations: emailing a share's link to its recipient, when it is created with
//! `"send_email": true` and again on `POST /v1/shares/{id}/resend`. A mail goes out only after
//! the share is durable, at most once per share per [`INVITE_COOLDOWN`], and a failure reaches the
//! caller (502 `mail_failed`), never just the log.
//!
//! The cooldown is kept in the gateway's codes store ([`crate::verify::CodeStore::reserve_invite`]):
//! in memory for one gateway, in Redis for replicas, so a resend answered by one replica holds
//! on all of them.

use std::time::Duration;

use http::{Response, StatusCode};
use tracing::{info, warn};

use super::AdminApi;
use super::auth::Client;
use super::error::ApiError;
use super::respond::{self, ApiBody};
use crate::clock::unix_now;
use crate::gateway::{Gateway, MintError, MintedLink};
use crate::mail::{Invitation, MailError, Mailer, invitation_mail};
use crate::share::LinkClaims;
use crate::state::ShareView;
use crate::verify::InviteReservation;

/// At most one invitation mail per share this often, so a retrying client (or a stuck button)
/// cannot flood a recipient.
pub const INVITE_COOLDOWN: Duration = Duration::from_secs(30);

impl AdminApi {
    /// The mailer and the address for an invitation to `email`, or why there can be none.
    pub(super) fn invitation_mailer(
        &self,
        gateway: &Gateway,
        email: Option<&str>,
    ) -> Result<(Mailer, String), ApiError> {
        let email = email.ok_or(ApiError::EmailRequired)?;
        let mailer = gateway
            .mailer()
            .cloned()
            .ok_or(ApiError::MailNotConfigured)?;
        Ok((mailer, email.to_owned()))
    }

    /// Mails the link of a share just created and recorded. Its cooldown starts now, so a
    /// resend right after is refused as too soon. A new share has no earlier invitation, so the
    /// mail goes out even when the cooldown cannot be recorded (the share exists and its link is
    /// in the answer either way); a resend then is refused until the store is back.
    pub(super) async fn invite_new_share(
        &self,
        mailer: &Mailer,
        client: &Client,
        to: &str,
        link: &MintedLink,
        share: &ShareView,
    ) -> Result<(), MailError> {
        let gateway = self.gateway();
        let reservation = match gateway
            .codes()
            .reserve_invite(&link.share_id, unix_now(), INVITE_COOLDOWN)
            .await
        {
            Ok(Ok(reservation)) => Some(reservation),
            // A fresh random id with a running cooldown: someone else's clock or keys; the
            // cooldown that runs stays as it is.
            Ok(Err(_)) => None,
            Err(error) => {
                warn!(share = %link.share_id, %error, "invitation cooldown not recorded; sending the new share's invitation anyway");
                None
            }
        };
        let invitation = Invitation {
            url: &link.url,
            case: &link.case,
            expires_at: link.expires_at,
            lang: share.lang.as_deref(),
            sender: share.created_by.as_deref(),
            note: share.note.as_deref(),
        };
        let sent = self
            .deliver(
                mailer,
                client,
                to,
                &link.share_id,
                &invitation,
                "send_invitation",
            )
            .await;
        if sent.is_err() {
            self.release_invite(reservation).await;
        }
        sent
    }

    /// `POST /v1/shares/{id}/resend`: re-signs the recorded share (same id, case, scope, iat, exp,
    /// email, lang) with the active key and mails the link again.
    pub(super) async fn resend_share(
        &self,
        client: &Client,
        id: &str,
    ) -> Result<Response<ApiBody>, ApiError> {
        // One snapshot for the whole request, even if a reload lands halfway.
        let gateway = self.gateway();
        if !gateway.sharing_enabled() {
            return Err(ApiError::SharingDisabled);
        }
        let share = self
            .store
            .share(id, unix_now())
            .ok_or(ApiError::ShareNotFound)?;
        let claims = resendable_claims(&share)?;
        let (mailer, to) = self.invitation_mailer(&gateway, claims.email.as_deref())?;
        if !gateway.scope_exists(&claims.scope) {
            return Err(ApiError::Mint(MintError::UnknownScope));
        }
        if !client.may_share(&claims.scope) {
            return Err(ApiError::ScopeNotPermitted);
        }
        // Fail closed: no resend while the cooldown cannot be checked.
        let reservation = gateway
            .codes()
            .reserve_invite(id, unix_now(), INVITE_COOLDOWN)
            .await
            .map_err(ApiError::CooldownUnavailable)?
            .map_err(|wait| ApiError::ResendTooSoon {
                retry_after: Duration::from_secs(wait.unsigned_abs()),
            })?;
        let lang = claims.lang.clone();
        let link = gateway.sign_link(claims);
        let invitation = Invitation {
            url: &link.url,
            case: &link.case,
            expires_at: link.expires_at,
            lang: lang.as_deref(),
            sender: share.created_by.as_deref(),
            note: share.note.as_deref(),
        };
        let sent = self
            .deliver(&mailer, client, &to, id, &invitation, "resend_invitation")
            .await;
        if let Err(error) = sent {
            self.release_invite(Some(reservation)).await;
            return Err(ApiError::MailFailed { error, share: None });
        }
        Ok(respond::json(StatusCode::OK, &share))
    }

    /// Sends one invitation.
    async fn deliver(
        &self,
        mailer: &Mailer,
        client: &Client,
        to: &str,
        share_id: &str,
        invitation: &Invitation<'_>,
        action: &'static str,
    ) -> Result<(), MailError> {
        let mail = invitation_mail(self.gateway().templates(), to, invitation);
        mailer.send(mail).await?;
        // The address and link stay out of the log; the share id says which invitation.
        info!(client = client.name(), action, share = %share_id, case = %invitation.case, "invitation sent");
        Ok(())
    }

    /// The mail was not sent: gives the cooldown back, so the caller may retry at once.
    async fn release_invite(&self, reservation: Option<InviteReservation>) {
        let Some(reservation) = reservation else {
            return;
        };
        if let Err(error) = self.gateway().codes().release_invite(&reservation).await {
            // The cooldown then simply runs out: a retry waits at most INVITE_COOLDOWN.
            warn!(share = %reservation.share_id, %error, "invitation cooldown not released after a failed mail");
        }
    }
}

/// The claims a recorded share's link carried, if it may be sent again: not revoked, not
/// expired, with a recipient.
fn resendable_claims(share: &ShareView) -> Result<LinkClaims, ApiError> {
    if !share.status.is_live() {
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
