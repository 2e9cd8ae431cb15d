//! Herald's domain: pure types and rules, no I/O.

pub mod catalogue;
pub mod channel;
pub mod directory;
pub mod settings;
pub mod system;
pub mod validation;

pub use catalogue::{EVENT_TYPES, EventType};
pub use channel::{Channel, ChannelSet};
pub use directory::{
    AudienceMember, Product, ProductAccess, ProductAudience, ProductType, ResourceId, User,
    UserProfile, Username,
};
pub use settings::{EffectiveSettings, NotificationSettings, Provenance, SettingsScope};
pub use system::{Secret, SystemSettings};
pub use validation::FieldError;
