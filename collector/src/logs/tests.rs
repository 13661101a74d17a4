//! The log pipeline without a hub: files in a temporary directory, the
//! tailer polled by hand, the queue read back.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::*;

const POD: &str = "vms_virt-launcher-a-x1_u-1";

struct Env {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    metrics: Arc<LogMetrics>,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("pods");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&root).expect("mkdir");
    Env {
        root,
        data,
        _tmp: tmp,
        metrics: Arc::new(LogMetrics::default()),
    }
}

impl Env {
    fn config(&self, extra: &str) -> LogsConfig {
        let yaml = format!(
            "url: http://127.0.0.1:1/loki/api/v1/push\npaths: ['{}/*/*/*.log']\nlabels: {{job: pods}}\nmax_line_bytes: 64\nbatch_size: 1MB\n{extra}",
            self.root.display()
        );
        let cfg: LogsConfig = serde_yaml::from_str(&yaml).expect("config");
        cfg.validate().expect("valid");
        cfg
    }

    fn open(&self, cfg: &LogsConfig) -> LogShipper {
        let external = BTreeMap::from([("cluster".to_string(), "c1".to_string())]);
        LogShipper::open(
            cfg,
            &self.data,
            &external,
            reqwest::Client::new(),
            Arc::clone(&self.metrics),
        )
        .expect("open shipper")
    }

    fn file(&self, pod: &str, container: &str) -> PathBuf {
        let p = self.root.join(pod).join(container).join("0.log");
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        p
    }
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    f.write_all(text.as_bytes()).expect("append");
}

/// Copies `path` to `copy` and truncates `path` (logrotate's copytruncate).
fn copy_truncate(path: &Path, copy: &Path) {
    std::fs::copy(path, copy).expect("copy");
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|h| h.set_len(0))
        .expect("truncate");
}

/// `n` steps' worth of lines.
fn steps(s: &mut LogShipper, n: usize) -> Vec<(BTreeMap<String, String>, String)> {
    (0..n).flat_map(|_| step(s)).collect()
}

fn cri(i: u64, stream: &str, tag: &str, text: &str) -> String {
    format!(
        "2026-01-01T00:00:{:02}.{:09}Z {stream} {tag} {text}\n",
        i / 1000 % 60,
        i
    )
}

/// One poll and a flush, then every queued line (acknowledging the
/// batches, as the sender would) as `(stream labels, line)`.
fn step(s: &mut LogShipper) -> Vec<(BTreeMap<String, String>, String)> {
    s.tailer.poll();
    assert!(s.tailer.flush());
    drain(s)
}

fn drain(s: &LogShipper) -> Vec<(BTreeMap<String, String>, String)> {
    let mut out = Vec::new();
    for seq in s.queue.seqs() {
        let b = s.queue.read(seq).expect("read batch");
        for st in b.streams {
            for (_, line) in st.entries {
                out.push((st.labels.clone(), line));
            }
        }
        s.queue.ack(seq, false).expect("ack");
    }
    out
}

/// A shipper on one CRI file that has read and queued `lines`.
fn started(lines: &[&str]) -> (Env, LogsConfig, PathBuf, LogShipper) {
    let e = env();
    let cfg = e.config("");
    let f = e.file(POD, "compute");
    let mut s = e.open(&cfg);
    for (i, l) in lines.iter().enumerate() {
        append(&f, &cri(i as u64 + 1, "stdout", "F", l));
    }
    assert_eq!(texts(&step(&mut s)), lines);
    (e, cfg, f, s)
}

fn texts(v: &[(BTreeMap<String, String>, String)]) -> Vec<&str> {
    v.iter().map(|(_, l)| l.as_str()).collect()
}

#[test]
fn cri_and_docker_lines_are_joined_labelled_and_malformed_ones_counted() {
    let e = env();
    let mut s = e.open(&e.config(""));
    let c = e.file(POD, "compute");
    append(
        &c,
        &[
            cri(1, "stdout", "P", "hel"),
            cri(2, "stderr", "F", "an error"),
            cri(3, "stdout", "P", "lo "),
            "not a cri line\n".to_string(),
            cri(4, "stdout", "F", "world"),
        ]
        .concat(),
    );
    let d = e.file("vms_docker-pod_u-2", "app");
    append(
        &d,
        concat!(
            r#"{"log":"one\n","stream":"stdout","time":"2026-01-01T00:00:01Z"}"#,
            "\n",
            r#"{"log":"two ","stream":"stdout","time":"2026-01-01T00:00:02Z"}"#,
            "\n",
            r#"{"log":"halves\n","stream":"stdout","time":"2026-01-01T00:00:03Z"}"#,
            "\n",
            r#"{"log":"broken"#,
            "\n"
        ),
    );
    let got = step(&mut s);
    let of = |pod: &str| {
        got.iter()
            .filter(|(l, _)| l.get("pod").map(String::as_str) == Some(pod))
            .map(|(_, t)| t.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        of("virt-launcher-a-x1"),
        ["an error", "not a cri line", "hello world"]
    );
    assert_eq!(of("docker-pod"), ["one", "two halves", r#"{"log":"broken"#]);
    assert_eq!(got.len(), 6);
    let labels = &got[0].0;
    assert_eq!(
        labels,
        &BTreeMap::from([
            ("cluster".to_string(), "c1".to_string()),
            ("container".to_string(), "compute".to_string()),
            ("job".to_string(), "pods".to_string()),
            ("namespace".to_string(), "vms".to_string()),
            ("pod".to_string(), "virt-launcher-a-x1".to_string()),
        ])
    );
    assert_eq!(e.metrics.lines_malformed.load(Ordering::Relaxed), 2);
    assert_eq!(e.metrics.lines_read.load(Ordering::Relaxed), 6);
    assert_eq!(e.metrics.files_watched.load(Ordering::Relaxed), 2);
}

#[test]
fn long_lines_are_cut_and_filters_drop() {
    let e = env();
    let mut s = e.open(&e.config("format: raw\nexclude: ['^debug']\n"));
    let f = e.file(POD, "compute");
    let long = "x".repeat(100);
    // A raw physical line longer than 6 x 64 + 4096 bytes without newline
    // yet: cut, shipped once, the rest skipped up to its newline.
    let huge = "y".repeat(5000);
    append(&f, &format!("debug noise\n{long}\nkeep me\n{huge}"));
    let got = step(&mut s);
    assert_eq!(
        texts(&got),
        ["x".repeat(64).as_str(), "keep me", &"y".repeat(64)]
    );
    append(&f, "yyyy rest of the huge line\nafter\n");
    assert_eq!(texts(&step(&mut s)), ["after"]);
    assert_eq!(e.metrics.dropped_filter.load(Ordering::Relaxed), 1);
    assert_eq!(e.metrics.dropped_too_long.load(Ordering::Relaxed), 2);
}

#[test]
fn restart_resumes_after_the_last_queued_line_with_partial_lines_kept() {
    let (e, cfg, f, mut s) = started(&["a", "b"]);
    // A partial line, and half a physical line without its newline.
    append(&f, &cri(3, "stdout", "P", "c1-"));
    append(&f, "2026-01-01T00:00:00.000000004Z stdout F c2");
    assert!(step(&mut s).is_empty());
    drop(s);
    let mut s = e.open(&cfg);
    append(&f, "\n");
    append(&f, &cri(5, "stdout", "F", "d"));
    assert_eq!(texts(&step(&mut s)), ["c1-c2", "d"]);
}

#[test]
fn a_checkpoint_older_than_the_queue_is_caught_up_from_the_queued_batches() {
    let (e, cfg, f, mut s) = started(&["first"]);
    let ckpt = e.data.join(checkpoint::CHECKPOINT_FILE);
    let before = std::fs::read(&ckpt).expect("checkpoint");
    append(&f, &cri(2, "stdout", "F", "second"));
    s.tailer.poll();
    assert!(s.tailer.flush());
    // The process died after queueing the batch, before the checkpoint
    // was saved.
    std::fs::write(&ckpt, &before).expect("old checkpoint");
    drop(s);
    let mut s = e.open(&cfg);
    append(&f, &cri(3, "stdout", "F", "third"));
    assert_eq!(texts(&step(&mut s)), ["second", "third"]);
}

#[test]
fn a_garbage_checkpoint_is_reported_and_files_are_read_from_the_start() {
    let (e, cfg, _f, s) = started(&["one"]);
    drop(s);
    std::fs::write(
        e.data.join(checkpoint::CHECKPOINT_FILE),
        b"\x01\x02 not a checkpoint",
    )
    .expect("garbage");
    let mut s = e.open(&cfg);
    assert_eq!(e.metrics.checkpoint_errors.load(Ordering::Relaxed), 1);
    assert_eq!(texts(&step(&mut s)), ["one"], "read again, not lost");
    assert!(e.data.join("checkpoint.corrupt").exists());
}

#[test]
fn rename_rotation_while_running_reads_the_old_file_to_its_end_first() {
    let e = env();
    let f = e.file(POD, "compute");
    let mut s = e.open(&e.config("poll_interval: 10ms\n"));
    append(&f, &cri(1, "stdout", "F", "old-1"));
    assert_eq!(texts(&step(&mut s)), ["old-1"]);
    append(&f, &cri(2, "stdout", "F", "old-2"));
    std::fs::rename(&f, f.with_extension("log.1")).expect("rotate");
    append(&f, &cri(3, "stdout", "F", "new-1"));
    assert_eq!(texts(&steps(&mut s, 4)), ["old-2", "new-1"]);
    assert_eq!(e.metrics.files_watched.load(Ordering::Relaxed), 1);
}

#[test]
fn rotation_while_down_by_rename_and_by_copy_truncate_loses_and_repeats_nothing() {
    for by_copy in [false, true] {
        let (e, cfg, f, s) = started(&["l1", "l2"]);
        drop(s);
        append(&f, &cri(3, "stdout", "F", "l3"));
        let rotated = f.with_extension("log.20260101");
        if by_copy {
            copy_truncate(&f, &rotated);
        } else {
            std::fs::rename(&f, &rotated).expect("rename");
        }
        append(&f, &cri(4, "stdout", "F", "l4"));
        let mut s = e.open(&cfg);
        let got = steps(&mut s, 3);
        assert_eq!(texts(&got), ["l3", "l4"], "by_copy={by_copy}");
        assert_eq!(e.metrics.rotations.load(Ordering::Relaxed), 1);
    }
}

#[test]
fn copy_truncate_while_running_reads_the_copy_then_the_file_from_zero() {
    let e = env();
    let f = e.file(POD, "compute");
    let mut s = e.open(&e.config(""));
    append(&f, &cri(1, "stdout", "F", "a"));
    assert_eq!(texts(&step(&mut s)), ["a"]);
    append(&f, &cri(2, "stdout", "F", "b"));
    copy_truncate(&f, &f.with_extension("log.1"));
    append(&f, &cri(3, "stdout", "F", "c"));
    assert_eq!(texts(&steps(&mut s, 3)), ["b", "c"]);
}

#[test]
fn a_deleted_file_is_finished_from_its_open_handle() {
    let e = env();
    let f = e.file(POD, "compute");
    let mut s = e.open(&e.config(""));
    append(&f, &cri(1, "stdout", "F", "a"));
    s.tailer.poll();
    append(&f, &cri(2, "stdout", "F", "b"));
    std::fs::remove_file(&f).expect("delete");
    assert_eq!(texts(&steps(&mut s, 3)), ["a", "b"]);
    assert_eq!(e.metrics.files_watched.load(Ordering::Relaxed), 0);
    assert!(s.tailer.states().is_empty());
}

#[test]
fn logs_need_a_directory() {
    let e = env();
    let err = LogShipper::dir(&e.config(""), None).expect_err("no dir");
    assert!(err.to_string().contains("logs.path"), "{err}");
    assert_eq!(
        LogShipper::dir(&e.config(""), Some(Path::new("d"))).expect("dir"),
        Path::new("d").join("logs")
    );
}
