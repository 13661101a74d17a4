//! Cluster identity and relabeling end to end: a target exposes a series
//! that already carries `cluster="other"`. By default the collector's
//! external label wins and the target's value is kept as
//! `exported_cluster`; a job with `honor_external_labels: true` keeps the
//! series' own value. `metric_relabel_configs` and `write_relabel_configs`
//! apply on the way.

use std::time::Duration;

use super::collector_queue_support::*;
use super::support::*;

const EXPOSITION: &str = "# TYPE m gauge\nm{cluster=\"other\",x=\"1\"} 1\n# TYPE n gauge\nn 2\n";

#[test]
fn external_labels_win_unless_honoured_and_relabeling_applies() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let hub = start_hub(&tmp.path().join("hub"), tmp.path(), &[]);
    let rt = test_runtime();
    let app = axum::Router::new().route("/metrics", axum::routing::get(|| async { EXPOSITION }));
    let server = LoopbackServer::start(&rt, app);
    let target = server.addr.to_string();

    let yaml = format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  external_labels:
    cluster: edge
scrape_configs:
  - job_name: plain
    static_configs: [{{targets: ['{target}']}}]
    metric_relabel_configs:
      - {{source_labels: [__name__], regex: n, action: drop}}
  - job_name: honor
    honor_external_labels: true
    static_configs: [{{targets: ['{target}']}}]
    relabel_configs:
      - {{source_labels: [__address__], regex: '([^:]+):.*', target_label: host}}
remote_write:
  - url: http://{hub}/api/v1/write
    queue_config: {{batch_send_deadline: 200ms, min_backoff: 50ms, max_backoff: 500ms}}
    write_relabel_configs:
      - {{target_label: env, replacement: prod}}
"#,
        hub = hub.addr
    );
    let config = tmp.path().join("collector.yaml");
    std::fs::write(&config, yaml).expect("write config");
    let mut collector =
        start_collector_proc("collector", &config, &tmp.path().join("data"), tmp.path());

    let series = |q: &str| -> Vec<LabelMap> {
        try_query(&hub.addr, q)
            .unwrap_or_default()
            .iter()
            .map(metric)
            .collect()
    };
    wait_for(
        "both jobs' series in the hub",
        Duration::from_secs(30),
        || collector.proc.log(),
        || (series("m").len() == 2 && !series("n").is_empty()).then_some(()),
    );
    let label = |l: &LabelMap, k: &str| l.get(k).cloned().unwrap_or_default();

    let plain = series("m{job=\"plain\"}");
    assert_eq!(plain.len(), 1, "{plain:?}");
    assert_eq!(
        label(&plain[0], "cluster"),
        "edge",
        "the external label wins"
    );
    assert_eq!(
        label(&plain[0], "exported_cluster"),
        "other",
        "the target's value is kept"
    );
    assert_eq!(
        label(&plain[0], "env"),
        "prod",
        "write_relabel_configs applied"
    );

    let honor = series("m{job=\"honor\"}");
    assert_eq!(honor.len(), 1, "{honor:?}");
    assert_eq!(
        label(&honor[0], "cluster"),
        "other",
        "honor_external_labels: the series wins"
    );
    assert!(!honor[0].contains_key("exported_cluster"), "{honor:?}");
    assert_eq!(
        label(&honor[0], "host"),
        "127.0.0.1",
        "relabel_configs applied"
    );
    assert_eq!(label(&honor[0], "env"), "prod");

    let n = series("n");
    assert_eq!(
        n.len(),
        1,
        "metric_relabel_configs dropped n of job plain: {n:?}"
    );
    assert_eq!(label(&n[0], "job"), "honor");
    assert_eq!(
        label(&n[0], "cluster"),
        "edge",
        "a missing external label is added"
    );
    let up = series("up{job=\"plain\"}");
    assert_eq!(up.len(), 1, "synthetic series are not metric-relabeled");

    assert!(collector.proc.terminate(Duration::from_secs(20)));
    server.stop(&rt);
}
