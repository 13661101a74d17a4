//! A runner for Prometheus's PromQL test scripts (`promql/promqltest`
//! `.test` files): `load`/`clear` data into a [`MemoryQueryable`], run each
//! `eval` through the [`Engine`] and compare with the expected results.
//!
//! Native histograms in the `{{...}}` notation are loaded (and derived
//! from classic series by `load_with_nhcb`) and compared as promqltest
//! does. Annotations (`expect warn`/`expect info`) are checked separately
//! (see [`EvalOutcome::annotations`]); passed evals that expect one are
//! counted in [`FileReport::annotation_unchecked`].

mod check;
mod classify;
mod nhcb;
mod script;

use fleetwatch_model::{Labels, Sample};
use promql_parser::parser::Expr;

use crate::histogram::HistogramPoint;
use crate::source::Source;
use crate::{Annotations, Engine, EngineOptions, MemoryQueryable};
use script::{Command, EvalCmd};

/// The outcome of one eval command.
#[derive(Debug, Clone)]
pub struct EvalOutcome {
    /// Line number of the eval in the script (1-based).
    pub line: usize,
    /// The query (empty when the eval header could not be parsed).
    pub expr: String,
    /// A native-histogram case: it selects series with native-histogram
    /// samples or expects histograms in its result.
    pub native_histogram: bool,
    /// `None` when the eval passed, else why it failed.
    pub failure: Option<String>,
    /// When the eval states what warning or info annotations it expects
    /// (`expect warn`, `expect no_info`, ...): whether the engine's
    /// annotations met that (message positions are not compared).
    pub annotations: Option<Result<(), String>>,
}

/// The outcome of running one script.
#[derive(Debug, Clone, Default)]
pub struct FileReport {
    /// Every eval command in script order.
    pub outcomes: Vec<EvalOutcome>,
    /// Eval commands whose results matched.
    pub passed: usize,
    /// All eval commands.
    pub total: usize,
    /// Passed evals that also expected a warning or info annotation (the
    /// annotations themselves are judged in [`EvalOutcome::annotations`]).
    pub annotation_unchecked: usize,
    /// One line per failed eval: line number, query and why.
    pub failures: Vec<String>,
}

/// Runs a whole script and reports per eval command.
pub fn run_script(text: &str) -> FileReport {
    let engine = Engine::new(EngineOptions::default());
    let mut db = MemoryQueryable::new();
    let mut report = FileReport::default();
    let mut histograms: Vec<Labels> = Vec::new();
    for cmd in script::parse(text) {
        match cmd {
            Command::Clear => {
                db.clear();
                histograms.clear();
            }
            Command::Load {
                series,
                histogram_series,
                histograms: h,
            } => {
                for (labels, samples) in series {
                    db.add(labels, samples.into_iter().map(|(t, v)| Sample::new(t, v)));
                }
                for (labels, points) in histogram_series {
                    db.add_histograms(
                        labels,
                        points.into_iter().map(|(t, h)| HistogramPoint::new(t, h)),
                    );
                }
                histograms.extend(h);
            }
            Command::Eval(ev) => {
                report.total += 1;
                let native = ev.expects_histogram
                    || promql_parser::parser::parse(&ev.expr)
                        .is_ok_and(|e| classify::touches_histograms(&e, &histograms));
                let mut annotations = None;
                let failure = match run_eval(&engine, &db, &ev, &mut annotations) {
                    Ok(()) => {
                        report.passed += 1;
                        if ev.expects_annotation {
                            report.annotation_unchecked += 1;
                        }
                        None
                    }
                    Err(why) => {
                        report
                            .failures
                            .push(format!("line {}: {}: {why}", ev.line, ev.expr));
                        Some(why)
                    }
                };
                report.outcomes.push(EvalOutcome {
                    line: ev.line,
                    expr: ev.expr,
                    native_histogram: native,
                    failure,
                    annotations,
                });
            }
            Command::Invalid { line, reason } => {
                report.total += 1;
                report.failures.push(format!("line {line}: {reason}"));
                report.outcomes.push(EvalOutcome {
                    line,
                    expr: String::new(),
                    native_histogram: false,
                    failure: Some(reason),
                    annotations: None,
                });
            }
        }
    }
    report
}

impl FileReport {
    /// Passed and total evals among the native-histogram (`true`) or the
    /// float (`false`) cases.
    pub fn split(&self, native_histogram: bool) -> (usize, usize) {
        let of_kind = self
            .outcomes
            .iter()
            .filter(|o| o.native_histogram == native_histogram);
        let total = of_kind.clone().count();
        let passed = of_kind.filter(|o| o.failure.is_none()).count();
        (passed, total)
    }

    /// Among the native-histogram (`true`) or float (`false`) evals that
    /// state annotation expectations: how many pass with both their result
    /// and their annotations, and how many there are.
    pub fn annotation_split(&self, native_histogram: bool) -> (usize, usize) {
        let stated = self
            .outcomes
            .iter()
            .filter(|o| o.annotations.is_some() && o.native_histogram == native_histogram);
        let total = stated.clone().count();
        let passed = stated
            .filter(|o| o.failure.is_none() && matches!(o.annotations, Some(Ok(()))))
            .count();
        (passed, total)
    }
}

/// True when the query calls `step()`, `range()`, `start()` or `end()`,
/// whose values differ between instant and range mode by definition.
fn uses_query_range_functions(query: &str) -> bool {
    fn walk(e: &Expr) -> bool {
        match e {
            Expr::Call(c) => {
                matches!(c.func.name, "step" | "range" | "start" | "end")
                    || c.args.args.iter().any(|a| walk(a))
            }
            Expr::Paren(p) => walk(&p.expr),
            Expr::Unary(u) => walk(&u.expr),
            Expr::Binary(b) => walk(&b.lhs) || walk(&b.rhs),
            Expr::Aggregate(a) => walk(&a.expr) || a.param.as_deref().is_some_and(walk),
            Expr::Subquery(s) => walk(&s.expr),
            _ => false,
        }
    }
    promql_parser::parser::parse(query).is_ok_and(|e| walk(&e))
}

/// Checks the annotations of an evaluation against the eval's `expect
/// warn`/`expect info` rules; `None` when it states none.
fn check_annotations(ev: &EvalCmd, got: &Annotations) -> Option<Result<(), String>> {
    if ev.warn.is_none() && ev.info.is_none() {
        return None;
    }
    let warn = ev.warn.as_ref().map_or(Ok(()), |r| {
        check::check_annotations("warning", r, &got.warnings)
    });
    let info = ev
        .info
        .as_ref()
        .map_or(Ok(()), |r| check::check_annotations("info", r, &got.infos));
    Some(warn.and(info))
}

/// Runs one eval; the annotation check of its main evaluation goes to
/// `annotations`.
fn run_eval(
    engine: &Engine,
    db: &MemoryQueryable,
    ev: &EvalCmd,
    annotations: &mut Option<Result<(), String>>,
) -> Result<(), String> {
    let annotated = match ev.range {
        None => engine.instant_query_histograms_annotated(db, &ev.expr, ev.start),
        Some((end, step)) => {
            engine.range_query_histograms_annotated(db, &ev.expr, ev.start, end, step)
        }
    };
    let result = match annotated {
        Ok((v, a)) => {
            *annotations = check_annotations(ev, &a);
            Ok(v)
        }
        Err(e) => {
            *annotations = check_annotations(ev, &Annotations::default());
            Err(e)
        }
    };
    check::check(ev, result)?;
    // As promqltest does: an instant eval must give the same result as
    // the middle step of a range query around it.
    if ev.range.is_none()
        && !ev.ordered
        && check::is_instant_value(&ev.expected)
        && !uses_query_range_functions(&ev.expr)
    {
        let t = ev.start;
        let ranged = engine
            .range_query_histograms_annotated(db, &ev.expr, t - 60_000, t + 60_000, 60_000)
            .map(|(v, _)| v)
            .map_err(|e| format!("in range mode: {e}"))?;
        check::check(ev, Ok(check::middle_step(ranged, t, &ev.expected)))
            .map_err(|e| format!("in range mode: {e}"))?;
    }
    // Also as promqltest does: with `@ t` on every selector the result must
    // not depend on the evaluation time.
    if ev.range.is_none() && !matches!(ev.expected, script::Expected::Fail { .. }) {
        if let Some(expr) = at_modified(&ev.expr, ev.start) {
            let t = ev.start;
            let times = if t == 0 {
                vec![-1000, 0, 1000]
            } else {
                vec![-10 * t, 0, t / 5, t, 10 * t]
            };
            for et in times {
                let r = engine.instant_query_expr(Source::mixed(db), &expr, et);
                check::check(ev, r)
                    .map_err(|e| format!("with @ {t}ms evaluated at {et}ms: {e}"))?;
            }
        }
    }
    Ok(())
}

/// Functions whose result depends on the evaluation time even when their
/// arguments do not.
const AT_UNSAFE: &[&str] = &[
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "time",
    "timestamp",
    "step",
    "range",
    "start",
    "end",
];

/// The query with `@ t` set on every selector and subquery that has none
/// (not inside subqueries), or `None` when it uses a time-dependent
/// function.
fn at_modified(query: &str, t: i64) -> Option<Expr> {
    use promql_parser::parser::AtModifier;
    use std::time::{Duration, UNIX_EPOCH};
    let at = || {
        let d = Duration::from_millis(t.unsigned_abs());
        Some(AtModifier::At(if t >= 0 {
            UNIX_EPOCH + d
        } else {
            UNIX_EPOCH - d
        }))
    };
    fn walk(e: &mut Expr, at: &dyn Fn() -> Option<AtModifier>) -> bool {
        match e {
            Expr::VectorSelector(vs) => {
                if vs.at.is_none() {
                    vs.at = at();
                }
                true
            }
            Expr::MatrixSelector(ms) => {
                if ms.vs.at.is_none() {
                    ms.vs.at = at();
                }
                true
            }
            Expr::Subquery(s) => {
                if s.at.is_none() {
                    s.at = at();
                }
                true
            }
            Expr::Call(c) => {
                !AT_UNSAFE.contains(&c.func.name) && c.args.args.iter_mut().all(|a| walk(a, at))
            }
            Expr::Paren(p) => walk(&mut p.expr, at),
            Expr::Unary(u) => walk(&mut u.expr, at),
            Expr::Binary(b) => walk(&mut b.lhs, at) && walk(&mut b.rhs, at),
            Expr::Aggregate(a) => {
                walk(&mut a.expr, at) && a.param.as_deref_mut().is_none_or(|p| walk(p, at))
            }
            _ => true,
        }
    }
    let mut expr = promql_parser::parser::parse(query).ok()?;
    walk(&mut expr, &at).then_some(expr)
}
