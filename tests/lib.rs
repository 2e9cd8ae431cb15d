//! Shared helpers for Herald's integration tests: a [`TestApp`] hosting the real router over a
//! real store, and token minting for every kind of caller.

use axum::Router;
use axum::body::Body;
use herald_http::{Authenticator, Hs256Keys, Role};
use herald_local::LocalHerald;
use herald_shared::adapters::EmbeddedStore;
use herald_shared::adapters::QueueConfig;
use herald_shared::ports::SystemClock;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

/// The HS256 secret the test app verifies tokens with.
pub const TEST_SECRET: &[u8] = b"herald-test-secret-0123456789abcdef";

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `herald-local`'s application over an in-memory embedded store, verifying tokens like
/// `herald-local` does.
pub struct TestApp {
    pub router: Router,
    pub herald: LocalHerald,
    keys: Arc<Hs256Keys>,
    /// The data directory of an app over a store file ([`TestApp::on_disk`]).
    data_dir: Option<tempfile::TempDir>,
    /// The fake DefectDojo of [`TestApp::with_empty_defectdojo`], served while the app lives.
    defectdojo: Option<herald_shared::testing::FakeHttp>,
}

/// A response: status and JSON body (`Value::Null` when empty).
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Value,
    /// The body exactly as sent (lossy UTF-8), for assertions on what must never appear.
    pub raw: String,
}

impl TestResponse {
    /// The error code of an error response.
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    /// The field named by a validation error.
    pub fn error_field(&self) -> &str {
        self.body["error"]["field"].as_str().unwrap_or_default()
    }
}

impl TestApp {
    /// A fresh app over a fresh in-memory embedded store.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock), QueueConfig::default().max_receives)
    }

    /// A fresh app whose store, queue and intake take "now" from `clock`, with queues that
    /// dead-letter after `max_receives`.
    pub fn with_clock(clock: Arc<dyn herald_shared::ports::Clock>, max_receives: u32) -> Self {
        Self::with_options(clock, max_receives, false)
    }

    /// A fresh app whose webhook pings may reach loopback (the tests' fake receivers).
    pub fn with_private_targets() -> Self {
        Self::with_options(
            Arc::new(SystemClock),
            QueueConfig::default().max_receives,
            true,
        )
    }

    /// A fresh app as [`TestApp::with_clock`], and whether webhook pings may reach loopback
    /// and private addresses.
    pub fn with_options(
        clock: Arc<dyn herald_shared::ports::Clock>,
        max_receives: u32,
        allow_private: bool,
    ) -> Self {
        let store = match EmbeddedStore::in_memory() {
            Ok(store) => store,
            Err(e) => panic!("cannot open the embedded store: {e}"),
        };
        Self::over(store, None, clock, max_receives, allow_private)
    }

    /// A fresh app over a store file in a fresh temporary directory, so that a test can read
    /// every row the app keeps ([`TestApp::store_dump`]); webhook pings may reach loopback.
    pub fn on_disk() -> Self {
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("cannot create a temporary directory: {e}"),
        };
        let store = match EmbeddedStore::open(&dir.path().join(herald_local::DATABASE_FILE)) {
            Ok(store) => store,
            Err(e) => panic!("cannot open the embedded store: {e}"),
        };
        Self::over(
            store,
            Some(dir),
            Arc::new(SystemClock),
            QueueConfig::default().max_receives,
            true,
        )
    }

    fn over(
        store: EmbeddedStore,
        data_dir: Option<tempfile::TempDir>,
        clock: Arc<dyn herald_shared::ports::Clock>,
        max_receives: u32,
        allow_private: bool,
    ) -> Self {
        let config = QueueConfig {
            max_receives,
            ..QueueConfig::default()
        };
        let herald = match LocalHerald::with_store(store, config, clock) {
            Ok(h) => h.allow_private_targets(allow_private),
            Err(e) => panic!("cannot open the embedded queue: {e}"),
        };
        let keys = match Hs256Keys::new(TEST_SECRET) {
            Ok(keys) => Arc::new(keys),
            Err(e) => panic!("{e}"),
        };
        Self {
            router: herald.router(Authenticator::Hs256(Arc::clone(&keys))),
            herald,
            keys,
            data_dir,
            defectdojo: None,
        }
    }

    /// The same app, syncing from `source` when asked (`POST /v1/defectdojo/sync`).
    pub fn with_defectdojo(
        mut self,
        source: herald_shared::defectdojo_sync::DefectDojoSource,
    ) -> Self {
        self.herald = self.herald.with_defectdojo(Some(source));
        self.router = self
            .herald
            .router(Authenticator::Hs256(Arc::clone(&self.keys)));
        self
    }

    /// The same app, syncing from a fake DefectDojo 3.x that has nothing in it (so a sync
    /// succeeds and changes nothing).
    pub async fn with_empty_defectdojo(self) -> Self {
        const TOKEN: &str = "empty-defectdojo-key";
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("cannot create a temporary directory: {e}"),
        };
        for endpoint in [
            "users",
            "user_contact_infos",
            "product_types",
            "products",
            "engagements",
            "findings",
            "findings_related_fields",
            "risk_acceptance",
        ] {
            if let Err(e) = std::fs::write(dir.path().join(format!("{endpoint}.json")), "[]") {
                panic!("cannot write the empty DefectDojo: {e}");
            }
        }
        let fake = herald_shared::testing::fake_defectdojo_api(dir.path(), TOKEN).await;
        let source = herald_shared::defectdojo_sync::DefectDojoSource::new(
            &fake.base,
            herald_shared::domain::Secret::new(TOKEN),
        );
        let mut app = self.with_defectdojo(source);
        app.defectdojo = Some(fake);
        app
    }

    /// Every row of every table of the store, one line per row (`table: values`), sorted: two
    /// dumps are equal exactly when nothing was stored, changed or removed in between. Only
    /// for an app made by [`TestApp::on_disk`].
    pub fn store_dump(&self) -> Vec<String> {
        let Some(dir) = &self.data_dir else {
            panic!("store_dump needs an app made by TestApp::on_disk");
        };
        let path = dir.path().join(herald_local::DATABASE_FILE);
        let dump = || -> rusqlite::Result<Vec<String>> {
            let conn = rusqlite::Connection::open(&path)?;
            let tables: Vec<String> = conn
                .prepare(
                    "SELECT name FROM sqlite_master WHERE type = 'table' \
                     AND name NOT LIKE 'sqlite_%' ORDER BY name",
                )?
                .query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut lines = Vec::new();
            for table in tables {
                let mut statement = conn.prepare(&format!("SELECT * FROM \"{table}\""))?;
                let columns = statement.column_count();
                let mut rows = statement.query([])?;
                while let Some(row) = rows.next()? {
                    let values: Vec<String> = (0..columns)
                        .map(|i| match row.get_ref(i) {
                            Ok(rusqlite::types::ValueRef::Text(text)) => {
                                format!("{:?}", String::from_utf8_lossy(text))
                            }
                            Ok(value) => format!("{value:?}"),
                            Err(e) => format!("<{e}>"),
                        })
                        .collect();
                    lines.push(format!("{table}: {}", values.join(" | ")));
                }
            }
            lines.sort();
            Ok(lines)
        };
        match dump() {
            Ok(lines) => lines,
            Err(e) => panic!("cannot dump the store: {e}"),
        }
    }

    /// A valid token for `sub` with `role`.
    pub fn token(&self, sub: &str, role: Role) -> String {
        match self.keys.issue(sub, role, now(), 600) {
            Ok(token) => token,
            Err(e) => panic!("{e}"),
        }
    }

    /// Sends a request; `body` is sent as JSON when given.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> TestResponse {
        self.send_with(method, path, token, body, &[]).await
    }

    /// [`TestApp::send`] with extra request headers.
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        let mut builder = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                builder = builder.header("content-type", "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let request = match builder.body(body) {
            Ok(r) => r,
            Err(e) => panic!("bad test request: {e}"),
        };
        self.send_raw(request).await
    }

    /// Sends a prepared request.
    pub async fn send_raw(&self, request: Request<Body>) -> TestResponse {
        send_to(&self.router, request).await
    }

    /// `send` with an admin token.
    pub async fn admin(&self, method: Method, path: &str, body: Option<&Value>) -> TestResponse {
        let token = self.token("root", Role::Admin);
        self.send(method, path, Some(&token), body).await
    }

    /// `send` with a service token.
    pub async fn service(&self, method: Method, path: &str, body: Option<&Value>) -> TestResponse {
        let token = self.token("platform", Role::Service);
        self.send(method, path, Some(&token), body).await
    }

    /// `send` as the user `sub`.
    pub async fn user(
        &self,
        sub: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> TestResponse {
        let token = self.token(sub, Role::User);
        self.send(method, path, Some(&token), body).await
    }

    /// `send` as the service, asserting a 2xx answer.
    pub async fn service_ok(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> TestResponse {
        let response = self.service(method.clone(), path, body).await;
        assert!(
            response.status.is_success(),
            "{method} {path} answered {}: {}",
            response.status,
            response.body
        );
        response
    }

    /// The directory most tests start from: `users` (`{name}@example.com`), product type 1
    /// "Web" with product 1 "Shop", and `alice` a member of product 1.
    pub async fn seed_shop(&self, users: &[&str]) {
        for user in users {
            self.service_ok(
                Method::PUT,
                &format!("/v1/users/{user}"),
                Some(&json!({"email": format!("{user}@example.com")})),
            )
            .await;
        }
        self.service_ok(
            Method::PUT,
            "/v1/product-types/1",
            Some(&json!({"name": "Web"})),
        )
        .await;
        self.service_ok(
            Method::PUT,
            "/v1/products/1",
            Some(&json!({"name": "Shop", "product_type_id": 1})),
        )
        .await;
        self.service_ok(Method::PUT, "/v1/products/1/members/alice", None)
            .await;
    }

    /// [`TestApp::seed_shop`] with alice and bob, then everything a route can name: alice's
    /// settings for product 1 (alert and mail on `scan_added`), event `seed` (which gave
    /// alice an alert), the [`scheduled_records`], and a webhook of alice's posting to
    /// `receiver`. Answers the webhook's path.
    pub async fn seed_alice(&self, receiver: &WebhookReceiver) -> String {
        self.seed_shop(&["alice", "bob"]).await;
        let doc = json!({"events": {"scan_added": ["alert", "mail"]}});
        let r = self
            .admin(
                Method::PUT,
                "/v1/users/alice/notifications/products/1",
                Some(&doc),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let seed = json!({"id": "seed", "type": "scan_added", "title": "Scan", "product_id": 1});
        self.service_ok(Method::POST, "/v1/events", Some(&seed))
            .await;
        for (path, record) in scheduled_records() {
            self.service_ok(Method::PUT, path, Some(&record)).await;
        }
        let hook = json!({"name": "alice's hook", "url": receiver.url("/alice")});
        let created = self
            .user("alice", Method::POST, "/v1/webhooks", Some(&hook))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        format!(
            "/v1/webhooks/{}",
            created.body["id"].as_str().unwrap_or_default()
        )
    }
}

/// Engagement 1, finding 1 and risk acceptance 1, of product 1, as the platform puts them.
pub fn scheduled_records() -> [(&'static str, Value); 3] {
    [
        (
            "/v1/engagements/1",
            json!({"product_id": 1, "name": "Q4", "lead": "alice",
                "target_start": "2026-12-01", "target_end": "2026-12-05"}),
        ),
        (
            "/v1/findings/1",
            json!({"product_id": 1, "title": "XSS", "severity": "High",
                "sla_expiration_date": "2026-12-31"}),
        ),
        (
            "/v1/risk-acceptances/1",
            json!({"product_id": 1, "name": "Legacy TLS", "expiration_date": "2027-01-10"}),
        ),
    ]
}

impl Default for TestApp {
    fn default() -> Self {
        Self::new()
    }
}

/// Sends `request` to `router` and reads the JSON answer.
pub async fn send_to(router: &Router, request: Request<Body>) -> TestResponse {
    let response = match router.clone().oneshot(request).await {
        Ok(r) => r,
        Err(e) => match e {},
    };
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = match response.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => panic!("cannot read the response body: {e}"),
    };
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    TestResponse {
        status,
        headers,
        body,
        raw: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Emulators: DynamoDB Local and moto, started by `scripts/test.sh` (or `scripts/services.sh`).

/// The URL the test command exported in `var`. Without it the test fails, naming the command
/// that starts the emulator: a test that needs a service never skips silently.
pub fn emulator_url(var: &str) -> String {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{var} is not set: start the emulators with `scripts/services.sh start` and \
             `source target/test-services/dev.env`, or run everything with `scripts/test.sh`"
        ),
    }
}

/// The SDK configuration for an emulator at `url`, with test credentials.
pub async fn emulator_config(url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "herald-tests",
        ))
        .load()
        .await
}

/// A client for DynamoDB Local at `HERALD_TEST_DYNAMODB_URL`.
pub async fn dynamodb_local() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&emulator_config(&emulator_url("HERALD_TEST_DYNAMODB_URL")).await)
}

/// A client for moto's Secrets Manager at `HERALD_TEST_MOTO_URL`.
pub async fn moto_secrets() -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(
        &emulator_config(&emulator_url("HERALD_TEST_MOTO_URL")).await,
    )
}

/// A client for moto's SQS at `HERALD_TEST_MOTO_URL`.
pub async fn moto_sqs() -> aws_sdk_sqs::Client {
    sqs_client(&emulator_url("HERALD_TEST_MOTO_URL")).await
}

/// An SQS client for `url` with test credentials.
pub async fn sqs_client(url: &str) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&emulator_config(url).await)
}

/// Four fresh channel queues whose names start with `herald-{label}-`.
pub async fn create_channel_queues(
    client: &aws_sdk_sqs::Client,
    label: &str,
) -> Result<herald_shared::adapters::sqs::ChannelQueues, Box<dyn std::error::Error>> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static QUEUES: AtomicU64 = AtomicU64::new(0);
    let prefix = format!(
        "herald-{label}-{}-{}",
        std::process::id(),
        QUEUES.fetch_add(1, Ordering::Relaxed)
    );
    let mut urls = Vec::new();
    for channel in ["mail", "slack", "msteams", "webhooks"] {
        let created = client
            .create_queue()
            .queue_name(format!("{prefix}-{channel}"))
            .send()
            .await?;
        urls.push(created.queue_url.ok_or("CreateQueue returned no URL")?);
    }
    let [mail, slack, msteams, webhooks]: [String; 4] =
        urls.try_into().map_err(|_| "four queues")?;
    Ok(herald_shared::adapters::sqs::ChannelQueues {
        mail,
        slack,
        msteams,
        webhooks,
    })
}

// ---------------------------------------------------------------------------------------------
// A fake webhook receiver on loopback: records every request and answers from a script.

/// One request the fake receiver got.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub method: String,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl ReceivedRequest {
    /// A header as text (`""` when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

pub use herald_shared::testing::Reply;

/// A webhook receiver on `127.0.0.1` (the senders' shared [`FakeHttp`]), served by the
/// calling test's runtime.
pub struct WebhookReceiver {
    http: herald_shared::testing::FakeHttp,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl WebhookReceiver {
    /// Starts a receiver that answers 200 unless scripted otherwise.
    pub async fn start() -> Self {
        let http = herald_shared::testing::FakeHttp::start(|_| Reply::status(200)).await;
        let base = http.base.clone();
        Self { http, base }
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        self.http.url(path)
    }

    /// Answers the next requests with `replies`, in order.
    pub fn will(&self, replies: impl IntoIterator<Item = Reply>) {
        self.http.will(replies);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.http
            .requests()
            .into_iter()
            .map(|r| ReceivedRequest {
                method: r.method.to_string(),
                path: r.path_and_query(),
                headers: r.headers,
                body: r.raw,
            })
            .collect()
    }

    /// The requests so far that are not pings (`X-Herald-Event` or, for DefectDojo's
    /// format, `X-DefectDojo-Event`).
    pub fn deliveries(&self) -> Vec<ReceivedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.header("x-herald-event") != "ping")
            .filter(|r| r.header("x-defectdojo-event") != "ping")
            .collect()
    }
}
