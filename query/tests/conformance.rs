//! Runs Prometheus's PromQL test scripts (the core set) through the engine
//! and fails when an eval that is not listed in
//! `conformance_known_failures.txt` fails, when a listed one passes, or
//! when a float eval does not give the warn/info annotations it expects.

use std::path::PathBuf;

use fleetwatch_query::conformance::{run_script, FileReport};

const CORE: &[&str] = &[
    "aggregators.test",
    "at_modifier.test",
    "collision.test",
    "functions.test",
    "histograms.test",
    "literals.test",
    "operators.test",
    "range_queries.test",
    "selectors.test",
    "staleness.test",
    "subquery.test",
    "trig_functions.test",
    "limit.test",
    "name_label_dropping.test",
];

/// Newer or experimental features, not required yet.
const LATER: &[&str] = &[
    "native_histograms.test",
    "duration_expression.test",
    "extended_vectors.test",
    "fill-modifier.test",
    "info.test",
    "start_timestamps.test",
    "type_and_unit.test",
];

/// One line of `conformance_known_failures.txt`:
/// `file:line | reason | expression`.
struct Known {
    file: String,
    line: usize,
    reason: String,
    expr: String,
}

fn known_failures() -> Vec<Known> {
    include_str!("conformance_known_failures.txt")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut parts = l.splitn(3, " | ");
            let (Some(at), Some(reason), Some(expr)) = (parts.next(), parts.next(), parts.next())
            else {
                panic!("malformed known-failures line: {l}");
            };
            let (file, line) = at
                .split_once(':')
                .and_then(|(f, n)| Some((f.to_string(), n.parse().ok()?)))
                .unwrap_or_else(|| panic!("malformed known-failures location: {l}"));
            Known {
                file,
                line,
                reason: reason.trim().to_string(),
                expr: expr.trim().to_string(),
            }
        })
        .collect()
}

fn pct(p: usize, t: usize) -> f64 {
    if t == 0 {
        100.0
    } else {
        100.0 * p as f64 / t as f64
    }
}

fn split_line(r: &FileReport) -> String {
    let (fp, ft) = r.split(false);
    let (np, nt) = r.split(true);
    format!(
        "{}/{} (float: {fp}/{ft}, native-histogram: {np}/{nt})",
        r.passed, r.total
    )
}

#[test]
fn promql_conformance() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/promql-conformance");
    if !dir.is_dir() {
        let msg = format!(
            "PromQL conformance scripts not found at {} (expected the shared/promql-conformance folder beside the repository)",
            dir.display()
        );
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
        println!("{msg}; skipping");
        return;
    }
    let known = known_failures();
    let verbose = std::env::var("CONFORMANCE_VERBOSE").is_ok();
    let mut problems = Vec::new();
    let mut seen = vec![false; known.len()];
    let (mut passed, mut total, mut unchecked) = (0, 0, 0);
    let (mut fpassed, mut ftotal) = (0, 0);
    let (mut apassed, mut atotal, mut anpassed, mut antotal) = (0, 0, 0, 0);
    let mut reasons: Vec<(String, usize)> = Vec::new();
    for file in CORE {
        let text = std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|e| panic!("reading {file}: {e}"));
        let r = run_script(&text);
        let (ap, at) = r.annotation_split(false);
        println!(
            "{file}: {} (annotations, float cases: {ap}/{at})",
            split_line(&r)
        );
        for o in &r.outcomes {
            let listed = known
                .iter()
                .position(|k| k.file == *file && k.line == o.line);
            if let Some(i) = listed {
                if let Some(s) = seen.get_mut(i) {
                    *s = true;
                }
            }
            let entry = listed.and_then(|i| known.get(i));
            match (&o.failure, entry) {
                (Some(why), None) => {
                    let kind = if o.native_histogram {
                        "native histogram"
                    } else {
                        "float"
                    };
                    problems.push(format!("{file}:{} | {kind}: {why} | {}", o.line, o.expr));
                }
                (Some(why), Some(k)) => {
                    if k.expr != o.expr {
                        problems.push(format!(
                            "{file}:{}: listed as `{}` but the eval there is `{}`",
                            o.line, k.expr, o.expr
                        ));
                    }
                    if let Some(c) = reasons.iter_mut().find(|(r, _)| *r == k.reason) {
                        c.1 += 1;
                    } else {
                        reasons.push((k.reason.clone(), 1));
                    }
                    if verbose {
                        println!("    line {}: {} [{}]: {why}", o.line, o.expr, k.reason);
                    }
                }
                (None, Some(k)) => problems.push(format!(
                    "{file}:{} now passes; remove it from conformance_known_failures.txt ({})",
                    o.line, k.expr
                )),
                (None, None) => {}
            }
        }
        passed += r.passed;
        total += r.total;
        unchecked += r.annotation_unchecked;
        let (fp, ft) = r.split(false);
        fpassed += fp;
        ftotal += ft;
        let (ap, at) = r.annotation_split(false);
        apassed += ap;
        atotal += at;
        let (anp, ant) = r.annotation_split(true);
        anpassed += anp;
        antotal += ant;
        // Float evals must also meet their warn/info expectations; native
        // histogram ones are only reported (verbose).
        for o in &r.outcomes {
            if let (true, None, Some(Err(why)), true) =
                (verbose, &o.failure, &o.annotations, o.native_histogram)
            {
                println!("    annotations line {}: {} : {why}", o.line, o.expr);
            }
        }
        for o in &r.outcomes {
            if let (None, Some(Err(why)), false) = (&o.failure, &o.annotations, o.native_histogram)
            {
                problems.push(format!(
                    "{file}:{} | annotations: {why} | {}",
                    o.line, o.expr
                ));
            }
        }
    }
    for (k, s) in known.iter().zip(&seen) {
        if !s {
            problems.push(format!(
                "{}:{} is listed in conformance_known_failures.txt but is no eval of a core file",
                k.file, k.line
            ));
        }
    }
    println!(
        "core total: {passed}/{total} eval commands ({:.1}%), float cases: {fpassed}/{ftotal} ({:.1}%); {unchecked} passed evals expect a warn/info",
        pct(passed, total),
        pct(fpassed, ftotal)
    );
    println!(
        "annotations (enforced for float cases): of the core evals that state warn/info expectations, {apassed}/{atotal} float cases ({:.1}%) and {anpassed}/{antotal} native-histogram cases pass with them",
        pct(apassed, atotal)
    );
    reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
    println!("known failures by reason:");
    for (r, n) in &reasons {
        println!("    {n:4}  {r}");
    }
    // The scripts outside the core set are reported, not enforced.
    for file in LATER {
        if let Ok(text) = std::fs::read_to_string(dir.join(file)) {
            let r = run_script(&text);
            let (ap, at) = r.annotation_split(false);
            println!(
                "(later) {file}: {}; annotations, float cases: {ap}/{at}",
                split_line(&r)
            );
            if verbose {
                for f in &r.failures {
                    println!("    {f}");
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "conformance known-failures list out of date:\n{}",
        problems.join("\n")
    );
}
