use std::sync::atomic::Ordering;
use std::sync::Arc;

use fleetwatch_model::{Labels, Sample};

use super::*;

fn batch(series: &str, from: i64, n: i64) -> Vec<QueuedSample> {
    let labels = Arc::new(Labels::from_pairs([("__name__", "m"), ("s", series)]));
    (from..from + n)
        .map(|t| QueuedSample {
            labels: Arc::clone(&labels),
            sample: Sample::new(t, t as f64 * 0.5),
        })
        .collect()
}

fn ts(samples: &[QueuedSample]) -> Vec<i64> {
    samples.iter().map(|s| s.sample.timestamp_ms).collect()
}

fn open(dir: &Path, max: u64) -> (DiskQueue, Arc<EndpointMetrics>) {
    let m = Arc::new(EndpointMetrics::default());
    let q = DiskQueue::open(
        dir,
        DiskOptions {
            max_bytes: max,
            segment_bytes: 1024,
        },
        Arc::clone(&m),
    )
    .expect("open queue");
    (q, m)
}

fn read_all(q: &DiskQueue) -> Vec<Record> {
    let mut out = Vec::new();
    for _ in 0..10_000 {
        match q.read_blocking().expect("read") {
            Some(r) => out.push(r),
            None => return out,
        }
    }
    panic!("queue never ran dry");
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn records_survive_reopen_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (q, m) = open(dir.path(), 1 << 20);
        q.append_blocking(&batch("a", 0, 3)).expect("append");
        q.append_blocking(&batch("b", 10, 2)).expect("append");
        assert_eq!(q.unread_samples(), 5);
        assert!(m.queue_bytes.load(Ordering::Relaxed) > 0);
    }
    let (q, m) = open(dir.path(), 1 << 20);
    assert_eq!(m.samples_pending.load(Ordering::Relaxed), 5, "recovered");
    let got = read_all(&q);
    assert_eq!(got.len(), 2);
    assert_eq!(ts(&got[0].samples), [0, 1, 2]);
    assert_eq!(ts(&got[1].samples), [10, 11]);
    assert_eq!(got[1].samples[0].sample.value, 5.0);
    assert_eq!(got[1].samples[0].labels.get("s"), Some("b"));
    assert!(got[0].end < got[1].end);
}

#[test]
fn torn_tail_is_cut_and_the_rest_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (q, _) = open(dir.path(), 1 << 20);
        q.append_blocking(&batch("a", 0, 2)).expect("append");
        q.append_blocking(&batch("a", 2, 2)).expect("append");
    }
    let seg = segment_files(dir.path()).pop().expect("a segment");
    let full = fs::read(&seg).expect("read");
    // A crash in the middle of the second record: half of it on disk.
    let first_len = {
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&full[..HEADER_LEN]);
        HEADER_LEN + codec::parse_header(&h).0 as usize
    };
    let torn = first_len + (full.len() - first_len) / 2;
    fs::write(&seg, &full[..torn]).expect("tear");
    // And a flipped byte in a second copy would be caught by the CRC.
    let (q, m) = open(dir.path(), 1 << 20);
    assert_eq!(
        fs::metadata(&seg).expect("stat").len(),
        first_len as u64,
        "the partial record is cut off"
    );
    assert_eq!(m.samples_pending.load(Ordering::Relaxed), 2);
    let got = read_all(&q);
    assert_eq!(got.len(), 1);
    assert_eq!(ts(&got[0].samples), [0, 1]);
    // Appending after recovery works and is read next.
    q.append_blocking(&batch("a", 4, 1)).expect("append");
    assert_eq!(ts(&read_all(&q)[0].samples), [4]);
}

#[test]
fn corrupt_record_fails_its_checksum() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (q, _) = open(dir.path(), 1 << 20);
        q.append_blocking(&batch("a", 0, 2)).expect("append");
        q.append_blocking(&batch("a", 2, 2)).expect("append");
    }
    let seg = segment_files(dir.path()).pop().expect("a segment");
    let mut bytes = fs::read(&seg).expect("read");
    let last = bytes.len() - 3;
    bytes[last] ^= 0xff;
    fs::write(&seg, &bytes).expect("corrupt");
    let (q, _) = open(dir.path(), 1 << 20);
    let got = read_all(&q);
    assert_eq!(got.len(), 1, "the damaged record is not replayed");
    assert_eq!(ts(&got[0].samples), [0, 1]);
}

#[test]
fn budget_drops_the_oldest_segments_and_counts_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (q, m) = open(dir.path(), 4096);
    // Each record is ~250 bytes; 1 KiB segments; 4 KiB budget.
    for i in 0..40 {
        q.append_blocking(&batch("a", i * 10, 10)).expect("append");
    }
    assert!(q.bytes() <= 4096, "within budget: {}", q.bytes());
    let dropped = m.queue_dropped_disk_budget.load(Ordering::Relaxed);
    assert!(dropped > 0, "something was dropped");
    let got: Vec<i64> = read_all(&q).iter().flat_map(|r| ts(&r.samples)).collect();
    assert_eq!(got.len() as u64 + dropped, 400, "dropped + kept = written");
    // What is kept is the newest data, contiguous up to the end.
    assert_eq!(got.last(), Some(&399));
    assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "{got:?}");
    assert_eq!(got[0] as u64, dropped, "the oldest went first");
}

#[test]
fn restart_resumes_at_the_persisted_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (q, _) = open(dir.path(), 1 << 20);
        for i in 0..30 {
            q.append_blocking(&batch("a", i * 10, 10)).expect("append");
        }
        let segs_before = segment_files(dir.path()).len();
        assert!(segs_before > 2, "several segments: {segs_before}");
        let got = read_all(&q);
        // The first 12 records are acknowledged; the rest are in flight.
        q.commit_blocking(got[11].end).expect("commit");
        assert!(
            segment_files(dir.path()).len() < segs_before,
            "acknowledged segments are deleted"
        );
        // A stale commit is ignored.
        q.commit_blocking(got[3].end).expect("commit");
        assert_eq!(q.committed(), got[11].end);
    }
    let (q, m) = open(dir.path(), 1 << 20);
    assert_eq!(m.samples_pending.load(Ordering::Relaxed), 180);
    let got: Vec<i64> = read_all(&q).iter().flat_map(|r| ts(&r.samples)).collect();
    assert_eq!(
        got,
        (120..300).collect::<Vec<_>>(),
        "nothing twice, nothing lost"
    );
}

#[test]
fn reader_follows_appends_to_the_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (q, _) = open(dir.path(), 1 << 20);
    assert!(q.read_blocking().expect("read").is_none());
    q.append_blocking(&batch("a", 0, 1)).expect("append");
    assert_eq!(ts(&read_all(&q)[0].samples), [0]);
    q.append_blocking(&batch("a", 1, 1)).expect("append");
    q.append_blocking(&batch("a", 2, 1)).expect("append");
    let got: Vec<i64> = read_all(&q).iter().flat_map(|r| ts(&r.samples)).collect();
    assert_eq!(got, [1, 2]);
}
