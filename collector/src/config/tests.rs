use std::time::Duration;

use super::*;

/// A full example, with the federation job from the seed pasted verbatim.
const FULL: &str = r#"
global:
  scrape_interval: 30s
  scrape_timeout: 5s
  external_labels:
    cluster: app-cluster-1
    region: eu-west

scrape_configs:
  - job_name: 'federate-app-clusters'
    scrape_interval: 15s
    honor_labels: true
    metrics_path: '/federate'
    params:
      'match[]':
        - '{job=~"kubernetes-.*"}'
        - '{job=~"node-.*"}'
        - '{job=~"kubevirt-.*"}'
    static_configs:
      - targets:
          - 'prometheus-app-cluster-1.monitoring.svc.cluster.local:9090'

  - job_name: kubevirt-handler
    scheme: https
    scrape_interval: 1m
    scrape_timeout: 1m
    honor_timestamps: false
    static_configs:
      - targets: ['virt-handler-0:8443', 'virt-handler-1:8443']
        labels:
          component: virt-handler

remote_write:
  - url: http://hub.example:9190/api/v1/write
    remote_timeout: 10s
    queue_config:
      capacity: 5000
      max_samples_per_send: 500
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 10s
  - url: https://backup-hub.example/api/v1/write
"#;

#[test]
fn parses_full_example_with_federation_job() {
    let cfg = CollectorConfig::from_yaml_str(FULL).unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.global.scrape_interval, PromDuration::from_secs(30));
    assert_eq!(cfg.global.external_labels["cluster"], "app-cluster-1");

    let fed = &cfg.scrape_configs[0];
    assert_eq!(fed.job_name, "federate-app-clusters");
    assert_eq!(
        fed.effective_interval(&cfg.global).0,
        Duration::from_secs(15)
    );
    assert_eq!(fed.effective_timeout(&cfg.global).0, Duration::from_secs(5));
    assert!(fed.honor_labels);
    assert!(fed.honor_timestamps, "default true");
    assert_eq!(fed.metrics_path, "/federate");
    assert_eq!(fed.scheme, Scheme::Http);
    assert_eq!(
        fed.params["match[]"],
        [
            "{job=~\"kubernetes-.*\"}",
            "{job=~\"node-.*\"}",
            "{job=~\"kubevirt-.*\"}"
        ]
    );
    assert_eq!(
        fed.static_configs[0].targets,
        ["prometheus-app-cluster-1.monitoring.svc.cluster.local:9090"]
    );

    let kv = &cfg.scrape_configs[1];
    assert_eq!(kv.scheme, Scheme::Https);
    assert!(!kv.honor_labels);
    assert!(!kv.honor_timestamps);
    assert_eq!(kv.metrics_path, "/metrics");
    assert_eq!(kv.static_configs[0].labels["component"], "virt-handler");

    let rw = &cfg.remote_write[0];
    assert_eq!(rw.remote_timeout, PromDuration::from_secs(10));
    assert_eq!(rw.queue_config.capacity, 5000);
    assert_eq!(rw.queue_config.max_samples_per_send, 500);
    assert_eq!(rw.queue_config.min_backoff, PromDuration::from_millis(100));
    let defaults = &cfg.remote_write[1];
    assert_eq!(defaults.remote_timeout, PromDuration::from_secs(30));
    assert_eq!(defaults.queue_config, QueueConfig::default());
    assert_eq!(defaults.queue_config.max_samples_per_send, 2000);
    assert_eq!(
        defaults.queue_config.batch_send_deadline,
        PromDuration::from_secs(5)
    );
    assert_eq!(
        defaults.queue_config.min_backoff,
        PromDuration::from_millis(30)
    );
    assert_eq!(
        defaults.queue_config.max_backoff,
        PromDuration::from_secs(5)
    );
}

#[test]
fn federation_job_alone_parses_with_defaults() {
    let yaml = r#"
scrape_configs:
  - job_name: 'federate-app-clusters'
    scrape_interval: 15s
    honor_labels: true
    metrics_path: '/federate'
    params:
      'match[]':
        - '{job=~"kubernetes-.*"}'
        - '{job=~"node-.*"}'
        - '{job=~"kubevirt-.*"}'
    static_configs:
      - targets:
          - 'prometheus-app-cluster-1.monitoring.svc.cluster.local:9090'
"#;
    let cfg = CollectorConfig::from_yaml_str(yaml).unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.global, GlobalConfig::default());
    assert_eq!(cfg.global.scrape_interval, PromDuration::from_secs(60));
    assert_eq!(cfg.global.scrape_timeout, PromDuration::from_secs(10));
    assert_eq!(
        cfg.scrape_configs[0].effective_timeout(&cfg.global),
        PromDuration::from_secs(10)
    );
    assert!(cfg.remote_write.is_empty());
}

#[test]
fn timeout_defaults_to_interval_when_global_timeout_is_longer() {
    let cfg = CollectorConfig::from_yaml_str(
        "scrape_configs: [{job_name: fast, scrape_interval: 2s, static_configs: [{targets: ['a:1']}]}]",
    )
    .unwrap();
    cfg.validate().unwrap();
    assert_eq!(
        cfg.scrape_configs[0].effective_timeout(&cfg.global),
        PromDuration::from_secs(2)
    );
}

#[test]
fn empty_document_is_an_empty_config() {
    let cfg = CollectorConfig::from_yaml_str("\n").unwrap();
    assert_eq!(cfg, CollectorConfig::default());
    cfg.validate().unwrap();
}

fn field_of(yaml: &str) -> String {
    let cfg = CollectorConfig::from_yaml_str(yaml).unwrap();
    match cfg.validate() {
        Err(CollectorError::InvalidConfig { field, .. }) => field,
        other => panic!("expected InvalidConfig for {yaml}, got {other:?}"),
    }
}

#[test]
fn validation_errors_name_the_field() {
    let cases = [
        (
            "scrape_configs: [{job_name: a}, {job_name: a}]",
            "scrape_configs[1].job_name",
        ),
        ("scrape_configs: [{job_name: ''}]", "scrape_configs[0].job_name"),
        (
            "scrape_configs: [{job_name: a, static_configs: [{targets: ['a:1', 'http://b:2']}]}]",
            "scrape_configs[0].static_configs[0].targets[1]",
        ),
        (
            "scrape_configs: [{job_name: a, static_configs: [{targets: ['nohost']}]}]",
            "scrape_configs[0].static_configs[0].targets[0]",
        ),
        (
            "scrape_configs: [{job_name: a, scrape_interval: 5s, scrape_timeout: 10s}]",
            "scrape_configs[0].scrape_timeout",
        ),
        (
            "global: {scrape_interval: 5s, scrape_timeout: 6s}",
            "global.scrape_timeout",
        ),
        (
            "scrape_configs: [{job_name: a, metrics_path: metrics}]",
            "scrape_configs[0].metrics_path",
        ),
        (
            "scrape_configs: [{job_name: a, static_configs: [{targets: ['a:1'], labels: {'bad-name': x}}]}]",
            "scrape_configs[0].static_configs[0].labels",
        ),
        ("global: {external_labels: {'0cluster': x}}", "global.external_labels"),
        ("remote_write: [{url: 'not a url'}]", "remote_write[0].url"),
        ("remote_write: [{url: 'ftp://hub/write'}]", "remote_write[0].url"),
        (
            "remote_write: [{url: 'http://hub/w', queue_config: {capacity: 0}}]",
            "remote_write[0].queue_config.capacity",
        ),
        (
            "remote_write: [{url: 'http://hub/w', queue_config: {min_backoff: 10s, max_backoff: 1s}}]",
            "remote_write[0].queue_config.min_backoff",
        ),
        (
            "remote_write: [{url: 'http://hub/w', queue_config: {min_shards: 4, max_shards: 2}}]",
            "remote_write[0].queue_config.max_shards",
        ),
        (
            "remote_write: [{url: 'http://hub/w', name: 'a/b'}]",
            "remote_write[0].name",
        ),
        (
            "remote_write: [{url: 'http://hub/w', name: x}, {url: 'http://hub2/w', name: x}]",
            "remote_write[1].name",
        ),
        ("storage: {max_bytes: 1KB}", "storage.max_bytes"),
        (
            "scrape_configs: [{job_name: a, relabel_configs: [{action: keep, regex: a}, {action: hashmod, target_label: x}]}]",
            "scrape_configs[0].relabel_configs[1]",
        ),
        (
            "scrape_configs: [{job_name: a, metric_relabel_configs: [{regex: '(', target_label: x}]}]",
            "scrape_configs[0].metric_relabel_configs[0]",
        ),
        (
            "remote_write: [{url: 'http://hub/w', write_relabel_configs: [{action: labeldrop, regex: a, target_label: b}]}]",
            "remote_write[0].write_relabel_configs[0]",
        ),
    ];
    for (yaml, field) in cases {
        assert_eq!(field_of(yaml), field, "{yaml}");
    }
}

#[test]
fn queue_storage_and_relabel_keys_parse() {
    let cfg = CollectorConfig::from_yaml_str(
        r#"
scrape_configs:
  - job_name: fed
    honor_external_labels: true
    relabel_configs:
      - {source_labels: [__address__], regex: '(.*):.*', target_label: host}
    metric_relabel_configs:
      - {source_labels: [__name__], regex: 'go_.*', action: drop}
remote_write:
  - url: http://hub/api/v1/write
    name: hub-main
    queue_config: {min_shards: 2, max_shards: 16}
    write_relabel_configs:
      - {regex: 'exported_.*', action: labeldrop}
  - url: http://other/api/v1/write
storage:
  path: /var/lib/fw
  max_bytes: 256MB
"#,
    )
    .unwrap();
    cfg.validate().unwrap();
    assert!(cfg.scrape_configs[0].honor_external_labels);
    assert_eq!(
        cfg.scrape_configs[0].relabel_configs[0].target_label,
        "host"
    );
    assert_eq!(
        cfg.scrape_configs[0].metric_relabel_configs[0].action,
        RelabelAction::Drop
    );
    let rw = &cfg.remote_write[0];
    assert_eq!(rw.queue_name(), "hub-main");
    assert_eq!(
        (rw.queue_config.min_shards, rw.queue_config.max_shards),
        (2, 16)
    );
    assert_eq!(rw.write_relabel_configs.len(), 1);
    let other = cfg.remote_write[1].queue_name();
    assert!(other.starts_with("url-") && other.len() == 20, "{other}");
    assert_eq!(other, cfg.remote_write[1].queue_name(), "stable");
    assert_eq!(cfg.storage.path.as_deref(), Some(Path::new("/var/lib/fw")));
    assert_eq!(cfg.storage.max_bytes, ByteSize(256 << 20));
    let d = CollectorConfig::default();
    assert_eq!(d.storage.max_bytes, ByteSize(1 << 30));
    assert_eq!(QueueConfig::default().max_shards, 8);
}

#[test]
fn unknown_fields_and_bad_durations_are_parse_errors_with_location() {
    let err = CollectorConfig::from_yaml_str("global:\n  scrape_intervall: 15s\n").unwrap_err();
    match &err {
        CollectorError::ParseConfig { line, message, .. } => {
            assert_eq!(*line, Some(2));
            assert!(message.contains("scrape_intervall"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let err = CollectorConfig::from_yaml_str("global:\n  scrape_interval: 15\n").unwrap_err();
    assert!(err.to_string().contains("no unit"), "{err}");
    let err =
        CollectorConfig::from_yaml_str("scrape_configs: [{job_name: a, scheme: ftp}]").unwrap_err();
    assert!(matches!(err, CollectorError::ParseConfig { .. }), "{err}");
}

#[test]
fn load_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("collector.yml");
    std::fs::write(&path, "scrape_configs:\n  - job_name: a\n    bogus: 1\n").unwrap();
    let err = CollectorConfig::load(&path).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("collector.yml"), "{text}");
    assert!(
        matches!(
            err,
            CollectorError::ParseConfig {
                line: Some(_),
                column: Some(_),
                ..
            }
        ),
        "{err:?}"
    );

    let missing = dir.path().join("missing.yml");
    let err = CollectorConfig::load(&missing).unwrap_err();
    assert!(matches!(err, CollectorError::ReadConfig { .. }));
    assert!(err.to_string().contains("missing.yml"));

    std::fs::write(&path, FULL).unwrap();
    CollectorConfig::load(&path).unwrap().validate().unwrap();
}
