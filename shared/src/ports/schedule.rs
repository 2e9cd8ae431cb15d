//! The schedule store port: the records the scheduled checks read (engagements, findings,
//! risk acceptances), the due sets they query, and the reminders already sent.

use super::StoreError;
use crate::domain::checks::{Engagement, Finding, RiskAcceptance};
use crate::domain::{ResourceId, Username};
use async_trait::async_trait;
use time::Date;

/// Engagements, findings and risk acceptances, their due dates, and sent reminders.
///
/// Every due query is served by an index on the due date (never a scan of all records);
/// inclusive ranges of dates.
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Creates or replaces an engagement; `true` when it was created. `NotFound` naming the
    /// product when it does not exist.
    async fn put_engagement(&self, engagement: &Engagement) -> Result<bool, StoreError>;
    /// An engagement, `None` when unknown.
    async fn engagement(&self, id: &ResourceId) -> Result<Option<Engagement>, StoreError>;
    /// Removes an engagement; `false` when unknown.
    async fn delete_engagement(&self, id: &ResourceId) -> Result<bool, StoreError>;

    /// Creates or replaces a finding; `true` when it was created. `NotFound` naming the
    /// product when it does not exist.
    async fn put_finding(&self, finding: &Finding) -> Result<bool, StoreError>;
    /// A finding, `None` when unknown.
    async fn finding(&self, id: &ResourceId) -> Result<Option<Finding>, StoreError>;
    /// Removes a finding; `false` when unknown.
    async fn delete_finding(&self, id: &ResourceId) -> Result<bool, StoreError>;

    /// Creates or replaces a risk acceptance; `true` when it was created. `NotFound` naming
    /// the product when it does not exist.
    async fn put_risk_acceptance(&self, acceptance: &RiskAcceptance) -> Result<bool, StoreError>;
    /// A risk acceptance, `None` when unknown.
    async fn risk_acceptance(&self, id: &ResourceId) -> Result<Option<RiskAcceptance>, StoreError>;
    /// Removes a risk acceptance; `false` when unknown.
    async fn delete_risk_acceptance(&self, id: &ResourceId) -> Result<bool, StoreError>;

    /// Engagements not begun yet (`EngagementStatus::is_pending`) whose `target_start` is in
    /// `from..=to`, ordered by start date then id.
    async fn engagements_starting(
        &self,
        from: Date,
        to: Date,
    ) -> Result<Vec<Engagement>, StoreError>;
    /// Engagements in progress whose `target_end` is in `from..=to`, ordered by end date then
    /// id.
    async fn engagements_ending(&self, from: Date, to: Date)
    -> Result<Vec<Engagement>, StoreError>;
    /// Active findings, not Info, whose `sla_expiration_date` is in `from..=to`, ordered by
    /// that date then id.
    async fn findings_due(&self, from: Date, to: Date) -> Result<Vec<Finding>, StoreError>;
    /// Risk acceptances whose `expiration_date` is in `from..=to`, ordered by that date then
    /// id.
    async fn risk_acceptances_expiring(
        &self,
        from: Date,
        to: Date,
    ) -> Result<Vec<RiskAcceptance>, StoreError>;

    /// Marks an engagement Completed, only while it is still in progress (a conditional
    /// write); `false` when it is not (closed already, moved on, or unknown).
    async fn close_engagement(&self, id: &ResourceId) -> Result<bool, StoreError>;

    /// Records that the reminder `key` is being sent, until `expires_at_ms` (ms since the
    /// Unix epoch) at least. `true` only the first time: a conditional write, so of two runs
    /// at once exactly one gets `true`.
    async fn remember_reminder(&self, key: &str, expires_at_ms: u64) -> Result<bool, StoreError>;
    /// The time first recorded for `key`: `at_ms` when this call is the first, else the time
    /// the first call recorded (kept until `expires_at_ms` at least). A conditional write, so
    /// every caller, concurrent or retried, gets the same answer: what makes a "once per
    /// hour" notice both dated when it was raised and written once.
    async fn first_time(
        &self,
        key: &str,
        at_ms: u64,
        expires_at_ms: u64,
    ) -> Result<u64, StoreError>;
    /// Every user who may have alerts, for the alert clean-up, listed without reading every
    /// alert and without a table scan. It may name users who have none (DynamoDB lists every
    /// user in the directory).
    async fn users_with_alerts(&self) -> Result<Vec<Username>, StoreError>;
    /// Forgets a reminder recorded by a run that then failed to send it, so the next run
    /// tries again. Unknown keys are ignored.
    async fn forget_reminder(&self, key: &str) -> Result<(), StoreError>;
}
