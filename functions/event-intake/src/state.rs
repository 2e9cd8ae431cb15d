//! What the intake handlers share: the store, the delivery queue, the clock and how callers
//! authenticate; how an intake failure is answered; fresh event ids.

use herald_http::auth::Authenticator;
use herald_http::error::ApiError;
use herald_shared::domain::FieldError;
use herald_shared::intake::IntakeError;
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

/// Maps an intake failure: the store's and the queue's causes are logged, never sent.
pub fn intake_error(e: IntakeError) -> ApiError {
    match e {
        IntakeError::Store(e) => e.into(),
        IntakeError::Queue(e) => ApiError::Internal(e.to_string()),
        IntakeError::IdempotencyKeyReused(id) => ApiError::IdempotencyKeyReused(FieldError::new(
            "id",
            format!(
                "{id} was already used for a different event; send the same event to retry it, or a new id for a new event"
            ),
        )),
    }
}

/// A fresh event id for events posted without one: 128 random bits in hex.
pub fn new_event_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom_fill(&mut bytes).is_err() {
        // Fall back on time and a counter: unique within this process, which is all an id
        // without an idempotency key needs.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        return format!("evt_{t:x}{n:x}");
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("evt_{hex}")
}

fn getrandom_fill(bytes: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(bytes)
}
