//! The directory sync from DefectDojo: what [`DojoDirectory::to_directory`] computed from
//! DefectDojo's API is written into Herald's directory, idempotently.
//!
//! Everything is read from DefectDojo before anything is written, so a DefectDojo that fails
//! half way (401/403, 5xx, a timeout, a malformed page) changes nothing in Herald. Each object
//! is compared with what Herald has and written only when it differs, so a second run reports
//! every object unchanged and writes nothing. A Slack member id Herald found itself (with
//! `users.lookupByEmail`) is kept while DefectDojo has none and the Slack email is the same.
//!
//! Not yet: removing what DefectDojo no longer has (users, products, memberships), engagements,
//! findings, risk acceptances and notification settings.

use crate::adapters::defectdojo_api::{DefectDojoApi, DojoApiError};
use crate::domain::defectdojo::directory::{Directory, DojoDirectory};
use crate::ports::{HeraldStore, StoreError, UserWrite};
use serde::Serialize;

/// What a sync did to one kind of object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KindCounts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
}

/// What a sync did, per kind, and what it could not carry over.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    pub users: KindCounts,
    pub product_types: KindCounts,
    pub products: KindCounts,
    pub product_members: KindCounts,
    pub product_type_members: KindCounts,
    pub skipped: Vec<String>,
}

impl SyncReport {
    /// Whether the run changed anything.
    pub fn changed_anything(&self) -> bool {
        [
            self.users,
            self.product_types,
            self.products,
            self.product_members,
            self.product_type_members,
        ]
        .iter()
        .any(|k| k.created + k.updated > 0)
    }
}

/// Why a sync stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Reading DefectDojo failed; nothing was written.
    #[error("nothing was changed in Herald: {0}")]
    DefectDojo(#[from] DojoApiError),
    /// DefectDojo sent an object Herald cannot keep.
    #[error("DefectDojo sent {0}")]
    Refused(crate::domain::FieldError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads the directory from DefectDojo, then writes it into `store`: a DefectDojo that fails
/// changes nothing. `progress` hears (what, done, total) while reading and writing.
pub async fn sync_from(
    api: &DefectDojoApi,
    store: &dyn HeraldStore,
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> Result<SyncReport, SyncError> {
    let dojo = api
        .directory(&|endpoint, n, total| {
            progress(endpoint, n, total.map_or(n, |t| t as usize));
        })
        .await?;
    sync_directory(store, &dojo, progress).await
}

/// Counts `wanted` against what Herald has; `true` when it must be written.
fn tally<T: PartialEq>(counts: &mut KindCounts, current: Option<&T>, wanted: &T) -> bool {
    match current {
        Some(current) if current == wanted => {
            counts.unchanged += 1;
            false
        }
        Some(_) => {
            counts.updated += 1;
            true
        }
        None => {
            counts.created += 1;
            true
        }
    }
}

/// Writes `dojo`'s directory into `store`; `progress` hears (kind, done, total).
pub async fn sync_directory(
    store: &dyn HeraldStore,
    dojo: &DojoDirectory,
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> Result<SyncReport, SyncError> {
    let directory: Directory = dojo.to_directory().map_err(SyncError::Refused)?;
    let mut report = SyncReport {
        skipped: directory.skipped.clone(),
        ..SyncReport::default()
    };
    let total = directory.product_types.len();
    for (i, product_type) in directory.product_types.iter().enumerate() {
        let current = store.product_type(&product_type.id).await?;
        if tally(&mut report.product_types, current.as_ref(), product_type) {
            store.put_product_type(product_type).await?;
        }
        progress("product types", i + 1, total);
    }
    let total = directory.products.len();
    for (i, product) in directory.products.iter().enumerate() {
        let current = store.product(&product.id).await?;
        if tally(&mut report.products, current.as_ref(), product) {
            store.put_product(product).await?;
        }
        progress("products", i + 1, total);
    }
    let template = store.template_notifications().await?;
    let total = directory.users.len();
    for (i, (username, profile)) in directory.users.iter().enumerate() {
        let counts = &mut report.users;
        let current = store.user(username).await?;
        let mut wanted = profile.clone();
        if let Some(current) = &current
            && wanted.slack_user_id.is_none()
            && wanted.slack_email == current.profile.slack_email
        {
            wanted.slack_user_id = current.profile.slack_user_id.clone();
        }
        if current.as_ref().is_some_and(|c| c.profile == wanted) {
            counts.unchanged += 1;
        } else {
            match store.put_user(username, &wanted, &template).await? {
                UserWrite::Created => counts.created += 1,
                UserWrite::Updated => counts.updated += 1,
            }
        }
        progress("users", i + 1, total);
    }
    let total = directory.product_members.len();
    for (i, (product, user)) in directory.product_members.iter().enumerate() {
        if store.put_product_member(product, user).await? {
            report.product_members.created += 1;
        } else {
            report.product_members.unchanged += 1;
        }
        progress("product members", i + 1, total);
    }
    let total = directory.product_type_members.len();
    for (i, (product_type, user)) in directory.product_type_members.iter().enumerate() {
        if store.put_product_type_member(product_type, user).await? {
            report.product_type_members.created += 1;
        } else {
            report.product_type_members.unchanged += 1;
        }
        progress("product type members", i + 1, total);
    }
    Ok(report)
}
