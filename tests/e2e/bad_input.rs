//! Bad remote-write input: each request gets a 400 naming the problem,
//! nothing of it is stored, and the hub keeps serving.

use fleetwatch_model::prompb;
use fleetwatch_model::remote_write::{encode_write_request, SeriesSamples};
use fleetwatch_model::{Labels, Sample};
use prost::Message;

use super::support::*;

const LIMIT: usize = 64 * 1024;

fn post(hub: &str, body: Vec<u8>) -> (u16, String) {
    let resp = http()
        .post(format!("http://{hub}/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body)
        .send()
        .expect("post write");
    let status = resp.status().as_u16();
    (status, resp.text().unwrap_or_default())
}

fn series(pairs: &[(&str, &str)], v: f64) -> SeriesSamples {
    SeriesSamples {
        labels: Labels::from_pairs(pairs.iter().copied()),
        samples: vec![Sample::new(now_ms(), v)],
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

#[test]
fn bad_remote_write_bodies_are_rejected_whole() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("hub.yaml");
    std::fs::write(
        &config,
        format!("limits:\n  max_write_body_bytes: {LIMIT}\n"),
    )
    .expect("write config");
    let hub = start_hub(
        &tmp.path().join("hub"),
        tmp.path(),
        &["--config", config.to_str().expect("utf-8")],
    );
    let good = |name: &str| series(&[("__name__", name), ("job", "t")], 1.0);

    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();
    cases.push((
        "not snappy",
        b"\xff\xff\xff\xff\xff\xff\xff\xffthis is not snappy".to_vec(),
        "snappy",
    ));
    cases.push((
        "snappy, not protobuf",
        fleetwatch_model::snappy::compress(b"\x0a\xff\xff\xff\xff\x0fgarbage"),
        "protobuf",
    ));
    // A body above the limit (incompressible bytes, so the body itself is large).
    let mut noise = Vec::with_capacity(LIMIT * 2);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..LIMIT * 2 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.push(x as u8);
    }
    cases.push(("body over the limit", noise, "exceeds the limit"));
    // A tiny body declaring a decompressed length of 1,000,000 bytes.
    let mut declared = vec![0xc0, 0x84, 0x3d]; // varint 1_000_000
    declared.extend_from_slice(b"\x00abc");
    cases.push((
        "declared length over the limit",
        declared,
        "declared decompressed length",
    ));
    cases.push((
        "invalid label name",
        encode_write_request(&[
            good("bad_input_should_not_exist_1"),
            series(&[("__name__", "x"), ("1bad-name", "v")], 1.0),
        ]),
        "invalid label name \"1bad-name\"",
    ));
    cases.push((
        "sample with no name",
        encode_write_request(&[
            good("bad_input_should_not_exist_2"),
            series(&[("job", "t")], 1.0),
        ]),
        "no metric name",
    ));
    // An invalid metric name.
    cases.push((
        "invalid metric name",
        encode_write_request(&[series(&[("__name__", "bad-metric")], 1.0)]),
        "invalid metric name",
    ));

    for (what, body, needle) in cases {
        let (status, text) = post(&hub.addr, body);
        assert_eq!(status, 400, "{what}: status {status}, body {text:?}");
        assert!(
            text.contains(needle),
            "{what}: message {text:?} should mention {needle:?}"
        );
    }

    // A conflicting duplicate at the same timestamp is refused with a reason.
    let ts = now_ms();
    let first = SeriesSamples {
        labels: Labels::from_pairs([("__name__", "dup_test")]),
        samples: vec![Sample::new(ts, 1.0)],
    };
    assert_eq!(
        post(
            &hub.addr,
            encode_write_request(std::slice::from_ref(&first))
        )
        .0,
        204
    );
    assert_eq!(
        post(&hub.addr, encode_write_request(&[first])).0,
        204,
        "an identical duplicate is accepted and ignored"
    );
    let conflict = SeriesSamples {
        labels: Labels::from_pairs([("__name__", "dup_test")]),
        samples: vec![Sample::new(ts, 2.0)],
    };
    let (status, text) = post(&hub.addr, encode_write_request(&[conflict]));
    assert_eq!(status, 400);
    assert!(text.contains("duplicate sample"), "{text}");

    // Unknown content type: 415.
    let resp = http()
        .post(format!("http://{}/api/v1/write", hub.addr))
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .expect("post");
    assert_eq!(resp.status().as_u16(), 415);

    // Nothing from the rejected requests was stored; the hub still serves.
    for name in [
        "bad_input_should_not_exist_1",
        "bad_input_should_not_exist_2",
        "x",
    ] {
        assert!(
            query(&hub.addr, name).is_empty(),
            "{name} must not be stored"
        );
    }
    let ok = post(&hub.addr, encode_write_request(&[good("after_bad_input")]));
    assert_eq!(ok.0, 204);
    assert_eq!(query(&hub.addr, "after_bad_input").len(), 1);
    let dup = query(&hub.addr, "dup_test");
    assert_eq!(value(&dup[0]), 1.0);

    // The rejections are counted by reason in the hub's own metrics.
    let metrics = http()
        .get(format!("http://{}/metrics", hub.addr))
        .send()
        .and_then(|r| r.text())
        .expect("metrics");
    for reason in [
        "invalid_snappy",
        "invalid_protobuf",
        "too_large",
        "invalid_labels",
        "missing_metric_name",
        "duplicate_timestamp",
    ] {
        assert!(
            metrics.contains(&format!(
                "fleetwatch_remote_write_requests_rejected_total{{reason=\"{reason}\"}}"
            )),
            "reason {reason} not counted:\n{metrics}"
        );
    }

    // Bad query parameters get Prometheus's error envelope.
    let resp = http()
        .get(format!("http://{}/api/v1/query", hub.addr))
        .query(&[("query", "sum(")])
        .send()
        .expect("query");
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().expect("json");
    assert_eq!(body["status"], "error");
    assert_eq!(body["errorType"], "bad_data");
    let _ = prompb::WriteRequest::default().encode_to_vec();
}
