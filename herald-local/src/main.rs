//! `herald-local`: every Herald function in one process, over an embedded durable store in
//! `--data-dir`. No cloud account and no other running service needed.
//!
//! - `herald-local [serve] [--listen ADDR] [--data-dir DIR] [--check-interval SECONDS]` serves
//!   the HTTP API and runs the scheduled checks every `--check-interval` seconds (default 60,
//!   0 turns them off).
//! - `herald-local token --sub NAME --role ROLE` prints a signed bearer token.
//! - `herald-local login --user NAME [--admin]` prints a link that opens the page signed in.
//! - `herald-local sync defectdojo --url URL --api-token-file F` reads the directory (users,
//!   product types, products, who may view what) from DefectDojo's API v2 into `--data-dir`'s
//!   store, then reports what it created, updated and left unchanged.
//!
//! Tokens are HS256, signed with `HERALD_JWT_SECRET`; when it is not set, a random secret is
//! generated once and kept in `DATA_DIR/jwt-secret` (mode 0600), which `token` reads too.

mod secret;

use clap::{Parser, Subcommand};
use herald_http::{Authenticator, Hs256Keys, Role};
use herald_local::{Config, LocalHerald};
use herald_shared::ports::SystemClock;
use herald_shared::telemetry::{self, LogFormat};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

// Intake and the senders allocate many small, short-lived values across threads; mimalloc
// serves that pattern with far less time in the allocator than the system's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "herald-local",
    version,
    about = "Herald on one machine: API, intake, scheduler and senders over an embedded store"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", global = true)]
    listen: SocketAddr,
    /// Directory for the embedded store, the outbox and the generated secret.
    #[arg(long, default_value = "./data", global = true)]
    data_dir: PathBuf,
    /// Seconds between runs of the scheduled checks (reminders, alert clean-up), as of this
    /// machine's clock; 0 turns them off.
    #[arg(long, default_value_t = herald_local::CHECK_INTERVAL.as_secs(), global = true)]
    check_interval: u64,
    /// DefectDojo's site URL: `serve` syncs the directory from it every
    /// `--defectdojo-sync-interval` and on `POST /v1/defectdojo/sync` (needs
    /// `--defectdojo-token-file`).
    #[arg(long, global = true, requires = "defectdojo_token_file")]
    defectdojo_url: Option<String>,
    /// A file holding DefectDojo's API v2 token for `--defectdojo-url`.
    #[arg(long, global = true, requires = "defectdojo_url")]
    defectdojo_token_file: Option<PathBuf>,
    /// Seconds between syncs from `--defectdojo-url`; 0 syncs only when asked.
    #[arg(long, default_value_t = herald_local::DEFECTDOJO_SYNC_INTERVAL.as_secs(), global = true)]
    defectdojo_sync_interval: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Print a signed bearer token.
    Token {
        /// The caller's username (`sub` claim).
        #[arg(long)]
        sub: String,
        /// admin, service or user.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// Print a link that opens Herald's page signed in as a user.
    Login {
        /// The username to sign in as.
        #[arg(long)]
        user: String,
        /// Sign in as an administrator.
        #[arg(long)]
        admin: bool,
        /// Seconds the link's token stays valid.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// Bring the directory over from another system.
    Sync {
        #[command(subcommand)]
        source: SyncSource,
    },
    /// List the deliveries that are retrying, failed or dead, oldest change first.
    Deliveries {
        /// retrying, failed or dead.
        #[arg(long)]
        status: String,
        /// Only those changed at or after this instant (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only this channel's: mail, slack, msteams or webhooks.
        #[arg(long)]
        channel: Option<String>,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Queue dead deliveries again; none is sent twice.
    Replay {
        /// Replay the dead deliveries (the only kind a replay takes; say so).
        #[arg(long, required = true)]
        dead: bool,
        /// Only this channel's: mail, slack, msteams or webhooks.
        #[arg(long)]
        channel: Option<String>,
        /// Only this event's.
        #[arg(long)]
        event: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum SyncSource {
    /// From DefectDojo's API v2, with a superuser's API token.
    Defectdojo {
        /// DefectDojo's site URL, e.g. https://defectdojo.example.com.
        #[arg(long)]
        url: String,
        /// A file holding the API token (DefectDojo: API v2 Key), sent as `Token <key>`.
        #[arg(long)]
        api_token_file: PathBuf,
        /// Objects per page.
        #[arg(long, default_value_t = herald_shared::adapters::defectdojo_api::PAGE_SIZE)]
        page_size: usize,
        /// Seconds before one request to DefectDojo is given up.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Also import DefectDojo's notification settings (system, template, personal and
        /// per-product) and the notification fields of its system settings.
        #[arg(long)]
        import_settings: bool,
        /// Also register, for every active user, a webhook in DefectDojo that posts to
        /// Herald at this public URL (e.g. https://herald.example.com) with Herald's
        /// `defectdojo_webhook_key`, and add webhooks to their `user_mentioned` and
        /// `review_requested` settings there.
        #[arg(long, value_name = "HERALD_URL")]
        register_user_webhooks: Option<String>,
    },
}

fn parse_role(value: &str) -> Result<Role, String> {
    Role::parse(value).ok_or_else(|| "expected admin, service or user".to_owned())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(telemetry::format_from_env(LogFormat::Text));
    let result = Config::from_env().and_then(|config| match cli.command {
        Some(Command::Token { sub, role, ttl }) => {
            print_token(&config, &cli.serve, &sub, role, ttl)
        }
        Some(Command::Login { user, admin, ttl }) => {
            print_login(&config, &cli.serve, &user, admin, ttl)
        }
        Some(Command::Sync {
            source:
                SyncSource::Defectdojo {
                    url,
                    api_token_file,
                    page_size,
                    timeout,
                    import_settings,
                    register_user_webhooks,
                },
        }) => sync_defectdojo(
            &config,
            &cli.serve,
            &url,
            &api_token_file,
            (page_size, timeout),
            herald_shared::defectdojo_sync::SyncRequest {
                source: None,
                page_size: None,
                import_settings,
                register_webhooks: register_user_webhooks,
            },
        ),
        Some(Command::Deliveries {
            status,
            since,
            channel,
            limit,
        }) => {
            let mut query = vec![("status", status), ("limit", limit.to_string())];
            query.extend(since.map(|s| ("since", s)));
            query.extend(channel.map(|c| ("channel", c)));
            operate(&config, &cli.serve, Operation::List(query))
        }
        Some(Command::Replay {
            dead: _,
            channel,
            event,
        }) => {
            let body = serde_json::json!({"channel": channel, "event_id": event});
            operate(&config, &cli.serve, Operation::Replay(body))
        }
        Some(Command::Serve) | None => serve(config, cli.serve),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("herald-local: {message}");
            ExitCode::FAILURE
        }
    }
}

fn keys(config: &Config, args: &ServeArgs) -> Result<Hs256Keys, String> {
    let configured = config.jwt_secret.as_ref().map(|s| s.expose());
    let secret = secret::jwt_secret(configured, &args.data_dir)?;
    Hs256Keys::new(secret.as_bytes())
}

fn print_token(
    config: &Config,
    args: &ServeArgs,
    sub: &str,
    role: Role,
    ttl: u64,
) -> Result<(), String> {
    if sub.is_empty() {
        return Err("--sub must not be empty".into());
    }
    let token = keys(config, args)?.issue(sub, role, secret::unix_now(), ttl)?;
    println!("{token}");
    Ok(())
}

/// Prints the page's address with a token for `user` in its fragment: the running server's
/// address when one serves `--data-dir`, else `--listen`'s.
fn print_login(
    config: &Config,
    args: &ServeArgs,
    user: &str,
    admin: bool,
    ttl: u64,
) -> Result<(), String> {
    herald_shared::domain::Username::parse("--user", user).map_err(|e| e.to_string())?;
    let role = if admin { Role::Admin } else { Role::User };
    let token = keys(config, args)?.issue(user, role, secret::unix_now(), ttl)?;
    let base = server_address(&args.data_dir).unwrap_or_else(|| format!("http://{}", args.listen));
    println!("{}/#token={token}", base.trim_end_matches('/'));
    Ok(())
}

fn sync_defectdojo(
    config: &Config,
    args: &ServeArgs,
    url: &str,
    token_file: &std::path::Path,
    (page_size, timeout): (usize, u64),
    request: herald_shared::defectdojo_sync::SyncRequest,
) -> Result<(), String> {
    use herald_shared::defectdojo_sync::{DefectDojoSource, SyncService};
    use std::io::{IsTerminal, Write};

    let token = read_token_file("--api-token-file", token_file)?;
    let mut source = DefectDojoSource::new(url, token);
    source.page_size = page_size;
    source.timeout = std::time::Duration::from_secs(timeout.max(1));
    source.api().map_err(|e| e.to_string())?;
    let import_settings = request.import_settings;
    runtime()?.block_on(async move {
        let report = match open_store(config, &args.data_dir) {
            Ok(herald) => {
                let terminal = std::io::stderr().is_terminal();
                let progress = |what: &str, done: usize, total: usize| {
                    if terminal && (done.is_multiple_of(100) || done == total) {
                        let mut err = std::io::stderr();
                        let _ = write!(err, "\r\x1b[2K{what}: {done}/{total}");
                        if done == total {
                            let _ = writeln!(err);
                        }
                        let _ = err.flush();
                    }
                };
                SyncService::new(Some(source))
                    .run(herald.store.as_ref(), request, &progress)
                    .await
                    .map_err(|e| format!("the sync from {url} stopped: {e}"))?
            }
            // A server holds the store: it runs the sync, so it sees the result at once.
            Err(held) => match server_address(&args.data_dir) {
                Some(address) => {
                    eprintln!(
                        "a herald-local server on {address} holds the store; it runs the sync"
                    );
                    sync_through_server(config, args, &address, &source, &request).await?
                }
                None => return Err(held),
            },
        };
        println!(
            "{:<22} {:>8} {:>8} {:>8} {:>10}",
            "", "created", "updated", "removed", "unchanged"
        );
        for (kind, counts) in report.kinds() {
            println!(
                "{kind:<22} {:>8} {:>8} {:>8} {:>10}",
                counts.created, counts.updated, counts.removed, counts.unchanged
            );
        }
        for skipped in &report.skipped {
            println!("not carried over: {skipped}");
        }
        if !report.changed_anything() {
            println!("nothing changed: Herald's directory already matches DefectDojo");
        }
        if !import_settings {
            println!("notification settings were not imported (--import-settings imports them)");
        }
        Ok(())
    })
}

/// An operator's command on deliveries.
enum Operation {
    /// `GET /v1/deliveries` with this query.
    List(Vec<(&'static str, String)>),
    /// `POST /v1/deliveries/replay` with this body.
    Replay(serde_json::Value),
}

/// Runs an operator's command through the intake API: in this process on the data directory's
/// store, or, when a server holds the store, on that server (as an administrator, with a
/// token signed by the data directory's key), so the server's own queues take a replay.
fn operate(config: &Config, args: &ServeArgs, operation: Operation) -> Result<(), String> {
    runtime()?.block_on(async move {
        let token =
            keys(config, args)?.issue("herald-local-operator", Role::Admin, secret::unix_now(), 600)?;
        let (method, path, body) = match &operation {
            Operation::List(query) => {
                let query: Vec<String> = query
                    .iter()
                    .map(|(k, v)| {
                        let v: String = url_encode(v);
                        format!("{k}={v}")
                    })
                    .collect();
                ("GET", format!("/v1/deliveries?{}", query.join("&")), None)
            }
            Operation::Replay(body) => ("POST", "/v1/deliveries/replay".to_owned(), Some(body.clone())),
        };
        let answer = match open_store(config, &args.data_dir) {
            Ok(herald) => {
                use tower::ServiceExt;
                let mut request = axum::http::Request::builder()
                    .method(method)
                    .uri(&path)
                    .header("authorization", format!("Bearer {token}"));
                if body.is_some() {
                    request = request.header("content-type", "application/json");
                }
                let request = request
                    .body(axum::body::Body::from(
                        body.map(|b| b.to_string()).unwrap_or_default(),
                    ))
                    .map_err(|e| e.to_string())?;
                let keys = keys(config, args)?;
                let response = herald
                    .router(Authenticator::Hs256(Arc::new(keys)))
                    .oneshot(request)
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status();
                let bytes = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024)
                    .await
                    .map_err(|e| e.to_string())?;
                (status.as_u16(), serde_json::from_slice(&bytes).unwrap_or_default())
            }
            Err(held) => {
                let Some(address) = server_address(&args.data_dir) else {
                    return Err(held);
                };
                let client = reqwest::Client::builder()
                    .no_proxy()
                    .build()
                    .map_err(|e| e.to_string())?;
                let mut request = match method {
                    "GET" => client.get(format!("{address}{path}")),
                    _ => client.post(format!("{address}{path}")),
                }
                .bearer_auth(&token);
                if let Some(body) = body {
                    request = request.json(&body);
                }
                let answer = request.send().await.map_err(|e| {
                    format!("the server on {address} could not be reached ({e}); if it is no longer running, remove {}", args.data_dir.join(SERVER_ADDRESS_FILE).display())
                })?;
                let status = answer.status().as_u16();
                (status, answer.json::<serde_json::Value>().await.unwrap_or_default())
            }
        };
        let (status, body) = answer;
        if !(200..300).contains(&status) {
            let message = body["error"]["message"].as_str().unwrap_or("no message");
            return Err(format!("HTTP {status}: {message}"));
        }
        match operation {
            Operation::List(_) => {
                let items = body["items"].as_array().cloned().unwrap_or_default();
                println!(
                    "{:<24} {:<8} {:<9} {:>8}  {:<28} {:<36} last error",
                    "changed", "status", "channel", "attempts", "event", "destination"
                );
                for d in &items {
                    let text = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
                    println!(
                        "{:<24} {:<8} {:<9} {:>8}  {:<28} {:<36} {}",
                        text("updated_at"),
                        text("status"),
                        text("channel"),
                        d["attempts"].as_u64().unwrap_or(0),
                        text("event_id"),
                        text("destination"),
                        text("last_error")
                    );
                }
                println!("{} deliveries", items.len());
            }
            Operation::Replay(_) => {
                println!(
                    "replayed {} dead deliveries ({} taken meanwhile by another replay or a send)",
                    body["replayed"].as_u64().unwrap_or(0),
                    body["skipped"].as_u64().unwrap_or(0)
                );
            }
        }
        Ok(())
    })
}

/// `value` as a query parameter's value.
fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The file in the data directory where a running server says where it listens.
const SERVER_ADDRESS_FILE: &str = "server-address";

/// Where the server holding `data_dir` listens, if one says so.
fn server_address(data_dir: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(data_dir.join(SERVER_ADDRESS_FILE)).ok()?;
    let address = text.trim();
    address.starts_with("http://").then(|| address.to_owned())
}

/// Asks the server at `address` to sync from `source` (`POST /v1/defectdojo/sync`, as an
/// administrator with a token signed by the data directory's key).
async fn sync_through_server(
    config: &Config,
    args: &ServeArgs,
    address: &str,
    source: &herald_shared::defectdojo_sync::DefectDojoSource,
    request: &herald_shared::defectdojo_sync::SyncRequest,
) -> Result<herald_shared::defectdojo_sync::SyncReport, String> {
    let token =
        keys(config, args)?.issue("herald-local-sync", Role::Admin, secret::unix_now(), 3600)?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let answer = client
        .post(format!("{address}/v1/defectdojo/sync"))
        .bearer_auth(token)
        .json(&serde_json::json!({
            "url": source.url,
            "api_token": source.token.expose(),
            "page_size": source.page_size,
            "import_settings": request.import_settings,
            "register_user_webhooks": request.register_webhooks,
        }))
        .send()
        .await
        .map_err(|e| format!("the server on {address} could not be reached ({e}); if it is no longer running, remove {}", args.data_dir.join(SERVER_ADDRESS_FILE).display()))?;
    let status = answer.status();
    let body: serde_json::Value = answer.json().await.unwrap_or_default();
    if !status.is_success() {
        let message = body["error"]["message"].as_str().unwrap_or("no message");
        return Err(format!(
            "the sync from {} stopped: {status}: {message}",
            source.url
        ));
    }
    serde_json::from_value(body)
        .map_err(|e| format!("the server answered an unreadable report: {e}"))
}

/// The one API token in `path` (named `flag` in errors), surrounding white space dropped.
fn read_token_file(
    flag: &str,
    path: &std::path::Path,
) -> Result<herald_shared::domain::Secret, String> {
    let token = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {flag} {}: {e}", path.display()))?;
    let token = token.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(format!(
            "{flag} {} must hold one API token and nothing else",
            path.display()
        ));
    }
    Ok(herald_shared::domain::Secret::new(token))
}

/// The DefectDojo `serve` syncs from, if one is configured.
fn defectdojo_source(
    args: &ServeArgs,
) -> Result<Option<herald_shared::defectdojo_sync::DefectDojoSource>, String> {
    let (Some(url), Some(token_file)) = (&args.defectdojo_url, &args.defectdojo_token_file) else {
        return Ok(None);
    };
    let token = read_token_file("--defectdojo-token-file", token_file)?;
    let source = herald_shared::defectdojo_sync::DefectDojoSource::new(url, token);
    // A URL DefectDojo's client refuses is named now, not at the first sync.
    source.api().map_err(|e| format!("--defectdojo-url: {e}"))?;
    Ok(Some(source))
}

/// The multi-threaded runtime every command runs on.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// The store and queue in `data_dir`, created if needed.
fn open_store(config: &Config, data_dir: &std::path::Path) -> Result<LocalHerald, String> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    LocalHerald::open(data_dir, config.queue, Arc::new(SystemClock)).map_err(|e| e.to_string())
}

fn serve(config: Config, args: ServeArgs) -> Result<(), String> {
    runtime()?.block_on(async move {
        let herald = open_store(&config, &args.data_dir)?
            .allow_private_targets(config.allow_private)
            .with_defectdojo(defectdojo_source(&args)?);
        let keys = keys(&config, &args)?;
        let recovered = herald
            .recover()
            .await
            .map_err(|e| format!("recovery failed: {e}"))?;
        if recovered > 0 {
            tracing::info!(
                events = recovered,
                "finished the fan-out of events interrupted by a crash"
            );
        }
        let senders = herald_local::SenderConfig {
            policy: config.policy,
            slack_api_url: config.slack_api_url.clone(),
            allow_private: config.allow_private,
            outbox_dir: args.data_dir.join("outbox"),
        };
        let (stop_senders, stop) = tokio::sync::watch::channel(false);
        let mut senders = herald.start_senders(&senders, stop.clone())?;
        if args.check_interval > 0 {
            senders.push(tokio::spawn(herald.clone().run_scheduled_checks(
                std::time::Duration::from_secs(args.check_interval),
                stop.clone(),
            )));
        }
        if herald.defectdojo.configured().is_some() && args.defectdojo_sync_interval > 0 {
            senders.push(tokio::spawn(herald.clone().run_defectdojo_sync(
                std::time::Duration::from_secs(args.defectdojo_sync_interval),
                stop,
            )));
        }
        let app = herald.router(Authenticator::Hs256(Arc::new(keys)));
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        // `herald-local sync` on this data directory asks this server to run the sync.
        let address_file = args.data_dir.join(SERVER_ADDRESS_FILE);
        std::fs::write(&address_file, format!("http://{address}\n"))
            .map_err(|e| format!("cannot write {}: {e}", address_file.display()))?;
        tracing::info!(%address, data_dir = %args.data_dir.display(), "herald-local listening");
        eprintln!(
            "herald-local listening on http://{address} (data in {})",
            args.data_dir.display()
        );
        let streams = herald.streams.clone();
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown_signal().await;
                // Open live bells would hold the graceful shutdown forever.
                streams.end();
            })
            .await
            .map_err(|e| format!("server failed: {e}"));
        let _ = stop_senders.send(true);
        for sender in senders {
            let _ = sender.await;
        }
        let _ = std::fs::remove_file(&address_file);
        served
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
