//! A small Kubernetes API stand-in for tests: an axum server on
//! 127.0.0.1 serving `GET /api/v1/<plural>` and
//! `GET /api/v1/namespaces/<ns>/<plural>` lists (label and field
//! selectors applied) and `?watch=1` streams of JSON-line events from a
//! resource version on. Tests change objects (each change is an event
//! with a new resource version), expire the history (open watches get an
//! ERROR 410 event, older versions a 410 response), cut open watch
//! connections, and inject raw lines. Requests must carry
//! `Authorization: Bearer <TOKEN>`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// The bearer token the stand-in accepts.
pub const TOKEN: &str = "stand-in-token";

#[derive(Debug)]
struct Entry {
    seq: u64,
    plural: String,
    /// The object, for selector matching; `None` for injected raw lines.
    object: Option<Value>,
    line: String,
    /// End the stream after this entry (an ERROR 410).
    close_after: bool,
}

#[derive(Debug, Default)]
struct ApiState {
    seq: u64,
    objects: BTreeMap<(String, String), Value>,
    history: Vec<Entry>,
    compacted: u64,
    drops: u64,
    stopping: bool,
    open_watches: usize,
    requests: Vec<String>,
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<ApiState>>,
    tick: Arc<watch::Sender<u64>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ApiState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn bump(&self) {
        self.tick.send_modify(|t| *t += 1);
    }
}

/// The running stand-in; stop it with [`KubeApi::stop`].
pub struct KubeApi {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Shared,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<()>,
}

impl KubeApi {
    /// Starts it on an ephemeral loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tick, _) = watch::channel(0u64);
        let shared = Shared {
            state: Arc::new(Mutex::new(ApiState::default())),
            tick: Arc::new(tick),
        };
        let router = Router::new().fallback(handle).with_state(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Self {
            addr,
            shared,
            stop: Some(tx),
            handle,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig pointing at the stand-in (token auth) into
    /// `dir` and returns its path.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: stand-in\n\
             contexts:\n- name: stand-in\n  context: {{cluster: stand-in, user: tester, namespace: fleetwatch}}\n\
             clusters:\n- name: stand-in\n  cluster: {{server: '{}'}}\n\
             users:\n- name: tester\n  user: {{token: {TOKEN}}}\n",
            self.url()
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// Creates or replaces an object of `plural` (an ADDED or MODIFIED event).
    pub fn apply(&self, plural: &str, object: Value) {
        let key = (plural.to_string(), object_key(&object));
        let mut s = self.shared.lock();
        let kind = if s.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        let object = record(&mut s, plural, kind, object);
        s.objects.insert(key, object);
        drop(s);
        self.shared.bump();
    }

    /// Deletes an object (a DELETED event).
    pub fn delete(&self, plural: &str, namespace: &str, name: &str) {
        let mut s = self.shared.lock();
        let key = (plural.to_string(), format!("{namespace}/{name}"));
        if let Some(object) = s.objects.remove(&key) {
            record(&mut s, plural, "DELETED", object);
        }
        drop(s);
        self.shared.bump();
    }

    /// Changes an object without an event: only a list shows it.
    pub fn apply_silently(&self, plural: &str, mut object: Value) {
        let mut s = self.shared.lock();
        s.seq += 1;
        object["metadata"]["resourceVersion"] = json!(s.seq.to_string());
        let key = (plural.to_string(), object_key(&object));
        s.objects.insert(key, object);
    }

    /// Compacts the history: open watches get an ERROR 410 event and end,
    /// watches from older versions get 410 Gone.
    pub fn expire(&self) {
        let mut s = self.shared.lock();
        s.compacted = s.seq;
        s.seq += 1;
        let seq = s.seq;
        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "too old resource version", "reason": "Expired", "code": 410});
        s.history.push(Entry {
            seq,
            plural: String::new(),
            object: None,
            line: json!({"type": "ERROR", "object": status}).to_string(),
            close_after: true,
        });
        drop(s);
        self.shared.bump();
    }

    /// Sends `line` as it is to the open watches of `plural`.
    pub fn inject(&self, plural: &str, line: String) {
        let mut s = self.shared.lock();
        s.seq += 1;
        let seq = s.seq;
        s.history.push(Entry {
            seq,
            plural: plural.to_string(),
            object: None,
            line,
            close_after: false,
        });
        drop(s);
        self.shared.bump();
    }

    /// Breaks every open watch connection (no clean end of the stream).
    pub fn drop_watches(&self) {
        self.shared.lock().drops += 1;
        self.shared.bump();
    }

    /// How many watches are open now.
    pub fn open_watches(&self) -> usize {
        self.shared.lock().open_watches
    }

    /// Every request so far, as `LIST <path>?<query>` or `WATCH <path>?<query>`.
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().requests.clone()
    }

    /// How many requests started with `prefix` (e.g. `LIST /api/v1/pods`).
    pub fn count(&self, prefix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.starts_with(prefix))
            .count()
    }

    /// Stops the server and its watch streams.
    pub async fn stop(mut self) {
        self.shared.lock().stopping = true;
        self.shared.bump();
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let abort = self.handle.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), &mut self.handle)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

/// Gives `object` the next resource version and records its `kind` event.
fn record(s: &mut ApiState, plural: &str, kind: &str, mut object: Value) -> Value {
    s.seq += 1;
    object["metadata"]["resourceVersion"] = json!(s.seq.to_string());
    s.history.push(Entry {
        seq: s.seq,
        plural: plural.to_string(),
        object: Some(object.clone()),
        line: json!({"type": kind, "object": object}).to_string(),
        close_after: false,
    });
    object
}

fn object_key(o: &Value) -> String {
    let m = &o["metadata"];
    let name = m["name"].as_str().unwrap_or_default();
    match m["namespace"].as_str() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

/// `(namespace, plural)` of an API path.
fn parse_path(path: &str) -> Option<(Option<String>, String)> {
    let rest = path.strip_prefix("/api/v1/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [plural] => Some((None, plural.to_string())),
        ["namespaces", ns, plural] => Some((Some(ns.to_string()), plural.to_string())),
        _ => None,
    }
}

/// Whether `o` passes the label selector (`k=v`, `k==v`, `k!=v`, `k`,
/// `!k`, comma-separated) and the field selector (`a.b=v`, `a.b!=v`).
fn matches(o: &Value, labels: Option<&str>, fields: Option<&str>) -> bool {
    let label = |k: &str| o["metadata"]["labels"][k].as_str().map(str::to_string);
    let field = |path: &str| {
        let mut v = o;
        for p in path.split('.') {
            v = &v[p];
        }
        v.as_str().map(str::to_string)
    };
    let check = |sel: &str, get: &dyn Fn(&str) -> Option<String>| {
        sel.split(',').filter(|t| !t.trim().is_empty()).all(|t| {
            let t = t.trim();
            if let Some((k, v)) = t.split_once("!=") {
                get(k.trim()).as_deref() != Some(v.trim())
            } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                get(k.trim()).as_deref() == Some(v.trim())
            } else if let Some(k) = t.strip_prefix('!') {
                get(k.trim()).is_none()
            } else {
                get(t).is_some()
            }
        })
    };
    labels.is_none_or(|s| check(s, &label)) && fields.is_none_or(|s| check(s, &field))
}

fn in_scope(o: &Value, namespace: &Option<String>) -> bool {
    namespace
        .as_deref()
        .is_none_or(|ns| o["metadata"]["namespace"].as_str() == Some(ns))
}

fn status(code: StatusCode, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": message, "code": code.as_u16()});
    (code, axum::Json(body)).into_response()
}

async fn handle(
    State(shared): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth != format!("Bearer {TOKEN}") {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let Some((namespace, plural)) = parse_path(uri.path()) else {
        return status(
            StatusCode::NOT_FOUND,
            "the server could not find the requested resource",
        );
    };
    let watching = q.get("watch").is_some_and(|w| w == "1" || w == "true");
    let verb = if watching { "WATCH" } else { "LIST" };
    let query = uri.query().unwrap_or_default();
    shared
        .lock()
        .requests
        .push(format!("{verb} {}?{query}", uri.path()));
    let labels = q.get("labelSelector").cloned();
    let fields = q.get("fieldSelector").cloned();
    if !watching {
        let s = shared.lock();
        let items: Vec<Value> = s
            .objects
            .iter()
            .filter(|((p, _), o)| {
                *p == plural
                    && in_scope(o, &namespace)
                    && matches(o, labels.as_deref(), fields.as_deref())
            })
            .map(|(_, o)| o.clone())
            .collect();
        let body = json!({"kind": "List", "apiVersion": "v1",
            "metadata": {"resourceVersion": s.seq.to_string()}, "items": items});
        return axum::Json(body).into_response();
    }
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut s = shared.lock();
    if from < s.compacted {
        return status(StatusCode::GONE, "too old resource version");
    }
    s.open_watches += 1;
    let start = s.seq;
    let drops = s.drops;
    drop(s);
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(stream_events(
        shared, plural, namespace, labels, fields, from, start, drops, tx,
    ));
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    Response::builder()
        .header("content-type", "application/json")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Feeds one watch: history after `from` (injected lines only when newer
/// than the watch), then live entries, until the client leaves, the
/// stream is cut or expired, or the server stops.
#[allow(clippy::too_many_arguments)]
async fn stream_events(
    shared: Shared,
    plural: String,
    namespace: Option<String>,
    labels: Option<String>,
    fields: Option<String>,
    from: u64,
    start: u64,
    drops: u64,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let mut tick = shared.tick.subscribe();
    let mut cursor = from;
    // Bounded: ends when the client goes, the stream is cut or the server stops.
    loop {
        let (lines, close, cut) = {
            let s = shared.lock();
            let mut lines = Vec::new();
            let mut close = false;
            let after = cursor;
            for e in s.history.iter().filter(|e| e.seq > after) {
                cursor = e.seq;
                let wanted = match &e.object {
                    Some(o) => {
                        e.plural == plural
                            && in_scope(o, &namespace)
                            && matches(o, labels.as_deref(), fields.as_deref())
                    }
                    None => e.seq > start && (e.plural == plural || e.plural.is_empty()),
                };
                if wanted {
                    lines.push(format!("{}\n", e.line));
                    if e.close_after {
                        close = true;
                        break;
                    }
                }
            }
            (lines, close, s.drops != drops || s.stopping)
        };
        for l in lines {
            if tx.send(Ok(Bytes::from(l))).await.is_err() {
                break;
            }
        }
        if cut {
            let _ = tx
                .send(Err(std::io::Error::other("connection cut by the test")))
                .await;
            break;
        }
        if close || tx.is_closed() {
            break;
        }
        tokio::select! {
            r = tick.changed() => if r.is_err() { break },
            _ = tx.closed() => break,
        }
    }
    shared.lock().open_watches -= 1;
}
