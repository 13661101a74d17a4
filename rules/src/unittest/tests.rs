use super::*;

const RULES: &str = r#"
groups:
  - name: g
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: Down
        expr: up == 0
        for: 2m
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.instance }} down ({{ $value }})"
"#;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn passing_and_failing_files() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rules.yaml", RULES);
    let good = write(
        dir.path(),
        "good.yaml",
        r#"
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'up{job="a", instance="x"}'
        values: '1 0x5 1'
    alert_rule_test:
      - eval_time: 2m
        alertname: Down
      - eval_time: 3m
        alertname: Down
        exp_alerts:
          - exp_labels: {job: a, instance: x, severity: page}
            exp_annotations: {summary: "x down (0)"}
      - eval_time: 7m
        alertname: Down
    promql_expr_test:
      - expr: job:up:sum
        eval_time: 1m
        exp_samples:
          - labels: 'job:up:sum{job="a"}'
            value: 0
      - expr: ALERTS{alertstate="firing"}
        eval_time: 4m
        exp_samples:
          - labels: 'ALERTS{alertname="Down", alertstate="firing", instance="x", job="a", severity="page"}'
            value: 1
"#,
    );
    let out = run_file(&good);
    assert!(out.passed, "{}", out.report);
    assert!(out.report.contains("SUCCESS"));

    let bad = write(
        dir.path(),
        "bad.yaml",
        r#"
rule_files: [rules.yaml]
tests:
  - input_series:
      - series: 'up{job="a", instance="x"}'
        values: '0x5'
    alert_rule_test:
      - eval_time: 1m
        alertname: Down
        exp_alerts:
          - exp_labels: {job: a, instance: x, severity: page}
    promql_expr_test:
      - expr: job:up:sum
        eval_time: 1m
        exp_samples:
          - labels: 'job:up:sum{job="a"}'
            value: 3
"#,
    );
    let out = run_file(&bad);
    assert!(!out.passed, "{}", out.report);
    assert!(
        out.report.contains("FAILED") && out.report.contains("alertname: Down, time: 1m"),
        "{}",
        out.report
    );
    assert!(
        out.report.contains("expr: \"job:up:sum\""),
        "{}",
        out.report
    );
}
