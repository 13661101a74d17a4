//! Remote write 2.0 through the router (`oneshot`, no socket).

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use fleetwatch_model::prompb::{self, v2};
use fleetwatch_model::remote_write::v2::{
    encode_write_request_v2, encode_write_request_v2_with_metadata, CONTENT_TYPE_V2,
    EXEMPLARS_WRITTEN, HISTOGRAMS_WRITTEN, SAMPLES_WRITTEN, VERSION_V2,
};
use fleetwatch_model::remote_write::{encode_write_request, FamilyMetadata, SeriesSamples};
use fleetwatch_model::{snappy, Labels, Sample};
use prost::Message;
use serde_json::Value;
use tower::ServiceExt;

use crate::{Hub, HubConfig};

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn written(&self) -> [String; 3] {
        [SAMPLES_WRITTEN, HISTOGRAMS_WRITTEN, EXEMPLARS_WRITTEN].map(|h| {
            self.headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("missing")
                .to_string()
        })
    }
}

async fn hub(dir: &std::path::Path) -> Router {
    Hub::open(HubConfig {
        data_dir: dir.to_path_buf(),
        ..HubConfig::default()
    })
    .await
    .expect("open hub")
    .router()
}

async fn send(router: &Router, req: Request<Body>) -> Answer {
    let resp = router.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .expect("body");
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn write(content_type: &str, body: Vec<u8>) -> Request<Body> {
    Request::post("/api/v1/write")
        .header("Content-Type", content_type)
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", VERSION_V2)
        .body(Body::from(body))
        .expect("request")
}

async fn get_json(router: &Router, uri: &str) -> Value {
    let a = send(
        router,
        Request::get(uri).body(Body::empty()).expect("request"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{uri}: {}", a.body);
    serde_json::from_str(&a.body).expect("json")
}

/// `(labels, [(t, v)])` of every series matching `selector` at `time`
/// (a range selector), sorted.
async fn samples(router: &Router, selector: &str) -> Vec<(Value, Vec<Value>)> {
    let q = form_urlencoded::byte_serialize(selector.as_bytes()).collect::<String>();
    let body = get_json(router, &format!("/api/v1/query?query={q}&time=100")).await;
    let mut out: Vec<(Value, Vec<Value>)> = body["data"]["result"]
        .as_array()
        .expect("result")
        .iter()
        .map(|s| {
            (
                s["metric"].clone(),
                s["values"].as_array().cloned().unwrap_or_default(),
            )
        })
        .collect();
    out.sort_by_key(|(m, _)| m.to_string());
    out
}

fn vm_series(cluster: &str, points: &[(i64, f64)]) -> SeriesSamples {
    SeriesSamples {
        labels: Labels::from_pairs([
            ("__name__", "kubevirt_vm_memory_usage_bytes"),
            ("cluster", cluster),
            ("name", "vm-1"),
        ]),
        samples: points.iter().map(|&(t, v)| Sample::new(t, v)).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_write_is_stored_with_metadata_and_written_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let router = hub(dir.path()).await;
    let metadata = [FamilyMetadata {
        family: "kubevirt_vm_memory_usage_bytes".into(),
        kind: "gauge",
        help: "Memory used by the VM.".into(),
        unit: "bytes".into(),
    }];
    let body = encode_write_request_v2_with_metadata(
        &[
            vm_series("a", &[(10_000, 5.0), (20_000, 6.0)]),
            vm_series("b", &[(10_000, 7.0)]),
        ],
        &metadata,
    );
    let a = send(&router, write(CONTENT_TYPE_V2, body)).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    assert_eq!(a.written(), ["3", "0", "0"]);

    // A second 2.0 write finds the now known series (the byte-compare path).
    let body = encode_write_request_v2(&[vm_series("a", &[(30_000, 8.0)])]);
    let a = send(
        &router,
        write(
            "application/x-protobuf; proto=io.prometheus.write.v2.Request",
            body,
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    assert_eq!(a.written(), ["1", "0", "0"]);

    let got = samples(&router, "kubevirt_vm_memory_usage_bytes[100s]").await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0["cluster"], "a");
    assert_eq!(
        got[0].1,
        serde_json::json!([[10, "5"], [20, "6"], [30, "8"]])
            .as_array()
            .cloned()
            .unwrap()
    );
    assert_eq!(
        got[1].1,
        serde_json::json!([[10, "7"]]).as_array().cloned().unwrap()
    );

    let meta = get_json(
        &router,
        "/api/v1/metadata?metric=kubevirt_vm_memory_usage_bytes",
    )
    .await;
    assert_eq!(
        meta["data"]["kubevirt_vm_memory_usage_bytes"],
        serde_json::json!([{"type": "gauge", "help": "Memory used by the VM.", "unit": "bytes"}])
    );
}

/// A request with one series per entry of `series` (label refs), each
/// with one sample.
fn raw_request(symbols: &[&str], series: &[&[u32]]) -> Vec<u8> {
    snappy::compress(
        &v2::Request {
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
            timeseries: series
                .iter()
                .map(|refs| v2::TimeSeries {
                    labels_refs: refs.to_vec(),
                    samples: vec![prompb::Sample {
                        value: 1.0,
                        timestamp: 1000,
                    }],
                    histograms: vec![],
                    exemplars: vec![],
                    metadata: None,
                })
                .collect(),
        }
        .encode_to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_v2_bodies_are_400_with_the_reason_and_store_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let router = hub(dir.path()).await;
    let syms = ["", "__name__", "up", "bad-name", "job", "a"];
    // Each request starts with a valid series, `up{job="a"}`: nothing of it
    // may be stored when the request is rejected.
    let good: &[u32] = &[1, 2, 4, 5];
    let cases: [(&str, &[&str], &[u32], &str); 7] = [
        (
            "ref out of range",
            &syms,
            &[1, 2, 4, 60],
            "series 1: label ref 60 is out of range (the request has 6 symbols)",
        ),
        (
            "odd label refs",
            &syms,
            &[1, 2, 4],
            "series 1 has an odd number of label refs",
        ),
        ("empty labels", &syms, &[], "series 1 has no labels"),
        (
            "invalid metric name",
            &syms,
            &[1, 3],
            "invalid metric name \"bad-name\"",
        ),
        (
            "invalid label name",
            &syms,
            &[1, 2, 3, 5],
            "invalid label name \"bad-name\"",
        ),
        ("no metric name", &syms, &[4, 5], "has no metric name"),
        (
            "symbols[0] not empty",
            &["x", "__name__", "up", "bad-name", "job", "a"],
            &[1, 2],
            "symbols[0] must be the empty string",
        ),
    ];
    for (what, symbols, bad, want) in cases {
        let a = send(
            &router,
            write(CONTENT_TYPE_V2, raw_request(symbols, &[good, bad])),
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{what}: {}", a.body);
        assert!(a.body.contains(want), "{what}: {}", a.body);
        assert_eq!(a.written(), ["0", "0", "0"], "{what}");
    }
    // A 1.0 body sent as 2.0, and a body that is not protobuf.
    let v1 = encode_write_request(&[vm_series("a", &[(1000, 1.0)])]);
    let a = send(&router, write(CONTENT_TYPE_V2, v1)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("field 1 is reserved"), "{}", a.body);
    let a = send(
        &router,
        write(CONTENT_TYPE_V2, snappy::compress(b"\xff\xff\xff")),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.body
            .contains("not a valid protobuf io.prometheus.write.v2.Request"),
        "{}",
        a.body
    );

    assert!(samples(&router, "{__name__=~\".+\"}[1h]").await.is_empty());
    let metrics = send(
        &router,
        Request::get("/metrics")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    for (reason, n) in [
        ("invalid_request", 5),
        ("invalid_labels", 2),
        ("missing_metric_name", 1),
    ] {
        let line =
            format!("fleetwatch_remote_write_requests_rejected_total{{reason=\"{reason}\"}} {n}");
        assert!(metrics.body.contains(&line), "{line}:\n{}", metrics.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_proto_is_415_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let router = hub(dir.path()).await;
    let body = encode_write_request_v2(&[vm_series("a", &[(1000, 1.0)])]);
    let a = send(
        &router,
        write(
            "application/x-protobuf;proto=io.prometheus.write.v3.Request",
            body,
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        a.body.contains("\"io.prometheus.write.v3.Request\""),
        "{}",
        a.body
    );
    assert!(
        a.body.contains("io.prometheus.write.v2.Request (2.0)"),
        "{}",
        a.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histograms_are_a_partial_write_floats_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let router = hub(dir.path()).await;
    let histogram = v2::Histogram {
        count_int: 3,
        sum: 1.5,
        schema: 0,
        zero_threshold: 0.0,
        zero_count_int: 0,
        positive_spans: vec![v2::BucketSpan {
            offset: 0,
            length: 1,
        }],
        positive_deltas: vec![3],
        timestamp: 1000,
    };
    let request = v2::Request {
        symbols: ["", "__name__", "floats", "hist"]
            .map(String::from)
            .to_vec(),
        timeseries: vec![
            v2::TimeSeries {
                labels_refs: vec![1, 2],
                samples: vec![prompb::Sample {
                    value: 4.0,
                    timestamp: 1000,
                }],
                histograms: vec![],
                exemplars: vec![],
                metadata: None,
            },
            v2::TimeSeries {
                labels_refs: vec![1, 3],
                samples: vec![],
                histograms: vec![histogram.clone(), histogram],
                exemplars: vec![],
                metadata: None,
            },
        ],
    };
    let a = send(
        &router,
        write(CONTENT_TYPE_V2, snappy::compress(&request.encode_to_vec())),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert!(
        a.body
            .contains("2 native histogram samples were not written"),
        "{}",
        a.body
    );
    assert_eq!(a.written(), ["1", "0", "0"]);
    let got = samples(&router, "floats[1h]").await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0].1,
        serde_json::json!([[1, "4"]]).as_array().cloned().unwrap()
    );
}
