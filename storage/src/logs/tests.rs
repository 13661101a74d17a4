//! Log store tests: durability across reopen, visibility before and after
//! commits, filters, ordering, out-of-order window and retention.

use super::*;
use fleetwatch_model::loki::{PushEntry, PushStream};
use fleetwatch_model::{MatchOp, Matcher};

const H: i64 = 3_600 * 1_000_000_000;
const BASE: i64 = 1_763_800_000 * 1_000_000_000;

fn stream(app: &str, lines: &[(i64, &str)]) -> PushStream {
    PushStream {
        labels: Labels::from_pairs([("app", app), ("namespace", "prod")]),
        entries: lines
            .iter()
            .map(|(ts, l)| PushEntry {
                timestamp_ns: *ts,
                line: l.to_string(),
                metadata: vec![],
            })
            .collect(),
    }
}

fn opts(dir: &std::path::Path) -> LogStoreOptions {
    let mut o = LogStoreOptions::new(dir);
    o.commit_interval = Duration::from_secs(3600);
    o.writer_memory_bytes = 20 << 20;
    o
}

fn read(store: &LogStore, m: &[Matcher], contains: &[&str], dir: Direction) -> Vec<(i64, String)> {
    let contains: Vec<String> = contains.iter().map(|s| s.to_string()).collect();
    let mut out = Vec::new();
    store
        .select(
            &Selection {
                matchers: m,
                contains: &contains,
                start_ns: i64::MIN,
                end_ns: i64::MAX,
            },
            dir,
            |_, ts, line, _| {
                out.push((ts, line.to_string()));
                true
            },
        )
        .unwrap();
    out
}

#[test]
fn visible_before_and_after_commit_and_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let sel = [Matcher::equal("app", "api")];
    {
        let store = LogStore::open(opts(dir.path())).unwrap();
        store
            .append(vec![
                stream(
                    "api",
                    &[(BASE, "GET /a 200"), (BASE + 2, "GET /b needle-7f3a 500")],
                ),
                stream("db", &[(BASE + 1, "slow query")]),
            ])
            .unwrap();
        assert_eq!(read(&store, &sel, &[], Direction::Forward).len(), 2);
        store.commit().unwrap();
        store
            .append(vec![stream("api", &[(BASE + H, "next hour needle-7f3a")])])
            .unwrap();
        let both = read(&store, &sel, &["needle-7f3a"], Direction::Backward);
        assert_eq!(
            both,
            vec![
                (BASE + H, "next hour needle-7f3a".to_string()),
                (BASE + 2, "GET /b needle-7f3a 500".to_string())
            ]
        );
        // Dropped without close: the second push is only in the WAL.
        std::mem::forget(store);
    }
    let store = LogStore::open(opts(dir.path())).unwrap();
    assert!(store.stats().wal_replayed_records.load(Ordering::Relaxed) >= 1);
    let all = read(&store, &sel, &[], Direction::Forward);
    assert_eq!(all.len(), 3, "{all:?}");
    store.commit().unwrap();
    assert_eq!(read(&store, &sel, &[], Direction::Forward), all);
    assert_eq!(store.num_partitions(), 2);
    let re = [Matcher::new(MatchOp::RegexMatch, "app", "a.*|d.*").unwrap()];
    assert_eq!(read(&store, &re, &[], Direction::Forward).len(), 4);
    assert_eq!(read(&store, &re, &["query"], Direction::Forward).len(), 1);
    assert_eq!(read(&store, &re, &["uer"], Direction::Forward).len(), 1);
    assert_eq!(read(&store, &re, &["Query"], Direction::Forward).len(), 0);
    assert_eq!(
        store.label_values("app", &[], i64::MIN, i64::MAX),
        vec!["api", "db"]
    );
    assert_eq!(
        store.label_names(&sel, i64::MIN, i64::MAX),
        vec!["app", "namespace"]
    );
    let mut n = 0;
    let mut bytes = 0;
    store
        .select_meta(
            &Selection {
                matchers: &sel,
                contains: &[],
                start_ns: BASE,
                end_ns: BASE + H,
            },
            |_, _, len| {
                n += 1;
                bytes += len;
            },
        )
        .unwrap();
    assert_eq!((n, bytes), (2, 10 + 22));
}

#[test]
fn limit_stops_early_and_order_is_kept_across_sources() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(opts(dir.path())).unwrap();
    let lines: Vec<(i64, String)> = (0..2000)
        .map(|i| (BASE + i * 1000, format!("line {i}")))
        .collect();
    let refs: Vec<(i64, &str)> = lines.iter().map(|(t, l)| (*t, l.as_str())).collect();
    store.append(vec![stream("api", &refs[..1000])]).unwrap();
    store.commit().unwrap();
    store.append(vec![stream("api", &refs[1000..])]).unwrap();
    let mut got = Vec::new();
    store
        .select(
            &Selection {
                matchers: &[Matcher::equal("app", "api")],
                contains: &[],
                start_ns: BASE,
                end_ns: BASE + 3_000_000,
            },
            Direction::Backward,
            |_, ts, _, _| {
                got.push(ts);
                got.len() < 5
            },
        )
        .unwrap();
    assert_eq!(
        got,
        (1995..2000)
            .rev()
            .map(|i| BASE + i * 1000)
            .collect::<Vec<_>>()
    );
}

#[test]
fn out_of_order_window_and_long_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.out_of_order_window_ns = 1_000;
    let store = LogStore::open(o).unwrap();
    store
        .append(vec![stream("a", &[(BASE + 5_000, "x")])])
        .unwrap();
    store
        .append(vec![stream("a", &[(BASE + 4_500, "late but ok")])])
        .unwrap();
    let e = store
        .append(vec![stream("a", &[(BASE + 3_000, "too late")])])
        .unwrap_err();
    assert!(
        e.is_bad_data() && e.to_string().contains("entry too far behind"),
        "{e}"
    );
    let long = format!("blob {}end tail", "z".repeat(400));
    store.append(vec![stream("b", &[(BASE, &long)])]).unwrap();
    store.commit().unwrap();
    assert_eq!(
        read(
            &store,
            &[Matcher::equal("app", "b")],
            &["zzend"],
            Direction::Forward
        )
        .len(),
        1
    );
    assert_eq!(
        read(
            &store,
            &[Matcher::equal("app", "a")],
            &["late"],
            Direction::Forward
        )
        .len(),
        1
    );
}

#[test]
fn retention_drops_whole_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.retention_ns = Some(2 * H);
    let store = LogStore::open(o).unwrap();
    store
        .append(vec![stream("a", &[(BASE, "old"), (BASE + 5 * H, "new")])])
        .unwrap();
    store.commit().unwrap();
    assert_eq!(store.num_partitions(), 2);
    let dropped = store.apply_retention(BASE + 5 * H);
    assert_eq!(dropped.len(), 1);
    assert_eq!(
        read(
            &store,
            &[Matcher::equal("app", "a")],
            &[],
            Direction::Forward
        ),
        vec![(BASE + 5 * H, "new".to_string())]
    );
}
