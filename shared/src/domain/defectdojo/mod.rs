//! DefectDojo, as Herald talks to it: its webhooks received ([`inbound`]) and sent in its own
//! format ([`outbound`]), its directory, records and settings read from API v2 objects
//! ([`directory`], [`records`], [`settings`]), and the webhooks registered in it
//! ([`registration`]).

pub mod directory;
pub mod inbound;
pub mod outbound;
pub mod records;
pub mod registration;
pub mod settings;

pub use inbound::{Inbound, InboundError, from_webhook};

use crate::domain::directory::ResourceId;

/// Herald's id for a DefectDojo id.
pub fn resource_id(id: u64) -> ResourceId {
    ResourceId(id.to_string())
}

/// The API objects of `events/defectdojo/api/<generation>/<file>.json`, for the tests.
#[cfg(test)]
pub(crate) fn fixture<T: serde::de::DeserializeOwned>(generation: &str, file: &str) -> T {
    let path = format!(
        "{}/../events/defectdojo/api/{generation}/{file}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The header that names the event.
pub const EVENT_HEADER: &str = "X-DefectDojo-Event";
/// The header that names the DefectDojo instance (its site URL).
pub const INSTANCE_HEADER: &str = "X-DefectDojo-Instance";
/// The `User-Agent` of webhooks in DefectDojo's format: DefectDojo's, naming the release
/// whose webhook bodies Herald reproduces.
pub const USER_AGENT: &str = "DefectDojo-3.2.0";
/// The event DefectDojo sends when an endpoint is saved.
pub const PING: &str = "ping";

/// Every event name DefectDojo raises (`create_notification(event=...)` across its source,
/// and the columns of its notification settings), and [`PING`]: the values of [`EVENT_HEADER`].
pub const DEFECTDOJO_EVENTS: &[&str] = &[
    "auto_close_engagement",
    "close_engagement",
    "code_review",
    "endpoint_deleted",
    "engagement_added",
    "engagement_closed",
    "engagement_copied",
    "engagement_deleted",
    "engagement_reopened",
    "finding_added",
    "finding_closed",
    "finding_copied",
    "finding_deleted",
    "finding_group_deleted",
    "finding_reopened",
    "jira_comment",
    "jira_config_added",
    "jira_config_deleted",
    "jira_config_edited",
    "jira_update",
    "other",
    "product_added",
    "product_deleted",
    "product_type_added",
    "product_type_deleted",
    "review_requested",
    "risk_acceptance_expiration",
    "scan_added",
    "scan_added_empty",
    "sla_breach",
    "sla_breach_combined",
    "sonarqube_failed",
    "stale_engagement",
    "test_added",
    "test_copied",
    "test_deleted",
    "upcoming_engagement",
    "url_deleted",
    "user_mentioned",
    PING,
];
