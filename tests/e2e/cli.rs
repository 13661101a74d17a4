//! The command line's own checks: `rules check` and `collector --config.check`.

use std::process::Command;

use super::support::BIN;

fn seed_rules() -> String {
    format!(
        "{}/deploy/rules/multi-cluster-alerts.yaml",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn rules_check_accepts_the_seed_and_names_errors() {
    let out = Command::new(BIN)
        .args(["rules", "check", &seed_rules()])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("SUCCESS: 3 rules found"), "{stdout}");

    let tmp = tempfile::tempdir().expect("tempdir");
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "groups:\n  - name: fleet\n    rules:\n      - alert: Broken\n        expr: rate(x[5m]\n",
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["rules", "check", bad.to_str().expect("utf-8")])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("bad.yaml")
            && stdout.contains("Broken")
            && stdout.contains("could not parse expression"),
        "{stdout}"
    );
}

#[test]
fn collector_config_check() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let good = tmp.path().join("good.yaml");
    std::fs::write(
        &good,
        "global:\n  external_labels:\n    cluster: a\nscrape_configs:\n  - job_name: k\n    static_configs:\n      - targets: ['127.0.0.1:1']\nremote_write:\n  - url: http://127.0.0.1:2/api/v1/write\n",
    )
    .expect("write");
    let out = Command::new(BIN)
        .args([
            "collector",
            "--config.check",
            "--config",
            good.to_str().expect("utf-8"),
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = tmp.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "scrape_configs:\n  - job_name: k\n    scrape_intervall: 15s\n",
    )
    .expect("write");
    let out = Command::new(BIN)
        .args([
            "collector",
            "--config.check",
            "--config",
            bad.to_str().expect("utf-8"),
        ])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("bad.yaml") && stderr.contains("scrape_intervall"),
        "{stderr}"
    );
}
