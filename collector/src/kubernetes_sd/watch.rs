//! List + watch of one kind (in one namespace or all), keeping a store
//! of the objects current: list (paged), then watch from the list's
//! resource version with bookmarks; on 410 Gone (HTTP or an ERROR event)
//! list again; on a broken or ended stream watch again from the last
//! version seen; failures retry with capped exponential backoff. Bad
//! events (malformed JSON, oversized lines, ERROR events) are logged and
//! skipped: the objects already known stay.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::Rng;
use tokio::sync::Notify;

use super::client::{resource_path, ApiClient};
use super::error::KubeError;
use super::lines::{Line, LineReader};
use super::objects::{List, ObjectMeta, Resource, Status, WatchEvent};

/// Objects by `namespace/name` (or `name` when cluster-scoped).
pub type Store<T> = Arc<RwLock<BTreeMap<String, T>>>;

/// Longest watch event line accepted (larger objects are skipped).
pub const MAX_EVENT_LINE_BYTES: usize = 4 << 20;
/// Largest list response page accepted.
pub const MAX_LIST_BYTES: usize = 256 << 20;
/// Objects asked for per list page.
const PAGE_SIZE: &str = "500";
/// How long one list request may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(60);
/// First and longest retry delays.
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What to watch.
#[derive(Debug, Clone)]
pub struct WatchSpec {
    /// The API server.
    pub client: ApiClient,
    /// The namespace, or all.
    pub namespace: Option<String>,
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
}

impl WatchSpec {
    fn what<T: Resource>(&self, verb: &str) -> String {
        match &self.namespace {
            Some(ns) => format!("{verb} {} in namespace {ns}", T::PLURAL),
            None => format!("{verb} {}", T::PLURAL),
        }
    }

    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(l) = &self.label_selector {
            q.push(("labelSelector", l.clone()));
        }
        if let Some(f) = &self.field_selector {
            q.push(("fieldSelector", f.clone()));
        }
        q
    }

    /// Whether the store key belongs to this watch's scope.
    fn owns(&self, key: &str) -> bool {
        match &self.namespace {
            Some(ns) => key
                .strip_prefix(ns.as_str())
                .is_some_and(|r| r.starts_with('/')),
            None => true,
        }
    }
}

/// The store key of an object.
pub fn key_of(m: &ObjectMeta) -> String {
    if m.namespace.is_empty() {
        m.name.clone()
    } else {
        format!("{}/{}", m.namespace, m.name)
    }
}

/// Why a watch ended.
enum End {
    /// The version expired: list again.
    Gone,
    /// The stream ended or broke; `events` arrived before.
    Closed { events: usize },
}

/// Keeps `store` current forever (until the task is aborted), calling
/// `changed.notify_one()` whenever its objects change.
pub async fn run<T: Resource>(spec: WatchSpec, store: Store<T>, changed: Arc<Notify>) {
    let mut backoff = MIN_BACKOFF;
    // Bounded by the task's abort on shutdown or reload.
    loop {
        let mut rv = match list::<T>(&spec).await {
            Ok((items, rv)) => {
                if replace(&spec, &store, items) {
                    changed.notify_one();
                }
                rv
            }
            Err(e) => {
                tracing::warn!(error = %e, "kubernetes_sd list failed; retrying");
                backoff = sleep_backoff(backoff).await;
                continue;
            }
        };
        loop {
            match watch::<T>(&spec, &mut rv, &store, &changed).await {
                Ok(End::Gone) | Err(KubeError::Gone { .. }) => {
                    tracing::info!(what = %spec.what::<T>("watch"), "resource version expired; listing again");
                    break;
                }
                Ok(End::Closed { events }) if events > 0 => backoff = MIN_BACKOFF,
                Ok(End::Closed { .. }) => backoff = sleep_backoff(backoff).await,
                Err(e) => {
                    tracing::warn!(error = %e, "kubernetes_sd watch failed; reconnecting");
                    backoff = sleep_backoff(backoff).await;
                }
            }
        }
    }
}

/// Sleeps `current` (with jitter) and returns the next, doubled delay.
async fn sleep_backoff(current: Duration) -> Duration {
    let jitter = rand::rng().random_range(0.8..1.2);
    tokio::time::sleep(current.mul_f64(jitter)).await;
    (current * 2).min(MAX_BACKOFF)
}

/// Replaces the objects of this watch's scope; true when something changed.
fn replace<T: Resource>(spec: &WatchSpec, store: &Store<T>, items: BTreeMap<String, T>) -> bool {
    let mut s = store
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let old: BTreeMap<String, T> = s
        .iter()
        .filter(|(k, _)| spec.owns(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if old == items {
        return false;
    }
    s.retain(|k, _| !spec.owns(k));
    s.extend(items);
    true
}

async fn list<T: Resource>(spec: &WatchSpec) -> Result<(BTreeMap<String, T>, String), KubeError> {
    let what = spec.what::<T>("list");
    let path = resource_path(
        T::PLURAL,
        spec.namespace.as_deref().filter(|_| T::NAMESPACED),
    );
    let mut items = BTreeMap::new();
    let mut continue_token = String::new();
    // Bounded: each page is bounded, and the server ends the pages.
    loop {
        let mut q = spec.query();
        q.push(("limit", PAGE_SIZE.to_string()));
        if !continue_token.is_empty() {
            q.push(("continue", continue_token.clone()));
        }
        let resp = spec
            .client
            .get(&path, &q)?
            .timeout(LIST_TIMEOUT)
            .send()
            .await
            .map_err(|e| http_error(&what, e))?;
        let resp = check_status(resp, &what).await?;
        let body = read_bounded(resp, MAX_LIST_BYTES, &what).await?;
        let page: List<T> = serde_json::from_slice(&body).map_err(|e| KubeError::Decode {
            what: what.clone(),
            reason: e.to_string(),
        })?;
        for item in page.items {
            items.insert(key_of(item.meta()), item);
        }
        if page.metadata.continue_token.is_empty() {
            return Ok((items, page.metadata.resource_version));
        }
        continue_token = page.metadata.continue_token;
    }
}

async fn watch<T: Resource>(
    spec: &WatchSpec,
    rv: &mut String,
    store: &Store<T>,
    changed: &Notify,
) -> Result<End, KubeError> {
    let what = spec.what::<T>("watch");
    let path = resource_path(
        T::PLURAL,
        spec.namespace.as_deref().filter(|_| T::NAMESPACED),
    );
    let mut q = spec.query();
    q.push(("watch", "1".to_string()));
    q.push(("resourceVersion", rv.clone()));
    q.push(("allowWatchBookmarks", "true".to_string()));
    // As client-go: the server ends the watch after 5-10 minutes.
    let timeout = rand::rng().random_range(300..600);
    q.push(("timeoutSeconds", timeout.to_string()));
    let resp = spec
        .client
        .get(&path, &q)?
        .send()
        .await
        .map_err(|e| http_error(&what, e))?;
    let mut resp = check_status(resp, &what).await?;
    let mut lines = LineReader::new(MAX_EVENT_LINE_BYTES);
    let mut events = 0;
    // Bounded by the server's timeoutSeconds and the client's read timeout.
    loop {
        let Some(chunk) = resp.chunk().await.map_err(|e| http_error(&what, e))? else {
            return Ok(End::Closed { events });
        };
        let mut any_change = false;
        for line in lines.push(&chunk) {
            let line = match line {
                Line::Complete(l) => l,
                Line::Oversized => {
                    tracing::error!(what = %what, limit = MAX_EVENT_LINE_BYTES, "watch event larger than the limit skipped; keeping the objects known");
                    continue;
                }
            };
            events += 1;
            match apply::<T>(&line, rv, store) {
                Applied::Changed => any_change = true,
                Applied::Unchanged => {}
                Applied::Gone => {
                    notify_if(changed, any_change);
                    return Ok(End::Gone);
                }
                Applied::Failed => {
                    notify_if(changed, any_change);
                    return Ok(End::Closed { events: 0 });
                }
            }
        }
        notify_if(changed, any_change);
    }
}

fn notify_if(n: &Notify, yes: bool) {
    if yes {
        n.notify_one();
    }
}

/// The outcome of one watch event.
enum Applied {
    Changed,
    Unchanged,
    /// An ERROR event with 410.
    Gone,
    /// Another ERROR event: watch again after a backoff.
    Failed,
}

fn apply<T: Resource>(line: &[u8], rv: &mut String, store: &Store<T>) -> Applied {
    let event: WatchEvent = match serde_json::from_slice(line) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(kind = T::PLURAL, error = %e, "malformed watch event skipped");
            return Applied::Unchanged;
        }
    };
    match event.kind.as_str() {
        "ADDED" | "MODIFIED" | "DELETED" => {
            let obj: T = match serde_json::from_value(event.object) {
                Ok(o) => o,
                Err(e) => {
                    tracing::error!(kind = T::PLURAL, error = %e, "watch event with a malformed object skipped");
                    return Applied::Unchanged;
                }
            };
            if !obj.meta().resource_version.is_empty() {
                rv.clone_from(&obj.meta().resource_version);
            }
            let key = key_of(obj.meta());
            let mut s = store
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let changed = if event.kind == "DELETED" {
                s.remove(&key).is_some()
            } else {
                s.insert(key, obj.clone()).is_none_or(|old| old != obj)
            };
            if changed {
                Applied::Changed
            } else {
                Applied::Unchanged
            }
        }
        "BOOKMARK" => {
            if let Some(v) = event
                .object
                .pointer("/metadata/resourceVersion")
                .and_then(|v| v.as_str())
            {
                *rv = v.to_string();
            }
            Applied::Unchanged
        }
        "ERROR" => {
            let status: Status = serde_json::from_value(event.object).unwrap_or_default();
            if status.code == 410 {
                return Applied::Gone;
            }
            tracing::error!(kind = T::PLURAL, code = status.code, reason = %status.reason, message = %status.message, "watch ERROR event; watching again");
            Applied::Failed
        }
        other => {
            tracing::warn!(
                kind = T::PLURAL,
                event = other,
                "unknown watch event type skipped"
            );
            Applied::Unchanged
        }
    }
}

fn http_error(what: &str, e: reqwest::Error) -> KubeError {
    KubeError::Http {
        what: what.to_string(),
        reason: e.to_string(),
    }
}

/// Passes a successful response; turns 410 into [`KubeError::Gone`] and
/// other statuses into [`KubeError::Status`] with the body's message.
async fn check_status(resp: reqwest::Response, what: &str) -> Result<reqwest::Response, KubeError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    if status == reqwest::StatusCode::GONE {
        return Err(KubeError::Gone {
            what: what.to_string(),
        });
    }
    let body = read_bounded(resp, 4096, what).await.unwrap_or_default();
    let message = serde_json::from_slice::<Status>(&body)
        .ok()
        .map(|s| s.message)
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    Err(KubeError::Status {
        what: what.to_string(),
        status: status.as_u16(),
        message,
    })
}

/// The body, refusing more than `limit` bytes.
async fn read_bounded(
    mut resp: reqwest::Response,
    limit: usize,
    what: &str,
) -> Result<Vec<u8>, KubeError> {
    let too_large = || KubeError::TooLarge {
        what: what.to_string(),
        limit,
    };
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| http_error(what, e))? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
