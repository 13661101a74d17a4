//! Damaged data directories: a torn last WAL record and a truncated block
//! file. The hub starts, reports what it dropped in its log and
//! `/metrics`, and serves the rest.

use std::path::Path;

use fleetwatch_model::remote_write::{encode_write_request, SeriesSamples};
use fleetwatch_model::{Labels, Sample};

use super::support::*;

fn write(addr: &str, name: &str, ts: i64, v: f64) {
    let body = encode_write_request(&[SeriesSamples {
        labels: Labels::from_pairs([("__name__", name)]),
        samples: vec![Sample::new(ts, v)],
    }]);
    let status = http()
        .post(format!("http://{addr}/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .body(body)
        .send()
        .expect("write")
        .status();
    assert_eq!(status.as_u16(), 204);
}

fn flush(addr: &str) -> String {
    let v: serde_json::Value = http()
        .post(format!("http://{addr}/api/v1/admin/tsdb/flush"))
        .send()
        .and_then(|r| r.json())
        .expect("flush");
    v["data"]["blocksCut"][0]["id"]
        .as_str()
        .expect("a block was cut")
        .to_string()
}

fn last_wal_segment(dir: &Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(dir.join("wal"))
        .expect("wal dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    segs.sort();
    segs.pop().expect("a wal segment")
}

#[test]
fn torn_wal_and_truncated_block_are_reported_and_the_rest_served() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("hub");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let mut hub = start_hub(&data, tmp.path(), &[]);
    write(&hub.addr, "in_good_block", now - 60_000, 1.0);
    let _good = flush(&hub.addr);
    write(&hub.addr, "in_bad_block", now - 50_000, 2.0);
    let bad = flush(&hub.addr);
    write(&hub.addr, "in_wal", now - 40_000, 3.0);
    write(&hub.addr, "torn_away", now - 30_000, 4.0);
    hub.proc.kill();

    // Tear the last WAL record and truncate the second block's samples.
    let seg = last_wal_segment(&data);
    let len = std::fs::metadata(&seg).expect("segment").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .expect("open")
        .set_len(len - 5)
        .expect("tear");
    let samples = data.join("blocks").join(&bad).join("samples.parquet");
    let blen = std::fs::metadata(&samples).expect("samples file").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&samples)
        .expect("open")
        .set_len(blen / 2)
        .expect("truncate");

    let hub = start_hub(&data, tmp.path(), &[]);
    assert_eq!(query(&hub.addr, "in_good_block").len(), 1);
    assert_eq!(query(&hub.addr, "in_wal").len(), 1);
    assert!(query(&hub.addr, "in_bad_block").is_empty());
    assert!(query(&hub.addr, "torn_away").is_empty());

    let metrics = http()
        .get(format!("http://{}/metrics", hub.addr))
        .send()
        .and_then(|r| r.text())
        .expect("metrics");
    let gauge = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{name} missing from /metrics"))
    };
    assert!(gauge("fleetwatch_wal_truncated_bytes ") > 0.0);
    assert_eq!(gauge("fleetwatch_wal_corrupt_segments "), 1.0);
    assert_eq!(gauge("fleetwatch_blocks_corrupt_skipped "), 1.0);
    let log = hub.proc.log();
    assert!(log.contains("torn or corrupt tail"), "{log}");
    assert!(
        log.contains(&bad),
        "the log should name the skipped block {bad}:\n{log}"
    );
}

#[test]
fn out_of_order_samples_inside_the_window_are_stored_in_order() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let hub = start_hub(&tmp.path().join("hub"), tmp.path(), &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    write(&hub.addr, "ooo", now, 3.0);
    write(&hub.addr, "ooo", now - 5 * 60_000, 1.0);
    write(&hub.addr, "ooo", now - 2 * 60_000, 2.0);
    // Beyond the default 10-minute window: refused with a reason.
    let body = encode_write_request(&[SeriesSamples {
        labels: Labels::from_pairs([("__name__", "ooo")]),
        samples: vec![Sample::new(now - 20 * 60_000, 0.5)],
    }]);
    let resp = http()
        .post(format!("http://{}/api/v1/write", hub.addr))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .body(body)
        .send()
        .expect("write");
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.text().unwrap_or_default().contains("too old"));

    let resp: serde_json::Value = http()
        .post(format!("http://{}/api/v1/query", hub.addr))
        .form(&[
            ("query", "ooo[30m]".to_string()),
            ("time", format!("{}", now as f64 / 1000.0)),
        ])
        .send()
        .and_then(|r| r.json())
        .expect("query");
    let values: Vec<String> = resp["data"]["result"][0]["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|p| p[1].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(values, vec!["1", "2", "3"]);
}
