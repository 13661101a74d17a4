//! Per-job and per-endpoint HTTP clients against real loopback servers:
//! basic auth, bearer tokens from a rotated file, TLS with a CA made in
//! the test (own CA, `insecure_skip_verify`, a wrong CA, `server_name`),
//! mutual TLS, and remote write with basic auth and a bearer token.

mod common;
#[path = "http_client/tls_server.rs"]
mod tls_server;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use common::Server;
use fleetwatch_collector::{Collector, CollectorConfig};
use fleetwatch_model::remote_write::decode_write_request;
use tls_server::{server_config, Ca, TlsServer};
use tokio::sync::oneshot;

/// Every wait in this file ends after this long.
const BOUND: Duration = Duration::from_secs(20);
/// How often a wait checks.
const POLL: Duration = Duration::from_millis(50);
/// Checks in one wait: [`BOUND`] / [`POLL`].
const POLLS: u32 = 400;

/// Rendered label sets of every series received.
type Seen = Arc<Mutex<BTreeSet<String>>>;

/// A remote-write receiver that answers 401 unless the request's
/// `Authorization` header is `want`.
#[derive(Clone)]
struct Receiver {
    seen: Seen,
    want: Option<&'static str>,
    refused: Arc<Mutex<u32>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if r.want.is_some() && auth != r.want {
        *r.refused.lock().expect("lock") += 1;
        return StatusCode::UNAUTHORIZED;
    }
    if let Ok(series) = decode_write_request(&body, 64 << 20) {
        let mut seen = r.seen.lock().expect("lock");
        for s in series {
            seen.insert(s.labels.to_string());
        }
    }
    StatusCode::NO_CONTENT
}

async fn receiver(want: Option<&'static str>) -> (Server, Receiver) {
    let r = Receiver {
        seen: Arc::default(),
        want,
        refused: Arc::default(),
    };
    let server = Server::start(
        Router::new()
            .route("/api/v1/write", post(receive))
            .with_state(r.clone()),
    )
    .await;
    (server, r)
}

/// A running collector with its API served.
struct Running {
    api: Server,
    stop: oneshot::Sender<()>,
    run: tokio::task::JoinHandle<Result<(), fleetwatch_collector::CollectorError>>,
}

impl Running {
    /// Runs the config in `dir/collector.yml`, written from `yaml`.
    async fn start_in(dir: &std::path::Path, yaml: &str) -> Self {
        let path = dir.join("collector.yml");
        std::fs::write(&path, yaml).expect("write config");
        let cfg = CollectorConfig::load(&path).expect("config parses");
        let collector = Collector::new(cfg)
            .expect("collector")
            .with_config_path(path);
        let api = Server::start(collector.metrics_router()).await;
        let (stop, stop_rx) = oneshot::channel::<()>();
        let run = tokio::spawn(collector.run(async {
            let _ = stop_rx.await;
        }));
        Self { api, stop, run }
    }

    /// `lastError` of every active target that has been scraped, by job.
    async fn last_errors(&self) -> BTreeMap<String, String> {
        let url = format!("http://{}/api/v1/targets", self.api.addr);
        let text = reqwest::get(&url)
            .await
            .expect("targets")
            .text()
            .await
            .expect("body");
        let json: serde_json::Value = serde_json::from_str(&text).expect("json");
        json["data"]["activeTargets"]
            .as_array()
            .expect("array")
            .iter()
            .filter(|t| t["health"] != "unknown")
            .map(|t| {
                (
                    t["scrapePool"].as_str().expect("pool").to_string(),
                    t["lastError"].as_str().expect("error").to_string(),
                )
            })
            .collect()
    }

    /// Waits until every job in `jobs` has been scraped at least once and
    /// returns the last errors.
    async fn errors_once_scraped(&self, jobs: &[&str]) -> BTreeMap<String, String> {
        let mut errors = BTreeMap::new();
        for _ in 0..POLLS {
            errors = self.last_errors().await;
            if jobs.iter().all(|j| errors.contains_key(*j)) {
                return errors;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("jobs not scraped in time: {errors:?}");
    }

    /// Rewrites the config file with `yaml` and reloads it.
    async fn reload(&self, dir: &std::path::Path, yaml: &str) {
        std::fs::write(dir.join("collector.yml"), yaml).expect("write config");
        let url = format!("http://{}/-/reload", self.api.addr);
        let resp = reqwest::Client::new()
            .post(&url)
            .send()
            .await
            .expect("reload");
        assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(BOUND, self.run)
            .await
            .expect("collector stops")
            .expect("join")
            .expect("run");
        self.api.stop().await;
    }
}

/// Waits until each `(receiver, metric, job)` has received a series of
/// that metric and job.
async fn wait_for(wanted: &[(&Receiver, &str, &str)]) {
    for _ in 0..POLLS {
        if wanted.iter().all(|(r, name, job)| has(&r.seen, name, job)) {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    let wanted: Vec<_> = wanted.iter().map(|w| (w.1, w.2)).collect();
    panic!("timed out waiting for series {wanted:?}");
}

/// Whether one received series is metric `name` of job `job`.
fn has(seen: &Seen, name: &str, job: &str) -> bool {
    let job = format!("job=\"{job}\"");
    seen.lock()
        .expect("lock")
        .iter()
        .any(|s| s.starts_with(&format!("{name}{{")) && s.contains(&job))
}

const GLOBAL: &str = "global: {scrape_interval: 200ms, scrape_timeout: 200ms}\n";
const QUEUE: &str =
    "queue_config: {batch_send_deadline: 50ms, min_backoff: 10ms, max_backoff: 100ms}";

/// A target whose `/metrics` answers 401 unless `Authorization` is the
/// current value of `accepted`; its body names the accepted value.
async fn auth_target(accepted: Arc<Mutex<String>>) -> Server {
    Server::start(Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| {
            let accepted = Arc::clone(&accepted);
            async move {
                let want = accepted.lock().expect("lock").clone();
                let got = headers.get("authorization").and_then(|v| v.to_str().ok());
                if got == Some(want.as_str()) {
                    let token = want.rsplit(' ').next().unwrap_or_default().to_string();
                    (StatusCode::OK, format!("authed{{token=\"{token}\"}} 1\n"))
                } else {
                    (StatusCode::UNAUTHORIZED, "unauthorized\n".to_string())
                }
            }
        }),
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_with_basic_auth_and_a_rotated_bearer_token_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    // base64("prom:s3cret")
    let basic = auth_target(Arc::new(Mutex::new("Basic cHJvbTpzM2NyZXQ=".to_string()))).await;
    let bearer_accepts = Arc::new(Mutex::new("Bearer first".to_string()));
    let bearer = auth_target(Arc::clone(&bearer_accepts)).await;
    let (rx_server, rx) = receiver(None).await;
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "first\n").expect("write token");
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "s3cret").expect("write password");
    let missing = dir.path().join("no-such-token");
    let yaml = format!(
        "{GLOBAL}scrape_configs:\n\
         - job_name: basic\n  basic_auth: {{username: prom, password_file: '{pw}'}}\n  static_configs: [{{targets: ['{basic}']}}]\n\
         - job_name: noauth\n  static_configs: [{{targets: ['{basic}']}}]\n\
         - job_name: bearer\n  authorization: {{credentials_file: '{token}'}}\n  static_configs: [{{targets: ['{bearer}']}}]\n\
         - job_name: missing\n  bearer_token_file: '{missing}'\n  static_configs: [{{targets: ['{bearer}']}}]\n\
         remote_write:\n- url: http://{rx}/api/v1/write\n  {QUEUE}\n",
        pw = password_file.display(),
        basic = basic.addr,
        bearer = bearer.addr,
        token = token_file.display(),
        missing = missing.display(),
        rx = rx_server.addr,
    );
    let running = Running::start_in(dir.path(), &yaml).await;
    wait_for(&[(&rx, "authed", r#"basic", token="cHJvbTpzM2NyZXQ="#)]).await;
    wait_for(&[(&rx, "authed", r#"bearer", token="first"#)]).await;

    // The token rotates: the file is re-read, scrapes go on with the new one.
    *bearer_accepts.lock().expect("lock") = "Bearer second".to_string();
    std::fs::write(&token_file, "second\n").expect("rotate token");
    wait_for(&[(&rx, "authed", r#"bearer", token="second"#)]).await;

    let errors = running
        .errors_once_scraped(&["basic", "noauth", "bearer", "missing"])
        .await;
    assert_eq!(errors["basic"], "", "{errors:?}");
    assert_eq!(errors["bearer"], "", "{errors:?}");
    assert!(errors["noauth"].contains("401"), "{errors:?}");
    assert!(
        errors["missing"].contains("cannot read bearer_token_file")
            && errors["missing"].contains(&missing.display().to_string()),
        "{errors:?}"
    );
    running.stop().await;
    for s in [basic, bearer, rx_server] {
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_https_with_own_ca_skip_verify_wrong_ca_and_server_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("fleetwatch test ca");
    let ca_file = ca.write_pem(dir.path(), "ca.pem");
    let other_ca_file = Ca::new("some other ca").write_pem(dir.path(), "other-ca.pem");
    let by_ip = ca.issue(&["127.0.0.1"], dir.path(), "by-ip");
    let by_name = ca.issue(&["target.internal"], dir.path(), "by-name");
    let ip_server = TlsServer::start(server_config(&by_ip, None), "tls_up 1\n").await;
    let name_server = TlsServer::start(server_config(&by_name, None), "tls_up 1\n").await;
    let (rx_server, rx) = receiver(None).await;
    let job = |name: &str, tls: String, addr: std::net::SocketAddr| {
        format!(
            "- job_name: {name}\n  scheme: https\n  tls_config: {tls}\n  static_configs: [{{targets: ['{addr}']}}]\n"
        )
    };
    let ca_tls = format!("{{ca_file: '{}'}}", ca_file.display());
    let yaml = format!(
        "{GLOBAL}scrape_configs:\n{}{}{}{}{}{}remote_write:\n- url: http://{}/api/v1/write\n  {QUEUE}\n",
        job("own_ca", ca_tls.clone(), ip_server.addr),
        job("skip_verify", "{insecure_skip_verify: true}".into(), ip_server.addr),
        job("wrong_ca", format!("{{ca_file: '{}'}}", other_ca_file.display()), ip_server.addr),
        job("system_roots", "{}".into(), ip_server.addr),
        job(
            "server_name",
            format!("{{ca_file: '{}', server_name: target.internal, min_version: TLS13}}", ca_file.display()),
            name_server.addr
        ),
        job("name_mismatch", ca_tls, name_server.addr),
        rx_server.addr,
    );
    let running = Running::start_in(dir.path(), &yaml).await;
    for good in ["own_ca", "skip_verify", "server_name"] {
        wait_for(&[(&rx, "tls_up", good)]).await;
    }
    let errors = running
        .errors_once_scraped(&[
            "own_ca",
            "skip_verify",
            "wrong_ca",
            "system_roots",
            "server_name",
            "name_mismatch",
        ])
        .await;
    for good in ["own_ca", "skip_verify", "server_name"] {
        assert_eq!(errors[good], "", "{good}: {errors:?}");
    }
    for (bad, why) in [
        ("wrong_ca", "UnknownIssuer"),
        ("system_roots", "UnknownIssuer"),
        ("name_mismatch", "not valid for name"),
    ] {
        let e = &errors[bad];
        assert!(e.contains("certificate") && e.contains(why), "{bad}: {e}");
    }
    running.stop().await;
    ip_server.stop().await;
    name_server.stop().await;
    rx_server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_the_client_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("fleetwatch test ca");
    let ca_file = ca.write_pem(dir.path(), "ca.pem");
    let server_cert = ca.issue(&["127.0.0.1"], dir.path(), "server");
    let client_cert = ca.issue(&["collector"], dir.path(), "client");
    let server = TlsServer::start(server_config(&server_cert, Some(&ca)), "mtls_up 1\n").await;
    let (rx_server, rx) = receiver(None).await;
    let yaml = format!(
        "{GLOBAL}scrape_configs:\n\
         - job_name: with_cert\n  scheme: https\n  tls_config: {{ca_file: '{ca}', cert_file: '{cert}', key_file: '{key}'}}\n  static_configs: [{{targets: ['{addr}']}}]\n\
         - job_name: without_cert\n  scheme: https\n  tls_config: {{ca_file: '{ca}'}}\n  static_configs: [{{targets: ['{addr}']}}]\n\
         remote_write:\n- url: http://{rx}/api/v1/write\n  {QUEUE}\n",
        ca = ca_file.display(),
        cert = client_cert.cert_file.display(),
        key = client_cert.key_file.display(),
        addr = server.addr,
        rx = rx_server.addr,
    );
    let running = Running::start_in(dir.path(), &yaml).await;
    wait_for(&[(&rx, "mtls_up", "with_cert")]).await;
    let errors = running
        .errors_once_scraped(&["with_cert", "without_cert"])
        .await;
    assert_eq!(errors["with_cert"], "", "{errors:?}");
    assert!(
        errors["without_cert"].contains("CertificateRequired"),
        "{errors:?}"
    );
    assert!(
        !has(&rx.seen, "mtls_up", "without_cert"),
        "no sample came through without a client certificate"
    );
    running.stop().await;
    server.stop().await;
    rx_server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_sends_basic_auth_and_bearer_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target =
        Server::start(Router::new().route("/metrics", get(|| async { "rw_auth 1\n" }))).await;
    // base64("writer:pw")
    let (basic_server, basic_rx) = receiver(Some("Basic d3JpdGVyOnB3")).await;
    let (bearer_server, bearer_rx) = receiver(Some("Bearer hub-token")).await;
    let token_file = dir.path().join("hub-token");
    std::fs::write(&token_file, "hub-token\n").expect("write token");
    let yaml = format!(
        "{GLOBAL}scrape_configs:\n- job_name: t\n  static_configs: [{{targets: ['{t}']}}]\n\
         remote_write:\n\
         - url: http://{b}/api/v1/write\n  basic_auth: {{username: writer, password: pw}}\n  {QUEUE}\n\
         - url: http://{r}/api/v1/write\n  bearer_token_file: '{token}'\n  {QUEUE}\n",
        t = target.addr,
        b = basic_server.addr,
        r = bearer_server.addr,
        token = token_file.display(),
    );
    let running = Running::start_in(dir.path(), &yaml).await;
    wait_for(&[(&basic_rx, "rw_auth", "t"), (&bearer_rx, "rw_auth", "t")]).await;
    assert_eq!(*basic_rx.refused.lock().expect("lock"), 0);
    assert_eq!(*bearer_rx.refused.lock().expect("lock"), 0);
    running.stop().await;
    for s in [target, basic_server, bearer_server] {
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_gives_the_job_a_client_with_the_new_credentials() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = auth_target(Arc::new(Mutex::new("Bearer right".to_string()))).await;
    let (rx_server, rx) = receiver(None).await;
    let yaml = |token: &str| {
        format!(
            "{GLOBAL}scrape_configs:\n\
             - job_name: j\n  bearer_token: {token}\n  static_configs: [{{targets: ['{t}']}}]\n\
             remote_write:\n- url: http://{rx}/api/v1/write\n  {QUEUE}\n",
            t = target.addr,
            rx = rx_server.addr,
        )
    };
    let running = Running::start_in(dir.path(), &yaml("wrong")).await;
    let errors = running.errors_once_scraped(&["j"]).await;
    assert!(errors["j"].contains("401"), "{errors:?}");
    running.reload(dir.path(), &yaml("right")).await;
    wait_for(&[(&rx, "authed", r#"j", token="right"#)]).await;
    running.stop().await;
    target.stop().await;
    rx_server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_redirects_unless_told_not_to_and_scrapes_through_a_proxy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = Server::start(
        Router::new()
            .route(
                "/metrics",
                get(|| async { axum::response::Redirect::temporary("/real") }),
            )
            .route("/real", get(|| async { "redirected 1\n" })),
    )
    .await;
    // An HTTP proxy gets the absolute URL; this one answers for any host.
    let proxy =
        Server::start(Router::new().route("/metrics", get(|| async { "via_proxy 1\n" }))).await;
    let (rx_server, rx) = receiver(None).await;
    let yaml = format!(
        "{GLOBAL}scrape_configs:\n\
         - job_name: follow\n  static_configs: [{{targets: ['{t}']}}]\n\
         - job_name: no_follow\n  follow_redirects: false\n  static_configs: [{{targets: ['{t}']}}]\n\
         - job_name: proxied\n  proxy_url: 'http://{p}'\n  static_configs: [{{targets: ['unreachable.invalid:9100']}}]\n\
         remote_write:\n- url: http://{rx}/api/v1/write\n  {QUEUE}\n",
        t = target.addr,
        p = proxy.addr,
        rx = rx_server.addr,
    );
    let running = Running::start_in(dir.path(), &yaml).await;
    wait_for(&[(&rx, "redirected", "follow"), (&rx, "via_proxy", "proxied")]).await;
    let errors = running
        .errors_once_scraped(&["follow", "no_follow", "proxied"])
        .await;
    assert_eq!(errors["follow"], "", "{errors:?}");
    assert_eq!(errors["proxied"], "", "{errors:?}");
    assert!(errors["no_follow"].contains("307"), "{errors:?}");
    running.stop().await;
    for s in [target, proxy, rx_server] {
        s.stop().await;
    }
}
