//! `sender-batch`: one Slack sender binary, batch after batch of Slack direct messages, as its
//! SQS trigger would hand them over.
//!
//! Set-up, before the function starts: a fresh table with Slack switched on (a bot token, a
//! team name), `records` users whose `slack_user_id` is known (so no `users.lookupByEmail`),
//! and for every round an event recorded with one queued Slack DM to each of them: fresh
//! delivery ids every round. The four channel queues exist on moto, as the function's
//! configuration needs them; the batches themselves come from the emulated Runtime API, each
//! an `SqsEvent` carrying the `DeliveryMessage`s the Slack queue would.
//!
//! Measured: the cold start (spawn → first `next`), each batch (handed out → `/response`),
//! and after the last round the peak RSS (`VmHWM`). Checked after each batch: the answer is an
//! `SqsBatchResponse` without failures, Slack got exactly `records` posts and nothing else,
//! and every delivery of the round is `sent` in the table.

use crate::BenchResult;
use crate::emulators::{Emulators, Resources, queue_arn};
use crate::function::{Function, FunctionSpec};
use crate::slack_sink::SlackSink;
use aws_lambda_events::event::sqs::SqsBatchResponse;
use herald_shared::adapters::DynamoDbStore;
use herald_shared::domain::{
    Delivery, DeliveryStatus, Destination, Event, NotificationSettings, Secret, SystemSettings,
    UserProfile, Username,
};
use herald_shared::ports::{DirectoryStore, EventRecord, EventStore, RecordOutcome, SettingsStore};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

/// The bot token the function sends and the Slack stand-in expects.
const SLACK_TOKEN: &str = "xoxb-herald-bench-token";
/// How long the function may take for one batch (its Lambda timeout).
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the function may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What to run and how much.
#[derive(Debug, Clone)]
pub struct SenderBatchArgs {
    pub binary: PathBuf,
    pub dynamodb_url: String,
    pub sqs_url: String,
    /// Records per batch (one Slack DM to each of this many users).
    pub records: usize,
    /// How long the Slack stand-in takes to answer a post.
    pub delay: Duration,
    pub rounds: usize,
    /// Where the function's output goes.
    pub log: PathBuf,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct SenderBatchReport {
    pub function: String,
    pub records: usize,
    pub delay: Duration,
    /// Each round's batch latency, in order.
    pub batches: Vec<Duration>,
    pub cold_start: Duration,
    pub peak_rss_bytes: u64,
    pub binary_bytes: u64,
    pub log: PathBuf,
}

/// Runs the scenario against the emulators in `args`; the table and queues it makes are
/// removed at the end, whatever happened.
pub async fn run(args: &SenderBatchArgs, run_id: &str) -> BenchResult<SenderBatchReport> {
    let emulators = Emulators::connect(&args.dynamodb_url, &args.sqs_url).await?;
    let mut resources = Resources::default();
    let outcome = tokio::select! {
        outcome = measure(args, &emulators, &mut resources, run_id) => outcome,
        signal = crate::shutdown_signal() => Err(format!("stopped by {signal}").into()),
    };
    // The function (if any) was killed when `measure` ended or was dropped.
    let cleaned = resources.remove(&emulators).await;
    match (outcome, cleaned) {
        (Ok(report), Ok(())) => Ok(report),
        (Ok(_), Err(e)) => Err(e),
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(cleanup)) => Err(format!("{e}\nand then {cleanup}").into()),
    }
}

async fn measure(
    args: &SenderBatchArgs,
    emulators: &Emulators,
    resources: &mut Resources,
    run_id: &str,
) -> BenchResult<SenderBatchReport> {
    let binary_bytes = std::fs::metadata(&args.binary)
        .map_err(|e| format!("{}: {e}", args.binary.display()))?
        .len();
    let function = args.binary.file_name().map_or_else(
        || "function".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    );

    eprintln!("[bench] creating the table and queues for run {run_id}");
    let (store, queues) = resources.create(emulators, run_id).await?;
    let slack_queue_arn = queue_arn(emulators, &queues.slack).await?;
    let users = seed_directory(&store, args.records).await?;
    eprintln!(
        "[bench] recording {} events of {} Slack DMs each",
        args.rounds, args.records
    );
    let mut rounds = Vec::with_capacity(args.rounds);
    for round in 0..args.rounds {
        rounds.push(record_round(&store, run_id, round, &users).await?);
    }

    let sink = SlackSink::start(args.delay, SLACK_TOKEN).await?;
    let spec = FunctionSpec {
        binary: args.binary.clone(),
        name: function.clone(),
        env: vec![
            ("HERALD_TABLE_NAME".into(), store.table_name().to_owned()),
            ("HERALD_QUEUE_URL_MAIL".into(), queues.mail.clone()),
            ("HERALD_QUEUE_URL_SLACK".into(), queues.slack.clone()),
            ("HERALD_QUEUE_URL_MSTEAMS".into(), queues.msteams.clone()),
            ("HERALD_QUEUE_URL_WEBHOOKS".into(), queues.webhooks.clone()),
            ("SLACK_API_URL".into(), sink.api_url()),
            ("HERALD_RETRY_BASE_SECONDS".into(), "30".into()),
            ("HERALD_MAX_ATTEMPTS".into(), "5".into()),
            (
                "AWS_ENDPOINT_URL_DYNAMODB".into(),
                emulators.dynamodb_url.clone(),
            ),
            ("AWS_ENDPOINT_URL_SQS".into(), emulators.sqs_url.clone()),
        ],
        log: args.log.clone(),
        timeout: FUNCTION_TIMEOUT,
    };
    eprintln!(
        "[bench] starting {} (log: {})",
        args.binary.display(),
        args.log.display()
    );
    let mut running = Function::start(&spec).await?;
    let cold_start = running.wait_until_polling(START_TIMEOUT).await?;

    let mut batches = Vec::with_capacity(args.rounds);
    for (round, recorded) in rounds.iter().enumerate() {
        let payload = sqs_event(run_id, round, recorded, &slack_queue_arn)?;
        let posts_before = sink.posts();
        let invoked = running.invoke(&payload).await?;
        let posts = sink.posts() - posts_before;
        check_answer(round, &invoked.body, args.records, posts, sink.unexpected())?;
        check_sent(&store, recorded).await?;
        batches.push(invoked.latency);
        eprintln!(
            "[bench] round {:>3}: {} records in {:.1} ms",
            round + 1,
            args.records,
            invoked.latency.as_secs_f64() * 1000.0
        );
    }
    let memory = running.memory()?;
    running.stop();
    Ok(SenderBatchReport {
        function,
        records: args.records,
        delay: args.delay,
        batches,
        cold_start,
        peak_rss_bytes: memory.peak_rss_bytes,
        binary_bytes,
        log: args.log.clone(),
    })
}

/// Slack on with a token and a team name; `count` users with a known Slack member id.
async fn seed_directory(store: &DynamoDbStore, count: usize) -> BenchResult<Vec<Username>> {
    let system = SystemSettings {
        enable_slack_notifications: true,
        slack_token: Some(Secret::new(SLACK_TOKEN)),
        team_name: "AppSec".into(),
        site_url: "https://defectdojo.example.com".into(),
        ..SystemSettings::default()
    };
    store.put_system_settings(&system).await?;
    let template = NotificationSettings::defaults();
    let mut users = Vec::with_capacity(count);
    for i in 1..=count {
        let username = Username::parse("username", &format!("bench-user-{i:03}"))?;
        let profile = UserProfile {
            email: Some(format!("bench-user-{i:03}@example.com")),
            first_name: format!("User {i}"),
            slack_user_id: Some(format!("UBENCH{i:04}")),
            ..UserProfile::default()
        };
        store.put_user(&username, &profile, &template).await?;
        users.push(username);
    }
    Ok(users)
}

/// One round's event and its deliveries, as intake leaves them: recorded and queued.
#[derive(Debug, Clone)]
struct RecordedRound {
    event: Event,
    deliveries: Vec<Delivery>,
}

async fn record_round(
    store: &DynamoDbStore,
    run_id: &str,
    round: usize,
    users: &[Username],
) -> BenchResult<RecordedRound> {
    let id = format!("bench-{run_id}-{round:04}");
    let body = json!({
        "id": id,
        "type": "scan_added",
        "title": format!("Created/Updated 3 findings for Web shop: Q3: ZAP Scan (round {})", round + 1),
        "description": "3 new findings",
        "url": "/product/7/engagement/12/test/99",
        "product_id": 7,
        "engagement": {"id": 12, "name": "Q3"},
        "test": {"id": 99, "title": "ZAP Scan"},
        "findings": {"new": [
            {"id": 1, "title": "Reflected XSS", "severity": "High"},
            {"id": 2, "title": "SQL injection", "severity": "Critical"},
            {"id": 3, "title": "Open redirect", "severity": "Low"}
        ]},
    });
    let event = Event::from_request(&body, || id.clone())?;
    let now = crate::runtime_api::unix_ms();
    let deliveries: Vec<Delivery> = users
        .iter()
        .map(|user| Delivery::queued(&event.id, Destination::SlackUser(user.clone()), now))
        .collect();
    let record = EventRecord {
        event: event.clone(),
        accepted_at: now,
        delivery_count: u32::try_from(deliveries.len())?,
        alert_count: 0,
        enqueued: true,
        complete: true,
    };
    match store.record_event(&record, &[], &deliveries).await? {
        RecordOutcome::Recorded | RecordOutcome::Queued => {}
        RecordOutcome::Duplicate(_) => return Err(format!("event {id} already existed").into()),
    }
    Ok(RecordedRound { event, deliveries })
}

/// The batch the Slack queue's trigger would hand over: one record per delivery, first
/// receive.
fn sqs_event(
    run_id: &str,
    round: usize,
    recorded: &RecordedRound,
    queue_arn: &str,
) -> BenchResult<Value> {
    let sent_at = crate::runtime_api::unix_ms().to_string();
    let mut records = Vec::with_capacity(recorded.deliveries.len());
    for (i, delivery) in recorded.deliveries.iter().enumerate() {
        records.push(json!({
            "messageId": format!("{run_id}-{round:04}-{i:04}"),
            "receiptHandle": format!("AQEBherald-bench-{run_id}-{round:04}-{i:04}"),
            "body": serde_json::to_string(&delivery.message())?,
            "attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": sent_at,
                "SenderId": "AROAEXAMPLE:event-intake",
                "ApproximateFirstReceiveTimestamp": sent_at,
            },
            "messageAttributes": {
                "delivery_id": {
                    "stringValue": delivery.id.as_str(),
                    "stringListValues": [],
                    "binaryListValues": [],
                    "dataType": "String",
                },
            },
            "md5OfBody": "00000000000000000000000000000000",
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": "us-east-1",
        }));
    }
    Ok(json!({ "Records": records }))
}

/// The answer names no failed record, and Slack saw exactly one post per record.
fn check_answer(
    round: usize,
    body: &[u8],
    records: usize,
    posts: u64,
    unexpected: u64,
) -> BenchResult<()> {
    let answer: SqsBatchResponse = serde_json::from_slice(body).map_err(|e| {
        format!(
            "round {}: the answer is not an SqsBatchResponse ({e}): {}",
            round + 1,
            String::from_utf8_lossy(body)
        )
    })?;
    if !answer.batch_item_failures.is_empty() {
        let ids: Vec<&str> = answer
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        return Err(format!(
            "round {}: {} of {records} records failed: {}",
            round + 1,
            ids.len(),
            ids.join(", ")
        )
        .into());
    }
    if posts != records as u64 {
        return Err(format!(
            "round {}: Slack got {posts} posts for {records} records",
            round + 1
        )
        .into());
    }
    if unexpected != 0 {
        return Err(format!(
            "Slack got {unexpected} calls other than authorized chat.postMessage posts"
        )
        .into());
    }
    Ok(())
}

/// Every delivery of the round is `sent` in the table.
async fn check_sent(store: &DynamoDbStore, recorded: &RecordedRound) -> BenchResult<()> {
    let deliveries = store.deliveries(&recorded.event.id).await?;
    let not_sent: Vec<String> = deliveries
        .iter()
        .filter(|d| d.status != DeliveryStatus::Sent)
        .map(|d| format!("{} {}", d.destination, d.status.name()))
        .collect();
    if deliveries.len() != recorded.deliveries.len() || !not_sent.is_empty() {
        return Err(format!(
            "event {}: {} deliveries stored, not sent: {}",
            recorded.event.id,
            deliveries.len(),
            not_sent.join(", ")
        )
        .into());
    }
    Ok(())
}
