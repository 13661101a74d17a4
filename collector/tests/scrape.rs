//! Scraping a loopback HTTP target: content negotiation (OpenMetrics and
//! the text format), gzip, the body size limit, malformed bodies and the
//! sample and label limits, all failing the scrape whole as Prometheus does.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use fleetwatch_collector::config::CollectorConfig;
use fleetwatch_collector::metrics::{CollectorMetrics, JobMetrics};
use fleetwatch_collector::queue::QueuedSample;
use fleetwatch_collector::scrape::{Scraper, SCRAPE_ACCEPT};
use fleetwatch_collector::status::TargetStatus;
use fleetwatch_collector::targets::targets_from_config;
use fleetwatch_model::{is_stale_nan, Labels};

use common::Server;

/// What the target answers: content type, body, whether to gzip it.
#[derive(Clone, Default)]
struct Answer {
    content_type: &'static str,
    body: String,
    gzip: bool,
}

#[derive(Clone, Default)]
struct Shared {
    answer: Arc<Mutex<Answer>>,
    /// The `Accept` and `Accept-Encoding` headers of the last request.
    seen: Arc<Mutex<(String, String)>>,
}

async fn metrics(
    axum::extract::State(s): axum::extract::State<Shared>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let h = |n: header::HeaderName| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    *s.seen.lock().unwrap() = (h(header::ACCEPT), h(header::ACCEPT_ENCODING));
    let a = s.answer.lock().unwrap().clone();
    let mut out = HeaderMap::new();
    out.insert(header::CONTENT_TYPE, a.content_type.parse().unwrap());
    let body = if a.gzip {
        out.insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(a.body.as_bytes()).unwrap();
        enc.finish().unwrap()
    } else {
        a.body.into_bytes()
    };
    (out, body)
}

struct Fixture {
    server: Server,
    shared: Shared,
    scraper: Scraper,
    status: Arc<TargetStatus>,
    metrics: Arc<CollectorMetrics>,
}

/// A target on loopback and a scraper for it with `extra` job settings.
async fn fixture(extra: &str) -> Fixture {
    let shared = Shared::default();
    let router = Router::new()
        .route("/metrics", get(metrics))
        .with_state(shared.clone());
    let server = Server::start(router).await;
    let yaml = format!(
        "scrape_configs: [{{job_name: t, static_configs: [{{targets: ['{}']}}]{extra}}}]",
        server.addr
    );
    let cfg = CollectorConfig::from_yaml_str(&yaml).unwrap();
    cfg.validate().unwrap();
    let target = targets_from_config(&cfg).unwrap().remove(0);
    let metrics = Arc::new(CollectorMetrics::new(["t"], []));
    let status = Arc::new(TargetStatus::default());
    let scraper = Scraper::new(
        target,
        reqwest::Client::new(),
        Labels::from_pairs([("cluster", "c1")]),
        Arc::clone(&metrics),
    )
    .with_status(Arc::clone(&status));
    Fixture {
        server,
        shared,
        scraper,
        status,
        metrics,
    }
}

impl Fixture {
    /// A counter of the job's metrics.
    fn count(&self, pick: fn(&JobMetrics) -> &AtomicU64) -> u64 {
        pick(&self.metrics.job("t")).load(Ordering::Relaxed)
    }

    fn answer(&self, content_type: &'static str, body: &str, gzip: bool) {
        *self.shared.answer.lock().unwrap() = Answer {
            content_type,
            body: body.to_string(),
            gzip,
        };
    }
}

const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const OM: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Samples by metric name (and `le` for buckets).
fn by_name(v: &[QueuedSample]) -> BTreeMap<String, f64> {
    v.iter()
        .map(|q| {
            let name = q.labels.metric_name().unwrap_or("").to_string();
            let key = match q.labels.get("le") {
                Some(le) => format!("{name}{{le={le}}}"),
                None => name,
            };
            (key, q.sample.value)
        })
        .collect()
}

#[tokio::test]
async fn negotiates_openmetrics_and_reads_it() {
    let mut f = fixture("").await;
    f.answer(
        OM,
        "# TYPE requests counter\n\
         requests_total{code=\"200\"} 7 # {trace_id=\"abc\"} 1\n\
         requests_created{code=\"200\"} 1700000000.5\n\
         # TYPE lat histogram\n\
         # UNIT lat seconds\n\
         lat_bucket{le=\"1\"} 1\n\
         lat_bucket{le=\"+Inf\"} 2\n\
         lat_count 2\n\
         lat_sum 1.5\n\
         # EOF\n",
        false,
    );
    let out = by_name(&f.scraper.scrape_once().await);
    let (accept, encoding) = f.shared.seen.lock().unwrap().clone();
    assert_eq!(accept, SCRAPE_ACCEPT);
    assert!(accept.starts_with("application/openmetrics-text;version=1.0.0;q=0.75,"));
    assert!(encoding.contains("gzip"), "Accept-Encoding: {encoding:?}");
    assert_eq!(out["up"], 1.0, "{:?}", f.status.last().error);
    assert_eq!(out["requests_total"], 7.0);
    assert!(!out.contains_key("requests_created"), "{out:?}");
    assert_eq!(out["lat_bucket{le=1.0}"], 1.0);
    assert_eq!(out["scrape_samples_scraped"], 5.0);

    // The same body as text/plain is read as the text format, where `#`
    // after the value is not an exemplar: the scrape fails.
    f.answer(TEXT, "a 1 # {x=\"1\"} 2\n", false);
    let out = by_name(&f.scraper.scrape_once().await);
    assert_eq!(out["up"], 0.0);
    // OpenMetrics without # EOF fails too.
    f.answer(OM, "a 1\n", false);
    let out = by_name(&f.scraper.scrape_once().await);
    assert_eq!(out["up"], 0.0);
    assert!(
        f.status.last().error.contains("# EOF"),
        "{}",
        f.status.last().error
    );
    f.server.stop().await;
}

#[tokio::test]
async fn gzip_bodies_are_decoded() {
    let mut f = fixture("").await;
    let body: String = (0..500).map(|i| format!("m{{i=\"{i}\"}} {i}\n")).collect();
    f.answer(TEXT, &body, true);
    let out = f.scraper.scrape_once().await;
    assert_eq!(f.status.last().error, "");
    let scraped = out
        .iter()
        .filter(|q| q.labels.metric_name() == Some("m"))
        .count();
    assert_eq!(scraped, 500);
    f.server.stop().await;
}

#[tokio::test]
async fn a_body_over_the_size_limit_fails_the_scrape() {
    let mut f = fixture(", body_size_limit: 1KB").await;
    let body: String = (0..200).map(|i| format!("m{{i=\"{i}\"}} {i}\n")).collect();
    assert!(body.len() > 1024);
    // Plain (with Content-Length) and gzip (small on the wire, large
    // decoded: the limit is on the decoded body).
    for gzip in [false, true] {
        f.answer(TEXT, &body, gzip);
        let out = by_name(&f.scraper.scrape_once().await);
        assert_eq!(out["up"], 0.0, "gzip={gzip}");
        assert!(!out.contains_key("m"));
        assert!(
            f.status.last().error.contains("body size limit exceeded"),
            "{}",
            f.status.last().error
        );
    }
    assert_eq!(f.count(|j| &j.scrapes_body_size_limit), 2);
    f.answer(TEXT, "m 1\n", false);
    assert_eq!(by_name(&f.scraper.scrape_once().await)["up"], 1.0);
    f.server.stop().await;
}

#[tokio::test]
async fn a_malformed_body_fails_whole_and_marks_series_stale() {
    let mut f = fixture("").await;
    f.answer(TEXT, "a 1\nb 2\n", false);
    assert_eq!(by_name(&f.scraper.scrape_once().await)["up"], 1.0);
    f.answer(TEXT, "a 1\nb{x=\"1} 2\n", false);
    let out = f.scraper.scrape_once().await;
    let by = by_name(&out);
    assert_eq!(by["up"], 0.0);
    assert!(is_stale_nan(by["a"]) && is_stale_nan(by["b"]), "{by:?}");
    let err = f.status.last().error;
    assert!(err.contains("line 2: unterminated label set"), "{err}");
    assert_eq!(f.count(|j| &j.scrapes_parse_failed), 1);
    f.server.stop().await;
}

#[tokio::test]
async fn sample_limit_fails_the_scrape_and_drops_all_its_samples() {
    let mut f = fixture(", sample_limit: 2, metric_relabel_configs: [{source_labels: [__name__], regex: dropped, action: drop}]").await;
    // Two samples after relabeling: within the limit.
    f.answer(TEXT, "a 1\nb 2\ndropped 3\n", false);
    let by = by_name(&f.scraper.scrape_once().await);
    assert_eq!((by["up"], by["a"], by["b"]), (1.0, 1.0, 2.0));
    f.answer(TEXT, "a 1\nb 2\nc 3\ndropped 4\n", false);
    let out = f.scraper.scrape_once().await;
    let by = by_name(&out);
    assert_eq!(by["up"], 0.0);
    assert!(is_stale_nan(by["a"]) && is_stale_nan(by["b"]), "{by:?}");
    assert!(!by.contains_key("c"));
    assert_eq!(by["scrape_samples_scraped"], 4.0);
    assert_eq!(by["scrape_samples_post_metric_relabeling"], 3.0);
    assert!(f.status.last().error.contains("sample_limit exceeded"));
    assert_eq!(f.count(|j| &j.scrapes_sample_limit), 1);
    f.server.stop().await;
}

#[tokio::test]
async fn label_limits_fail_the_scrape() {
    // __name__, job and instance count: `ok` has 3 labels, `a` 4.
    for (extra, want) in [
        (", label_limit: 3", "label_limit exceeded"),
        (
            ", label_name_length_limit: 10",
            "label_name_length_limit exceeded",
        ),
        (
            ", label_value_length_limit: 20",
            "label_value_length_limit exceeded",
        ),
    ] {
        let mut f = fixture(extra).await;
        f.answer(TEXT, "ok 1\n", false);
        assert_eq!(
            by_name(&f.scraper.scrape_once().await)["up"],
            1.0,
            "{extra}"
        );
        // Twice: the second time the verdict comes from the cache.
        for _ in 0..2 {
            f.answer(
                TEXT,
                "ok 1\na{toolonglabel=\"value_too_long_for_the_limit\"} 1\n",
                false,
            );
            let by = by_name(&f.scraper.scrape_once().await);
            assert_eq!(by["up"], 0.0, "{extra}");
            assert!(
                f.status.last().error.contains(want),
                "{}",
                f.status.last().error
            );
        }
        assert_eq!(f.count(|j| &j.scrapes_label_limits), 2);
        f.server.stop().await;
    }
}
