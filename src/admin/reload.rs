//! `POST /v1/reload`: re-read the config file. 200 `{"reloaded": true, "restart_needed": [...]}`
//! or, when the new config is refused and the old one stays, 422 with every problem.

use http::{Response, StatusCode};

use super::auth::Client;
use super::respond::{self, ApiBody};
use super::{AdminApi, ApiError};
use tracing::info;

impl AdminApi {
    pub(super) async fn reload(&self, client: &Client) -> Result<Response<ApiBody>, ApiError> {
        let reloader = self.reloader.as_ref().ok_or(ApiError::ReloadUnavailable)?;
        info!(
            client = client.name(),
            "config reload asked for through the admin API"
        );
        Ok(match reloader.reload().await {
            Ok(reloaded) => respond::json(
                StatusCode::OK,
                &serde_json::json!({
                    "reloaded": true,
                    "restart_needed": reloaded.restart_needed,
                }),
            ),
            Err(error) => respond::json(
                StatusCode::UNPROCESSABLE_ENTITY,
                &serde_json::json!({
                    "error": {
                        "code": "config_invalid",
                        "message": "the new config was refused; the old one stays in force",
                        "problems": error.problems(),
                    }
                }),
            ),
        })
    }
}
