//! Router tests of `/api/v1/read` (no socket: `oneshot`).

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use fleetwatch_model::remote_write::{encode_write_request, SeriesSamples};
use fleetwatch_model::{snappy, Labels, Sample as ModelSample, STALE_NAN_BITS};
use prost::Message;
use tower::ServiceExt;

use super::*;
use crate::hub::Hub;
use crate::HubConfig;

async fn router(dir: &std::path::Path, max_body: Option<usize>) -> Router {
    let mut config = HubConfig {
        data_dir: dir.to_path_buf(),
        ..HubConfig::default()
    };
    if let Some(m) = max_body {
        config.limits.max_write_body_bytes = m;
    }
    Hub::open(config).await.expect("open hub").router()
}

struct Answer {
    status: StatusCode,
    content_type: Option<String>,
    content_encoding: Option<String>,
    body: Vec<u8>,
}

async fn send(router: &Router, req: Request<Body>) -> Answer {
    let resp = router.clone().oneshot(req).await.expect("response");
    let h = |n: header::HeaderName| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = h(header::CONTENT_TYPE);
    let content_encoding = h(header::CONTENT_ENCODING);
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .expect("body")
        .to_vec();
    Answer {
        status,
        content_type,
        content_encoding,
        body,
    }
}

fn series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> SeriesSamples {
    SeriesSamples {
        labels: Labels::from_pairs(pairs.iter().copied()),
        samples: samples
            .iter()
            .map(|&(t, v)| ModelSample::new(t, v))
            .collect(),
    }
}

async fn write(router: &Router, s: &[SeriesSamples]) {
    let req = Request::post("/api/v1/write")
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .body(Body::from(encode_write_request(s)))
        .expect("request");
    let a = send(router, req).await;
    assert_eq!(
        a.status,
        StatusCode::NO_CONTENT,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
}

fn read_req(body: Vec<u8>) -> Request<Body> {
    Request::post("/api/v1/read")
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Read-Version", "0.1.0")
        .body(Body::from(body))
        .expect("request")
}

fn matcher(t: i32, name: &str, value: &str) -> LabelMatcher {
    LabelMatcher {
        r#type: t,
        name: name.to_string(),
        value: value.to_string(),
    }
}

fn query(start: i64, end: i64, matchers: Vec<LabelMatcher>) -> Query {
    Query {
        start_timestamp_ms: start,
        end_timestamp_ms: end,
        matchers,
    }
}

fn encode(req: &ReadRequest) -> Vec<u8> {
    snappy::compress(&req.encode_to_vec())
}

fn labels_of(ts: &TimeSeries) -> Vec<(String, String)> {
    ts.labels
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}

fn samples_of(ts: &TimeSeries) -> Vec<(i64, u64)> {
    ts.samples
        .iter()
        .map(|s| (s.timestamp, s.value.to_bits()))
        .collect()
}

const MEM: &str = "kubevirt_vm_memory_usage_bytes";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_read_answers_each_query() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = router(dir.path(), None).await;
    write(
        &r,
        &[
            series(
                &[("__name__", MEM), ("cluster", "b"), ("name", "vm-1")],
                &[(1000, 1.0), (2000, 2.0), (3000, 3.0), (4000, 4.0)],
            ),
            series(
                &[("__name__", MEM), ("cluster", "a"), ("name", "vm-1")],
                &[
                    (1000, 10.0),
                    (2000, -0.0),
                    (3000, f64::from_bits(STALE_NAN_BITS)),
                ],
            ),
            series(
                &[("__name__", MEM), ("cluster", "c"), ("name", "vm-9")],
                &[(9000, 9.0)],
            ),
            series(&[("__name__", "up"), ("cluster", "a")], &[(2000, 1.0)]),
        ],
    )
    .await;

    let req = ReadRequest {
        queries: vec![
            // EQ, and the range is inclusive at both ends.
            query(2000, 3000, vec![matcher(0, "__name__", MEM)]),
            // RE and NEQ.
            query(
                0,
                10_000,
                vec![
                    matcher(2, "__name__", "kubevirt_.*"),
                    matcher(1, "cluster", "b"),
                ],
            ),
            // NRE; nothing in range for `up` after 2000.
            query(
                2001,
                10_000,
                vec![matcher(0, "__name__", "up"), matcher(3, "cluster", "x|y")],
            ),
        ],
        accepted_response_types: vec![RESPONSE_TYPE_SAMPLES],
    };
    let a = send(&r, read_req(encode(&req))).await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    assert_eq!(a.content_type.as_deref(), Some("application/x-protobuf"));
    assert_eq!(a.content_encoding.as_deref(), Some("snappy"));
    let raw = snappy::decompress(&a.body, 1 << 24).expect("snappy response");
    let resp = ReadResponse::decode(raw.as_slice()).expect("protobuf response");
    assert_eq!(resp.results.len(), 3);

    let q0 = &resp.results[0].timeseries;
    assert_eq!(q0.len(), 2);
    assert_eq!(
        labels_of(&q0[0]),
        vec![
            ("__name__".to_string(), MEM.to_string()),
            ("cluster".to_string(), "a".to_string()),
            ("name".to_string(), "vm-1".to_string()),
        ]
    );
    // -0.0 and the staleness marker come back bit for bit.
    assert_eq!(
        samples_of(&q0[0]),
        vec![(2000, (-0.0f64).to_bits()), (3000, STALE_NAN_BITS)]
    );
    assert_eq!(labels_of(&q0[1])[1].1, "b");
    assert_eq!(
        samples_of(&q0[1]),
        vec![(2000, 2.0f64.to_bits()), (3000, 3.0f64.to_bits())]
    );

    let q1 = &resp.results[1].timeseries;
    let clusters: Vec<String> = q1.iter().map(|t| labels_of(t)[1].1.clone()).collect();
    assert_eq!(clusters, vec!["a", "c"]);
    assert_eq!(samples_of(&q1[1]), vec![(9000, 9.0f64.to_bits())]);

    assert!(resp.results[2].timeseries.is_empty());

    // No accepted types given: samples, as for old clients.
    let req = ReadRequest {
        queries: vec![query(0, 10_000, vec![matcher(0, "__name__", "up")])],
        accepted_response_types: vec![],
    };
    let a = send(&r, read_req(encode(&req))).await;
    assert_eq!(a.status, StatusCode::OK);
    let raw = snappy::decompress(&a.body, 1 << 24).expect("snappy response");
    let resp = ReadResponse::decode(raw.as_slice()).expect("protobuf response");
    assert_eq!(resp.results[0].timeseries.len(), 1);
    assert_eq!(
        samples_of(&resp.results[0].timeseries[0]),
        vec![(2000, 1.0f64.to_bits())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_read_rejects_bad_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = router(dir.path(), Some(4096)).await;
    let ok_query = || query(0, 1, vec![matcher(0, "__name__", "up")]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not snappy", b"\xff\xff\xff\xff\xff\xff".to_vec(), "snappy"),
        (
            "not protobuf",
            snappy::compress(b"\xff\xff\xff\xff garbage"),
            "protobuf",
        ),
        (
            "invalid regex",
            encode(&ReadRequest {
                queries: vec![query(0, 1, vec![matcher(2, "__name__", "(")])],
                accepted_response_types: vec![0],
            }),
            "regular expression",
        ),
        (
            "no matchers",
            encode(&ReadRequest {
                queries: vec![ok_query(), query(0, 1, vec![])],
                accepted_response_types: vec![0],
            }),
            "no matchers",
        ),
        (
            "only empty-matching matchers",
            encode(&ReadRequest {
                queries: vec![query(0, 1, vec![matcher(2, "job", ".*")])],
                accepted_response_types: vec![0],
            }),
            "empty string",
        ),
        (
            "unknown matcher type",
            encode(&ReadRequest {
                queries: vec![query(0, 1, vec![matcher(7, "job", "x")])],
                accepted_response_types: vec![0],
            }),
            "matcher type",
        ),
        (
            "streamed chunks only",
            encode(&ReadRequest {
                queries: vec![ok_query()],
                accepted_response_types: vec![RESPONSE_TYPE_STREAMED_XOR_CHUNKS],
            }),
            "only the sampled response type",
        ),
        ("too large", vec![0u8; 5000], "exceeds the limit"),
    ];
    for (what, body, needle) in cases {
        let a = send(&r, read_req(body)).await;
        let text = String::from_utf8_lossy(&a.body);
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{what}: {text}");
        assert!(text.contains(needle), "{what}: {text:?} lacks {needle:?}");
    }
    // Accepting both types is fine: the sampled answer is given.
    let a = send(
        &r,
        read_req(encode(&ReadRequest {
            queries: vec![ok_query()],
            accepted_response_types: vec![1, 0],
        })),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
}
