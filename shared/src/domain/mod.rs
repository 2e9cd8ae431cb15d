//! Herald's domain: pure types and rules, no I/O.

pub mod alert;
pub mod catalogue;
pub mod channel;
pub mod check_records;
pub mod checks;
pub mod defectdojo;
pub mod delivery;
pub mod directory;
pub mod event;
pub mod message;
pub mod routing;
#[cfg(any(test, feature = "samples"))]
pub mod samples;
pub mod settings;
pub mod system;
pub mod validation;
pub mod webhook;
pub mod webhook_body;

pub use alert::Alert;
pub use catalogue::{EVENT_TYPES, EventType};
pub use channel::{Channel, ChannelSet};
pub use checks::{Engagement, EngagementStatus, Finding, RiskAcceptance, Severity};
pub use delivery::{Delivery, DeliveryId, DeliveryMessage, DeliveryStatus, Destination};
pub use directory::{
    AudienceMember, Product, ProductAccess, ProductAudience, ProductType, ResourceId, User,
    UserProfile, Username, ViewableProduct,
};
pub use event::{Event, EventId};
pub use routing::{Audience, AudienceQuery, RoutingPlan, SystemScope, audience_query, route};
pub use settings::{EffectiveSettings, NotificationSettings, Provenance, SettingsScope};
pub use system::{Secret, SystemSettings};
pub use validation::FieldError;
pub use webhook::{
    WebhookEndpoint, WebhookId, WebhookOutcome, WebhookRequest, WebhookState, WebhookStatus,
};
