//! What the senders' tests share (feature `testing`): [`FakeHttp`], one fake HTTP service on
//! `127.0.0.1:0` that records every request and answers from a script (per path, or for any
//! path), then from a default the test chooses (Slack's Web API, a Teams workflow, a webhook
//! receiver); and [`NoRedelivery`], a `RedeliveryDelay` for senders whose retries a test does
//! not follow.

use crate::domain::Channel;
use crate::ports::{QueueError, RedeliveryDelay};
use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// The body as sent.
    pub raw: Vec<u8>,
    /// The body as JSON (`Null` when it is not JSON).
    pub body: Value,
}

impl Request {
    /// A header as text, if it was sent (and is text).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The path and, after a `?`, the query.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(query) => format!("{}?{query}", self.path),
            None => self.path.clone(),
        }
    }
}

/// How the fake answers one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    /// `status` with an empty body, at once.
    pub fn status(status: u16) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT),
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    /// `status` with a JSON body.
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            body: body.to_string(),
            ..Self::status(status)
        }
        .header("content-type", "application/json")
    }

    /// 200 with a JSON body.
    pub fn ok(body: Value) -> Self {
        Self::json(200, body)
    }

    /// With a header.
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    /// After a delay.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type DefaultReply = Box<dyn Fn(&Request) -> Reply + Send + Sync>;

struct FakeState {
    requests: Mutex<Vec<Request>>,
    /// Scripted replies per path, used in order.
    by_path: Mutex<HashMap<String, VecDeque<Reply>>>,
    /// Scripted replies for any path, used in order after the path's own.
    any: Mutex<VecDeque<Reply>>,
    default: DefaultReply,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fake HTTP service on loopback, served by the calling test's runtime.
pub struct FakeHttp {
    state: Arc<FakeState>,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl FakeHttp {
    /// Starts the fake; unscripted requests get `default(request)`.
    pub async fn start(default: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        let state = Arc::new(FakeState {
            requests: Mutex::default(),
            by_path: Mutex::default(),
            any: Mutex::default(),
            default: Box::new(default),
        });
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind 127.0.0.1:0: {e}"));
        let address = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the fake's address: {e}"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            state,
            base: format!("http://{address}"),
        }
    }

    /// The URL of `path` on this fake.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Answers the next requests to `path` with `replies`, in order.
    pub fn will_at(&self, path: &str, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.state.by_path)
            .entry(path.to_owned())
            .or_default()
            .extend(replies);
    }

    /// Answers the next requests, whatever their path, with `replies`, in order.
    pub fn will(&self, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.state.any).extend(replies);
    }

    /// Every request so far, in the order they arrived.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.state.requests).clone()
    }

    /// The requests so far to `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

async fn answer(
    State(state): State<Arc<FakeState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = Request {
        method,
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: body.to_vec(),
    };
    lock(&state.requests).push(request.clone());
    let scripted = lock(&state.by_path)
        .get_mut(&request.path)
        .and_then(VecDeque::pop_front)
        .or_else(|| lock(&state.any).pop_front());
    let reply = scripted.unwrap_or_else(|| (state.default)(&request));
    tokio::time::sleep(reply.delay).await;
    let mut response = (reply.status, reply.body).into_response();
    for (name, value) in reply.headers {
        if let Ok(value) = value.parse() {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// A `RedeliveryDelay` that delays nothing: for tests of a sender whose retries they do not
/// follow.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRedelivery;

#[async_trait]
impl RedeliveryDelay for NoRedelivery {
    async fn delay_redelivery(
        &self,
        _channel: Channel,
        _receipt_handle: &str,
        _delay: Duration,
    ) -> Result<(), QueueError> {
        Ok(())
    }
}

/// A fake DefectDojo API v2 serving the objects of `dir` (one `<endpoint>.json` array each,
/// as in `events/defectdojo/api/v3/`): `Authorization: Token <token>` checked (403 with
/// DefectDojo's `detail` otherwise), DefectDojo's HTML 404 for an endpoint it does not have,
/// and `limit`/`offset` pages whose `next` names the host DefectDojo believes it is on (as
/// behind a proxy). `POST` and `PATCH` write `notification_webhooks` and `notifications` as
/// DefectDojo's API does (201 / 200 with the object; 400 with DRF's field errors for a
/// webhook name taken or a field longer than DefectDojo's 100 characters; 404 for an unknown
/// id), so a test can read back what was written.
pub async fn fake_defectdojo_api(dir: &std::path::Path, token: &str) -> FakeHttp {
    fake_defectdojo_world(dir, token).await.0
}

/// What a fake DefectDojo serves, to change while it runs: the same DefectDojo, later.
#[derive(Clone)]
pub struct DojoWorld(Arc<Mutex<HashMap<String, Vec<Value>>>>);

impl DojoWorld {
    /// Serves the objects of `dir` from now on (as [`fake_defectdojo_api`] reads them).
    pub fn load(&self, dir: &std::path::Path) {
        let world = read_world(dir);
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = world;
    }
}

fn read_world(dir: &std::path::Path) -> HashMap<String, Vec<Value>> {
    let mut world: HashMap<String, Vec<Value>> = HashMap::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        if let Ok(Value::Array(rows)) = serde_json::from_str::<Value>(&text) {
            world.insert(stem.to_owned(), rows);
        }
    }
    world
}

/// [`fake_defectdojo_api`], with the handle that changes what it serves.
pub async fn fake_defectdojo_world(dir: &std::path::Path, token: &str) -> (FakeHttp, DojoWorld) {
    let expected = format!("Token {token}");
    let world = DojoWorld(Arc::new(Mutex::new(read_world(dir))));
    let served = world.clone();
    let fake = FakeHttp::start(move |request| {
        let mut world = served.0.lock().unwrap_or_else(|e| e.into_inner());
        if request.method == Method::GET || request.header("authorization") != Some(&expected) {
            defectdojo_page(&world, &expected, request)
        } else {
            defectdojo_write(&mut world, request)
        }
    })
    .await;
    (fake, world)
}

/// A `POST api/v2/<endpoint>/` or `PATCH api/v2/<endpoint>/<id>/` of the fake DefectDojo.
fn defectdojo_write(world: &mut HashMap<String, Vec<Value>>, request: &Request) -> Reply {
    let parts: Vec<&str> = request
        .path
        .trim_start_matches("/api/v2/")
        .trim_end_matches('/')
        .split('/')
        .collect();
    let (endpoint, id) = match parts.as_slice() {
        [endpoint] => (*endpoint, None),
        [endpoint, id] => (*endpoint, id.parse::<u64>().ok()),
        _ => return Reply::status(404),
    };
    if !matches!(endpoint, "notification_webhooks" | "notifications") {
        return Reply::json(405, serde_json::json!({"detail": "Method not allowed."}));
    }
    let Some(changes) = request.body.as_object() else {
        return Reply::json(
            400,
            serde_json::json!({"non_field_errors": ["Invalid data."]}),
        );
    };
    for (field, value) in changes {
        if matches!(field.as_str(), "name" | "header_name" | "header_value")
            && value.as_str().is_some_and(|v| v.chars().count() > 100)
        {
            return Reply::json(
                400,
                serde_json::json!({field: ["Ensure this field has no more than 100 characters."]}),
            );
        }
    }
    let rows = world.entry(endpoint.to_owned()).or_default();
    if endpoint == "notification_webhooks"
        && let Some(name) = changes.get("name")
        && rows
            .iter()
            .any(|r| r.get("name") == Some(name) && r["id"].as_u64() != id)
    {
        return Reply::json(
            400,
            serde_json::json!({"name": ["notification webhooks with this name already exists."]}),
        );
    }
    match id {
        Some(id) => {
            let Some(row) = rows.iter_mut().find(|r| r["id"].as_u64() == Some(id)) else {
                return Reply::json(
                    404,
                    serde_json::json!({"detail": "No object matches the given query."}),
                );
            };
            if let Some(object) = row.as_object_mut() {
                for (field, value) in changes {
                    object.insert(field.clone(), value.clone());
                }
            }
            Reply::ok(row.clone())
        }
        None => {
            let next = rows
                .iter()
                .filter_map(|r| r["id"].as_u64())
                .max()
                .unwrap_or(0)
                + 1;
            let mut row = if endpoint == "notification_webhooks" {
                serde_json::json!({"id": next, "status": "active", "first_error": null,
                    "last_error": null, "note": "", "owner": null, "header_name": null, "header_value": null})
            } else {
                serde_json::json!({"id": next, "user": null, "product": null, "template": false})
            };
            if let Some(object) = row.as_object_mut() {
                for (field, value) in changes {
                    object.insert(field.clone(), value.clone());
                }
            }
            rows.push(row.clone());
            Reply::json(201, row)
        }
    }
}

fn query_number(request: &Request, key: &str) -> Option<usize> {
    request.query.as_deref()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| v.parse().ok()).flatten()
    })
}

fn defectdojo_page(world: &HashMap<String, Vec<Value>>, token: &str, request: &Request) -> Reply {
    if request.header("authorization") != Some(token) {
        return Reply::json(403, serde_json::json!({"detail": "Invalid token."}));
    }
    let query: Vec<(&str, &str)> = request
        .query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .collect();
    // `?related_fields=true` serves the findings as DefectDojo nests them then.
    let related = query.contains(&("related_fields", "true"));
    let Some((endpoint, rows)) = request
        .path
        .strip_prefix("/api/v2/")
        .and_then(|p| p.strip_suffix('/'))
        .and_then(|endpoint| {
            let stored = if related {
                format!("{endpoint}_related_fields")
            } else {
                endpoint.to_owned()
            };
            world.get(&stored).map(|rows| (endpoint, rows))
        })
    else {
        return Reply {
            body: "<h1>Not Found</h1>".into(),
            ..Reply::status(404)
        };
    };
    // Filters (`active=true`, `product=7`): a row matches when the field's value, as text,
    // is the one asked for.
    let filters: Vec<(&str, &str)> = query
        .iter()
        .copied()
        .filter(|(k, _)| !matches!(*k, "limit" | "offset" | "related_fields" | "prefetch"))
        .collect();
    let rows: Vec<&Value> = rows
        .iter()
        .filter(|row| {
            filters.iter().all(|(k, v)| match row.get(*k) {
                Some(Value::String(s)) => s == v,
                Some(other) => serde_json::from_str::<Value>(v).is_ok_and(|v| v == *other),
                None => false,
            })
        })
        .collect();
    let limit = query_number(request, "limit")
        .filter(|l| *l > 0)
        .unwrap_or(25);
    let offset = query_number(request, "offset").unwrap_or(0);
    let page: Vec<Value> = rows
        .iter()
        .skip(offset)
        .take(limit)
        .map(|r| (*r).clone())
        .collect();
    // DefectDojo's `next`: every parameter of the request, in alphabetical order.
    let next = (offset + limit < rows.len()).then(|| {
        let offset = (offset + limit).to_string();
        let mut params: Vec<(&str, &str)> = query
            .iter()
            .copied()
            .filter(|(k, _)| !matches!(*k, "limit" | "offset"))
            .chain([("offset", offset.as_str())])
            .collect();
        let limit = limit.to_string();
        params.push(("limit", &limit));
        params.sort();
        let params: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "http://defectdojo.internal:8080/api/v2/{endpoint}/?{}",
            params.join("&")
        )
    });
    Reply::ok(
        serde_json::json!({"count": rows.len(), "next": next, "previous": null, "results": page}),
    )
}
