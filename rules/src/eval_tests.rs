//! Tests of rule evaluation: the alert state machine, `ALERTS` series and
//! staleness, `keep_firing_for`, restoring `for` state, notifications and
//! recording rules.

use std::collections::BTreeMap;

use fleetwatch_model::{is_stale_nan, Labels, Matcher, Sample};
use fleetwatch_query::Engine;
use fleetwatch_storage::Queryable;

use crate::context::EvalContext;
use crate::group::{Group, RuleKind};
use crate::unittest::MemStore;
use crate::{parse_rule_file, AlertState};

const M: i64 = 60_000;

fn group(yaml: &str) -> Group {
    let f = parse_rule_file(yaml, "t.yaml").expect("rules parse");
    crate::validate(&f, "t.yaml").expect("rules valid");
    Group::new("t.yaml", &f.groups[0], M).expect("group")
}

fn alert_rule(g: &Group) -> &crate::AlertingRule {
    match &g.rules[0].kind {
        RuleKind::Alerting(a) => a,
        RuleKind::Recording(_) => panic!("not an alerting rule"),
    }
}

fn series(store: &MemStore, name: &str) -> Vec<(Labels, Vec<Sample>)> {
    store
        .select(
            &[Matcher::equal("__name__", name)],
            i64::MIN / 2,
            i64::MAX / 2,
        )
        .expect("select")
        .into_iter()
        .map(|s| (s.labels, s.samples))
        .collect()
}

struct Env {
    store: MemStore,
    engine: Engine,
    ext: BTreeMap<String, String>,
}

impl Env {
    fn new() -> Self {
        Self {
            store: MemStore::default(),
            engine: Engine::default(),
            ext: [("hub".to_string(), "h1".to_string())].into(),
        }
    }

    fn ctx(&self) -> EvalContext<'_> {
        EvalContext {
            queryable: &self.store,
            engine: &self.engine,
            external_labels: &self.ext,
            external_url: "http://hub:9190",
        }
    }

    fn eval(&self, g: &mut Group, ts: i64) -> crate::group::GroupEvalReport {
        g.eval(&self.ctx(), &self.store, ts, M)
    }
}

const ALERT: &str = r#"
groups:
  - name: g
    rules:
      - alert: High
        expr: x > 0
        for: 2m
        labels: {severity: warning, src: "{{ $labels.job }}"}
        annotations: {summary: "{{ $labels.job }} at {{ $value }} ({{ $externalLabels.hub }})"}
"#;

#[test]
fn pending_firing_resolved_with_alerts_series_and_staleness() {
    let env = Env::new();
    let x = Labels::from_pairs([("__name__", "x"), ("job", "a")]);
    env.store
        .add(x.clone(), (0..=3).map(|i| Sample::new(i * M, 1.0)));
    env.store.add(x, [Sample::new(4 * M, 0.0)]);
    let mut g = group(ALERT);
    let r = env.eval(&mut g, 0);
    assert_eq!(r.failures, 0);
    let a = alert_rule(&g)
        .active
        .values()
        .next()
        .expect("alert")
        .clone();
    assert_eq!(a.state, AlertState::Pending);
    assert_eq!(a.labels.get("alertname"), Some("High"));
    assert_eq!(a.labels.get("src"), Some("a"));
    assert_eq!(a.annotations["summary"], "a at 1 (h1)");
    assert!(r.alerts.is_empty(), "pending alerts are not sent");
    env.eval(&mut g, M);
    assert_eq!(alert_rule(&g).state(), AlertState::Pending);
    let r = env.eval(&mut g, 2 * M);
    assert_eq!(alert_rule(&g).state(), AlertState::Firing);
    assert_eq!(r.alerts.len(), 1);
    assert_eq!(r.alerts[0].starts_at_ms, 2 * M);
    assert_eq!(
        r.alerts[0].ends_at_ms,
        2 * M + 4 * M,
        "valid for four resend delays"
    );
    assert!(r.alerts[0]
        .generator_url
        .starts_with("http://hub:9190/graph?g0.expr=x+%3E+0"));
    env.eval(&mut g, 3 * M);
    let r = env.eval(&mut g, 4 * M);
    let a = alert_rule(&g)
        .active
        .values()
        .next()
        .expect("resolved alert kept");
    assert_eq!(a.state, AlertState::Inactive);
    assert_eq!(r.alerts.len(), 1, "resolved alerts are sent");
    assert_eq!(r.alerts[0].ends_at_ms, 4 * M);

    let alerts = series(&env.store, "ALERTS");
    let pending = alerts
        .iter()
        .find(|(l, _)| l.get("alertstate") == Some("pending"))
        .expect("pending series");
    assert_eq!(pending.1[0], Sample::new(0, 1.0));
    assert!(
        is_stale_nan(pending.1.last().expect("samples").value),
        "pending series goes stale when firing"
    );
    let firing = alerts
        .iter()
        .find(|(l, _)| l.get("alertstate") == Some("firing"))
        .expect("firing series");
    assert_eq!(firing.1.last().map(|s| s.timestamp_ms), Some(4 * M));
    assert!(is_stale_nan(firing.1.last().expect("samples").value));
    let for_state = series(&env.store, "ALERTS_FOR_STATE");
    assert_eq!(for_state[0].1[0].value, 0.0, "activeAt in seconds");
    assert_eq!(for_state[0].0.get("severity"), Some("warning"));
}

#[test]
fn keep_firing_for_holds_a_cleared_alert() {
    let env = Env::new();
    let x = Labels::from_pairs([("__name__", "x")]);
    env.store.add(x.clone(), [Sample::new(0, 1.0)]);
    env.store.add(x, (1..10).map(|i| Sample::new(i * M, 0.0)));
    let mut g = group(
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: x > 0\n        keep_firing_for: 2m\n",
    );
    env.eval(&mut g, 0);
    assert_eq!(
        alert_rule(&g).state(),
        AlertState::Firing,
        "no 'for': fires at once"
    );
    for t in 1..=2 {
        env.eval(&mut g, t * M);
        let a = alert_rule(&g).active.values().next().expect("alert");
        assert_eq!(a.state, AlertState::Firing, "still firing at {t}m");
        assert_eq!(a.keep_firing_since_ms, Some(M));
    }
    env.eval(&mut g, 3 * M);
    assert_eq!(alert_rule(&g).state(), AlertState::Inactive);
}

#[test]
fn resend_delay_and_duplicate_labelsets() {
    let env = Env::new();
    let x = Labels::from_pairs([("__name__", "x")]);
    env.store
        .add(x, (0..10).map(|i| Sample::new(i * 30_000, 1.0)));
    let mut g = group("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: x > 0\n");
    assert_eq!(env.eval(&mut g, 0).alerts.len(), 1);
    assert!(
        env.eval(&mut g, 30_000).alerts.is_empty(),
        "within the resend delay"
    );
    assert!(
        env.eval(&mut g, 60_000).alerts.is_empty(),
        "exactly one delay later"
    );
    assert_eq!(
        env.eval(&mut g, 90_000).alerts.len(),
        1,
        "resent after the delay"
    );

    let env = Env::new();
    env.store.add(
        Labels::from_pairs([("__name__", "y"), ("a", "1")]),
        [Sample::new(0, 1.0)],
    );
    env.store.add(
        Labels::from_pairs([("__name__", "z"), ("a", "1")]),
        [Sample::new(0, 1.0)],
    );
    let mut g =
        group("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: '{a=\"1\"}'\n");
    let r = env.eval(&mut g, 0);
    assert_eq!(r.failures, 1);
    assert!(g.rules[0]
        .last_error
        .as_deref()
        .unwrap_or("")
        .contains("same labelset"));
}

fn restore_case(stored_active_at_s: f64, down_at_ms: i64, restart_ms: i64, for_: &str) -> i64 {
    let env = Env::new();
    let x = Labels::from_pairs([("__name__", "x")]);
    env.store.add(x, [Sample::new(restart_ms - 1000, 1.0)]);
    env.store.add(
        Labels::from_pairs([("__name__", "ALERTS_FOR_STATE"), ("alertname", "A")]),
        [
            Sample::new(down_at_ms - 60_000, stored_active_at_s),
            Sample::new(down_at_ms, stored_active_at_s),
        ],
    );
    let mut g = group(&format!(
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: x > 0\n        for: {for_}\n"
    ));
    g.await_restore();
    env.eval(&mut g, restart_ms);
    assert!(
        series(&env.store, "ALERTS").is_empty(),
        "no ALERTS before the restore"
    );
    g.restore_for_state(&env.ctx(), restart_ms, M, 60 * M);
    alert_rule(&g)
        .active
        .values()
        .next()
        .expect("alert")
        .active_at_ms
}

#[test]
fn for_state_is_restored_as_prometheus_does() {
    // 1m of 10m spent when the hub went down at 100s: the downtime is added.
    assert_eq!(restore_case(40.0, 100_000, 200_000, "10m"), 140_000);
    // About to fire (20s left, less than the 1m grace period): waits the grace period.
    assert_eq!(
        restore_case(40.0, 620_000, 700_000, "10m"),
        700_000 + M - 10 * M
    );
    // Already firing when the hub went down: kept, fires at the next evaluation.
    assert_eq!(restore_case(40.0, 700_000, 800_000, "10m"), 40_000);
    // 'for' shorter than the grace period: not restored.
    assert_eq!(restore_case(40.0, 100_000, 200_000, "30s"), 200_000);
}

#[test]
fn recording_rules_store_results_with_labels() {
    let env = Env::new();
    for (job, v) in [("a", 1.0), ("b", 2.0)] {
        env.store.add(
            Labels::from_pairs([("__name__", "up"), ("job", job)]),
            [Sample::new(0, v)],
        );
    }
    let mut g = group(
        "groups:\n  - name: g\n    labels: {team: infra}\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n        labels: {src: rec}\n",
    );
    env.eval(&mut g, 0);
    let got = series(&env.store, "job:up:sum");
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].0.get("job"), Some("b"));
    assert_eq!(got[1].0.get("src"), Some("rec"));
    assert_eq!(got[1].0.get("team"), Some("infra"));
    assert_eq!(got[1].1, vec![Sample::new(0, 2.0)]);
}

#[test]
fn a_reloaded_group_keeps_the_state_of_unchanged_rules_and_marks_dropped_series_stale() {
    let env = Env::new();
    let x = Labels::from_pairs([("__name__", "x"), ("job", "a")]);
    env.store.add(x, (0..=4).map(|i| Sample::new(i * M, 1.0)));
    let two = r#"
groups:
  - name: g
    rules:
      - alert: High
        expr: x > 0
        for: 2m
      - record: job:x:sum
        expr: sum by (job) (x)
"#;
    let mut old = group(two);
    for i in 0..3 {
        env.eval(&mut old, i * M);
    }
    assert_eq!(alert_rule(&old).state(), AlertState::Firing);
    assert!(old.same_definition(&group(two)), "same file, same group");

    // High unchanged, the recording rule gone, a new alert added.
    let changed = r#"
groups:
  - name: g
    rules:
      - alert: High
        expr: x > 0
        for: 2m
      - alert: Other
        expr: x > 0
        for: 1h
"#;
    let mut new = group(changed);
    assert!(!old.same_definition(&new));
    new.copy_state(&old);
    let kept = alert_rule(&new).active.values().next().expect("alert kept");
    assert_eq!((kept.state, kept.active_at_ms), (AlertState::Firing, 0));
    env.eval(&mut new, 3 * M);
    let kept = alert_rule(&new).active.values().next().expect("alert kept");
    assert_eq!((kept.state, kept.active_at_ms), (AlertState::Firing, 0));
    match &new.rules[1].kind {
        RuleKind::Alerting(a) => {
            let other = a.active.values().next().expect("new alert");
            assert_eq!(
                (other.state, other.active_at_ms),
                (AlertState::Pending, 3 * M)
            );
        }
        RuleKind::Recording(_) => panic!("not an alerting rule"),
    }
    let recorded = series(&env.store, "job:x:sum");
    let last = recorded[0].1.last().expect("samples");
    assert_eq!(last.timestamp_ms, 3 * M);
    assert!(
        is_stale_nan(last.value),
        "the dropped rule's series is stale"
    );

    // A changed expression starts over.
    let mut other_expr = group(&two.replace("x > 0", "x > 0.5"));
    other_expr.copy_state(&old);
    assert!(alert_rule(&other_expr).active.is_empty());
}
