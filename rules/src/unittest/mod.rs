//! Rule unit tests in promtool's format (`promtool test rules`):
//! `rule_files`, `evaluation_interval`, `group_eval_order`, and test groups
//! with `input_series` in the expanding notation, `alert_rule_test`,
//! `promql_expr_test`, `external_labels` and `external_url`.

mod series;
mod store;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use fleetwatch_model::duration::{format_duration_ms, parse_duration_ms};
use fleetwatch_model::{Labels, Sample};
use fleetwatch_query::Engine;
use serde::Deserialize;

pub use series::{parse_metric, parse_values};
pub use store::MemStore;

use crate::alerting::AlertState;
use crate::context::EvalContext;
use crate::group::{Group, RuleKind};
use crate::load_rule_file;

/// A unit-test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// Rule files under test, relative to the test file.
    pub rule_files: Vec<String>,
    /// Step of the evaluations (default 1m).
    #[serde(default)]
    pub evaluation_interval: Option<String>,
    /// Order in which groups are evaluated (default: file order).
    #[serde(default)]
    pub group_eval_order: Vec<String>,
    /// The test groups.
    #[serde(default)]
    pub tests: Vec<TestGroup>,
}

/// One test group: its input and its expectations.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestGroup {
    /// Step between input samples (default: the evaluation interval).
    #[serde(default)]
    pub interval: Option<String>,
    /// Input series.
    #[serde(default)]
    pub input_series: Vec<InputSeries>,
    /// Expected alerts.
    #[serde(default)]
    pub alert_rule_test: Vec<AlertTest>,
    /// Expected query results.
    #[serde(default)]
    pub promql_expr_test: Vec<PromqlTest>,
    /// External labels seen by templates.
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    /// External URL seen by templates.
    #[serde(default)]
    pub external_url: String,
    /// Name shown on failure.
    #[serde(default)]
    pub name: String,
}

/// One input series.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSeries {
    /// `name{labels}`.
    pub series: String,
    /// Values in the expanding notation.
    pub values: String,
}

/// Alerts expected firing at one time.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertTest {
    /// When (a duration from 0).
    pub eval_time: String,
    /// The alert name.
    pub alertname: String,
    /// The firing alerts expected (none: no alert firing).
    #[serde(default)]
    pub exp_alerts: Vec<ExpAlert>,
}

/// One expected alert.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpAlert {
    /// Its labels (without `alertname`).
    #[serde(default)]
    pub exp_labels: BTreeMap<String, String>,
    /// Its annotations, expanded.
    #[serde(default)]
    pub exp_annotations: BTreeMap<String, String>,
}

/// An expected query result.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromqlTest {
    /// The expression.
    pub expr: String,
    /// When (a duration from 0).
    pub eval_time: String,
    /// The samples expected.
    #[serde(default)]
    pub exp_samples: Vec<ExpSample>,
}

/// One expected sample.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpSample {
    /// `name{labels}`.
    #[serde(default)]
    pub labels: String,
    /// The value.
    pub value: f64,
}

/// The outcome of one test file.
#[derive(Debug)]
pub struct FileOutcome {
    /// True when every test passed.
    pub passed: bool,
    /// promtool-like report text.
    pub report: String,
}

fn dur(what: &str, s: &str) -> Result<i64, String> {
    parse_duration_ms(s).map_err(|e| format!("{what}: {e}"))
}

type AlertSet = Vec<(Labels, Labels)>;

fn alert_set_string(set: &AlertSet) -> String {
    if set.is_empty() {
        return "[]".into();
    }
    let mut s = String::from("[\n");
    for (i, (l, a)) in set.iter().enumerate() {
        let _ = write!(s, "    {i}:\n      Labels:{l}\n      Annotations:{a}\n");
    }
    s.push_str("    ]");
    s
}

fn indent(s: &str, prefix: &str) -> String {
    s.lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                l.to_string()
            } else {
                format!("{prefix}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn samples_string(s: &[(Labels, f64)]) -> String {
    let parts: Vec<String> = s
        .iter()
        .map(|(l, v)| format!("{l} {}", crate::template::fmt_float(*v)))
        .collect();
    parts.join(",\n")
}

fn float_eq(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// Runs one unit-test file.
pub fn run_file(path: &Path) -> FileOutcome {
    let mut report = format!("Unit Testing:  {}\n", path.display());
    match run_inner(path) {
        Ok(errors) if errors.is_empty() => {
            report.push_str("  SUCCESS\n");
            FileOutcome {
                passed: true,
                report,
            }
        }
        Ok(errors) => {
            report.push_str("  FAILED:\n");
            for e in errors {
                report.push_str(&e);
                report.push('\n');
            }
            FileOutcome {
                passed: false,
                report,
            }
        }
        Err(e) => {
            let _ = writeln!(report, "  FAILED:\n    {e}");
            FileOutcome {
                passed: false,
                report,
            }
        }
    }
}

fn run_inner(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: TestFile =
        serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let eval_interval = match &file.evaluation_interval {
        Some(s) => dur("evaluation_interval", s)?,
        None => 60_000,
    }
    .max(1);
    let base = path.parent().unwrap_or(Path::new("."));
    let files = crate::expand_rule_files(&file.rule_files, base).map_err(|e| e.to_string())?;
    let mut groups = Vec::new();
    for f in &files {
        let rf = load_rule_file(f).map_err(|e| e.to_string())?;
        for g in &rf.groups {
            groups.push(
                Group::new(&f.display().to_string(), g, eval_interval)
                    .map_err(|e| e.to_string())?,
            );
        }
    }
    if !file.group_eval_order.is_empty() {
        let mut ordered = Vec::new();
        for name in &file.group_eval_order {
            let i = groups
                .iter()
                .position(|g| &g.name == name)
                .ok_or_else(|| format!("group name {name:?} in group_eval_order not found"))?;
            ordered.push(groups.remove(i));
        }
        ordered.extend(groups);
        groups = ordered;
    }
    let mut errors = Vec::new();
    for tg in &file.tests {
        errors.extend(run_group(tg, groups.clone(), eval_interval)?);
    }
    Ok(errors)
}

fn run_group(
    tg: &TestGroup,
    mut groups: Vec<Group>,
    eval_interval: i64,
) -> Result<Vec<String>, String> {
    let step = match &tg.interval {
        Some(s) => dur("interval", s)?,
        None => eval_interval,
    };
    let store = MemStore::default();
    for s in &tg.input_series {
        let labels = parse_metric(&s.series)?;
        let values = parse_values(&s.values).map_err(|e| format!("series {:?}: {e}", s.series))?;
        let samples = values
            .into_iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| Sample::new(i as i64 * step, v)));
        store.add(labels, samples);
    }
    let mut alert_tests: Vec<(i64, &AlertTest)> = Vec::new();
    for t in &tg.alert_rule_test {
        alert_tests.push((dur("eval_time", &t.eval_time)?, t));
    }
    alert_tests.sort_by_key(|(t, _)| *t);
    let mut promql_tests = Vec::new();
    for t in &tg.promql_expr_test {
        promql_tests.push((dur("eval_time", &t.eval_time)?, t));
    }
    let max_t = alert_tests
        .iter()
        .map(|(t, _)| *t)
        .chain(promql_tests.iter().map(|(t, _)| *t))
        .max()
        .unwrap_or(0);
    if max_t / eval_interval > 10_000_000 {
        return Err(format!(
            "eval_time {} needs more than 10,000,000 evaluations",
            format_duration_ms(max_t)
        ));
    }
    let engine = Engine::default();
    let ctx = EvalContext {
        queryable: &store,
        engine: &engine,
        external_labels: &tg.external_labels,
        external_url: &tg.external_url,
    };
    let name_line = if tg.name.is_empty() {
        String::new()
    } else {
        format!("    name: {},\n", tg.name)
    };
    let mut errors = Vec::new();
    let mut curr = 0;
    let mut ts = 0i64;
    while ts <= max_t {
        let mut eval_errors = Vec::new();
        for g in &mut groups {
            g.eval(&ctx, &store, ts, i64::MAX / 4);
            for r in &g.rules {
                if let Some(e) = &r.last_error {
                    eval_errors.push(format!(
                        "    rule: {}, time: {}, err: {e}",
                        r.name(),
                        format_duration_ms(ts)
                    ));
                }
            }
        }
        if !eval_errors.is_empty() {
            errors.extend(eval_errors);
            return Ok(errors);
        }
        while curr < alert_tests.len()
            && ts <= alert_tests[curr].0
            && alert_tests[curr].0 < ts + eval_interval
        {
            let (t, test) = alert_tests[curr];
            let mut got: AlertSet = Vec::new();
            for g in &groups {
                for r in &g.rules {
                    let RuleKind::Alerting(a) = &r.kind else {
                        continue;
                    };
                    if a.name != test.alertname {
                        continue;
                    }
                    for al in a
                        .active
                        .values()
                        .filter(|al| al.state == AlertState::Firing)
                    {
                        got.push((
                            al.labels.clone(),
                            Labels::from_pairs(
                                al.annotations.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                            ),
                        ));
                    }
                }
            }
            let mut exp: AlertSet = test
                .exp_alerts
                .iter()
                .map(|e| {
                    let mut l = Labels::from_pairs(
                        e.exp_labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                    );
                    l.set("alertname", &test.alertname);
                    (
                        l,
                        Labels::from_pairs(
                            e.exp_annotations
                                .iter()
                                .map(|(k, v)| (k.as_str(), v.as_str())),
                        ),
                    )
                })
                .collect();
            got.sort();
            exp.sort();
            if got != exp {
                errors.push(format!(
                    "{name_line}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
                    test.alertname,
                    format_duration_ms(t),
                    indent(&alert_set_string(&exp), "        "),
                    indent(&alert_set_string(&got), "        "),
                ));
            }
            curr += 1;
        }
        ts += eval_interval;
    }
    for (t, test) in &promql_tests {
        let mut got = match ctx.query(&test.expr, *t) {
            Ok(g) => g,
            Err(e) => {
                errors.push(format!(
                    "{name_line}    expr: {:?}, time: {}, err: {e}",
                    test.expr,
                    format_duration_ms(*t)
                ));
                continue;
            }
        };
        let mut exp = Vec::new();
        for s in &test.exp_samples {
            exp.push((parse_metric(&s.labels)?, s.value));
        }
        got.sort_by(|a, b| a.0.cmp(&b.0));
        exp.sort_by(|a, b| a.0.cmp(&b.0));
        let same = got.len() == exp.len()
            && got
                .iter()
                .zip(&exp)
                .all(|(g, e)| g.0 == e.0 && float_eq(g.1, e.1));
        if !same {
            errors.push(format!(
                "{name_line}    expr: {:?}, time: {},\n        exp: {}\n        got: {}",
                test.expr,
                format_duration_ms(*t),
                indent(&samples_string(&exp), "             "),
                indent(&samples_string(&got), "             "),
            ));
        }
    }
    Ok(errors)
}

#[cfg(test)]
mod tests;
