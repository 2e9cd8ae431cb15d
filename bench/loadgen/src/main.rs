//! `herald-loadgen`: the two halves of Herald's local intake benchmark (`bench/intake-load.sh`).
//!
//! - `herald-loadgen hello [--listen ADDR]` serves a bare axum application, `GET` and `POST /`
//!   answering `{"status":"ok"}`: the baseline the real server is compared with. It also answers
//!   `/api/{method}` as Slack's Web API would (`{"ok": true, ...}`), a loopback stand-in for
//!   `SLACK_API_URL`.
//! - `herald-loadgen load --url URL [--path P] [--token T] [--body TEMPLATE] ...` sends requests
//!   over keep-alive connections and reports requests/s, latency percentiles and status counts.
//!   Each `{n}` in the body template becomes the request's sequence number, so every event gets
//!   its own `id`.
//!
//! Two ways to load:
//! - closed loop (the default): `--concurrency` workers, each sending its next request when the
//!   previous one is answered. Measures the most the server does at that concurrency; latency
//!   then follows from Little's law (concurrency / throughput).
//! - open loop (`--rate R`): requests start on a fixed schedule of R per second, at most
//!   `--concurrency` in flight. A request's latency counts from when it was due, not from when
//!   a free slot let it go, so a stalled server is not hidden (no coordinated omission).
//!
//! Safety: the target must be a loopback address literal (127.0.0.0/8 or ::1), after the path
//! is joined; proxies from the environment and redirects are ignored; every run is bounded in
//! time (at most 600 s) and in requests (at most 10,000,000).

use axum::Json;
use axum::routing::get;
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MAX_DURATION_S: f64 = 600.0;
const MAX_REQUESTS: u64 = 10_000_000;
const MAX_CONCURRENCY: usize = 1024;

#[derive(Debug, Parser)]
#[command(
    name = "herald-loadgen",
    version,
    about = "Loopback-only load generator and bare axum baseline server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve a bare axum application: GET and POST / answer {"status":"ok"}. It also stands in
    /// for Slack's Web API under /api/{method} (`{"ok": true, ...}`), so a server under test
    /// can be given SLACK_API_URL=http://ADDR/api and send nothing off the machine.
    Hello {
        /// Address to listen on (port 0 picks a free one; the address is printed).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Send load to a loopback server and report throughput and latency.
    Load(Box<LoadArgs>),
}

#[derive(Debug, Clone, clap::Args)]
struct LoadArgs {
    /// Base URL of the server; its host must be a loopback address (127.0.0.0/8 or [::1]).
    #[arg(long)]
    url: String,
    /// Path (and query) appended to the base URL.
    #[arg(long, default_value = "/")]
    path: String,
    /// Bearer token sent as `Authorization: Bearer <TOKEN>`.
    #[arg(long, env = "HERALD_LOADGEN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// JSON body template; each `{n}` becomes the request's sequence number.
    #[arg(long, conflicts_with = "body_file")]
    body: Option<String>,
    /// Read the body template from this file.
    #[arg(long)]
    body_file: Option<std::path::PathBuf>,
    /// HTTP method: POST when a body is given, else GET.
    #[arg(long)]
    method: Option<String>,
    /// Requests in flight at most (closed loop: the number of workers).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// How long to measure, in seconds (at most 600).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop after this many measured requests (whichever of this and --duration comes first).
    #[arg(long)]
    requests: Option<u64>,
    /// Open loop: start this many requests per second on a fixed schedule.
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds of load before measuring, not reported.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// First value of {n}.
    #[arg(long, default_value_t = 0)]
    start_n: u64,
    /// Worker threads of the load generator's runtime (it shares the machine with the server).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Name of this run in the report.
    #[arg(long, default_value = "load")]
    label: String,
    /// Exit with failure if any answer has another status (or no answer came).
    #[arg(long)]
    expect: Option<u16>,
    /// Print the report as one JSON object on stdout (the text report goes to stderr).
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Hello { listen } => hello(listen),
        Command::Load(args) => load(*args),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("herald-loadgen: {message}");
            ExitCode::FAILURE
        }
    }
}

fn hello(listen: SocketAddr) -> Result<ExitCode, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        async fn ok() -> Json<Value> {
            Json(json!({"status": "ok"}))
        }
        // The body is read, as any real handler would, so keep-alive works for POSTs.
        async fn ok_post(_body: axum::body::Bytes) -> Json<Value> {
            Json(json!({"status": "ok"}))
        }
        // What chat.postMessage and users.lookupByEmail answer, in one body.
        async fn slack(_body: axum::body::Bytes) -> Json<Value> {
            Json(json!({"ok": true, "channel": "C0BENCH", "ts": "1700000000.000100", "user": {"id": "U0BENCH"}}))
        }
        let app = axum::Router::new()
            .route("/", get(ok).post(ok_post))
            .route("/api/{method}", get(slack).post(slack));
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        eprintln!("herald-loadgen hello listening on http://{address}");
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| format!("server failed: {e}"))?;
        Ok(ExitCode::SUCCESS)
    })
}

/// `url` if its host is a loopback address literal.
fn loopback_url(base: &str, path: &str) -> Result<reqwest::Url, String> {
    let base = reqwest::Url::parse(base).map_err(|e| format!("--url {base:?}: {e}"))?;
    if !path.starts_with('/') || path.starts_with("//") {
        return Err(format!("--path {path:?} must start with a single /"));
    }
    let url = base
        .join(path)
        .map_err(|e| format!("--path {path:?}: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!("{url}: only http:// is supported"));
    }
    let host = url.host_str().unwrap_or_default();
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    match literal.parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() => Ok(url),
        _ => Err(format!(
            "{url}: refusing a non-loopback target; this tool only sends load to 127.0.0.0/8 or [::1] (use an address, not a name)"
        )),
    }
}

/// A body template split at its `{n}` placeholders.
#[derive(Debug)]
struct Template(Vec<String>);

impl Template {
    fn new(text: &str) -> Self {
        Self(text.split("{n}").map(str::to_owned).collect())
    }

    fn render(&self, n: u64) -> String {
        let number = n.to_string();
        let mut out = String::with_capacity(self.0.iter().map(String::len).sum::<usize>() + 24);
        for (i, part) in self.0.iter().enumerate() {
            if i > 0 {
                out.push_str(&number);
            }
            out.push_str(part);
        }
        out
    }
}

/// What one request needs, shared by every worker.
#[derive(Debug)]
struct Target {
    client: reqwest::Client,
    method: reqwest::Method,
    url: reqwest::Url,
    token: Option<String>,
    body: Option<Template>,
    next_n: AtomicU64,
}

/// One answered (or failed) request: its latency and status (`None` for a transport error).
type Sample = (Duration, Option<u16>);

impl Target {
    async fn send(&self) -> Option<u16> {
        let n = self.next_n.fetch_add(1, Ordering::Relaxed);
        let mut request = self.client.request(self.method.clone(), self.url.clone());
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = &self.body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.render(n));
        }
        match request.send().await {
            // Read the whole answer, so the connection can be reused.
            Ok(response) => {
                let status = response.status().as_u16();
                response.bytes().await.ok().map(|_| status)
            }
            Err(_) => None,
        }
    }
}

/// How a phase (warm-up or measurement) sends load.
#[derive(Debug, Clone, Copy)]
struct Phase {
    duration: Duration,
    limit: u64,
    concurrency: usize,
    rate: Option<f64>,
}

/// What a phase measured.
#[derive(Debug, Default)]
struct Outcome {
    samples: Vec<Sample>,
    /// From the phase's start until its last answer.
    elapsed: Duration,
    /// Open loop: requests that fell due but found no free slot before the phase ended.
    not_sent: Option<u64>,
    /// Requests sent during the warm-up before this phase (not in `samples`).
    warmup_requests: usize,
}

/// Closed loop: `concurrency` workers, each sending as soon as its last answer came.
async fn closed_loop(target: Arc<Target>, phase: Phase) -> Outcome {
    let started = Instant::now();
    let deadline = started + phase.duration;
    let issued = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..phase.concurrency {
        let (target, issued) = (Arc::clone(&target), Arc::clone(&issued));
        workers.spawn(async move {
            let mut samples = Vec::with_capacity(4096);
            while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < phase.limit
            {
                let sent = Instant::now();
                let status = target.send().await;
                samples.push((sent.elapsed(), status));
            }
            samples
        });
    }
    let mut all = Vec::new();
    while let Some(done) = workers.join_next().await {
        if let Ok(samples) = done {
            all.extend(samples);
        }
    }
    Outcome {
        samples: all,
        elapsed: started.elapsed(),
        not_sent: None,
        warmup_requests: 0,
    }
}

/// Open loop: a request is due every 1/rate s; at most `concurrency` in flight. Latency counts
/// from the due time.
async fn open_loop(target: Arc<Target>, phase: Phase, rate: f64) -> Outcome {
    let started = tokio::time::Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let slots = Arc::new(tokio::sync::Semaphore::new(phase.concurrency));
    let samples = Arc::new(Mutex::new(Vec::with_capacity(
        (rate * phase.duration.as_secs_f64()) as usize + 16,
    )));
    let mut i: u64 = 0;
    let mut due_count: u64 = 0;
    while i < phase.limit {
        let due = started + interval.mul_f64(i as f64);
        if due.duration_since(started) >= phase.duration {
            break;
        }
        due_count += 1;
        tokio::time::sleep_until(due).await;
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        // A request still waiting for a slot when the phase ends is not sent (and counted as
        // such): the run stays bounded however far the server falls behind.
        if started.elapsed() >= phase.duration {
            // Every later request is due before the end too.
            let remaining = (phase.duration.as_secs_f64() * rate).ceil() as u64;
            due_count = remaining.min(phase.limit);
            break;
        }
        let (target, samples) = (Arc::clone(&target), Arc::clone(&samples));
        tokio::spawn(async move {
            let status = target.send().await;
            let latency = due.elapsed();
            if let Ok(mut samples) = samples.lock() {
                samples.push((latency, status));
            }
            drop(slot);
        });
        i += 1;
    }
    // Every slot free again: every request answered.
    let all = u32::try_from(phase.concurrency).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
    let elapsed = started.elapsed();
    let samples = match Arc::try_unwrap(samples) {
        Ok(m) => m.into_inner().unwrap_or_default(),
        Err(shared) => shared.lock().map(|s| s.clone()).unwrap_or_default(),
    };
    Outcome {
        samples,
        elapsed,
        not_sent: Some(due_count.saturating_sub(i)),
        warmup_requests: 0,
    }
}

async fn run_phase(target: Arc<Target>, phase: Phase) -> Outcome {
    match phase.rate {
        Some(rate) => open_loop(target, phase, rate).await,
        None => closed_loop(target, phase).await,
    }
}

/// Nearest-rank percentile of sorted `latencies`, in milliseconds.
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    millis(sorted[index])
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn round(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

fn load(args: LoadArgs) -> Result<ExitCode, String> {
    let url = loopback_url(&args.url, &args.path)?;
    if !(args.duration > 0.0 && args.duration <= MAX_DURATION_S) {
        return Err(format!(
            "--duration must be more than 0 and at most {MAX_DURATION_S} s"
        ));
    }
    if !(0.0..=60.0).contains(&args.warmup) {
        return Err("--warmup must be from 0 to 60 s".into());
    }
    if !(1..=MAX_CONCURRENCY).contains(&args.concurrency) {
        return Err(format!("--concurrency must be from 1 to {MAX_CONCURRENCY}"));
    }
    let limit = args.requests.unwrap_or(MAX_REQUESTS);
    if !(1..=MAX_REQUESTS).contains(&limit) {
        return Err(format!("--requests must be from 1 to {MAX_REQUESTS}"));
    }
    if let Some(rate) = args.rate
        && !(rate > 0.0 && rate <= 1_000_000.0)
    {
        return Err("--rate must be more than 0 and at most 1,000,000 per second".into());
    }
    if !(args.timeout > 0.0 && args.timeout <= 300.0) {
        return Err("--timeout must be more than 0 and at most 300 s".into());
    }
    if !(1..=64).contains(&args.threads) {
        return Err("--threads must be from 1 to 64".into());
    }
    let template = match (&args.body, &args.body_file) {
        (Some(text), _) => Some(text.clone()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        ),
        (None, None) => None,
    };
    let method = match &args.method {
        Some(m) => reqwest::Method::from_bytes(m.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("--method {m:?} is not an HTTP method"))?,
        None if template.is_some() => reqwest::Method::POST,
        None => reqwest::Method::GET,
    };
    let client = reqwest::Client::builder()
        // Never through a proxy, never elsewhere by redirect: the target stays the loopback one.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs_f64(args.timeout))
        .pool_max_idle_per_host(args.concurrency)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let target = Arc::new(Target {
        client,
        method,
        url: url.clone(),
        token: args.token.clone(),
        body: template.as_deref().map(Template::new),
        next_n: AtomicU64::new(args.start_n),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let outcome = runtime.block_on(async {
        let mut warmup_requests = 0;
        if args.warmup > 0.0 {
            let warmup = Phase {
                duration: Duration::from_secs_f64(args.warmup),
                limit: MAX_REQUESTS,
                concurrency: args.concurrency,
                rate: args.rate,
            };
            warmup_requests = run_phase(Arc::clone(&target), warmup).await.samples.len();
        }
        let measured = Phase {
            duration: Duration::from_secs_f64(args.duration),
            limit,
            concurrency: args.concurrency,
            rate: args.rate,
        };
        let mut outcome = run_phase(Arc::clone(&target), measured).await;
        outcome.warmup_requests = warmup_requests;
        outcome
    });
    let samples = &outcome.samples;
    let report = report(&args, &url, &outcome);
    eprintln!("{}", text_report(&report));
    if args.json {
        println!("{report}");
    }
    let as_expected = match args.expect {
        Some(want) => {
            !samples.is_empty() && samples.iter().all(|(_, status)| *status == Some(want))
        }
        None => samples.iter().any(|(_, s)| s.is_some_and(|s| s < 400)),
    };
    Ok(if as_expected {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn report(args: &LoadArgs, url: &reqwest::Url, outcome: &Outcome) -> Value {
    let (samples, elapsed) = (&outcome.samples, outcome.elapsed);
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    for (_, status) in samples {
        let key = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        *statuses.entry(key).or_default() += 1;
    }
    let ok = samples
        .iter()
        .filter(|(_, s)| s.is_some_and(|s| (200..300).contains(&s)))
        .count() as u64;
    let mut latencies: Vec<Duration> = samples.iter().map(|(d, _)| *d).collect();
    latencies.sort_unstable();
    let seconds = elapsed.as_secs_f64().max(f64::EPSILON);
    let mean = if latencies.is_empty() {
        0.0
    } else {
        millis(latencies.iter().sum::<Duration>()) / latencies.len() as f64
    };
    json!({
        "label": args.label,
        "url": url.as_str(),
        "mode": if args.rate.is_some() { "open" } else { "closed" },
        "concurrency": args.concurrency,
        "rate": args.rate,
        "seconds": round(seconds, 3),
        "requests": samples.len(),
        "not_sent": outcome.not_sent,
        "warmup_requests": outcome.warmup_requests,
        "loadgen_cpu_ticks": own_cpu_ticks(),
        "ok": ok,
        "rps": round(samples.len() as f64 / seconds, 1),
        "ok_rps": round(ok as f64 / seconds, 1),
        "latency_ms": {
            "p50": round(percentile(&latencies, 50.0), 3),
            "p90": round(percentile(&latencies, 90.0), 3),
            "p99": round(percentile(&latencies, 99.0), 3),
            "max": round(latencies.last().map_or(0.0, |d| millis(*d)), 3),
            "mean": round(mean, 3),
        },
        "status": statuses,
    })
}

/// This process's CPU time so far (user + system) in clock ticks, from `/proc/self/stat`
/// (Linux only; `None` elsewhere).
fn own_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces:
    // state is the first; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn text_report(r: &Value) -> String {
    let l = &r["latency_ms"];
    let rate = r["rate"].as_f64().map_or_else(String::new, |rate| {
        format!(
            ", {rate}/s offered, {} due but not sent",
            r["not_sent"].as_u64().unwrap_or(0)
        )
    });
    format!(
        "{label}: {requests} requests in {seconds} s ({mode} loop, concurrency {c}{rate}) -> {rps} req/s, {ok_rps} 2xx/s\n  latency ms: p50 {p50}  p90 {p90}  p99 {p99}  max {max}  mean {mean}\n  status: {status}",
        label = r["label"].as_str().unwrap_or_default(),
        requests = r["requests"],
        seconds = r["seconds"],
        mode = r["mode"].as_str().unwrap_or_default(),
        c = r["concurrency"],
        rps = r["rps"],
        ok_rps = r["ok_rps"],
        p50 = l["p50"],
        p90 = l["p90"],
        p99 = l["p99"],
        max = l["max"],
        mean = l["mean"],
        status = r["status"],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_loopback_addresses_then_accepted_and_anything_else_refused() {
        assert!(loopback_url("http://127.0.0.1:8080", "/v1/events").is_ok());
        assert!(loopback_url("http://127.3.4.5:1", "/").is_ok());
        assert!(loopback_url("http://[::1]:8080", "/").is_ok());
        for refused in [
            "http://10.0.0.1:8080",
            "http://localhost:8080",
            "http://example.com",
            "http://[::2]:80",
            "https://127.0.0.1:8443",
        ] {
            assert!(loopback_url(refused, "/").is_err(), "{refused}");
        }
        // A path cannot move the request to another host.
        assert!(loopback_url("http://127.0.0.1:8080", "//example.com/x").is_err());
        assert!(loopback_url("http://127.0.0.1:8080", "http://example.com/").is_err());
    }

    #[test]
    fn given_a_template_then_every_placeholder_takes_the_number() {
        let t = Template::new(r#"{"id":"e-{n}","title":"t {n}"}"#);
        assert_eq!(t.render(42), r#"{"id":"e-42","title":"t 42"}"#);
        assert_eq!(Template::new("plain").render(1), "plain");
    }

    #[test]
    fn given_sorted_latencies_then_nearest_rank_percentiles() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 50.0), 50.0);
        assert_eq!(percentile(&sorted, 99.0), 99.0);
        assert_eq!(percentile(&sorted, 100.0), 100.0);
        assert_eq!(percentile(&[], 99.0), 0.0);
    }
}
