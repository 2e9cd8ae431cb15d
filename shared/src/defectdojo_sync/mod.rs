//! The directory sync from DefectDojo: what [`DojoDirectory::to_directory`] computed from
//! DefectDojo's API, and the records [`stage_records`] staged, are written into Herald's
//! directory, idempotently.
//!
//! Everything is read from DefectDojo before anything is written, so a DefectDojo that fails
//! half way (401/403, 5xx, a timeout, a malformed page) changes nothing in Herald. What grows
//! with DefectDojo's data (engagements, findings, risk acceptances) is staged on disk as it is
//! read and applied from there a batch at a time ([`staged`]): memory holds a page of them,
//! not the whole set. Each object
//! is compared with what Herald has and written only when it differs, so a second run reports
//! every object unchanged and writes nothing. A Slack member id Herald found itself (with
//! `users.lookupByEmail`) is kept while DefectDojo has none and the Slack email is the same.
//!
//! **Removals.** What DefectDojo no longer has is removed from Herald: users, product types,
//! products, memberships, engagements, risk acceptances, and findings that are gone or no
//! longer active (the sync reads active findings only; the scheduled checks need no other).
//! Only what DefectDojo had is ever removed: the [`SyncLedger`](crate::ports::SyncLedger),
//! per DefectDojo instance ([`ledger_source`]), records the id of every object DefectDojo
//! answered *before* the object is written, and forgets it only *after* the object is
//! removed. An object another integration put into Herald that DefectDojo never had is never
//! touched (one both have becomes DefectDojo's), a sync from another instance removes nothing
//! this one brought, and a crash anywhere leaves nothing the next run cannot finish. Removals come after every
//! write, dependants first (risk acceptances, findings, engagements, memberships, users,
//! products, product types).
//!
//! **Resuming.** A run that stopped half way (a crash, a store error) is finished by the next
//! one: what it wrote compares equal and is left alone, what it did not write yet is written,
//! and what it was about to remove is still in the ledger.
//!
//! **Settings** (`import_settings`): DefectDojo's notification settings replace Herald's
//! documents at every scope they exist at in DefectDojo, and the notification fields of its
//! system settings Herald's (see [`crate::domain::defectdojo::settings`]); a per-product
//! document an import wrote goes when DefectDojo's row goes. DefectDojo is the source: a change
//! made in Herald meanwhile is replaced at the next import.

use crate::adapters::defectdojo_api::{DefectDojoApi, DojoApiError};
use crate::domain::defectdojo::directory::{Directory, DojoDirectory};
use crate::domain::defectdojo::settings::ImportedSettings;
use crate::domain::{ResourceId, Username};
use crate::ports::{HeraldStore, StoreError, UserWrite};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

pub mod staged;
pub use staged::{StagedRecords, StagingError, stage_records};

/// The environment variable naming the DefectDojo a function on AWS syncs from.
pub const URL_ENV: &str = "HERALD_DEFECTDOJO_URL";
/// The environment variable naming the Secrets Manager secret with its API token.
pub const TOKEN_SECRET_ENV: &str = "HERALD_DEFECTDOJO_TOKEN_SECRET_ARN";

/// Whether a scheduled event asks for the DefectDojo sync: `{"detail": {"sync": "defectdojo"}}`
/// (the template's `DefectDojoSync` schedule).
pub fn is_sync_event(payload: &serde_json::Value) -> bool {
    payload
        .pointer("/detail/sync")
        .and_then(serde_json::Value::as_str)
        == Some(SOURCE)
}

/// The name scheduled events and the ledger use for DefectDojo.
pub const SOURCE: &str = "defectdojo";

/// The ledger's source for the DefectDojo at `instance` (its base URL): each instance owns
/// what it wrote, so a sync from another one never removes it.
pub fn ledger_source(instance: &str) -> String {
    format!("{SOURCE} {}", instance.trim_end_matches('/'))
}

/// What a sync did to one kind of object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCounts {
    pub created: u64,
    pub updated: u64,
    pub removed: u64,
    pub unchanged: u64,
}

/// What a sync did, per kind, and what it could not carry over.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    pub users: KindCounts,
    pub product_types: KindCounts,
    pub products: KindCounts,
    pub product_members: KindCounts,
    pub product_type_members: KindCounts,
    pub engagements: KindCounts,
    pub findings: KindCounts,
    pub risk_acceptances: KindCounts,
    /// Documents imported (system, template, personal, per-product); `None` when the run
    /// did not import settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_settings: Option<KindCounts>,
    /// Herald's system settings, when the run imported settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_settings: Option<KindCounts>,
    /// Herald's endpoints in DefectDojo, when the run registered them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_webhooks: Option<KindCounts>,
    /// Users' notification rows in DefectDojo given webhooks, when the run registered them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_notification_rows: Option<KindCounts>,
    pub skipped: Vec<String>,
}

impl SyncReport {
    /// Every kind with its counts, in the order they are written.
    pub fn kinds(&self) -> Vec<(&'static str, KindCounts)> {
        let mut kinds = vec![
            ("product types", self.product_types),
            ("products", self.products),
            ("users", self.users),
            ("product members", self.product_members),
            ("product type members", self.product_type_members),
            ("engagements", self.engagements),
            ("findings", self.findings),
            ("risk acceptances", self.risk_acceptances),
        ];
        if let Some(counts) = self.notification_settings {
            kinds.push(("notification settings", counts));
        }
        if let Some(counts) = self.system_settings {
            kinds.push(("system settings", counts));
        }
        if let Some(counts) = self.user_webhooks {
            kinds.push(("user webhooks", counts));
        }
        if let Some(counts) = self.user_notification_rows {
            kinds.push(("user notification rows", counts));
        }
        kinds
    }

    /// Whether the run changed anything.
    pub fn changed_anything(&self) -> bool {
        self.kinds()
            .iter()
            .any(|(_, k)| k.created + k.updated + k.removed > 0)
    }
}

/// Why a sync stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Reading DefectDojo failed; nothing was written.
    #[error("nothing was changed in Herald: {0}")]
    DefectDojo(#[from] DojoApiError),
    /// The directory was synced, but writing Herald's webhooks into DefectDojo failed (a run
    /// again finishes it).
    #[error(
        "Herald's directory was synced, but registering the users' webhooks in DefectDojo stopped: {0}"
    )]
    Registration(DojoApiError),
    /// What DefectDojo answered could not be staged on disk, or read back.
    #[error("{0}")]
    Staging(StagingError),
    /// DefectDojo sent an object Herald cannot keep.
    #[error("DefectDojo sent {0}")]
    Refused(crate::domain::FieldError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<StagingError> for SyncError {
    fn from(e: StagingError) -> Self {
        match e {
            StagingError::DefectDojo(e) => Self::DefectDojo(e),
            other => Self::Staging(other),
        }
    }
}

/// Everything one sync read from DefectDojo, before Herald is written: the directory (and
/// the notification settings) in memory, the records staged on disk.
#[derive(Debug, Clone)]
pub struct DojoRead {
    pub directory: DojoDirectory,
    pub records: StagedRecords,
}

/// Reads the directory, with `import_settings` the notification settings, and the records
/// (staged page by page); `heard` hears (endpoint, objects so far, total).
pub async fn read(
    api: &DefectDojoApi,
    import_settings: bool,
    heard: &(dyn Fn(&str, usize, Option<u64>) + Sync),
) -> Result<DojoRead, SyncError> {
    let mut directory = api.directory(heard).await?;
    if import_settings {
        directory.settings = Some(api.settings(heard).await?);
    }
    let records = stage_records(api, &directory, heard).await?;
    Ok(DojoRead { directory, records })
}

/// Reads the directory (and with `import_settings` the notification settings) from
/// DefectDojo, then writes it into `store`: a DefectDojo that fails changes nothing.
/// `progress` hears (what, done, total) while reading and writing.
pub async fn sync_from(
    api: &DefectDojoApi,
    store: &dyn HeraldStore,
    options: &SyncOptions,
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> Result<SyncReport, SyncError> {
    let heard = |endpoint: &str, n: usize, total: Option<u64>| {
        progress(endpoint, n, total.map_or(n, |t| t as usize));
    };
    let read = read(api, options.import_settings, &heard).await?;
    // What registration reads is read now too: after Herald's writes, only DefectDojo's.
    let registration = match &options.register_webhooks {
        None => None,
        Some(register) => Some((
            register,
            registration_reads(api, &read.directory, &heard).await?,
        )),
    };
    let mut report = sync_directory(store, &read, progress).await?;
    if let Some((register, (webhooks, notifications))) = registration {
        register_user_webhooks(
            api,
            &read.directory,
            register,
            &webhooks,
            &notifications,
            &mut report,
            &heard,
        )
        .await
        .map_err(SyncError::Registration)?;
    }
    Ok(report)
}

/// DefectDojo's webhooks and notification rows, which registration plans from.
async fn registration_reads(
    api: &DefectDojoApi,
    dojo: &DojoDirectory,
    heard: &(dyn Fn(&str, usize, Option<u64>) + Sync),
) -> Result<(Vec<serde_json::Value>, Vec<serde_json::Value>), DojoApiError> {
    let webhooks = api
        .list("notification_webhooks", &[], &|n, t| {
            heard("notification_webhooks", n, t)
        })
        .await?;
    let notifications = match &dojo.settings {
        Some(settings) => settings.notifications.clone(),
        None => {
            api.list("notifications", &[], &|n, t| heard("notifications", n, t))
                .await?
        }
    };
    Ok((webhooks, notifications))
}

/// What a sync does besides the directory.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Import DefectDojo's notification settings too.
    pub import_settings: bool,
    /// Register Herald's webhook for every active user in DefectDojo.
    pub register_webhooks: Option<WebhookRegistration>,
}

/// Where DefectDojo's personal endpoints are to post: Herald's
/// `/v1/defectdojo/webhook`, with the key Herald checks.
#[derive(Debug, Clone)]
pub struct WebhookRegistration {
    /// `https://herald.example.com/v1/defectdojo/webhook`.
    pub url: String,
    /// `defectdojo_webhook_key` of Herald's system settings.
    pub key: crate::domain::Secret,
}

impl WebhookRegistration {
    /// The registration for Herald at `herald_url` (its public base URL) with `key`.
    pub fn new(herald_url: &str, key: crate::domain::Secret) -> Result<Self, String> {
        let base = url::Url::parse(herald_url.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| format!("{herald_url:?} is not Herald's http(s) URL"))?;
        Ok(Self {
            url: format!(
                "{}/v1/defectdojo/webhook",
                base.as_str().trim_end_matches('/')
            ),
            key,
        })
    }
}

/// Registers Herald's endpoint for every active user DefectDojo has and Herald synced.
async fn register_user_webhooks(
    api: &DefectDojoApi,
    dojo: &DojoDirectory,
    register: &WebhookRegistration,
    webhooks: &[serde_json::Value],
    notifications: &[serde_json::Value],
    report: &mut SyncReport,
    heard: &(dyn Fn(&str, usize, Option<u64>) + Sync),
) -> Result<(), DojoApiError> {
    use crate::domain::defectdojo::registration::{Registrant, plan};
    let users: Vec<Registrant<'_>> = dojo
        .users
        .iter()
        .filter(|u| u.is_active && Username::parse("username", &u.username).is_ok())
        .map(|u| Registrant {
            id: u.id,
            username: &u.username,
        })
        .collect();
    let header = format!("Bearer {}", register.key.expose());
    let planned = plan(&users, webhooks, notifications, &register.url, &header);
    let total = planned.writes.len();
    for (i, write) in planned.writes.iter().enumerate() {
        api.write(write.endpoint, write.id, &write.body).await?;
        heard("registering webhooks", i + 1, Some(total as u64));
    }
    report.user_webhooks = Some(KindCounts {
        created: planned.created,
        updated: planned.updated,
        removed: 0,
        unchanged: planned.unchanged,
    });
    report.user_notification_rows = Some(KindCounts {
        created: planned.rows_created,
        updated: planned.rows_updated,
        removed: 0,
        unchanged: planned.rows_unchanged,
    });
    report.skipped.extend(planned.skipped);
    Ok(())
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

/// Ids recorded in the ledger per call.
const RECORD_CHUNK: usize = 1_000;

/// Records in the ledger the `wanted` ids of `kind` it lacks, and answers the ids it has
/// that are not wanted: what DefectDojo no longer has. One walk over both sorted lists, so
/// neither is copied.
async fn stale_after_recording(
    store: &dyn HeraldStore,
    ledger: &str,
    kind: &str,
    wanted: &BTreeSet<String>,
) -> Result<Vec<String>, StoreError> {
    let mut known = store.synced_ids(ledger, kind).await?;
    if !known.is_sorted() {
        known.sort_unstable();
    }
    // A set: an id listed twice must not come out as stale the second time.
    known.dedup();
    let mut known = known.into_iter().peekable();
    let (mut new, mut stale) = (Vec::new(), Vec::new());
    for id in wanted {
        while let Some(gone) = known.next_if(|k| k < id) {
            stale.push(gone);
        }
        if known.next_if(|k| k == id).is_none() {
            new.push(id.clone());
            if new.len() == RECORD_CHUNK {
                store.record_synced(ledger, kind, &new).await?;
                new.clear();
            }
        }
    }
    stale.extend(known);
    if !new.is_empty() {
        store.record_synced(ledger, kind, &new).await?;
    }
    Ok(stale)
}

/// The ledger's id of a membership.
fn membership_id(id: &ResourceId, user: &Username) -> String {
    format!("{id}/{user}")
}

fn parse_membership(id: &str) -> Option<(ResourceId, Username)> {
    let (resource, user) = id.split_once('/')?;
    Some((
        ResourceId::parse("id", resource).ok()?,
        Username::parse("username", user).ok()?,
    ))
}

fn parse_id(id: &str) -> Option<ResourceId> {
    ResourceId::parse("id", id).ok()
}

/// The ledger's kinds.
mod kind {
    pub const PRODUCT_TYPES: &str = "product_types";
    pub const PRODUCTS: &str = "products";
    pub const USERS: &str = "users";
    pub const PRODUCT_MEMBERS: &str = "product_members";
    pub const PRODUCT_TYPE_MEMBERS: &str = "product_type_members";
    pub const ENGAGEMENTS: &str = "engagements";
    pub const FINDINGS: &str = "findings";
    pub const RISK_ACCEPTANCES: &str = "risk_acceptances";
    pub const PRODUCT_NOTIFICATIONS: &str = "product_notifications";
}

/// How many staged records are read back and applied at a time.
const APPLY_BATCH: usize = 500;

/// Writes what `read` holds into `store`, then removes what DefectDojo no longer has;
/// `progress` hears (kind, done, total).
pub async fn sync_directory(
    store: &dyn HeraldStore,
    read: &DojoRead,
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> Result<SyncReport, SyncError> {
    let dojo = &read.directory;
    let directory: Directory = dojo.to_directory().map_err(SyncError::Refused)?;
    let ledger = ledger_source(&dojo.instance);
    let mut report = SyncReport {
        skipped: directory.skipped.clone(),
        ..SyncReport::default()
    };
    report.skipped.extend(read.records.skipped.iter().cloned());
    let ids = |items: &mut dyn Iterator<Item = String>| items.collect::<BTreeSet<String>>();

    let stale_types = stale_after_recording(
        store,
        &ledger,
        kind::PRODUCT_TYPES,
        &ids(&mut directory.product_types.iter().map(|t| t.id.to_string())),
    )
    .await?;
    let total = directory.product_types.len();
    for (i, product_type) in directory.product_types.iter().enumerate() {
        let current = store.product_type(&product_type.id).await?;
        if tally(&mut report.product_types, current.as_ref(), product_type) {
            store.put_product_type(product_type).await?;
        }
        progress("product types", i + 1, total);
    }
    let stale_products = stale_after_recording(
        store,
        &ledger,
        kind::PRODUCTS,
        &ids(&mut directory.products.iter().map(|p| p.id.to_string())),
    )
    .await?;
    let total = directory.products.len();
    for (i, product) in directory.products.iter().enumerate() {
        let current = store.product(&product.id).await?;
        if tally(&mut report.products, current.as_ref(), product) {
            store.put_product(product).await?;
        }
        progress("products", i + 1, total);
    }
    let stale_users = stale_after_recording(
        store,
        &ledger,
        kind::USERS,
        &ids(&mut directory.users.keys().map(|u| u.to_string())),
    )
    .await?;
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
    let stale_product_members = stale_after_recording(
        store,
        &ledger,
        kind::PRODUCT_MEMBERS,
        &ids(&mut directory
            .product_members
            .iter()
            .map(|(p, u)| membership_id(p, u))),
    )
    .await?;
    let total = directory.product_members.len();
    for (i, (product, user)) in directory.product_members.iter().enumerate() {
        if store.put_product_member(product, user).await? {
            report.product_members.created += 1;
        } else {
            report.product_members.unchanged += 1;
        }
        progress("product members", i + 1, total);
    }
    let stale_type_members = stale_after_recording(
        store,
        &ledger,
        kind::PRODUCT_TYPE_MEMBERS,
        &ids(&mut directory
            .product_type_members
            .iter()
            .map(|(t, u)| membership_id(t, u))),
    )
    .await?;
    let total = directory.product_type_members.len();
    for (i, (product_type, user)) in directory.product_type_members.iter().enumerate() {
        if store.put_product_type_member(product_type, user).await? {
            report.product_type_members.created += 1;
        } else {
            report.product_type_members.unchanged += 1;
        }
        progress("product type members", i + 1, total);
    }
    // The staged records, a batch at a time: each recorded in the ledger first, then
    // compared with Herald's and written only when it differs.
    macro_rules! apply_staged {
        ($staged:expr, $kind:expr, $label:literal, $parse:path, $get:ident, $put:ident, $counts:expr) => {{
            let staged = &$staged;
            let stale = stale_after_recording(store, &ledger, $kind, &staged.ids).await?;
            let (mut done, total) = (0, staged.staged.len());
            for batch in staged.staged.batches(APPLY_BATCH) {
                for line in batch.map_err(StagingError::ReadBack)? {
                    let wanted = $parse(&line)?;
                    let current = store.$get(&wanted.id).await?;
                    if tally(&mut $counts, current.as_ref(), &wanted) {
                        store.$put(&wanted).await?;
                    }
                    done += 1;
                    progress($label, done, total);
                }
            }
            stale
        }};
    }
    let records = &read.records;
    let stale_engagements = apply_staged!(
        records.engagements,
        kind::ENGAGEMENTS,
        "engagements",
        StagedRecords::engagement,
        engagement,
        put_engagement,
        report.engagements
    );
    let stale_findings = apply_staged!(
        records.findings,
        kind::FINDINGS,
        "findings",
        StagedRecords::finding,
        finding,
        put_finding,
        report.findings
    );
    let stale_acceptances = apply_staged!(
        records.risk_acceptances,
        kind::RISK_ACCEPTANCES,
        "risk acceptances",
        StagedRecords::risk_acceptance,
        risk_acceptance,
        put_risk_acceptance,
        report.risk_acceptances
    );

    let stale_product_notifications = match &directory.settings {
        Some(settings) => write_settings(store, &ledger, settings, &mut report, progress).await?,
        None => Vec::new(),
    };

    // Removals, dependants first. Each id is forgotten once its object is gone.
    let removals = [
        (kind::PRODUCT_NOTIFICATIONS, stale_product_notifications),
        (kind::RISK_ACCEPTANCES, stale_acceptances),
        (kind::FINDINGS, stale_findings),
        (kind::ENGAGEMENTS, stale_engagements),
        (kind::PRODUCT_TYPE_MEMBERS, stale_type_members),
        (kind::PRODUCT_MEMBERS, stale_product_members),
        (kind::USERS, stale_users),
        (kind::PRODUCTS, stale_products),
        (kind::PRODUCT_TYPES, stale_types),
    ];
    for (kind, stale) in removals {
        let removed =
            remove_stale(store, &ledger, kind, &stale, progress, &mut report.skipped).await?;
        let counts = match kind {
            // Only an import has settings to remove (and counts for them).
            kind::PRODUCT_NOTIFICATIONS => match report.notification_settings.as_mut() {
                Some(counts) => counts,
                None => continue,
            },
            kind::RISK_ACCEPTANCES => &mut report.risk_acceptances,
            kind::FINDINGS => &mut report.findings,
            kind::ENGAGEMENTS => &mut report.engagements,
            kind::PRODUCT_TYPE_MEMBERS => &mut report.product_type_members,
            kind::PRODUCT_MEMBERS => &mut report.product_members,
            kind::USERS => &mut report.users,
            kind::PRODUCTS => &mut report.products,
            _ => &mut report.product_types,
        };
        counts.removed += removed;
    }
    Ok(report)
}

/// Writes the imported notification settings and system settings, each only when it differs;
/// answers the per-product documents a former import wrote that DefectDojo no longer has.
async fn write_settings(
    store: &dyn HeraldStore,
    ledger: &str,
    settings: &ImportedSettings,
    report: &mut SyncReport,
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> Result<Vec<String>, StoreError> {
    let mut counts = KindCounts::default();
    if let Some(wanted) = &settings.system {
        let current = store.system_notifications().await?;
        if tally(&mut counts, Some(&current), wanted) {
            store.put_system_notifications(wanted).await?;
        }
    }
    if let Some(wanted) = &settings.template {
        let current = store.template_notifications().await?;
        if tally(&mut counts, Some(&current), wanted) {
            store.put_template_notifications(wanted).await?;
        }
    }
    let total = settings.personal.len();
    for (i, (user, wanted)) in settings.personal.iter().enumerate() {
        let current = store.personal_notifications(user).await?;
        if tally(&mut counts, Some(&current), wanted) {
            store.put_personal_notifications(user, wanted).await?;
        }
        progress("personal settings", i + 1, total);
    }
    let stale = stale_after_recording(
        store,
        ledger,
        kind::PRODUCT_NOTIFICATIONS,
        &settings
            .per_product
            .keys()
            .map(|(p, u)| membership_id(p, u))
            .collect(),
    )
    .await?;
    let total = settings.per_product.len();
    for (i, ((product, user), wanted)) in settings.per_product.iter().enumerate() {
        let current = store.product_notifications(user, product).await?;
        if tally(&mut counts, current.as_ref(), wanted) {
            store
                .put_product_notifications(user, product, wanted)
                .await?;
        }
        progress("per-product settings", i + 1, total);
    }
    report.notification_settings = Some(counts);

    let current = store.system_settings().await?;
    let mut next = current.clone();
    for (field, value) in &settings.system_settings {
        let patch =
            serde_json::Value::Object(serde_json::Map::from_iter([(field.clone(), value.clone())]));
        match next.apply_patch(&patch) {
            Ok(patched) => next = patched,
            Err(e) => report
                .skipped
                .push(format!("system settings: {e} (kept Herald's)")),
        }
    }
    let mut counts = KindCounts::default();
    if tally(&mut counts, Some(&current), &next) {
        store.put_system_settings(&next).await?;
    }
    report.system_settings = Some(counts);
    Ok(stale)
}

/// Removes one object the ledger names; `false` when it was gone already (or its id is not
/// one Herald could have written).
async fn remove_one(store: &dyn HeraldStore, kind: &str, id: &str) -> Result<bool, StoreError> {
    let resource = || parse_id(id);
    match kind {
        kind::RISK_ACCEPTANCES => match resource() {
            Some(id) => store.delete_risk_acceptance(&id).await,
            None => Ok(false),
        },
        kind::FINDINGS => match resource() {
            Some(id) => store.delete_finding(&id).await,
            None => Ok(false),
        },
        kind::ENGAGEMENTS => match resource() {
            Some(id) => store.delete_engagement(&id).await,
            None => Ok(false),
        },
        kind::PRODUCT_TYPE_MEMBERS => match parse_membership(id) {
            Some((t, u)) => store.delete_product_type_member(&t, &u).await,
            None => Ok(false),
        },
        kind::PRODUCT_NOTIFICATIONS => match parse_membership(id) {
            Some((p, u)) => store.delete_product_notifications(&u, &p).await,
            None => Ok(false),
        },
        kind::PRODUCT_MEMBERS => match parse_membership(id) {
            Some((p, u)) => store.delete_product_member(&p, &u).await,
            None => Ok(false),
        },
        kind::USERS => match Username::parse("username", id) {
            Ok(user) => store.delete_user(&user).await,
            Err(_) => Ok(false),
        },
        kind::PRODUCTS => match resource() {
            Some(id) => store.delete_product(&id).await,
            None => Ok(false),
        },
        kind::PRODUCT_TYPES => match resource() {
            Some(id) => store.delete_product_type(&id).await,
            None => Ok(false),
        },
        other => Err(StoreError::Invalid(format!("no such kind: {other}"))),
    }
}

/// Removes each of `stale` (ids of `kind`), forgetting the ids removed or already gone;
/// answers how many were removed. A removal the store refuses (a product type that still
/// has products Herald got from elsewhere) stays recorded and is listed in `skipped`.
async fn remove_stale(
    store: &dyn HeraldStore,
    ledger: &str,
    kind: &str,
    stale: &[String],
    progress: &(dyn Fn(&str, usize, usize) + Sync),
    skipped: &mut Vec<String>,
) -> Result<u64, StoreError> {
    let mut removed = 0;
    let mut gone = Vec::with_capacity(stale.len());
    let label = kind.replace('_', " ");
    for (i, id) in stale.iter().enumerate() {
        match remove_one(store, kind, id).await {
            Ok(true) => {
                removed += 1;
                gone.push(id.clone());
            }
            Ok(false) | Err(StoreError::NotFound(_)) => gone.push(id.clone()),
            Err(StoreError::Conflict(why)) => skipped.push(format!(
                "{} {id} is gone from DefectDojo but stays in Herald: {why}",
                label.strip_suffix('s').unwrap_or(&label)
            )),
            Err(e) => {
                // What was removed so far is forgotten; the rest is tried again next run.
                store.forget_synced(ledger, kind, &gone).await?;
                return Err(e);
            }
        }
        progress(&format!("removing {label}"), i + 1, stale.len());
    }
    store.forget_synced(ledger, kind, &gone).await?;
    Ok(removed)
}

/// Where a sync reads from: a DefectDojo's base URL and an API v2 token
/// (`Authorization: Token <key>`).
#[derive(Clone)]
pub struct DefectDojoSource {
    pub url: String,
    pub token: crate::domain::Secret,
    /// Objects per page (`limit`).
    pub page_size: usize,
    /// How long one request may take.
    pub timeout: std::time::Duration,
}

impl std::fmt::Debug for DefectDojoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DefectDojoSource")
            .field("url", &self.url)
            .field("page_size", &self.page_size)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl DefectDojoSource {
    /// Objects per page unless told otherwise.
    pub const DEFAULT_PAGE_SIZE: usize = 500;
    /// Seconds one request may take unless told otherwise.
    pub const DEFAULT_TIMEOUT_SECS: u64 = 30;

    /// A source with the default page size and timeout.
    pub fn new(url: impl Into<String>, token: crate::domain::Secret) -> Self {
        Self {
            url: url.into(),
            token,
            page_size: Self::DEFAULT_PAGE_SIZE,
            timeout: std::time::Duration::from_secs(Self::DEFAULT_TIMEOUT_SECS),
        }
    }

    /// The API client for it.
    pub fn api(&self) -> Result<DefectDojoApi, DojoApiError> {
        Ok(
            DefectDojoApi::new(&self.url, self.token.clone(), self.timeout)?
                .with_page_size(self.page_size),
        )
    }
}

/// What one sync is asked to do.
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    /// The DefectDojo to read; `None`: the configured one.
    pub source: Option<DefectDojoSource>,
    /// Objects per page, instead of the source's own.
    pub page_size: Option<usize>,
    /// Whether DefectDojo's notification settings are imported too.
    pub import_settings: bool,
    /// Herald's public base URL, to register each active user's webhook in DefectDojo with.
    pub register_webhooks: Option<String>,
}

/// Why a requested sync did not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum SyncRunError {
    /// Registering webhooks needs Herald's `defectdojo_webhook_key`, or the URL is unusable.
    #[error("{0}")]
    Registration(String),
    /// No DefectDojo is configured and the request named none.
    #[error(
        "no DefectDojo is configured: send `url` and `api_token`, or configure the host (herald-local: --defectdojo-url and --defectdojo-token-file; AWS: the DefectDojoUrl and DefectDojoTokenSecretArn parameters)"
    )]
    NotConfigured,
    /// The configured DefectDojo's token could not be read; nothing was changed.
    #[error("nothing was changed in Herald: {0}")]
    Token(String),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// The sync a host offers: its configured DefectDojo, if any, and one run at a time.
#[derive(Clone, Default)]
pub struct SyncService {
    configured: Option<DefectDojoSource>,
    /// Where the configured DefectDojo's token is read before each run (on AWS, Secrets
    /// Manager: a rotated token is used within its cache time); else the source's own.
    token: Option<std::sync::Arc<crate::adapters::SecretsManagerToken>>,
    running: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for SyncService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncService")
            .field("configured", &self.configured)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl SyncService {
    /// The service for `configured` (`None`: every request must name its DefectDojo).
    pub fn new(configured: Option<DefectDojoSource>) -> Self {
        Self {
            configured,
            token: None,
            running: std::sync::Arc::default(),
        }
    }

    /// The service for the DefectDojo at `url` whose token is kept in `secret`, read before
    /// each run.
    pub fn with_secret(url: &str, secret: crate::adapters::SecretsManagerToken) -> Self {
        Self {
            // The token is replaced by the secret's before every run.
            configured: Some(DefectDojoSource::new(url, crate::domain::Secret::new(""))),
            token: Some(std::sync::Arc::new(secret.named("DefectDojo's API token"))),
            running: std::sync::Arc::default(),
        }
    }

    /// The service the environment of a function on AWS describes: `HERALD_DEFECTDOJO_URL`
    /// and `HERALD_DEFECTDOJO_TOKEN_SECRET_ARN` (both, or none: not configured).
    pub fn from_env(secrets: &aws_sdk_secretsmanager::Client) -> Result<Self, String> {
        let url = crate::config::optional(URL_ENV, "");
        let secret = crate::config::optional(TOKEN_SECRET_ENV, "");
        match (url.is_empty(), secret.is_empty()) {
            (true, true) => Ok(Self::default()),
            (false, false) => {
                let service = Self::with_secret(
                    &url,
                    crate::adapters::SecretsManagerToken::new(secrets.clone(), secret),
                );
                if let Some(source) = &service.configured {
                    source.api().map_err(|e| format!("{URL_ENV}: {e}"))?;
                }
                Ok(service)
            }
            (true, false) => Err(format!("{TOKEN_SECRET_ENV} is set but {URL_ENV} is not")),
            (false, true) => Err(format!("{URL_ENV} is set but {TOKEN_SECRET_ENV} is not")),
        }
    }

    /// The configured DefectDojo.
    pub fn configured(&self) -> Option<&DefectDojoSource> {
        self.configured.as_ref()
    }

    /// Runs one sync into `store` as `request` asks: from its DefectDojo, else from the
    /// configured one. One runs at a time in this process: a second waits for the first to
    /// end, then runs (two at once in different processes are safe, only wasteful).
    pub async fn run(
        &self,
        store: &dyn HeraldStore,
        request: SyncRequest,
        progress: &(dyn Fn(&str, usize, usize) + Sync),
    ) -> Result<SyncReport, SyncRunError> {
        let named = request.source.is_some();
        let mut source = match (request.source, &self.configured, &self.token) {
            (Some(named), _, _) => named,
            (None, Some(configured), Some(secret)) => DefectDojoSource {
                token: secret
                    .token()
                    .await
                    .map_err(|e| SyncRunError::Token(e.to_string()))?,
                ..configured.clone()
            },
            (None, Some(configured), None) => configured.clone(),
            (None, None, _) => return Err(SyncRunError::NotConfigured),
        };
        if let Some(page_size) = request.page_size {
            source.page_size = page_size;
        }
        let _running = self.running.lock().await;
        let api = source.api().map_err(SyncError::from)?;
        let started = std::time::Instant::now();
        let register_webhooks = match &request.register_webhooks {
            None => None,
            Some(herald_url) => {
                let settings = store.system_settings().await.map_err(SyncError::from)?;
                // Herald's key goes only to its own DefectDojo: the configured one, or the
                // one its webhooks come from (`defectdojo_instance`).
                let own = |url: &str| url.trim_end_matches('/').to_owned();
                if named
                    && (settings.defectdojo_instance.is_empty()
                        || own(&settings.defectdojo_instance) != own(&source.url))
                {
                    return Err(SyncRunError::Registration(format!(
                        "Herald's webhook key is sent only to its own DefectDojo: register from the configured one, or set defectdojo_instance to {} first",
                        own(&source.url)
                    )));
                }
                let key = settings
                    .defectdojo_webhook_key
                    .ok_or_else(|| {
                        SyncRunError::Registration(
                            "registering webhooks needs Herald's defectdojo_webhook_key: set it first (PUT /v1/system/settings)".to_owned(),
                        )
                    })?;
                Some(
                    WebhookRegistration::new(herald_url, key)
                        .map_err(SyncRunError::Registration)?,
                )
            }
        };
        let options = SyncOptions {
            import_settings: request.import_settings,
            register_webhooks,
        };
        let report = sync_from(&api, store, &options, progress).await;
        match &report {
            Ok(report) => tracing::info!(
                url = %source.url,
                seconds = started.elapsed().as_secs_f64(),
                changed = report.changed_anything(),
                skipped = report.skipped.len(),
                "synced from DefectDojo"
            ),
            Err(e) => {
                tracing::warn!(url = %source.url, error = %e, "the sync from DefectDojo stopped")
            }
        }
        Ok(report?)
    }
}
