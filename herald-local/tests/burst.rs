//! Faults and load: `herald-local` (the binary, as a user runs it) under a burst of 10,000
//! events, with a Slack that fails one request in five transiently, with and without a
//! `kill -9` in the middle.
//!
//! Every event goes to the system Slack channel only: one delivery per event, so the fake
//! Slack below sees exactly one successful `chat.postMessage` per event unless a crash falls
//! between a send and its `sent` record. Whether a request fails is decided by a hash of the
//! message and of how many times the fake has seen it (503 or 429 alike, without
//! `Retry-After`), so which deliveries end `dead` after the last attempt is known before the
//! burst starts.
//!
//! `cargo test -p herald-local --test burst -- --nocapture` prints the measured numbers.

mod common;

use common::Server;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Events in a burst.
const EVENTS: usize = 10_000;
/// Requests in flight from the test to the API.
const CONNECTIONS: usize = 32;
/// The share of Slack requests, in percent, that fail transiently.
const FAULT_PERCENT: u64 = 20;
/// `HERALD_MAX_ATTEMPTS`: a delivery whose fourth attempt fails is `dead` (with one request in
/// five failing, about 16 in 10,000; 9 with this hash).
const MAX_ATTEMPTS: u32 = 4;
/// `HERALD_RETRY_BASE_SECONDS`: retries after 25–50 ms, 50–100 ms, ... instead of minutes.
const RETRY_BASE_SECONDS: &str = "0.05";
/// The Slack message of event `i` (the system channel's text is "TEAM notification: TITLE").
fn slack_text(i: usize) -> String {
    format!("AppSec notification: Burst {i}")
}

fn event_id(run: &str, i: usize) -> String {
    format!("{run}-{i}")
}

/// Starts `herald-local` with Slack at `slack_url`, fast retries and no scheduled checks.
fn start(data_dir: &std::path::Path, slack_url: &str) -> Server {
    let attempts = MAX_ATTEMPTS.to_string();
    common::start(
        data_dir,
        &["--check-interval", "0"],
        &[
            ("SLACK_API_URL", slack_url),
            ("HERALD_RETRY_BASE_SECONDS", RETRY_BASE_SECONDS),
            ("HERALD_MAX_ATTEMPTS", &attempts),
        ],
    )
}

fn token(data_dir: &std::path::Path, sub: &str, role: &str) -> String {
    common::token(data_dir, sub, role, &[])
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(CONNECTIONS)
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// FNV-1a over the message text and the attempt number, mixed by SplitMix64's finalizer (so
/// one message's attempts fail independently): the same answer in every run.
fn fault_hash(text: &str, attempt: u32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes().chain(attempt.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// The fake Slack's answer to the `attempt`-th request carrying `text`: `None` for success,
/// else a transient failure (503 or 429, in equal parts).
fn fault(text: &str, attempt: u32) -> Option<axum::http::StatusCode> {
    let hash = fault_hash(text, attempt);
    let status = if (hash >> 32) & 1 == 0 {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    } else {
        axum::http::StatusCode::TOO_MANY_REQUESTS
    };
    (hash % 100 < FAULT_PERCENT).then_some(status)
}

/// Whether every one of the `MAX_ATTEMPTS` requests for event `i` fails: its delivery must end
/// `dead`.
fn doomed(i: usize) -> bool {
    let text = slack_text(i);
    (1..=MAX_ATTEMPTS).all(|attempt| fault(&text, attempt).is_some())
}

/// What the fake Slack saw of one message.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    /// Requests, failed ones included.
    requests: u32,
    /// Requests answered `ok: true`: the message reached the channel.
    delivered: u32,
}

type Tallies = Arc<Mutex<HashMap<String, Tally>>>;

/// A fake Slack Web API on loopback.
struct FakeSlack {
    url: String,
    tallies: Tallies,
    /// Armed with a sender, the next successful post reports itself on it and holds its
    /// answer until `killed` flips: Slack has the message, Herald never hears so.
    trip: Arc<Mutex<Option<tokio::sync::oneshot::Sender<()>>>>,
    killed: tokio::sync::watch::Sender<bool>,
}

impl FakeSlack {
    /// A receiver that hears when a post has reached Slack and its answer is held back.
    fn arm(&self) -> tokio::sync::oneshot::Receiver<()> {
        let (tripped, trip) = tokio::sync::oneshot::channel();
        *self.trip.lock().unwrap_or_else(|e| e.into_inner()) = Some(tripped);
        trip
    }
}

/// Starts a [`FakeSlack`]: `chat.postMessage` fails transiently as [`fault`] says, and every
/// request and every success is counted per message text.
async fn fake_slack() -> FakeSlack {
    use axum::response::IntoResponse;
    use axum::routing::post;
    let tallies: Tallies = Arc::default();
    let trip: Arc<Mutex<Option<tokio::sync::oneshot::Sender<()>>>> = Arc::default();
    let (killed, _) = tokio::sync::watch::channel(false);
    let (recorded, armed, kill) = (tallies.clone(), trip.clone(), killed.clone());
    let app = axum::Router::new().route(
        "/api/chat.postMessage",
        post(move |body: axum::Json<serde_json::Value>| {
            let (recorded, armed, mut killed) = (recorded.clone(), armed.clone(), kill.subscribe());
            async move {
                let text = body["text"].as_str().unwrap_or_default().to_owned();
                let failure = {
                    let mut tallies = recorded.lock().unwrap_or_else(|e| e.into_inner());
                    let tally = tallies.entry(text.clone()).or_default();
                    tally.requests += 1;
                    let failure = fault(&text, tally.requests);
                    if failure.is_none() {
                        tally.delivered += 1;
                    }
                    failure
                };
                if let Some(status) = failure {
                    return (
                        status,
                        axum::Json(
                            serde_json::json!({"ok": false, "error": "service_unavailable"}),
                        ),
                    )
                        .into_response();
                }
                let tripped = armed.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(tripped) = tripped {
                    let _ = tripped.send(());
                    let _ = tokio::time::timeout(
                        Duration::from_secs(30),
                        killed.wait_for(|killed| *killed),
                    )
                    .await;
                }
                axum::Json(serde_json::json!({"ok": true, "channel": "C1", "ts": "1.2"}))
                    .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    FakeSlack {
        url: format!("http://{address}/api"),
        tallies,
        trip,
        killed,
    }
}

/// Slack on for the system channel, and every event type to Slack only.
async fn configure(client: &reqwest::Client, base: &str, admin: &str) {
    for (path, body) in [
        (
            "/v1/system/settings",
            serde_json::json!({"enable_slack_notifications": true, "slack_channel": "#appsec",
                "slack_token": "xoxb-burst", "team_name": "AppSec"}),
        ),
        (
            "/v1/notifications/system",
            serde_json::json!({"events": {"other": ["slack"]}}),
        ),
    ] {
        let r = client
            .put(format!("{base}{path}"))
            .bearer_auth(admin)
            .json(&body)
            .send()
            .await;
        assert!(r.is_ok_and(|r| r.status().is_success()), "{path}");
    }
}

/// Posts events `indices` of `run` over [`CONNECTIONS`] connections until `stop` is set, and
/// marks in `accepted` each one answered 202 with one delivery. A request that gets no answer
/// (the server was killed) leaves its event unmarked.
async fn post_events(
    client: &reqwest::Client,
    base: &str,
    service: &str,
    run: &str,
    indices: Vec<usize>,
    accepted: Arc<Vec<AtomicBool>>,
    stop: Arc<AtomicBool>,
) {
    let indices = Arc::new(indices);
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (client, indices, next, accepted, stop) = (
                client.clone(),
                indices.clone(),
                next.clone(),
                accepted.clone(),
                stop.clone(),
            );
            let (url, service, run) = (
                format!("{base}/v1/events"),
                service.to_owned(),
                run.to_owned(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Some(&i) = indices.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        return;
                    };
                    let body = serde_json::json!({"id": event_id(&run, i), "type": "report_created",
                        "title": format!("Burst {i}"), "no_users": true});
                    let Ok(response) = client
                        .post(&url)
                        .bearer_auth(&service)
                        .json(&body)
                        .send()
                        .await
                    else {
                        continue;
                    };
                    let status = response.status();
                    // An answer the kill cut off in the middle is no answer either.
                    let Ok(answer) = response.json::<serde_json::Value>().await else {
                        continue;
                    };
                    assert_eq!(status, 202, "event {i}: {answer}");
                    assert_eq!(answer["deliveries"], 1, "event {i}: {answer}");
                    accepted[i].store(true, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for worker in workers {
        worker
            .await
            .unwrap_or_else(|e| panic!("a posting task failed: {e}"));
    }
}

/// Waits, cheaply (nothing but the fake's own counts), until the fake Slack has seen every
/// event through: delivered, or failed `MAX_ATTEMPTS` times; or until it has seen no request
/// for `quiet` (messages a killed process had received but not claimed come back only after
/// the visibility timeout); or until `deadline`.
async fn await_sink(tallies: &Tallies, quiet: Duration, deadline: Instant) {
    let (mut last_requests, mut last_change) = (0, Instant::now());
    while Instant::now() < deadline && last_change.elapsed() < quiet {
        let (through, requests) = {
            let tallies = tallies.lock().unwrap_or_else(|e| e.into_inner());
            let through = (0..EVENTS)
                .filter(|&i| {
                    tallies
                        .get(&slack_text(i))
                        .is_some_and(|t| t.delivered > 0 || t.requests >= MAX_ATTEMPTS)
                })
                .count();
            (through, tallies.values().map(|t| t.requests).sum::<u32>())
        };
        if through == EVENTS {
            return;
        }
        if requests != last_requests {
            (last_requests, last_change) = (requests, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The one delivery of an event as `GET /v1/events/{id}` shows it.
#[derive(Debug, Clone)]
struct Outcome {
    status: String,
    attempts: u64,
}

/// Polls `GET /v1/events/{id}` for the events not yet final, over [`CONNECTIONS`]
/// connections, until each one's delivery is `sent`, `failed` or `dead`, or `deadline` passes.
async fn await_final(
    client: &reqwest::Client,
    base: &str,
    service: &str,
    run: &str,
    deadline: Instant,
) -> HashMap<usize, Outcome> {
    let finals: Arc<Mutex<HashMap<usize, Outcome>>> = Arc::default();
    loop {
        let pending: Arc<Vec<usize>> = {
            let finals = finals.lock().unwrap_or_else(|e| e.into_inner());
            Arc::new((0..EVENTS).filter(|i| !finals.contains_key(i)).collect())
        };
        if pending.is_empty() || Instant::now() > deadline {
            break;
        }
        let next = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                let (client, pending, next, finals) = (
                    client.clone(),
                    pending.clone(),
                    next.clone(),
                    finals.clone(),
                );
                let (base, service, run) = (base.to_owned(), service.to_owned(), run.to_owned());
                tokio::spawn(async move {
                    while let Some(&i) = pending.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let response = client
                            .get(format!("{base}/v1/events/{}", event_id(&run, i)))
                            .bearer_auth(&service)
                            .send()
                            .await
                            .unwrap_or_else(|e| panic!("{e}"));
                        assert_eq!(response.status(), 200, "accepted event {i} is known");
                        let body: serde_json::Value = response.json().await.unwrap_or_default();
                        let deliveries = body["deliveries"].as_array().map_or(0, Vec::len);
                        assert_eq!(deliveries, 1, "event {i}: {body}");
                        let delivery = &body["deliveries"][0];
                        let status = delivery["status"].as_str().unwrap_or_default();
                        if matches!(status, "sent" | "failed" | "dead") {
                            let outcome = Outcome {
                                status: status.to_owned(),
                                attempts: delivery["attempts"].as_u64().unwrap_or_default(),
                            };
                            finals
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(i, outcome);
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker
                .await
                .unwrap_or_else(|e| panic!("a polling task failed: {e}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let finals = finals.lock().unwrap_or_else(|e| e.into_inner());
    finals.clone()
}

/// How many deliveries ended in each final status.
fn count(outcomes: &HashMap<usize, Outcome>, status: &str) -> usize {
    outcomes.values().filter(|o| o.status == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_burst_of_10000_events_and_a_slack_failing_one_request_in_five_then_each_is_sent_once_or_dead()
 {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let slack = fake_slack().await;
    let (slack_url, tallies) = (slack.url.clone(), slack.tallies.clone());
    let client = client();
    let admin = token(dir.path(), "admin", "admin");
    let service = token(dir.path(), "defectdojo", "service");
    let server = start(dir.path(), &slack_url);
    configure(&client, &server.base, &admin).await;

    let accepted: Arc<Vec<AtomicBool>> =
        Arc::new((0..EVENTS).map(|_| AtomicBool::new(false)).collect());
    let posting = Instant::now();
    post_events(
        &client,
        &server.base,
        &service,
        "burst",
        (0..EVENTS).collect(),
        accepted.clone(),
        Arc::new(AtomicBool::new(false)),
    )
    .await;
    let posted_in = posting.elapsed();
    let unanswered = accepted
        .iter()
        .filter(|a| !a.load(Ordering::Relaxed))
        .count();
    assert_eq!(unanswered, 0, "events posted without a 202");

    await_sink(
        &tallies,
        Duration::from_secs(10),
        Instant::now() + Duration::from_secs(240),
    )
    .await;
    let outcomes = await_final(
        &client,
        &server.base,
        &service,
        "burst",
        Instant::now() + Duration::from_secs(240),
    )
    .await;
    let settled_in = posting.elapsed();
    let tallies = tallies.lock().unwrap_or_else(|e| e.into_inner()).clone();

    let unsettled: Vec<usize> = (0..EVENTS).filter(|i| !outcomes.contains_key(i)).collect();
    assert!(
        unsettled.is_empty(),
        "deliveries never final: {unsettled:?}"
    );
    let expected_dead: Vec<usize> = (0..EVENTS).filter(|&i| doomed(i)).collect();
    let (sent, failed, dead) = (
        count(&outcomes, "sent"),
        count(&outcomes, "failed"),
        count(&outcomes, "dead"),
    );
    assert_eq!(sent + failed + dead, EVENTS);
    assert_eq!(failed, 0, "transient faults never fail a delivery for good");
    assert_eq!(dead, expected_dead.len());
    assert_eq!(sent, EVENTS - expected_dead.len());
    let mut duplicates = 0;
    let mut requests = 0;
    for i in 0..EVENTS {
        let outcome = &outcomes[&i];
        let tally = tallies.get(&slack_text(i)).copied().unwrap_or_default();
        requests += tally.requests;
        let expected = if doomed(i) { "dead" } else { "sent" };
        assert_eq!(outcome.status, expected, "event {i}: {tally:?}");
        // Each attempt Herald counts is one request Slack saw, and the other way round.
        assert_eq!(outcome.attempts, u64::from(tally.requests), "event {i}");
        let delivered_once = u32::from(expected == "sent");
        duplicates += tally.delivered.saturating_sub(delivered_once);
        assert!(
            tally.delivered >= delivered_once,
            "event {i} is sent but never reached Slack"
        );
    }
    assert_eq!(duplicates, 0, "no crash, no duplicate");
    assert_eq!(tallies.len(), EVENTS, "nothing else reached Slack");

    eprintln!(
        "burst: {EVENTS} events accepted in {:.1} s ({:.0} events/s), all final after {:.1} s \
         ({:.0} deliveries/s); {requests} Slack requests with {FAULT_PERCENT} % failing; \
         {sent} sent, {failed} failed, {dead} dead (as predicted), {duplicates} duplicates; \
         test wall time {:.1} s",
        posted_in.as_secs_f64(),
        EVENTS as f64 / posted_in.as_secs_f64(),
        settled_in.as_secs_f64(),
        EVENTS as f64 / settled_in.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
}

/// `kill -9` once half the burst is accepted, a restart on the same data directory, and the
/// rest of the burst (events whose answer the kill cut off are posted again: the same id
/// answers as the first time). Every event answered 202 ends `sent` or `dead`; the only
/// duplicates are sends that succeeded just before the kill with their `sent` not yet
/// recorded: at most the Slack sender's batch in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_kill_9_in_the_middle_of_a_burst_then_a_restart_delivers_every_accepted_event_within_the_crash_window()
 {
    use herald_local::driver::BATCH_SIZE;
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let slack = fake_slack().await;
    let (slack_url, tallies) = (slack.url.clone(), slack.tallies.clone());
    let client = client();
    let admin = token(dir.path(), "admin", "admin");
    let service = token(dir.path(), "defectdojo", "service");
    let mut server = start(dir.path(), &slack_url);
    configure(&client, &server.base, &admin).await;

    let accepted: Arc<Vec<AtomicBool>> =
        Arc::new((0..EVENTS).map(|_| AtomicBool::new(false)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let base = server.base.clone();
    let accepted_count = |accepted: &[AtomicBool]| {
        accepted
            .iter()
            .filter(|a| a.load(Ordering::Relaxed))
            .count()
    };
    let killer = async {
        while accepted_count(&accepted) < EVENTS / 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The kill falls while a post Slack has taken waits for its answer: a send that
        // succeeded with its `sent` not recorded, the crash window itself.
        let tripped = slack.arm();
        assert!(
            tokio::time::timeout(Duration::from_secs(60), tripped)
                .await
                .is_ok_and(|t| t.is_ok()),
            "no Slack post succeeded in the middle of the burst"
        );
        // Child::kill is SIGKILL: no shutdown, no flush, senders stopped wherever they were.
        server
            .child
            .kill()
            .unwrap_or_else(|e| panic!("cannot kill herald-local: {e}"));
        let _ = server.child.wait();
        stop.store(true, Ordering::Relaxed);
        let _ = slack.killed.send(true);
    };
    tokio::join!(
        post_events(
            &client,
            &base,
            &service,
            "crash",
            (0..EVENTS).collect(),
            accepted.clone(),
            stop.clone(),
        ),
        killer
    );
    let accepted_before_kill = accepted_count(&accepted);
    let delivered_before_kill: u32 = tallies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .map(|t| t.delivered)
        .sum();
    drop(server);

    let restarted = Instant::now();
    let server = start(dir.path(), &slack_url);
    let rest: Vec<usize> = (0..EVENTS)
        .filter(|&i| !accepted[i].load(Ordering::Relaxed))
        .collect();
    post_events(
        &client,
        &server.base,
        &service,
        "crash",
        rest,
        accepted.clone(),
        Arc::new(AtomicBool::new(false)),
    )
    .await;
    assert_eq!(accepted_count(&accepted), EVENTS);

    // The messages the killed process was sending come back at the restart; any it had
    // received but not yet claimed stay hidden for the queue's 60 s visibility timeout.
    await_sink(
        &tallies,
        Duration::from_secs(5),
        Instant::now() + Duration::from_secs(240),
    )
    .await;
    let outcomes = await_final(
        &client,
        &server.base,
        &service,
        "crash",
        Instant::now() + Duration::from_secs(240),
    )
    .await;
    let settled_in = restarted.elapsed();
    let tallies = tallies.lock().unwrap_or_else(|e| e.into_inner()).clone();

    let unsettled: Vec<usize> = (0..EVENTS).filter(|i| !outcomes.contains_key(i)).collect();
    assert!(
        unsettled.is_empty(),
        "deliveries never final: {unsettled:?}"
    );
    let (sent, failed, dead) = (
        count(&outcomes, "sent"),
        count(&outcomes, "failed"),
        count(&outcomes, "dead"),
    );
    assert_eq!(sent + failed + dead, EVENTS);
    assert_eq!(failed, 0, "transient faults never fail a delivery for good");
    let (mut duplicates, mut requests, mut unrecorded) = (0, 0, 0);
    for i in 0..EVENTS {
        let outcome = &outcomes[&i];
        let tally = tallies.get(&slack_text(i)).copied().unwrap_or_default();
        requests += tally.requests;
        let delivered_once = u32::from(outcome.status == "sent");
        assert!(
            tally.delivered >= delivered_once,
            "event {i} is sent but never reached Slack"
        );
        duplicates += tally.delivered - delivered_once;
        // A request whose outcome the kill kept from being recorded.
        let attempts = u32::try_from(outcome.attempts).unwrap_or(u32::MAX);
        assert!(
            attempts <= tally.requests,
            "event {i}: {outcome:?} {tally:?}"
        );
        unrecorded += tally.requests - attempts;
    }
    assert_eq!(tallies.len(), EVENTS, "nothing else reached Slack");
    let window = u32::try_from(BATCH_SIZE).unwrap_or(u32::MAX);
    assert!(
        unrecorded <= window,
        "{unrecorded} Slack requests without a recorded attempt; at most the {window} in flight"
    );
    assert!(
        duplicates <= window,
        "{duplicates} duplicates; the crash window is the {window} sends in flight"
    );
    assert!(
        duplicates >= 1,
        "the post Slack took just before the kill is sent again"
    );

    eprintln!(
        "kill -9: {accepted_before_kill} of {EVENTS} events accepted and {delivered_before_kill} \
         delivered before the kill; after the restart all final in {:.1} s; {requests} Slack \
         requests with {FAULT_PERCENT} % failing; {sent} sent, {failed} failed, {dead} dead; \
         {unrecorded} requests unrecorded, {duplicates} duplicates (window {window}); \
         test wall time {:.1} s",
        settled_in.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
}
