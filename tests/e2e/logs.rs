//! Logs end to end: Loki pushes (protobuf + snappy and JSON) into the real
//! hub, LogQL log and metric queries back, durability across SIGKILL, the
//! requests Grafana's Loki datasource sends, and bad pushes rejected whole.

use std::time::Duration;

use fleetwatch_model::loki::{encode_json, encode_protobuf, PushEntry, PushStream};
use fleetwatch_model::Labels;
use serde_json::Value;

use super::support::*;

/// One second in nanoseconds.
pub const SEC: i64 = 1_000_000_000;

/// Now in Unix nanoseconds.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as i64
}

fn stream(pairs: &[(&str, &str)], entries: &[(i64, &str)]) -> PushStream {
    PushStream {
        labels: Labels::from_pairs(pairs.iter().copied()),
        entries: entries
            .iter()
            .map(|(t, l)| PushEntry {
                timestamp_ns: *t,
                line: l.to_string(),
                metadata: vec![],
            })
            .collect(),
    }
}

/// Posts a protobuf + snappy push; returns status and body.
fn push_proto(hub: &str, streams: &[PushStream]) -> (u16, String) {
    post_push(hub, "application/x-protobuf", encode_protobuf(streams))
}

fn push_json(hub: &str, streams: &[PushStream]) -> (u16, String) {
    post_push(hub, "application/json", encode_json(streams).into_bytes())
}

fn post_push(hub: &str, content_type: &str, body: Vec<u8>) -> (u16, String) {
    let resp = http()
        .post(format!("http://{hub}/loki/api/v1/push"))
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .expect("post push");
    let status = resp.status().as_u16();
    (status, resp.text().unwrap_or_default())
}

/// GETs a Loki API path with parameters and returns the JSON body.
pub fn get(hub: &str, path: &str, params: &[(&str, String)]) -> Value {
    let resp = http()
        .get(format!("http://{hub}{path}"))
        .query(params)
        .send()
        .expect("loki api request");
    let status = resp.status();
    let text = resp.text().unwrap_or_default();
    assert!(status.is_success(), "{path} {params:?}: {status} {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"))
}

/// All `(ts, line, stream labels)` of a streams result, in result order.
pub fn entries(v: &Value) -> Vec<(i64, String, LabelMap)> {
    assert_eq!(v["status"], "success", "{v}");
    assert_eq!(v["data"]["resultType"], "streams", "{v}");
    let mut out = Vec::new();
    for s in v["data"]["result"].as_array().expect("result array") {
        let labels: LabelMap = s["stream"]
            .as_object()
            .expect("stream object")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        for e in s["values"].as_array().expect("values") {
            let ts = e[0]
                .as_str()
                .expect("ns string")
                .parse::<i64>()
                .expect("ns");
            out.push((ts, e[1].as_str().expect("line").to_string(), labels.clone()));
        }
    }
    out
}

/// `query`, `start` and `end` parameters of a range query.
pub fn range_params(query: &str, start: i64, end: i64) -> Vec<(&'static str, String)> {
    vec![
        ("query", query.to_string()),
        ("start", start.to_string()),
        ("end", end.to_string()),
    ]
}

#[test]
fn pushed_lines_come_back_filtered_ordered_and_counted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let hub = start_hub(&tmp.path().join("hub"), tmp.path(), &[]);
    let t0 = now_ns() - 120 * SEC;
    let api = [("app", "api"), ("namespace", "prod")];
    let (status, body) = push_proto(
        &hub.addr,
        &[
            stream(
                &api,
                &[
                    (t0, "GET /health 200"),
                    (t0 + SEC, "GET /orders 500 needle-e2e-41"),
                    (t0 + 2 * SEC, "GET /orders 200"),
                ],
            ),
            stream(
                &[("app", "db"), ("namespace", "prod")],
                &[(t0, "slow needle-e2e-41 query")],
            ),
        ],
    );
    assert_eq!(status, 204, "{body}");
    let (status, body) = push_json(
        &hub.addr,
        &[stream(
            &api,
            &[(t0 + 3 * SEC, "POST /orders 503 needle-e2e-41 timeout")],
        )],
    );
    assert_eq!(status, 204, "{body}");

    let (start, end) = (t0 - SEC, now_ns() + SEC);
    let v = get(
        &hub.addr,
        "/loki/api/v1/query_range",
        &range_params(r#"{app="api"} |= "needle-e2e-41""#, start, end),
    );
    let got = entries(&v);
    assert_eq!(
        got.iter().map(|e| (e.0, e.1.as_str())).collect::<Vec<_>>(),
        vec![
            (t0 + 3 * SEC, "POST /orders 503 needle-e2e-41 timeout"),
            (t0 + SEC, "GET /orders 500 needle-e2e-41"),
        ],
        "backward order, only the api stream's needle lines"
    );
    assert!(got
        .iter()
        .all(|e| e.2["app"] == "api" && e.2["namespace"] == "prod"));

    // Forward with a logfmt-free regex filter and a limit.
    let mut p = range_params(r#"{namespace="prod"} |~ "GET .* 200""#, start, end);
    p.push(("direction", "forward".into()));
    p.push(("limit", "1".into()));
    let got = entries(&get(&hub.addr, "/loki/api/v1/query_range", &p));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, "GET /health 200");

    // Metric queries count the same lines.
    let v = get(
        &hub.addr,
        "/loki/api/v1/query",
        &[
            (
                "query",
                r#"sum by (app) (count_over_time({namespace="prod"} |= "needle-e2e-41" [10m]))"#
                    .to_string(),
            ),
            ("time", (now_ns() / SEC).to_string()),
        ],
    );
    assert_eq!(v["data"]["resultType"], "vector", "{v}");
    let mut counts: Vec<(String, String)> = v["data"]["result"]
        .as_array()
        .expect("result")
        .iter()
        .map(|r| {
            (
                r["metric"]["app"].as_str().unwrap_or_default().to_string(),
                r["value"][1].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        vec![("api".into(), "2".into()), ("db".into(), "1".into())]
    );

    let metrics = http()
        .get(format!("http://{}/metrics", hub.addr))
        .send()
        .and_then(|r| r.text())
        .expect("metrics");
    assert!(
        metrics.contains("fleetwatch_loki_lines_received_total 5"),
        "{metrics}"
    );
}

#[test]
fn acknowledged_pushes_survive_sigkill() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("hub");
    let mut hub = start_hub(&data, tmp.path(), &[]);
    let t0 = now_ns() - 60 * SEC;
    let mut sent = Vec::new();
    for i in 0..50i64 {
        let line = format!("request {i} done");
        let (status, body) = push_proto(
            &hub.addr,
            &[stream(&[("app", "crash")], &[(t0 + i * 1_000_000, &line)])],
        );
        assert_eq!(status, 204, "{body}");
        sent.push(line);
    }
    hub.proc.kill();
    let hub = start_hub(&data, tmp.path(), &[]);
    let mut p = range_params(r#"{app="crash"}"#, t0 - SEC, now_ns() + SEC);
    p.push(("direction", "forward".into()));
    let got: Vec<String> = entries(&get(&hub.addr, "/loki/api/v1/query_range", &p))
        .into_iter()
        .map(|e| e.1)
        .collect();
    assert_eq!(
        got, sent,
        "every acknowledged line survives, once, in order"
    );
}

#[test]
fn grafana_loki_datasource_requests() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let hub = start_hub(&tmp.path().join("hub"), tmp.path(), &[]);
    let now = now_ns();
    let t0 = now - 300 * SEC;
    let mut streams = Vec::new();
    for ns in ["kubevirt", "monitoring"] {
        for pod in ["a", "b"] {
            let lines: Vec<(i64, String)> = (0..30)
                .map(|i| {
                    (
                        t0 + i * 10 * SEC,
                        format!("level=info ns={ns} pod={pod} i={i}"),
                    )
                })
                .collect();
            let refs: Vec<(i64, &str)> = lines.iter().map(|(t, l)| (*t, l.as_str())).collect();
            streams.push(stream(
                &[("namespace", ns), ("pod", pod), ("job", "fleet")],
                &refs,
            ));
        }
    }
    let (status, body) = push_proto(&hub.addr, &streams);
    assert_eq!(status, 204, "{body}");
    // Grafana sends seconds-precision or nanosecond times; both work.
    let start = (t0 - 60 * SEC).to_string();
    let end = (now + 60 * SEC).to_string();

    let v = get(
        &hub.addr,
        "/loki/api/v1/labels",
        &[("start", start.clone()), ("end", end.clone())],
    );
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"], serde_json::json!(["job", "namespace", "pod"]));
    let v = get(
        &hub.addr,
        "/loki/api/v1/label/namespace/values",
        &[("start", start.clone()), ("end", end.clone())],
    );
    assert_eq!(v["data"], serde_json::json!(["kubevirt", "monitoring"]));

    let mut p = range_params(r#"{namespace="kubevirt"} |= "level=info""#, 0, 0);
    p[1].1 = start.clone();
    p[2].1 = end.clone();
    p.push(("direction", "backward".into()));
    p.push(("limit", "1000".into()));
    let v = get(&hub.addr, "/loki/api/v1/query_range", &p);
    assert_eq!(v["data"]["resultType"], "streams");
    let result = v["data"]["result"].as_array().expect("result");
    assert_eq!(result.len(), 2);
    for s in result {
        assert_eq!(s["stream"]["namespace"], "kubevirt");
        let values = s["values"].as_array().expect("values");
        assert_eq!(values.len(), 30);
        assert!(values[0][0].is_string() && values[0][1].is_string());
        let first: i64 = values[0][0].as_str().unwrap_or("0").parse().expect("ns");
        let last: i64 = values[29][0].as_str().unwrap_or("0").parse().expect("ns");
        assert!(first > last, "backward: newest first");
    }
    assert!(v["data"]["stats"]["summary"]["totalLinesProcessed"]
        .as_u64()
        .is_some());
    assert_eq!(v["data"]["stats"]["summary"]["totalEntriesReturned"], 60);

    let step_start = t0 / SEC * SEC;
    let v = get(
        &hub.addr,
        "/loki/api/v1/query_range",
        &[
            (
                "query",
                r#"sum by (namespace) (count_over_time({job="fleet"}[1m]))"#.to_string(),
            ),
            ("start", (step_start / SEC).to_string()),
            ("end", ((step_start + 600 * SEC) / SEC).to_string()),
            ("step", "60".to_string()),
        ],
    );
    assert_eq!(v["data"]["resultType"], "matrix", "{v}");
    let result = v["data"]["result"].as_array().expect("result");
    assert_eq!(result.len(), 2);
    for s in result {
        let values = s["values"].as_array().expect("values");
        assert!(values.iter().all(|p| p[0].is_number() && p[1].is_string()));
        // Steps a minute apart with a 1m range tile time: every line is
        // counted exactly once (2 pods x 30 lines).
        let total: f64 = values
            .iter()
            .map(|p| p[1].as_str().unwrap_or("0").parse::<f64>().unwrap_or(0.0))
            .sum();
        assert_eq!(total, 60.0, "{s}");
    }
    assert!(v["data"]["stats"]["summary"].is_object());

    let v = get(
        &hub.addr,
        "/loki/api/v1/series",
        &[
            ("match[]", r#"{namespace="monitoring"}"#.to_string()),
            ("start", start.clone()),
            ("end", end.clone()),
        ],
    );
    assert_eq!(v["data"].as_array().map(Vec::len), Some(2));
    let v = get(
        &hub.addr,
        "/loki/api/v1/index/stats",
        &[
            ("query", r#"{job="fleet"}"#.to_string()),
            ("start", start),
            ("end", end),
        ],
    );
    assert_eq!(v["streams"], 4);
    assert_eq!(v["entries"], 120);
    let ready = http()
        .get(format!("http://{}/ready", hub.addr))
        .send()
        .expect("ready");
    assert_eq!(ready.status().as_u16(), 200);
}

#[test]
fn bad_pushes_are_rejected_whole_with_a_reason() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("hub.yaml");
    std::fs::write(
        &config,
        "limits:\n  max_write_body_bytes: 65536\nlogs:\n  max_line_bytes: 1000\n  max_streams_per_request: 3\n",
    )
    .expect("write config");
    let hub = start_hub(
        &tmp.path().join("hub"),
        tmp.path(),
        &["--config", config.to_str().expect("utf-8")],
    );
    let t = now_ns() - 10 * SEC;
    let good = |line: &str| stream(&[("app", "ok")], &[(t, line)]);
    let (status, body) = push_proto(&hub.addr, &[good("kept line")]);
    assert_eq!(status, 204, "{body}");

    let long = "x".repeat(1001);
    let mut bomb = Vec::new();
    let mut n: u64 = 1 << 30;
    while n >= 0x80 {
        bomb.push((n as u8) | 0x80);
        n >>= 7;
    }
    bomb.push(n as u8);
    bomb.extend_from_slice(&[0; 16]);
    let cases: Vec<(&str, (u16, String), &str)> = vec![
        (
            "oversized line",
            push_proto(&hub.addr, &[good("fine"), stream(&[("app", "ok")], &[(t, &long)])]),
            "Max entry size '1000' bytes exceeded",
        ),
        (
            "invalid labels",
            post_push(
                &hub.addr,
                "application/json",
                br#"{"streams":[{"stream":{"app":"ok"},"values":[["1","fine"]]},{"stream":{"bad-name":"x"},"values":[["1","x"]]}]}"#.to_vec(),
            ),
            "invalid label name",
        ),
        ("snappy bomb", post_push(&hub.addr, "application/x-protobuf", bomb), "declared decompressed length"),
        (
            "future timestamp",
            push_proto(&hub.addr, &[stream(&[("app", "ok")], &[(now_ns() + 3_600 * SEC, "from the future")])]),
            "timestamp too new",
        ),
        (
            "too many streams",
            push_proto(
                &hub.addr,
                &[good("a"), stream(&[("app", "b")], &[(t, "b")]), stream(&[("app", "c")], &[(t, "c")]), stream(&[("app", "d")], &[(t, "d")])],
            ),
            "4 streams; limit 3",
        ),
        (
            "no labels",
            post_push(&hub.addr, "application/json", br#"{"streams":[{"stream":{},"values":[["1","x"]]}]}"#.to_vec()),
            "at least one label",
        ),
        (
            "not json",
            post_push(&hub.addr, "application/json", b"{not json".to_vec()),
            "not a valid Loki JSON push",
        ),
    ];
    for (what, (status, body), want) in cases {
        assert_eq!(status, 400, "{what}: {body}");
        assert!(
            body.contains(want),
            "{what}: {body:?} should mention {want:?}"
        );
    }
    let got = entries(&get(
        &hub.addr,
        "/loki/api/v1/query_range",
        &range_params(r#"{app=~".+"}"#, t - SEC, now_ns() + SEC),
    ));
    assert_eq!(
        got.iter().map(|e| e.1.as_str()).collect::<Vec<_>>(),
        vec!["kept line"],
        "nothing of a rejected push is stored"
    );
    let metrics = wait_for(
        "rejection counters",
        Duration::from_secs(5),
        String::new,
        || {
            http()
                .get(format!("http://{}/metrics", hub.addr))
                .send()
                .and_then(|r| r.text())
                .ok()
        },
    );
    for reason in [
        "line_too_long",
        "invalid_labels",
        "too_large",
        "too_far_in_future",
        "too_many_streams",
        "invalid_json",
    ] {
        assert!(
            metrics.contains(&format!(
                "fleetwatch_loki_push_requests_rejected_total{{reason=\"{reason}\"}}"
            )),
            "{reason}: {metrics}"
        );
    }
    let e = http()
        .get(format!("http://{}/loki/api/v1/query_range", hub.addr))
        .query(&[("query", r#"{app="ok"} |= "#)])
        .send()
        .expect("bad query");
    assert_eq!(e.status().as_u16(), 400);
    assert!(e.text().unwrap_or_default().contains("parse error"));
}
