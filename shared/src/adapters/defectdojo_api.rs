//! [`DefectDojoApi`] reads DefectDojo's REST API v2 with an API token
//! (`Authorization: Token <key>`): every list endpoint page by page (`limit`/`offset`, the
//! `next` link followed), and the directory Herald keeps ([`DojoDirectory`]), telling the
//! 3.x generation (no role tables: `product_members` answers 404) from 2.x.
//!
//! Every failure names the URL and what went wrong (the status and DefectDojo's `detail`, a
//! timeout, a page that is not DefectDojo's shape); the token never appears in an error.
//! A `next` link on another scheme or host (DefectDojo builds it from the `Host` it was
//! asked by, which a proxy may change) is followed on the configured base URL.

use crate::domain::Secret;
use crate::domain::defectdojo::directory::{DojoDirectory, DojoRoles, Generation};
use crate::domain::defectdojo::settings::DojoSettings;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;
use url::Url;

/// How many objects a page asks for (DefectDojo has no maximum).
pub const PAGE_SIZE: usize = 500;

/// Why a read from DefectDojo failed.
#[derive(Debug, thiserror::Error)]
pub enum DojoApiError {
    /// DefectDojo answered with an error status.
    #[error("{url} answered {status}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Status {
        url: String,
        status: u16,
        detail: Option<String>,
    },
    /// No answer: a timeout, a refused connection, a name that does not resolve.
    #[error("{url} could not be read: {reason}")]
    Transport { url: String, reason: String },
    /// An answer that is not a DefectDojo page.
    #[error("{url} returned a malformed page: {reason}")]
    Malformed { url: String, reason: String },
    /// The base URL is not usable.
    #[error("the DefectDojo URL {url:?} is not valid: {reason}")]
    BadUrl { url: String, reason: String },
}

/// A client of one DefectDojo's API v2.
#[derive(Clone)]
pub struct DefectDojoApi {
    base: Url,
    token: Secret,
    client: reqwest::Client,
    page_size: usize,
}

impl std::fmt::Debug for DefectDojoApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DefectDojoApi")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// One page of a list endpoint.
#[derive(serde::Deserialize)]
struct Page {
    count: Option<u64>,
    next: Option<String>,
    results: Vec<Value>,
}

impl DefectDojoApi {
    /// A client of the DefectDojo at `base_url` (its site URL, e.g.
    /// `https://defectdojo.example.com`), each request given up after `timeout`.
    pub fn new(base_url: &str, token: Secret, timeout: Duration) -> Result<Self, DojoApiError> {
        let shown = match Url::parse(base_url.trim()) {
            Ok(mut url) => {
                let _ = url.set_username("");
                let _ = url.set_password(None);
                url.to_string()
            }
            Err(_) => base_url
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect(),
        };
        let bad = |reason: &str| DojoApiError::BadUrl {
            url: shown.clone(),
            reason: reason.to_owned(),
        };
        let mut base = Url::parse(base_url.trim()).map_err(|e| bad(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(bad("expected an http(s) URL with a host"));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(bad(
                "must not carry credentials: the API token goes in --api-token-file",
            ));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| bad(&e.to_string()))?;
        Ok(Self {
            base,
            token,
            client,
            page_size: PAGE_SIZE,
        })
    }

    /// The same client asking for `size` objects a page.
    pub fn with_page_size(mut self, size: usize) -> Self {
        self.page_size = size.max(1);
        self
    }

    fn endpoint_url(&self, endpoint: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self
            .base
            .join(&format!("api/v2/{endpoint}/"))
            .unwrap_or_else(|_| self.base.clone());
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("limit", &self.page_size.to_string());
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        url
    }

    /// `next` on the configured scheme, host and port.
    fn on_base(&self, next: &str) -> Result<Url, String> {
        let mut url = Url::parse(next).map_err(|e| format!("`next` is not a URL: {e}"))?;
        if url.origin() != self.base.origin() {
            url.set_scheme(self.base.scheme())
                .map_err(|_| "`next` has another scheme".to_owned())?;
            url.set_host(self.base.host_str())
                .map_err(|e| format!("`next`: {e}"))?;
            url.set_port(self.base.port())
                .map_err(|_| "`next` has another port".to_owned())?;
        }
        Ok(url)
    }

    async fn get(&self, url: &Url) -> Result<(StatusCode, Vec<u8>), DojoApiError> {
        self.request(reqwest::Method::GET, url, None).await
    }

    /// Writes `body` to an object (`PATCH api/v2/<endpoint>/<id>/`) or a new one
    /// (`POST api/v2/<endpoint>/`), answering DefectDojo's object.
    pub async fn write(
        &self,
        endpoint: &str,
        id: Option<u64>,
        body: &Value,
    ) -> Result<Value, DojoApiError> {
        let (method, path) = match id {
            Some(id) => (reqwest::Method::PATCH, format!("api/v2/{endpoint}/{id}/")),
            None => (reqwest::Method::POST, format!("api/v2/{endpoint}/")),
        };
        let url = self.base.join(&path).unwrap_or_else(|_| self.base.clone());
        let (status, answer) = self.request(method, &url, Some(body)).await?;
        if !status.is_success() {
            return Err(Self::status_error(&url, status, &answer));
        }
        serde_json::from_slice(&answer).map_err(|e| DojoApiError::Malformed {
            url: url.as_str().to_owned(),
            reason: format!("expected the object written: {e}"),
        })
    }

    async fn request(
        &self,
        method: reqwest::Method,
        url: &Url,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Vec<u8>), DojoApiError> {
        let shown = url.as_str().to_owned();
        let mut request = self
            .client
            .request(method, url.clone())
            .header("authorization", format!("Token {}", self.token.expose()))
            .header("accept", "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| DojoApiError::Transport {
            url: shown.clone(),
            reason: if e.is_timeout() {
                "timed out".to_owned()
            } else if e.is_connect() {
                "the connection failed".to_owned()
            } else {
                "the request failed".to_owned()
            },
        })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|_| DojoApiError::Transport {
                url: shown,
                reason: "the answer was cut short".to_owned(),
            })?;
        Ok((status, body.to_vec()))
    }

    fn status_error(url: &Url, status: StatusCode, body: &[u8]) -> DojoApiError {
        // DRF's `{"detail": ...}`, else the fields its errors name (`{"name": [...]}`): the
        // values are not quoted, so nothing sent (a key in a header value) comes back here.
        let detail = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(
                |v| match (v.get("detail").and_then(Value::as_str), v.as_object()) {
                    (Some(detail), _) => Some(detail.to_owned()),
                    (None, Some(fields)) if !fields.is_empty() => Some(format!(
                        "refused the fields {}",
                        fields.keys().cloned().collect::<Vec<_>>().join(", ")
                    )),
                    _ => None,
                },
            )
            .map(|d| d.chars().take(300).collect());
        DojoApiError::Status {
            url: url.as_str().to_owned(),
            status: status.as_u16(),
            detail,
        }
    }

    /// Every object of a list endpoint (`users`, `products`, ...), page by page; `progress`
    /// hears (objects so far, the total DefectDojo counts) after each page.
    pub async fn list<T: DeserializeOwned + Send>(
        &self,
        endpoint: &str,
        query: &[(&str, &str)],
        progress: &(dyn Fn(usize, Option<u64>) + Sync),
    ) -> Result<Vec<T>, DojoApiError> {
        let mut all = Vec::new();
        self.each_page(endpoint, query, progress, |rows: Vec<T>| {
            all.extend(rows);
            Ok::<_, DojoApiError>(())
        })
        .await?;
        Ok(all)
    }

    /// Hands each page of a list endpoint to `on_page` before the next is read, so only a
    /// page is held at a time; `progress` hears (objects so far, the total DefectDojo counts)
    /// after each page. An `Err` from `on_page` stops the reading.
    pub async fn each_page<T, E>(
        &self,
        endpoint: &str,
        query: &[(&str, &str)],
        progress: &(dyn Fn(usize, Option<u64>) + Sync),
        mut on_page: impl FnMut(Vec<T>) -> Result<(), E> + Send,
    ) -> Result<(), E>
    where
        T: DeserializeOwned,
        E: From<DojoApiError>,
    {
        let mut url = self.endpoint_url(endpoint, query);
        let mut seen = 0usize;
        // A `next` that never ends (a broken proxy) stops after as many pages as could exist.
        let mut pages = 0u64;
        loop {
            let (status, body) = self.get(&url).await?;
            if !status.is_success() {
                return Err(Self::status_error(&url, status, &body).into());
            }
            let malformed = |reason: String| DojoApiError::Malformed {
                url: url.as_str().to_owned(),
                reason,
            };
            let page: Page = serde_json::from_slice(&body).map_err(|e| {
                malformed(format!(
                    "expected {{\"count\", \"next\", \"results\"}}: {e}"
                ))
            })?;
            drop(body);
            let rows = page
                .results
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    serde_json::from_value(item)
                        .map_err(|e| malformed(format!("results[{i}]: {e}")))
                })
                .collect::<Result<Vec<T>, _>>()?;
            seen += rows.len();
            on_page(rows)?;
            pages += 1;
            progress(seen, page.count);
            let limit = page.count.unwrap_or(u64::MAX) / self.page_size as u64 + 2;
            match page.next {
                Some(next) if pages < limit => {
                    url = self.on_base(&next).map_err(malformed)?;
                }
                Some(_) => {
                    return Err(malformed(
                        "`next` goes on past the count DefectDojo gives".to_owned(),
                    )
                    .into());
                }
                None => return Ok(()),
            }
        }
    }

    /// Whether a list endpoint exists (a 3.x DefectDojo answers 404 for the 2.x role tables).
    pub async fn has_endpoint(&self, endpoint: &str) -> Result<bool, DojoApiError> {
        let url = self.endpoint_url(endpoint, &[]);
        let (status, body) = self.get(&url).await?;
        match status {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(Self::status_error(&url, s, &body)),
        }
    }

    /// The directory: users, contact infos, product types, products and on 2.x the role
    /// tables (the records, which grow with DefectDojo's data, are read page by page by
    /// [`crate::defectdojo_sync::stage_records`]). `progress` hears (endpoint, objects so far,
    /// total).
    pub async fn directory(
        &self,
        progress: &(dyn Fn(&str, usize, Option<u64>) + Sync),
    ) -> Result<DojoDirectory, DojoApiError> {
        macro_rules! read {
            ($endpoint:literal) => {
                self.list($endpoint, &[], &|n, total| progress($endpoint, n, total))
                    .await?
            };
        }
        let generation = if self.has_endpoint("product_members").await? {
            Generation::V2(DojoRoles {
                product_members: read!("product_members"),
                product_type_members: read!("product_type_members"),
                product_groups: read!("product_groups"),
                product_type_groups: read!("product_type_groups"),
                group_members: read!("dojo_group_members"),
                global_roles: read!("global_roles"),
            })
        } else {
            Generation::V3
        };
        Ok(DojoDirectory {
            instance: self.base.as_str().to_owned(),
            users: read!("users"),
            contacts: read!("user_contact_infos"),
            product_types: read!("product_types"),
            products: read!("products"),
            generation,
            settings: None,
        })
    }

    /// The notification settings: every `notifications` row and the `system_settings`
    /// object. `progress` hears (endpoint, objects so far, total).
    pub async fn settings(
        &self,
        progress: &(dyn Fn(&str, usize, Option<u64>) + Sync),
    ) -> Result<DojoSettings, DojoApiError> {
        let notifications = self
            .list("notifications", &[], &|n, total| {
                progress("notifications", n, total)
            })
            .await?;
        let system: Vec<Value> = self
            .list("system_settings", &[], &|n, total| {
                progress("system_settings", n, total)
            })
            .await?;
        Ok(DojoSettings {
            notifications,
            system_settings: system.into_iter().next(),
        })
    }
}
