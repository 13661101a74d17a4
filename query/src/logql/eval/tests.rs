//! Evaluation tests over a real log store in a scratch directory.

use super::*;
use fleetwatch_model::loki::{PushEntry, PushStream};
use fleetwatch_model::Labels;
use fleetwatch_storage::logs::LogStoreOptions;

const S: i64 = 1_000_000_000;
const BASE: i64 = 1_763_800_000 * S;

/// A scratch directory removed on drop (the crate has no tempfile).
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "fleetwatch-logql-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        Self(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn store(dir: &Scratch) -> LogStore {
    let mut o = LogStoreOptions::new(&dir.0);
    o.writer_memory_bytes = 20 << 20;
    let store = LogStore::open(o).unwrap();
    let mk = |ns: &str, pod: &str, lines: Vec<(i64, String)>| PushStream {
        labels: Labels::from_pairs([("namespace", ns), ("pod", pod)]),
        entries: lines
            .into_iter()
            .map(|(t, l)| PushEntry {
                timestamp_ns: t,
                line: l,
                metadata: vec![],
            })
            .collect(),
    };
    store
        .append(vec![
            mk(
                "prod",
                "api-1",
                (0..10)
                    .map(|i| {
                        (
                            BASE + i * S,
                            format!(
                                "level={} status={} msg=\"req {i}\"",
                                if i % 2 == 0 { "info" } else { "error" },
                                200 + i * 50
                            ),
                        )
                    })
                    .collect(),
            ),
            mk(
                "dev",
                "web-1",
                (0..4)
                    .map(|i| (BASE + i * S, format!("{{\"level\":\"warn\",\"n\":{i}}}")))
                    .collect(),
            ),
        ])
        .unwrap();
    // Half committed into the index, the rest stays in the head.
    store.commit().unwrap();
    store
        .append(vec![mk(
            "prod",
            "api-2",
            vec![(BASE + 20 * S, "level=error status=503 msg=late".into())],
        )])
        .unwrap();
    store
}

fn params(limit: usize, direction: Direction) -> LogqlParams {
    LogqlParams {
        start_ns: BASE,
        end_ns: BASE + 60 * S,
        step_ns: 10 * S,
        direction,
        limit,
    }
}

fn lines(out: &QueryOutput) -> Vec<String> {
    let QueryOutput::Streams(s, ..) = out else {
        panic!("streams expected")
    };
    let mut all: Vec<(i64, String)> = s.iter().flat_map(|s| s.entries.clone()).collect();
    all.sort();
    all.into_iter().map(|e| e.1).collect()
}

#[test]
fn log_queries() {
    let dir = Scratch::new("log");
    let st = store(&dir);
    let out = query_range(
        &st,
        r#"{namespace="prod"} |= "error" | logfmt | status >= 400"#,
        &params(100, Direction::Backward),
    )
    .unwrap();
    assert_eq!(
        lines(&out),
        vec![
            "level=error status=450 msg=\"req 5\"",
            "level=error status=550 msg=\"req 7\"",
            "level=error status=650 msg=\"req 9\"",
            "level=error status=503 msg=late",
        ]
    );
    let QueryOutput::Streams(streams, ..) = &out else {
        panic!()
    };
    // logfmt labels become part of the stream identity.
    assert!(streams.iter().all(|s| s.labels["level"] == "error"));
    let out = query_range(
        &st,
        r#"{namespace="prod"}"#,
        &params(3, Direction::Backward),
    )
    .unwrap();
    let QueryOutput::Streams(streams, ..) = &out else {
        panic!()
    };
    let mut ts: Vec<i64> = streams
        .iter()
        .flat_map(|s| s.entries.iter().map(|e| e.0))
        .collect();
    ts.sort();
    assert_eq!(ts, vec![BASE + 8 * S, BASE + 9 * S, BASE + 20 * S]);
    let out = query_range(
        &st,
        r#"{namespace="dev"} | json | n > 1 | line_format "n={{.n}}""#,
        &params(100, Direction::Forward),
    )
    .unwrap();
    assert_eq!(lines(&out), vec!["n=2", "n=3"]);
    let e = query_instant(&st, r#"{namespace="dev"}"#, BASE).unwrap_err();
    assert!(e.to_string().contains("not supported as an instant query"));
}

#[test]
fn metric_queries() {
    let dir = Scratch::new("metric");
    let st = store(&dir);
    let out = query_range(
        &st,
        r#"sum by (namespace) (count_over_time({namespace=~".+"}[1m]))"#,
        &params(0, Direction::Backward),
    )
    .unwrap();
    let QueryOutput::Matrix(series, ..) = &out else {
        panic!()
    };
    assert_eq!(series.len(), 2);
    let dev = series
        .iter()
        .find(|s| s.labels["namespace"] == "dev")
        .unwrap();
    assert_eq!(dev.points[0], (BASE, 1.0));
    assert_eq!(dev.points[1], (BASE + 10 * S, 4.0));
    let prod = series
        .iter()
        .find(|s| s.labels["namespace"] == "prod")
        .unwrap();
    assert_eq!(prod.points[2], (BASE + 20 * S, 11.0));
    let out = query_instant(
        &st,
        r#"count_over_time({namespace="prod"} |= "error" | logfmt | level="error" [1m])"#,
        BASE + 30 * S,
    )
    .unwrap();
    let QueryOutput::Vector(v, ..) = &out else {
        panic!()
    };
    assert_eq!(v.iter().map(|s| s.value).sum::<f64>(), 6.0);
    let out = query_instant(
        &st,
        r#"sum(rate({namespace="prod"} |= "error"[10s]))"#,
        BASE + 10 * S,
    )
    .unwrap();
    let QueryOutput::Vector(v, ..) = &out else {
        panic!()
    };
    assert_eq!(v[0].value, 0.5);
    let out = query_instant(
        &st,
        r#"topk(1, sum by (pod) (bytes_over_time({namespace="prod"}[1m])))"#,
        BASE + 30 * S,
    )
    .unwrap();
    let QueryOutput::Vector(v, ..) = &out else {
        panic!()
    };
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].labels["pod"], "api-1");
    let e = query_range(
        &st,
        r#"count_over_time({a="b"}[1m])"#,
        &LogqlParams {
            step_ns: 1,
            ..params(0, Direction::Forward)
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("11,000 points"));
}
