use super::*;

const SEED: &str = include_str!("../../deploy/rules/multi-cluster-alerts.yaml");

#[test]
fn seed_prometheus_rule_loads() {
    let file = parse_rule_file(SEED, "seed").unwrap();
    validate(&file, "seed").unwrap();
    assert_eq!(file.groups.len(), 1);
    let names: Vec<&str> = file.groups[0].rules.iter().map(Rule::name).collect();
    assert_eq!(
        names,
        vec!["ClusterDown", "VMHighMemory", "VMMigrationFailed"]
    );
    assert_eq!(file.groups[0].rules[1].for_.as_deref(), Some("10m"));
    assert_eq!(file.groups[0].rules[2].labels["severity"], "critical");
}

#[test]
fn plain_rule_file_and_errors() {
    let ok = "groups:\n  - name: g\n    interval: 30s\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n";
    let f = parse_rule_file(ok, "r.yaml").unwrap();
    validate(&f, "r.yaml").unwrap();

    let bad_expr = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sum(up\n";
    let f = parse_rule_file(bad_expr, "r.yaml").unwrap();
    let e = validate(&f, "r.yaml").unwrap_err().to_string();
    assert!(
        e.contains("r.yaml") && e.contains("rule A") && e.contains("could not parse expression"),
        "{e}"
    );

    let both =
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        record: b\n        expr: up\n";
    let e = validate(&parse_rule_file(both, "r.yaml").unwrap(), "r.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("only one of"), "{e}");

    let dup = "groups:\n  - name: g\n    rules: []\n  - name: g\n    rules: []\n";
    assert!(validate(&parse_rule_file(dup, "r.yaml").unwrap(), "r.yaml").is_err());

    let bad_for = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        for: 10 minutes\n";
    assert!(
        validate(&parse_rule_file(bad_for, "r.yaml").unwrap(), "r.yaml")
            .unwrap_err()
            .to_string()
            .contains("for")
    );

    let unknown = "groups:\n  - name: g\n    rulez: []\n";
    let e = parse_rule_file(unknown, "r.yaml").unwrap_err().to_string();
    assert!(e.contains("rulez"), "{e}");

    let wrong_kind = "apiVersion: v1\nkind: ConfigMap\nspec:\n  groups: []\n";
    assert!(parse_rule_file(wrong_kind, "r.yaml").is_err());
}

#[test]
fn plain_copy_of_the_seed_rules_is_in_sync() {
    let plain = include_str!("../../deploy/rules/multi-cluster-alerts.rules.yaml");
    let crd = parse_rule_file(SEED, "seed").unwrap();
    let copy = parse_rule_file(plain, "copy").unwrap();
    assert_eq!(
        crd, copy,
        "deploy/rules/multi-cluster-alerts.rules.yaml differs from the PrometheusRule"
    );
}

#[test]
fn alert_templates_are_checked() {
    let bad = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        annotations:\n          summary: '{{ $value | humanise }}'\n";
    let f = parse_rule_file(bad, "r.yaml").unwrap();
    let e = validate(&f, "r.yaml").unwrap_err().to_string();
    assert!(e.contains("rule A") && e.contains("humanise"), "{e}");
    let unclosed = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        labels:\n          team: '{{ if $labels.x }}a'\n";
    let f = parse_rule_file(unclosed, "r.yaml").unwrap();
    assert!(validate(&f, "r.yaml").is_err());
}

#[test]
fn bad_yaml_and_invalid_label_names_are_refused_with_one_clear_line() {
    let e = parse_rule_file("groups:\n  - name: g\n    rules: [\n", "r.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("r.yaml") && !e.contains('\n'), "{e}");
    let bad_label =
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        labels:\n          0bad: x\n";
    let e = validate(&parse_rule_file(bad_label, "r.yaml").unwrap(), "r.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("r.yaml") && e.contains("0bad") && !e.contains('\n'),
        "{e}"
    );
}
