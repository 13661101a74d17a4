//! Router tests without a socket (`oneshot`).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fleetwatch_model::remote_write::{encode_write_request, SeriesSamples};
use fleetwatch_model::{Labels, Sample};
use serde_json::Value;
use tower::ServiceExt;

use super::*;

async fn hub(dir: &std::path::Path) -> Hub {
    Hub::open(HubConfig {
        data_dir: dir.to_path_buf(),
        ..HubConfig::default()
    })
    .await
    .expect("open hub")
}

async fn send(router: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = router.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn write_req(series: &[SeriesSamples]) -> Request<Body> {
    Request::post("/api/v1/write")
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .body(Body::from(encode_write_request(series)))
        .expect("request")
}

fn series(cluster: &str, t: i64, v: f64) -> SeriesSamples {
    SeriesSamples {
        labels: Labels::from_pairs([
            ("__name__", "kubevirt_vm_memory_usage_bytes"),
            ("cluster", cluster),
            ("name", "vm-1"),
        ]),
        samples: vec![Sample::new(t, v)],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_then_query_get_and_post() {
    let dir = tempfile::tempdir().expect("tempdir");
    let router = hub(dir.path()).await.router();
    let (status, _) = send(
        &router,
        write_req(&[series("a", 1_000_000, 5.0), series("b", 1_000_000, 7.0)]),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let get = Request::get(
        "/api/v1/query?query=sum%20by%20(cluster)%20(kubevirt_vm_memory_usage_bytes)&time=1000.5",
    )
    .body(Body::empty())
    .expect("request");
    let (status, body) = send(&router, get).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["resultType"], "vector");
    let result = body["data"]["result"].as_array().expect("result");
    assert_eq!(result.len(), 2);
    assert_eq!(result[0]["metric"], serde_json::json!({"cluster": "a"}));
    assert_eq!(result[0]["value"], serde_json::json!([1000.5, "5"]));

    let post = Request::post("/api/v1/query_range")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(Body::from("query=kubevirt_vm_memory_usage_bytes%7Bcluster%3D%22b%22%7D&start=1000&end=1010&step=5"))
        .expect("request");
    let (status, body) = send(&router, post).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["resultType"], "matrix");
    assert_eq!(
        body["data"]["result"][0]["values"],
        serde_json::json!([[1000, "7"], [1005, "7"], [1010, "7"]])
    );

    let scalar = Request::get("/api/v1/query?query=1%2B1&time=10")
        .body(Body::empty())
        .expect("request");
    let (_, body) = send(&router, scalar).await;
    assert_eq!(
        body["data"],
        serde_json::json!({"resultType": "scalar", "result": [10, "2"]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_use_prometheus_envelope() {
    let dir = tempfile::tempdir().expect("tempdir");
    let router = hub(dir.path()).await.router();
    let cases = [
        (
            "/api/v1/query?query=sum(",
            StatusCode::BAD_REQUEST,
            "bad_data",
        ),
        ("/api/v1/query", StatusCode::BAD_REQUEST, "bad_data"),
        (
            "/api/v1/query?query=up&time=yesterday",
            StatusCode::BAD_REQUEST,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=up&start=10&end=5&step=1",
            StatusCode::BAD_REQUEST,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=100000&step=1",
            StatusCode::BAD_REQUEST,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=10&step=0",
            StatusCode::BAD_REQUEST,
            "bad_data",
        ),
        ("/api/v1/series", StatusCode::BAD_REQUEST, "bad_data"),
        (
            "/api/v1/label/1bad/values",
            StatusCode::BAD_REQUEST,
            "bad_data",
        ),
    ];
    for (uri, want_status, want_type) in cases {
        let (status, body) = send(
            &router,
            Request::get(uri).body(Body::empty()).expect("request"),
        )
        .await;
        assert_eq!(status, want_status, "{uri}: {body}");
        assert_eq!(body["status"], "error", "{uri}");
        assert_eq!(body["errorType"], want_type, "{uri}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{uri}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_and_labels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let router = hub(dir.path()).await.router();
    send(
        &router,
        write_req(&[series("a", 1_000, 1.0), series("b", 1_000, 1.0)]),
    )
    .await;
    let (_, body) = send(
        &router,
        Request::get("/api/v1/labels")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(
        body["data"],
        serde_json::json!(["__name__", "cluster", "name"])
    );
    let (_, body) = send(
        &router,
        Request::get("/api/v1/series?match[]=%7Bcluster%3D%22b%22%7D")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(
        body["data"],
        serde_json::json!([{"__name__": "kubevirt_vm_memory_usage_bytes", "cluster": "b", "name": "vm-1"}])
    );
    let (_, body) = send(
        &router,
        Request::get("/api/v1/label/cluster/values?limit=1")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(body["data"], serde_json::json!(["a"]));
    let (status, _) = send(
        &router,
        Request::get("/-/ready")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}
