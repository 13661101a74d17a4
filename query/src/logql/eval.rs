//! Evaluating a parsed LogQL query over the log store.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fleetwatch_storage::logs::{Direction, LogStore, SelectStats, Selection};

use super::ast::{AggOp, Expr, Grouping, LogExpr, MetricExpr, RangeFunc};
use super::pipeline::{self, LabelMap};
use super::{parse, LogqlError};

/// Most points per series a range query may produce (Loki's limit).
const MAX_POINTS: i64 = 11_000;

/// Parameters of a query.
#[derive(Debug, Clone, Copy)]
pub struct LogqlParams {
    /// Start, Unix ns (inclusive).
    pub start_ns: i64,
    /// End, Unix ns (inclusive for metric steps; log entries `< end`, as Loki).
    pub end_ns: i64,
    /// Step of metric queries, ns.
    pub step_ns: i64,
    /// Order of log entries.
    pub direction: Direction,
    /// Most log entries returned.
    pub limit: usize,
}

/// Entries of one result stream, in the query's direction.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntries {
    /// The stream's labels (after parsers).
    pub labels: LabelMap,
    /// `(ts ns, line)`.
    pub entries: Vec<(i64, String)>,
}

/// One metric series.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Labels.
    pub labels: LabelMap,
    /// `(ts ns, value)` in time order.
    pub points: Vec<(i64, f64)>,
}

/// One instant-vector sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Labels.
    pub labels: LabelMap,
    /// Time, ns.
    pub ts_ns: i64,
    /// Value.
    pub value: f64,
}

/// A query's result and the work it took.
#[derive(Debug, Clone)]
pub enum QueryOutput {
    /// A log query's streams.
    Streams(Vec<StreamEntries>, SelectStats, Duration),
    /// A metric range query's series.
    Matrix(Vec<Series>, SelectStats, Duration),
    /// A metric instant query's samples.
    Vector(Vec<Sample>, SelectStats, Duration),
}

impl QueryOutput {
    /// The store work and the wall time.
    pub fn stats(&self) -> (SelectStats, Duration) {
        match self {
            Self::Streams(_, s, d) | Self::Matrix(_, s, d) | Self::Vector(_, s, d) => (*s, *d),
        }
    }
}

/// Runs a range query: a log query returns streams, a metric query a matrix.
pub fn query_range(
    store: &LogStore,
    query: &str,
    p: &LogqlParams,
) -> Result<QueryOutput, LogqlError> {
    let started = Instant::now();
    if p.end_ns < p.start_ns {
        return Err(LogqlError::BadData {
            message: "the end timestamp must not be before the start time".into(),
        });
    }
    match parse(query)? {
        Expr::Log(l) => {
            let (streams, stats) = eval_log(store, &l, p)?;
            Ok(QueryOutput::Streams(streams, stats, started.elapsed()))
        }
        Expr::Metric(m) => {
            if p.step_ns <= 0 {
                return Err(LogqlError::BadData {
                    message: "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
                });
            }
            if (p.end_ns - p.start_ns) / p.step_ns >= MAX_POINTS {
                return Err(LogqlError::BadData {
                    message: "exceeded maximum resolution of 11,000 points per timeseries. Try increasing the value of the step parameter".into(),
                });
            }
            let steps: Vec<i64> = (0..)
                .map(|i| p.start_ns + i * p.step_ns)
                .take_while(|t| *t <= p.end_ns)
                .collect();
            let (series, stats) = eval_metric(store, &m, &steps)?;
            let out = series
                .into_iter()
                .filter_map(|(labels, vals)| {
                    let points: Vec<(i64, f64)> = steps
                        .iter()
                        .zip(vals)
                        .filter_map(|(t, v)| v.map(|v| (*t, v)))
                        .collect();
                    (!points.is_empty()).then_some(Series { labels, points })
                })
                .collect();
            Ok(QueryOutput::Matrix(out, stats, started.elapsed()))
        }
    }
}

/// Runs an instant query (metric queries only, as Loki).
pub fn query_instant(
    store: &LogStore,
    query: &str,
    time_ns: i64,
) -> Result<QueryOutput, LogqlError> {
    let started = Instant::now();
    match parse(query)? {
        Expr::Log(_) => Err(LogqlError::BadData {
            message: "log queries are not supported as an instant query type, please change your query to a range query type".into(),
        }),
        Expr::Metric(m) => {
            let (series, stats) = eval_metric(store, &m, &[time_ns])?;
            let out = series
                .into_iter()
                .filter_map(|(labels, vals)| {
                    vals.first().copied().flatten().map(|value| Sample {
                        labels,
                        ts_ns: time_ns,
                        value,
                    })
                })
                .collect();
            Ok(QueryOutput::Vector(out, stats, started.elapsed()))
        }
    }
}

fn stream_labels(labels: &fleetwatch_model::Labels) -> LabelMap {
    labels
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}

fn eval_log(
    store: &LogStore,
    l: &LogExpr,
    p: &LogqlParams,
) -> Result<(Vec<StreamEntries>, SelectStats), LogqlError> {
    let contains = l.literal_contains();
    let sel = Selection {
        matchers: &l.matchers,
        contains: &contains,
        start_ns: p.start_ns,
        end_ns: p.end_ns,
    };
    let mut out: BTreeMap<LabelMap, Vec<(i64, String)>> = BTreeMap::new();
    let mut n = 0usize;
    let limit = p.limit;
    let stats = store.select(&sel, p.direction, |stream, ts, line, _meta| {
        if n >= limit {
            return false;
        }
        if let Some((labels, line)) = pipeline::run(l, &stream.labels, line) {
            let labels = labels.unwrap_or_else(|| stream_labels(&stream.labels));
            out.entry(labels).or_default().push((ts, line.into_owned()));
            n += 1;
        }
        n < limit
    })?;
    Ok((
        out.into_iter()
            .map(|(labels, entries)| StreamEntries { labels, entries })
            .collect(),
        stats,
    ))
}

type SeriesSet = Vec<(LabelMap, Vec<Option<f64>>)>;

fn eval_metric(
    store: &LogStore,
    m: &MetricExpr,
    steps: &[i64],
) -> Result<(SeriesSet, SelectStats), LogqlError> {
    match m {
        MetricExpr::Range {
            func,
            log,
            range_ns,
            offset_ns,
        } => eval_range(store, *func, log, *range_ns, *offset_ns, steps),
        MetricExpr::Aggregate {
            op,
            param,
            grouping,
            inner,
        } => {
            let (series, stats) = eval_metric(store, inner, steps)?;
            Ok((
                aggregate(*op, *param, grouping.as_ref(), series, steps.len()),
                stats,
            ))
        }
    }
}

fn eval_range(
    store: &LogStore,
    func: RangeFunc,
    log: &LogExpr,
    range_ns: i64,
    offset_ns: i64,
    steps: &[i64],
) -> Result<(SeriesSet, SelectStats), LogqlError> {
    let (Some(first), Some(last)) = (steps.first(), steps.last()) else {
        return Ok((Vec::new(), SelectStats::default()));
    };
    // Entries in (t - offset - range, t - offset] for some step t.
    let start_ns = first
        .saturating_sub(offset_ns)
        .saturating_sub(range_ns)
        .saturating_add(1);
    let end_ns = last.saturating_sub(offset_ns).saturating_add(1);
    let contains = log.literal_contains();
    let sel = Selection {
        matchers: &log.matchers,
        contains: &contains,
        start_ns,
        end_ns,
    };
    let mut by_series: BTreeMap<LabelMap, Vec<(i64, u64)>> = BTreeMap::new();
    let mut by_stream: std::collections::HashMap<u64, (LabelMap, Vec<(i64, u64)>)> =
        std::collections::HashMap::new();
    let stats = if log.only_literal_filters() {
        store.select_meta(&sel, |stream, ts, len| {
            by_stream
                .entry(stream.id)
                .or_insert_with(|| (stream_labels(&stream.labels), Vec::new()))
                .1
                .push((ts, len));
        })?
    } else {
        store.select(&sel, Direction::Forward, |stream, ts, line, _| {
            if let Some((labels, _)) = pipeline::run(log, &stream.labels, line) {
                let labels = labels.unwrap_or_else(|| stream_labels(&stream.labels));
                by_series
                    .entry(labels)
                    .or_default()
                    .push((ts, line.len() as u64));
            }
            true
        })?
    };
    for (_, (labels, pts)) in by_stream {
        by_series.entry(labels).or_default().extend(pts);
    }
    let range_s = range_ns as f64 / 1e9;
    let mut out = Vec::with_capacity(by_series.len());
    for (labels, mut pts) in by_series {
        pts.sort_unstable_by_key(|p| p.0);
        let mut vals = Vec::with_capacity(steps.len());
        let (mut lo, mut hi) = (0usize, 0usize);
        let (mut count, mut bytes) = (0u64, 0u64);
        let mut any = false;
        for t in steps {
            let t_end = t.saturating_sub(offset_ns);
            let t_start = t_end.saturating_sub(range_ns);
            while hi < pts.len() && pts[hi].0 <= t_end {
                count += 1;
                bytes += pts[hi].1;
                hi += 1;
            }
            while lo < hi && pts[lo].0 <= t_start {
                count -= 1;
                bytes -= pts[lo].1;
                lo += 1;
            }
            if count == 0 {
                vals.push(None);
                continue;
            }
            any = true;
            vals.push(Some(match func {
                RangeFunc::CountOverTime => count as f64,
                RangeFunc::Rate => count as f64 / range_s,
                RangeFunc::BytesOverTime => bytes as f64,
                RangeFunc::BytesRate => bytes as f64 / range_s,
            }));
        }
        if any {
            out.push((labels, vals));
        }
    }
    Ok((out, stats))
}

fn group_key(labels: &LabelMap, g: Option<&Grouping>) -> LabelMap {
    match g {
        None => LabelMap::new(),
        Some(g) if g.without => labels
            .iter()
            .filter(|(k, _)| !g.labels.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Some(g) => labels
            .iter()
            .filter(|(k, _)| g.labels.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

fn aggregate(
    op: AggOp,
    param: Option<f64>,
    g: Option<&Grouping>,
    series: SeriesSet,
    n: usize,
) -> SeriesSet {
    let mut groups: BTreeMap<LabelMap, Vec<usize>> = BTreeMap::new();
    for (i, (labels, _)) in series.iter().enumerate() {
        groups.entry(group_key(labels, g)).or_default().push(i);
    }
    if matches!(op, AggOp::Topk | AggOp::Bottomk) {
        let k = param.unwrap_or(1.0).max(1.0) as usize;
        let mut keep: Vec<Vec<Option<f64>>> = series.iter().map(|_| vec![None; n]).collect();
        for members in groups.values() {
            // `step` indexes both the series' values and `keep`.
            #[allow(clippy::needless_range_loop)]
            for step in 0..n {
                let mut vals: Vec<(usize, f64)> = members
                    .iter()
                    .filter_map(|&i| series[i].1[step].map(|v| (i, v)))
                    .collect();
                vals.sort_by(|a, b| {
                    let o = a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal);
                    if op == AggOp::Topk {
                        o.reverse()
                    } else {
                        o
                    }
                });
                for (i, v) in vals.into_iter().take(k) {
                    keep[i][step] = Some(v);
                }
            }
        }
        return series
            .into_iter()
            .zip(keep)
            .filter(|(_, vals)| vals.iter().any(Option::is_some))
            .map(|((labels, _), vals)| (labels, vals))
            .collect();
    }
    groups
        .into_iter()
        .map(|(key, members)| {
            let vals = (0..n)
                .map(|step| {
                    let mut it = members.iter().filter_map(|&i| series[i].1[step]);
                    let first = it.next()?;
                    let (mut sum, mut cnt, mut min, mut max) = (first, 1.0, first, first);
                    for v in it {
                        sum += v;
                        cnt += 1.0;
                        min = min.min(v);
                        max = max.max(v);
                    }
                    Some(match op {
                        AggOp::Sum => sum,
                        AggOp::Count => cnt,
                        AggOp::Avg => sum / cnt,
                        AggOp::Max => max,
                        AggOp::Min => min,
                        AggOp::Topk | AggOp::Bottomk => sum,
                    })
                })
                .collect();
            (key, vals)
        })
        .collect()
}

#[cfg(test)]
mod tests;
