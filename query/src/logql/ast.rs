//! The LogQL syntax tree (the subset fleetwatch evaluates).

use fleetwatch_model::Matcher;
use regex::Regex;

/// A parsed query: a log query (returns streams) or a metric query.
#[derive(Debug, Clone)]
pub enum Expr {
    /// `{selector} | stages...`
    Log(LogExpr),
    /// `count_over_time(...)`, `sum by (x) (...)`, ...
    Metric(MetricExpr),
}

/// A stream selector with its pipeline.
#[derive(Debug, Clone)]
pub struct LogExpr {
    /// The stream selector's matchers.
    pub matchers: Vec<Matcher>,
    /// Pipeline stages in order.
    pub stages: Vec<Stage>,
}

impl LogExpr {
    /// The literal `|=` filters that apply to the stored line (those before
    /// any `line_format`), usable to prefilter in the index.
    pub fn literal_contains(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.stages {
            match s {
                Stage::LineFilter(f) if f.op == LineOp::Contains && !f.value.is_empty() => {
                    out.push(f.value.clone());
                }
                Stage::LineFormat(_) => break,
                _ => {}
            }
        }
        out
    }

    /// True when every stage is a literal `|=` filter (so the index and
    /// fast fields answer alone).
    pub fn only_literal_filters(&self) -> bool {
        self.stages
            .iter()
            .all(|s| matches!(s, Stage::LineFilter(f) if f.op == LineOp::Contains))
    }
}

/// Line filter operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineOp {
    /// `|=`
    Contains,
    /// `!=`
    NotContains,
    /// `|~`
    Regex,
    /// `!~`
    NotRegex,
}

/// One line filter.
#[derive(Debug, Clone)]
pub struct LineFilter {
    /// The operator.
    pub op: LineOp,
    /// The string or pattern.
    pub value: String,
    /// The compiled pattern (regex operators; unanchored as in Loki).
    pub regex: Option<Regex>,
}

/// A pipeline stage.
#[derive(Debug, Clone)]
pub enum Stage {
    /// A line filter.
    LineFilter(LineFilter),
    /// `| json`
    Json,
    /// `| logfmt`
    Logfmt,
    /// `| label <op> value [and|or ...]`
    LabelFilter(LabelFilter),
    /// `| line_format "template"`
    LineFormat(Vec<TemplatePart>),
}

/// A piece of a `line_format` template.
#[derive(Debug, Clone, PartialEq)]
pub enum TemplatePart {
    /// Literal text.
    Text(String),
    /// `{{.name}}`
    Label(String),
}

/// Numeric comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

/// A label filter expression.
#[derive(Debug, Clone)]
pub enum LabelFilter {
    /// `name = "v"`, `name =~ "re"`, ... (missing labels match as "").
    String(Matcher),
    /// `name > 10`: the label's value parsed as a number (or a duration in
    /// seconds); values that do not parse never match.
    Number {
        /// The label.
        name: String,
        /// The comparison.
        op: CmpOp,
        /// The right-hand side.
        value: f64,
    },
    /// Both.
    And(Box<LabelFilter>, Box<LabelFilter>),
    /// Either.
    Or(Box<LabelFilter>, Box<LabelFilter>),
}

/// Range aggregation functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeFunc {
    /// Entries in the range.
    CountOverTime,
    /// Entries per second.
    Rate,
    /// Line bytes in the range.
    BytesOverTime,
    /// Line bytes per second.
    BytesRate,
}

/// Vector aggregation operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggOp {
    /// `sum`
    Sum,
    /// `count`
    Count,
    /// `avg`
    Avg,
    /// `max`
    Max,
    /// `min`
    Min,
    /// `topk`
    Topk,
    /// `bottomk`
    Bottomk,
}

/// `by (...)` or `without (...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping {
    /// True for `without`.
    pub without: bool,
    /// The label names.
    pub labels: Vec<String>,
}

/// A metric query.
#[derive(Debug, Clone)]
pub enum MetricExpr {
    /// `func(log [range])`
    Range {
        /// The function.
        func: RangeFunc,
        /// The log expression.
        log: LogExpr,
        /// The range in nanoseconds.
        range_ns: i64,
        /// `offset` in nanoseconds.
        offset_ns: i64,
    },
    /// `op [by/without (...)] ([k,] inner)`
    Aggregate {
        /// The operator.
        op: AggOp,
        /// `k` of topk/bottomk.
        param: Option<f64>,
        /// Grouping (none: everything into one series).
        grouping: Option<Grouping>,
        /// The aggregated expression.
        inner: Box<MetricExpr>,
    },
}
