//! `fleetwatch rules test` against Debian's `promtool test rules` on the
//! seed rules' unit tests: both pass the good file and both fail the
//! deliberately wrong one; and alert templates render as promtool
//! renders them.

use std::path::Path;
use std::process::Command;

use super::support::*;

fn run(program: &str, file: &str) -> (bool, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let args: Vec<&str> = if program == BIN {
        vec!["rules", "test", file]
    } else {
        vec!["test", "rules", file]
    };
    let out = Command::new(program)
        .args(&args)
        .current_dir(root.join("deploy/rules"))
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn seed_rule_unit_tests_agree_with_promtool() {
    let Some(promtool) = peer("promtool") else {
        return;
    };
    let promtool = promtool.to_str().expect("utf-8 path").to_string();
    for program in [BIN, promtool.as_str()] {
        let (ok, out) = run(program, "multi-cluster-alerts.test.yaml");
        assert!(ok, "{program} fails the good test file:\n{out}");
        assert!(out.contains("SUCCESS"), "{out}");
        let (ok, out) = run(program, "multi-cluster-alerts.wrong.test.yaml");
        assert!(!ok, "{program} passes the wrong test file:\n{out}");
        assert!(out.contains("FAILED"), "{out}");
        assert!(
            out.contains("alertname: ClusterDown, time: 5m"),
            "{program}:\n{out}"
        );
        assert!(
            out.contains("alertname: ClusterDown, time: 8m"),
            "{program}:\n{out}"
        );
    }
}

const TEMPLATE_RULES: &str = r#"groups:
  - name: t
    rules:
      - alert: T
        expr: m > 0
        labels:
          sev: '{{ if gt $value 100.0 }}high{{ else }}low{{ end }}'
        annotations:
          a1: '{{ $value }} {{ humanize $value }} {{ humanize1024 $value }} {{ $value | humanizeDuration }} {{ humanizePercentage 0.12345 }}'
          a2: '{{ printf "%.3f|%5.1f|%d|%s|%v|%g|%e" $value $value 42 "s" 1e6 0.000012 12345.678 }}'
          a3: '{{ $labels.name | toUpper }} {{ title "hello world-foo" }} {{ toLower "ABC" }} {{ reReplaceAll "(.*)-(.*)" "$2:$1" $labels.name }}'
          a4: '{{ query "m" | first | value }} {{ with query "m" }}{{ . | first | label "name" }}{{ end }} {{ range query "m" }}[{{ .Labels.name }}={{ .Value }}]{{ end }}'
          a5: '{{- /* c */ -}} x {{- "y" }} {{ $externalLabels.region }} {{ humanizeTimestamp 1700000000.5 }} {{ len $labels }} {{ index $labels "name" }}'
          a6: '{{ $value }} {{ humanize 0.000123 }} {{ humanize 1234567890 }} {{ humanizeDuration 90061 }} {{ humanizeDuration 0.0015 }} {{ humanize1024 123456789 }} {{ print 1 2 "a" 3 }}'
          a7: '{{ $labels }} {{ eq $labels.name "vm-a" "x" }} {{ and 1 0 }} {{ or 0 "z" }} {{ not true }} {{ urlquery "a b&c" }} {{ html "<b>" }}'
"#;

/// Expects no alert, so both tools print the alert they got, with its
/// rendered labels and annotations.
const TEMPLATE_TEST: &str = r#"rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    external_labels: {region: eu}
    input_series:
      - series: 'm{name="vm-a"}'
        values: '123456.789x3'
    alert_rule_test:
      - eval_time: 1m
        alertname: T
"#;

/// The `got:` list of a failure report (up to its closing bracket).
fn got_section(out: &str) -> String {
    let rest = out.split_once("got:").map(|(_, r)| r).unwrap_or_default();
    match rest.find("\n            ]") {
        Some(end) => rest[..end].trim().to_string(),
        None => rest.trim().to_string(),
    }
}

#[test]
fn alert_templates_render_as_promtool_renders_them() {
    let Some(promtool) = peer("promtool") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("rules.yaml"), TEMPLATE_RULES).expect("write rules");
    std::fs::write(tmp.path().join("t.yaml"), TEMPLATE_TEST).expect("write test");
    let run = |program: &str, args: &[&str]| {
        let out = Command::new(program)
            .args(args)
            .current_dir(tmp.path())
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let ours = got_section(&run(BIN, &["rules", "test", "t.yaml"]));
    let theirs = got_section(&run(
        promtool.to_str().expect("utf-8 path"),
        &["test", "rules", "t.yaml"],
    ));
    assert!(theirs.contains("123.5k"), "promtool output: {theirs}");
    assert_eq!(ours, theirs, "rendered alerts differ from promtool's");
}
