//! Crash safety under load: the hub is killed with SIGKILL at random
//! moments while two writers send and a third thread cuts blocks; after
//! every restart every acknowledged sample is there, bit for bit.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleetwatch_model::remote_write::{encode_write_request, SeriesSamples};
use fleetwatch_model::{Labels, Sample};

use super::support::*;

const KILLS: usize = 10;
const SERIES_PER_REQUEST: usize = 20;

/// (writer, series index) -> acknowledged samples.
type Acked = BTreeMap<(usize, usize), Vec<(i64, u64)>>;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A finite float with arbitrary bits.
    fn value(&mut self) -> f64 {
        loop {
            let v = f64::from_bits(self.next());
            if v.is_finite() {
                return v;
            }
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

#[test]
fn acknowledged_samples_survive_repeated_sigkill() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("hub");
    let base = now_ms() - 30 * 60_000;
    let acked: Arc<Mutex<Acked>> = Arc::new(Mutex::new(BTreeMap::new()));
    let mut next_ts = [base, base];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);

    for round in 0..KILLS {
        let mut hub = start_hub(&data, tmp.path(), &[]);
        verify(&hub.addr, &acked.lock().expect("lock"), round);

        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (w, ts) in next_ts.iter().enumerate() {
            let (addr, stop, acked) = (hub.addr.clone(), Arc::clone(&stop), Arc::clone(&acked));
            let mut ts = *ts;
            let mut rng = Rng(rng.next() | 1);
            threads.push(std::thread::spawn(move || {
                let client = http();
                // Bounded: at most 2,000 requests per round.
                for _ in 0..2000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    ts += 1000;
                    let series: Vec<SeriesSamples> = (0..SERIES_PER_REQUEST)
                        .map(|i| SeriesSamples {
                            labels: Labels::from_pairs([
                                ("__name__", "crash_test".to_string()),
                                ("writer", w.to_string()),
                                ("series", i.to_string()),
                            ]),
                            samples: vec![Sample::new(ts, rng.value())],
                        })
                        .collect();
                    let resp = client
                        .post(format!("http://{addr}/api/v1/write"))
                        .header("Content-Type", "application/x-protobuf")
                        .header("Content-Encoding", "snappy")
                        .body(encode_write_request(&series))
                        .send();
                    match resp {
                        Ok(r) if r.status().as_u16() == 204 => {
                            let mut a = acked.lock().expect("lock");
                            for (i, s) in series.iter().enumerate() {
                                let x = s.samples[0];
                                a.entry((w, i))
                                    .or_default()
                                    .push((x.timestamp_ms, x.value.to_bits()));
                            }
                        }
                        Ok(r) => panic!("unexpected status {} from the hub", r.status()),
                        Err(_) => break, // the hub is gone
                    }
                }
                ts
            }));
        }
        // Cut blocks now and then so kills also land in flushes and checkpoints.
        let flusher = {
            let (addr, stop) = (hub.addr.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let client = http();
                for _ in 0..20 {
                    std::thread::sleep(Duration::from_millis(150));
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let _ = client
                        .post(format!("http://{addr}/api/v1/admin/tsdb/flush"))
                        .send();
                }
            })
        };
        std::thread::sleep(Duration::from_millis(300 + rng.next() % 900));
        hub.proc.kill();
        stop.store(true, Ordering::Relaxed);
        for (w, t) in threads.into_iter().enumerate() {
            next_ts[w] = t.join().expect("writer thread");
        }
        let _ = flusher.join();
    }
    let hub = start_hub(&data, tmp.path(), &[]);
    let total: usize = acked.lock().expect("lock").values().map(Vec::len).sum();
    assert!(
        total > KILLS * SERIES_PER_REQUEST,
        "too few acknowledged samples: {total}"
    );
    verify(&hub.addr, &acked.lock().expect("lock"), KILLS);
}

/// Every acknowledged sample is stored with its exact bits.
fn verify(addr: &str, acked: &Acked, round: usize) {
    if acked.is_empty() {
        return;
    }
    let times = || acked.values().flat_map(|v| v.iter().map(|x| x.0));
    let end = times().max().unwrap_or(0);
    let start = times().min().unwrap_or(0);
    // The range covers every acknowledged sample: on an idle machine the
    // writers send up to 2,000 requests (one second apart) per round, so
    // the data can span more than two hours.
    let range_s = (end - start) / 1000 + 60;
    let resp: serde_json::Value = http()
        .post(format!("http://{addr}/api/v1/query"))
        .form(&[
            ("query", format!("crash_test[{range_s}s]")),
            ("time", format!("{}", end as f64 / 1000.0)),
        ])
        .send()
        .and_then(|r| r.json())
        .expect("query");
    let result = resp["data"]["result"]
        .as_array()
        .unwrap_or_else(|| panic!("bad answer {resp}"));
    let mut stored: BTreeMap<(usize, usize), BTreeMap<i64, u64>> = BTreeMap::new();
    for s in result {
        let m = metric(s);
        let key = (
            m["writer"].parse().expect("writer"),
            m["series"].parse().expect("series"),
        );
        for p in s["values"].as_array().expect("values") {
            let ts = (p[0].as_f64().expect("ts") * 1000.0).round() as i64;
            let v = p[1].as_str().and_then(parse_float).expect("value");
            stored.entry(key).or_default().insert(ts, v.to_bits());
        }
    }
    for (key, samples) in acked {
        let got = stored.get(key);
        for (ts, bits) in samples {
            let found = got.and_then(|g| g.get(ts));
            assert_eq!(
                found,
                Some(bits),
                "round {round}: acknowledged sample {key:?} at {ts} lost or changed"
            );
        }
    }
}
