//! The admin API: how a case application (or `casegate share`) creates, lists and revokes shares.
//!
//! A request goes: `authenticate` (bearer token -> [`auth::Client`]) -> `Route::parse` (404/405)
//! -> the endpoint's handler in `shares.rs` -> a JSON answer. [`AdminApi::handle`] never fails:
//! every refusal is an [`ApiError`], answered from one table (`error.rs`) and logged once with
//! the client's name. Tokens (the client's and the links') are never logged.
//!
//! `/metrics`, `/healthz` and `/readyz` (`health.rs`) are answered before authentication: they
//! are for the scraper and the load balancer on the internal network, and show no share data.

mod auth;
mod body;
pub(crate) mod create_request;
mod error;
mod health;
mod invite;
mod issue_time;
mod listener;
pub(crate) mod query;
mod reload;
pub(crate) mod respond;
pub(crate) mod route;
mod shares;
#[cfg(test)]
mod store_failure;

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use tracing::{info, warn};

pub use error::ApiError;
pub use listener::serve;
pub use respond::ApiBody;

use self::auth::{Client, Clients};
use self::health::{OpsRoute, Readiness};
use self::route::Route;
use crate::caught_panic::CatchPanic;
use crate::config;
use crate::gateway::Gateway;
use crate::reload::{Reloader, Snapshot};
use crate::state::StateStore;

/// Everything the admin endpoints need: the gateway (to mint links and judge cases and scopes),
/// the share store, the configured clients, and the mailer for invitations.
pub struct AdminApi {
    /// The snapshot in force; its mailer sends invitations (none without `[mail]`).
    gateway: Arc<Snapshot<Gateway>>,
    store: Arc<StateStore>,
    clients: Clients,
    max_body_bytes: usize,
    /// Answers `POST /v1/reload`; `None` when the gateway was started without a config file.
    reloader: Option<Arc<Reloader>>,
    /// `/metrics`, `/healthz`, `/readyz`: answered without a token.
    readiness: Readiness,
}

impl AdminApi {
    pub fn new(
        gateway: Arc<Snapshot<Gateway>>,
        store: Arc<StateStore>,
        admin: &config::Admin,
        reloader: Option<Arc<Reloader>>,
    ) -> AdminApi {
        let clients = admin
            .clients
            .iter()
            .map(|client| Client::new(&client.name, client.token.as_bytes(), &client.scopes))
            .collect();
        AdminApi {
            readiness: Readiness::new(Arc::clone(&gateway), Arc::clone(&store)),
            gateway,
            store,
            clients: Clients::new(clients),
            max_body_bytes: admin.max_body_bytes,
            reloader,
        }
    }

    /// The gateway snapshot in force now.
    fn gateway(&self) -> Arc<Gateway> {
        self.gateway.current()
    }

    /// How many clients may call the API (for the start-up log).
    pub fn client_count(&self) -> usize {
        self.clients.count()
    }

    /// Answers one request. Never fails: errors become `{"error": {code, message}}` documents.
    pub async fn handle<B>(&self, request: Request<B>, peer: SocketAddr) -> Response<ApiBody>
    where
        B: hyper::body::Body<Data = Bytes> + Unpin,
        B::Error: Into<crate::proxy::BoxError>,
    {
        let method = request.method().clone();
        if let Some(route) = OpsRoute::parse(request.uri().path()) {
            return self.readiness.answer(route, &method).await;
        }
        let client = match self.clients.authenticate(request.headers()) {
            Ok(client) => client,
            Err(error) => {
                info!(%peer, %method, code = error.status_and_code().1, "admin request refused: no valid credential");
                return respond::error(&error);
            }
        };
        let handled = CatchPanic::new(pin!(self.handle_authenticated(client, request))).await;
        match handled.unwrap_or(Err(ApiError::Panicked)) {
            Ok(response) => response,
            Err(error) => {
                let code = error.status_and_code().1;
                let client = client.name();
                if error.is_failure() {
                    warn!(%peer, client, %method, code, %error, "admin request failed");
                } else {
                    info!(%peer, client, %method, code, %error, "admin request refused");
                }
                respond::error(&error)
            }
        }
    }

    async fn handle_authenticated<B>(
        &self,
        client: &Client,
        request: Request<B>,
    ) -> Result<Response<ApiBody>, ApiError>
    where
        B: hyper::body::Body<Data = Bytes> + Unpin,
        B::Error: Into<crate::proxy::BoxError>,
    {
        let (parts, body) = request.into_parts();
        let route = Route::parse(&parts.method, parts.uri.path())?;
        let query = parts.uri.query();
        if query.is_some() && route != Route::ListShares {
            return Err(ApiError::InvalidQuery(error::QueryProblem::NotExpected));
        }
        match route {
            Route::ListShares => self.list_shares(client, query),
            Route::CreateShare => self.create_share(client, &parts.headers, body).await,
            Route::GetShare { id } => self.get_share(client, id),
            Route::RevokeShare { id } => self.revoke_share(client, id).await,
            Route::ResendShare { id } => self.resend_share(client, id).await,
            Route::RevokeCase { case } => self.revoke_case(client, case).await,
            Route::Reload => self.reload(client).await,
        }
    }
}
