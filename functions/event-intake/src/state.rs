//! What the intake handlers share: the store, the delivery queue, the clock and how callers
//! authenticate.

use herald_http::auth::Authenticator;
use herald_shared::ports::{Clock, DeliveryQueue, HeraldStore};
use std::sync::Arc;

/// What the intake handlers share.
#[derive(Clone)]
pub struct IntakeState {
    pub store: Arc<dyn HeraldStore>,
    pub queue: Arc<dyn DeliveryQueue>,
    pub clock: Arc<dyn Clock>,
    pub auth: Authenticator,
}

impl std::fmt::Debug for IntakeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntakeState")
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl AsRef<Authenticator> for IntakeState {
    fn as_ref(&self) -> &Authenticator {
        &self.auth
    }
}
