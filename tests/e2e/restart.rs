//! Durability: a write acknowledged by the hub survives SIGKILL.

use fleetwatch_model::remote_write::{encode_write_request, SeriesSamples};
use fleetwatch_model::{Labels, Sample};

use super::support::*;

#[test]
fn acknowledged_write_survives_sigkill() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("hub");
    let mut hub = start_hub(&data, tmp.path(), &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    // Values whose bits a lossy path would change.
    let values = [0.1 + 0.2, 1e-300, -0.0, 123_456_789.123_456_78];
    let series: Vec<SeriesSamples> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| SeriesSamples {
            labels: Labels::from_pairs([("__name__", "durable_test"), ("idx", &i.to_string())]),
            samples: vec![Sample::new(now - 1000, v * 2.0), Sample::new(now, v)],
        })
        .collect();
    let resp = http()
        .post(format!("http://{}/api/v1/write", hub.addr))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .body(encode_write_request(&series))
        .send()
        .expect("write");
    assert_eq!(resp.status().as_u16(), 204, "write must be acknowledged");

    // SIGKILL right after the acknowledgement: no graceful flush happens.
    hub.proc.kill();
    let hub = start_hub(&data, tmp.path(), &[]);
    let got = query(&hub.addr, "durable_test");
    assert_eq!(got.len(), values.len());
    for s in &got {
        let idx: usize = metric(s)["idx"].parse().expect("idx");
        assert_eq!(value(s).to_bits(), values[idx].to_bits(), "series {idx}");
    }
    // The older sample is there too, via a range selector.
    let r = query(&hub.addr, "count_over_time(durable_test[1m])");
    assert!(r.iter().all(|s| value(s) == 2.0), "{r:?}");
}
