//! The state the handlers share: the store, how callers authenticate, the webhook client for
//! pings and the clock.

use herald_http::auth::Authenticator;
use herald_shared::ports::HeraldStore;
use std::sync::Arc;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn HeraldStore>,
    pub auth: Authenticator,
    /// Pings webhook endpoints before they are saved.
    pub webhooks: herald_shared::adapters::WebhookClient,
    /// "Now" for timestamps the API writes (webhook endpoints).
    pub clock: Arc<dyn herald_shared::ports::Clock>,
    /// `POST /v1/defectdojo/sync`: the configured DefectDojo, one run at a time.
    pub defectdojo: herald_shared::defectdojo_sync::SyncService,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl AsRef<Authenticator> for AppState {
    fn as_ref(&self) -> &Authenticator {
        &self.auth
    }
}
