use std::collections::BTreeMap;

use fleetwatch_model::is_stale_nan;

use super::*;
use crate::config::CollectorConfig;
use crate::targets::targets_from_config;

fn scraper(honor_labels: bool, honor_timestamps: bool) -> (Scraper, Arc<CollectorMetrics>) {
    let yaml = format!(
        "global: {{external_labels: {{cluster: app-1}}}}\n\
         scrape_configs: [{{job_name: node, honor_labels: {honor_labels}, honor_timestamps: {honor_timestamps}, \
         static_configs: [{{targets: ['n1:9100'], labels: {{zone: a}}}}]}}]"
    );
    let cfg = CollectorConfig::from_yaml_str(&yaml).unwrap();
    cfg.validate().unwrap();
    let target = targets_from_config(&cfg).unwrap().remove(0);
    let metrics = Arc::new(CollectorMetrics::new(["node"], []));
    let external = Labels::from_pairs([("cluster", "app-1")]);
    let s = Scraper::new(
        target,
        reqwest::Client::new(),
        external,
        Arc::clone(&metrics),
    );
    (s, metrics)
}

fn scraper_from(yaml: &str) -> Scraper {
    let cfg = CollectorConfig::from_yaml_str(yaml).unwrap();
    cfg.validate().unwrap();
    let target = targets_from_config(&cfg).unwrap().remove(0);
    let metrics = Arc::new(CollectorMetrics::new(["node"], []));
    let external = Labels::from_pairs([("cluster", "app-1")]);
    Scraper::new(target, reqwest::Client::new(), external, metrics)
}

#[test]
fn metric_relabel_runs_before_external_labels_and_can_drop() {
    let mut s = scraper_from(
        "scrape_configs:\n\
         - job_name: node\n\
         \x20 static_configs: [{targets: ['n1:9100']}]\n\
         \x20 metric_relabel_configs:\n\
         \x20   - {source_labels: [__name__], regex: 'drop_.*', action: drop}\n\
         \x20   - {source_labels: [cluster], target_label: origin}\n\
         \x20   - {regex: 'tmp', action: labeldrop}\n",
    );
    let body = "keep{cluster=\"other\",tmp=\"x\"} 1\ndrop_me 2\n";
    let out = by_series(&s.process(Ok(body.to_string()), T0, Duration::from_millis(1)));
    assert_eq!(
        out[r#"keep{cluster="app-1", exported_cluster="other", instance="n1:9100", job="node", origin="other"}"#]
            .value,
        1.0
    );
    assert!(!out.keys().any(|k| k.starts_with("drop_me")));
    let base = r#"{cluster="app-1", instance="n1:9100", job="node"}"#;
    assert_eq!(out[&format!("scrape_samples_scraped{base}")].value, 2.0);
    assert_eq!(
        out[&format!("scrape_samples_post_metric_relabeling{base}")].value,
        1.0
    );
}

#[test]
fn honor_external_labels_lets_the_series_value_win() {
    let mut s = scraper_from(
        "scrape_configs: [{job_name: node, honor_external_labels: true, static_configs: [{targets: ['n1:9100']}]}]",
    );
    let out = by_series(&s.process(
        Ok("a{cluster=\"other\"} 1\nb 2\n".to_string()),
        T0,
        Duration::from_millis(1),
    ));
    assert!(
        out.contains_key(r#"a{cluster="other", instance="n1:9100", job="node"}"#),
        "{out:?}"
    );
    assert!(
        out.contains_key(r#"b{cluster="app-1", instance="n1:9100", job="node"}"#),
        "{out:?}"
    );
}

#[test]
fn write_relabel_maps_and_drops_series() {
    let rules: Vec<crate::relabel::RelabelConfig> = serde_yaml::from_str(
        "[{source_labels: [__name__], regex: 'secret_.*', action: drop}, {target_label: env, replacement: prod}]",
    )
    .unwrap();
    let r = Relabeler::new(&rules).unwrap();
    let q = |name: &str| QueuedSample {
        labels: Arc::new(Labels::from_pairs([("__name__", name)])),
        sample: Sample::new(T0, 1.0),
    };
    let out = write_relabel(&r, &[q("a"), q("secret_x"), q("a")]);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].labels.to_string(), r#"a{env="prod"}"#);
    assert!(
        Arc::ptr_eq(&out[0].labels, &out[1].labels),
        "relabeled once per series"
    );
}

/// Samples keyed by their rendered labels.
fn by_series(v: &[QueuedSample]) -> BTreeMap<String, Sample> {
    v.iter().map(|q| (q.labels.to_string(), q.sample)).collect()
}

const T0: i64 = 1_700_000_000_000;

#[test]
fn scraped_series_get_target_and_external_labels() {
    let (mut s, metrics) = scraper(false, true);
    let body = "a{job=\"inner\",x=\"1\"} 5\nb 6 1600000000000\nc{cluster=\"other\"} 7\n";
    let out = by_series(&s.process(Ok(body.to_string()), T0, Duration::from_millis(12)));
    assert_eq!(
        out[r#"a{cluster="app-1", exported_job="inner", instance="n1:9100", job="node", x="1", zone="a"}"#],
        Sample::new(T0, 5.0)
    );
    assert_eq!(
        out[r#"b{cluster="app-1", instance="n1:9100", job="node", zone="a"}"#],
        Sample::new(1_600_000_000_000, 6.0),
        "honor_timestamps keeps the exposed timestamp"
    );
    assert_eq!(
        out[r#"c{cluster="app-1", exported_cluster="other", instance="n1:9100", job="node", zone="a"}"#].value,
        7.0,
        "the external label wins; the series' own value is kept as exported_cluster"
    );
    assert_eq!(metrics.external_label_overrides.load(Ordering::Relaxed), 1);

    let base = r#"{cluster="app-1", instance="n1:9100", job="node", zone="a"}"#;
    assert_eq!(out[&format!("up{base}")], Sample::new(T0, 1.0));
    assert_eq!(
        out[&format!("scrape_duration_seconds{base}")],
        Sample::new(T0, 0.012)
    );
    assert_eq!(
        out[&format!("scrape_samples_scraped{base}")],
        Sample::new(T0, 3.0)
    );
    assert_eq!(
        out[&format!("scrape_samples_post_metric_relabeling{base}")],
        Sample::new(T0, 3.0)
    );
    // b carries a timestamp, so it is not tracked for staleness nor counted as added.
    assert_eq!(
        out[&format!("scrape_series_added{base}")],
        Sample::new(T0, 2.0)
    );
    assert_eq!(out.len(), 3 + 5);
}

#[test]
fn honor_labels_true_keeps_scraped_job_and_instance() {
    let (mut s, _) = scraper(true, true);
    let out = s.process(
        Ok("kubevirt_vmi_up{job=\"kubevirt-handler\",instance=\"node1:8443\"} 1\n".to_string()),
        T0,
        Duration::ZERO,
    );
    assert_eq!(
        out[0].labels.to_string(),
        r#"kubevirt_vmi_up{cluster="app-1", instance="node1:8443", job="kubevirt-handler", zone="a"}"#
    );
}

#[test]
fn honor_timestamps_false_uses_scrape_time() {
    let (mut s, _) = scraper(false, false);
    let out = s.process(Ok("b 6 1600000000000\n".to_string()), T0, Duration::ZERO);
    assert_eq!(out[0].sample, Sample::new(T0, 6.0));
}

#[test]
fn vanished_series_and_failed_scrapes_get_staleness_markers() {
    let (mut s, metrics) = scraper(false, true);
    s.process(Ok("a 1\nb 2\n".to_string()), T0, Duration::ZERO);

    let out = s.process(Ok("a 1\n".to_string()), T0 + 15_000, Duration::ZERO);
    let stale: Vec<&QueuedSample> = out
        .iter()
        .filter(|q| is_stale_nan(q.sample.value))
        .collect();
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].labels.metric_name(), Some("b"));
    assert_eq!(stale[0].sample.timestamp_ms, T0 + 15_000);

    let err = CollectorError::Scrape {
        url: "http://n1:9100/metrics".into(),
        reason: "connection refused".into(),
    };
    let out = s.process(Err(err), T0 + 30_000, Duration::from_millis(3));
    let by = by_series(&out);
    let base = r#"{cluster="app-1", instance="n1:9100", job="node", zone="a"}"#;
    assert!(is_stale_nan(by[&format!("a{base}")].value), "{by:?}");
    assert_eq!(by[&format!("up{base}")], Sample::new(T0 + 30_000, 0.0));
    assert_eq!(by[&format!("scrape_samples_scraped{base}")].value, 0.0);
    assert_eq!(out.len(), 1 + 5, "one marker plus the synthetic series");

    let again = s.process(
        Err(CollectorError::Scrape {
            url: "u".into(),
            reason: "r".into(),
        }),
        T0 + 45_000,
        Duration::ZERO,
    );
    assert_eq!(again.len(), 5, "markers are written once");
    let job = metrics.job("node");
    assert_eq!(job.scrapes.load(Ordering::Relaxed), 4);
    assert_eq!(job.scrapes_failed.load(Ordering::Relaxed), 2);
}

#[test]
fn duplicate_series_are_dropped_and_counted() {
    let (mut s, metrics) = scraper(false, true);
    // `a{x=""}` is `a` too: an empty value is no label.
    let out = s.process(
        Ok("a 1\na 2\na{x=\"\"} 3\n".to_string()),
        T0,
        Duration::ZERO,
    );
    let scraped: Vec<&QueuedSample> = out
        .iter()
        .filter(|q| q.labels.metric_name() == Some("a"))
        .collect();
    assert_eq!(scraped.len(), 1);
    assert_eq!(scraped[0].sample.value, 1.0);
    assert_eq!(
        metrics.job("node").samples_invalid.load(Ordering::Relaxed),
        2
    );
}

#[test]
fn a_malformed_line_fails_the_whole_scrape() {
    let (mut s, metrics) = scraper(false, true);
    s.process(Ok("a 1\n".to_string()), T0, Duration::ZERO);
    let out = by_series(&s.process(
        Ok("a 1\nb 2\nbad-line\n".to_string()),
        T0 + 15_000,
        Duration::ZERO,
    ));
    let base = r#"{cluster="app-1", instance="n1:9100", job="node", zone="a"}"#;
    assert_eq!(out[&format!("up{base}")].value, 0.0);
    assert!(is_stale_nan(out[&format!("a{base}")].value), "{out:?}");
    assert!(
        !out.contains_key(&format!("b{base}")),
        "nothing of it is shipped"
    );
    assert_eq!(out.len(), 1 + 5);
    let job = metrics.job("node");
    assert_eq!(job.scrapes_failed.load(Ordering::Relaxed), 1);
    assert_eq!(job.scrapes_parse_failed.load(Ordering::Relaxed), 1);
    assert!(
        s.status.last().error.contains("line 3"),
        "{}",
        s.status.last().error
    );
}

#[test]
fn the_cache_builds_labels_once_and_forgets_vanished_series() {
    let (mut s, _) = scraper(false, true);
    let body = "a{x=\"1\"} 1\nb 2\n";
    let first = s.process(Ok(body.to_string()), T0, Duration::ZERO);
    let second = s.process(Ok(body.to_string()), T0 + 15_000, Duration::ZERO);
    assert!(
        Arc::ptr_eq(&first[0].labels, &second[0].labels),
        "a cached series reuses its labels"
    );
    assert_eq!(second[0].sample, Sample::new(T0 + 15_000, 1.0));
    assert_eq!(s.cache().len(), 2);
    let third = by_series(&s.process(Ok("b 3\n".to_string()), T0 + 30_000, Duration::ZERO));
    let base = r#"cluster="app-1", instance="n1:9100", job="node", "#;
    assert!(is_stale_nan(
        third[&format!("a{{{base}x=\"1\", zone=\"a\"}}")].value
    ));
    assert_eq!(s.cache().len(), 1, "a is forgotten");
    let back = by_series(&s.process(Ok(body.to_string()), T0 + 45_000, Duration::ZERO));
    assert_eq!(back[&format!("a{{{base}x=\"1\", zone=\"a\"}}")].value, 1.0);
    assert_eq!(
        back[&format!("scrape_series_added{{{base}zone=\"a\"}}")].value,
        1.0
    );
}

#[test]
fn a_reload_that_changes_metric_relabeling_relabels_cached_series() {
    let yaml = |regex: &str| {
        format!(
            "scrape_configs:\n\
             - job_name: node\n\
             \x20 static_configs: [{{targets: ['n1:9100']}}]\n\
             \x20 metric_relabel_configs:\n\
             \x20   - {{source_labels: [__name__], regex: '{regex}', target_label: kind, replacement: hit}}\n"
        )
    };
    let body = "a 1\nb 2\n";
    let mut before = scraper_from(&yaml("a"));
    let out = by_series(&before.process(Ok(body.to_string()), T0, Duration::ZERO));
    assert!(out.contains_key(r#"a{cluster="app-1", instance="n1:9100", job="node", kind="hit"}"#));
    // A reload with different rules starts a new scraper for the changed
    // target (the supervisor compares targets), with a fresh cache.
    let cfg = CollectorConfig::from_yaml_str(&yaml("b")).unwrap();
    let changed = targets_from_config(&cfg).unwrap().remove(0);
    assert_ne!(
        &changed,
        before.target(),
        "the target differs, so its loop restarts"
    );
    let mut after = scraper_from(&yaml("b"));
    let out = by_series(&after.process(Ok(body.to_string()), T0 + 15_000, Duration::ZERO));
    assert!(
        out.contains_key(r#"a{cluster="app-1", instance="n1:9100", job="node"}"#),
        "{out:?}"
    );
    assert!(out.contains_key(r#"b{cluster="app-1", instance="n1:9100", job="node", kind="hit"}"#));
}

#[test]
fn openmetrics_bodies_go_through_the_same_cache() {
    let (mut s, _) = scraper(false, true);
    let body = "# TYPE c counter\nc_total 3 1600000000.25\nc_created 1\n# EOF\n";
    let out = by_series(&s.process_format(Ok((body, Format::OpenMetrics)), T0, Duration::ZERO));
    let base = r#"{cluster="app-1", instance="n1:9100", job="node", zone="a"}"#;
    assert_eq!(
        out[&format!("c_total{base}")],
        Sample::new(1_600_000_000_250, 3.0)
    );
    assert!(!out.keys().any(|k| k.starts_with("c_created")));
    assert_eq!(out[&format!("scrape_samples_scraped{base}")].value, 1.0);
}
