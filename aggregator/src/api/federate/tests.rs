//! Router tests of `/federate` (no socket: `oneshot`).

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use fleetwatch_model::remote_write::{encode_write_request, SeriesSamples};
use fleetwatch_model::{Labels, Sample, STALE_NAN};
use serde_json::Value;
use tower::ServiceExt;

use super::*;
use crate::hub::Hub;
use crate::HubConfig;

async fn router(dir: &std::path::Path, external: &[(&str, &str)]) -> Router {
    let mut config = HubConfig {
        data_dir: dir.to_path_buf(),
        ..HubConfig::default()
    };
    config.global.external_labels = external
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<BTreeMap<_, _>>();
    Hub::open(config).await.expect("open hub").router()
}

async fn send(router: &Router, req: Request<Body>) -> (StatusCode, Option<String>, String) {
    let resp = router.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let ct = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .expect("body");
    (status, ct, String::from_utf8_lossy(&bytes).into_owned())
}

fn series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> SeriesSamples {
    SeriesSamples {
        labels: Labels::from_pairs(pairs.iter().copied()),
        samples: samples.iter().map(|&(t, v)| Sample::new(t, v)).collect(),
    }
}

async fn write(router: &Router, s: &[SeriesSamples]) {
    let req = Request::post("/api/v1/write")
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .body(Body::from(encode_write_request(s)))
        .expect("request");
    let (status, _, body) = send(router, req).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("request")
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federates_latest_samples_in_text_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = router(dir.path(), &[("cluster", "hub"), ("replica", "r1")]).await;
    let now = crate::api::now_ms();
    let (t1, t2) = (now - 60_000, now - 30_000);
    write(
        &r,
        &[
            series(
                &[
                    ("__name__", "kubevirt_vm_memory_usage_bytes"),
                    ("cluster", "prod-east"),
                    ("job", "kubevirt"),
                    ("instance", "10.0.0.1:9300"),
                    ("name", "vm-2"),
                ],
                &[(t1, 1.0), (t2, 2.5)],
            ),
            series(
                &[
                    ("__name__", "kubevirt_vm_memory_usage_bytes"),
                    ("cluster", "prod-east"),
                    ("job", "kubevirt"),
                    ("instance", "10.0.0.1:9300"),
                    ("name", "vm-1"),
                ],
                &[(t1, 7.0)],
            ),
            // No cluster label: gets the hub's external one.
            series(
                &[("__name__", "up"), ("job", "kubevirt"), ("instance", "x:1")],
                &[(t2, 1.0)],
            ),
            // Newest sample is a staleness marker: left out.
            series(
                &[
                    ("__name__", "up"),
                    ("job", "kubevirt"),
                    ("instance", "gone:1"),
                ],
                &[(t1, 1.0), (t2, STALE_NAN)],
            ),
            // Older than the lookback delta: left out.
            series(
                &[
                    ("__name__", "up"),
                    ("job", "kubevirt"),
                    ("instance", "old:1"),
                ],
                &[(now - 10 * 60_000, 1.0)],
            ),
            // Not matched.
            series(
                &[("__name__", "up"), ("job", "other"), ("instance", "y:1")],
                &[(t2, 1.0)],
            ),
        ],
    )
    .await;

    // Two overlapping selectors: series are de-duplicated.
    let uri = format!(
        "/federate?match[]={}&match[]={}",
        enc("{job=\"kubevirt\"}"),
        enc("up{job=\"kubevirt\"}")
    );
    let (status, ct, text) = send(&r, get(&uri)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(
        ct.as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let want = format!(
        "# TYPE kubevirt_vm_memory_usage_bytes untyped\n\
         kubevirt_vm_memory_usage_bytes{{cluster=\"prod-east\",instance=\"10.0.0.1:9300\",job=\"kubevirt\",name=\"vm-1\",replica=\"r1\"}} 7 {t1}\n\
         kubevirt_vm_memory_usage_bytes{{cluster=\"prod-east\",instance=\"10.0.0.1:9300\",job=\"kubevirt\",name=\"vm-2\",replica=\"r1\"}} 2.5 {t2}\n\
         # TYPE up untyped\n\
         up{{cluster=\"hub\",instance=\"x:1\",job=\"kubevirt\",replica=\"r1\"}} 1 {t2}\n"
    );
    assert_eq!(text, want);

    // Form-encoded POST gives the same answer.
    let post = Request::post("/federate")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "match[]={}&match[]={}",
            enc("{job=\"kubevirt\"}"),
            enc("up{job=\"kubevirt\"}")
        )))
        .expect("request");
    let (status, _, posted) = send(&r, post).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(posted, want);

    // Nothing matching: an empty, successful answer.
    let (status, _, text) = send(
        &r,
        get(&format!("/federate?match[]={}", enc("{job=\"none\"}"))),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federate_rejects_missing_or_bad_match() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = router(dir.path(), &[]).await;
    for uri in [
        "/federate".to_string(),
        "/federate?match[]=".to_string(),
        format!("/federate?match[]={}", enc("up{")),
        format!("/federate?match[]={}", enc("{job=~\".*\"}")),
        format!("/federate?match[]={}", enc("sum(up)")),
    ] {
        let (status, _, body) = send(&r, get(&uri)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        let v: Value = serde_json::from_str(&body).expect("json error body");
        assert_eq!(v["status"], "error", "{uri}");
        assert_eq!(v["errorType"], "bad_data", "{uri}");
    }
}

#[test]
fn render_groups_by_name_and_keeps_existing_labels() {
    let mut m = BTreeMap::new();
    // `A` sorts before `__name__`, which must not interleave families.
    m.insert(
        Labels::from_pairs([("__name__", "b_metric"), ("A", "1")]),
        Sample::new(5, 1.0),
    );
    m.insert(
        Labels::from_pairs([("__name__", "a_metric"), ("A", "2")]),
        Sample::new(6, f64::INFINITY),
    );
    m.insert(
        Labels::from_pairs([("__name__", "b_metric"), ("A", "3"), ("cluster", "c")]),
        Sample::new(7, -0.5),
    );
    let text = render(m, &[("cluster", "hub")]);
    assert_eq!(
        text,
        "# TYPE a_metric untyped\na_metric{A=\"2\",cluster=\"hub\"} +Inf 6\n\
         # TYPE b_metric untyped\nb_metric{A=\"1\",cluster=\"hub\"} 1 5\n\
         b_metric{A=\"3\",cluster=\"c\"} -0.5 7\n"
    );
}
