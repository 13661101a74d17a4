//! Warning and info annotations, worded as Prometheus words them (without
//! the `(line:column)` position suffix Prometheus appends, as the parsed
//! expression carries no positions).

/// Annotations collected while evaluating one query, each message once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    /// `PromQL warning: ...` messages: the result may be wrong.
    pub warnings: Vec<String>,
    /// `PromQL info: ...` messages: the query may not mean what it says.
    pub infos: Vec<String>,
}

impl Annotations {
    /// Adds a warning (without its `PromQL warning: ` prefix).
    pub(crate) fn warn(&mut self, msg: String) {
        let msg = format!("PromQL warning: {msg}");
        if !self.warnings.contains(&msg) {
            self.warnings.push(msg);
        }
    }

    /// Adds the messages of `other` not already present.
    pub(crate) fn merge(&mut self, other: Annotations) {
        for w in other.warnings {
            if !self.warnings.contains(&w) {
                self.warnings.push(w);
            }
        }
        for i in other.infos {
            if !self.infos.contains(&i) {
                self.infos.push(i);
            }
        }
    }

    /// Adds an info (without its `PromQL info: ` prefix).
    pub(crate) fn info(&mut self, msg: String) {
        let msg = format!("PromQL info: {msg}");
        if !self.infos.contains(&msg) {
            self.infos.push(msg);
        }
    }
}

/// A float as Go's `%g` writes it for the annotation messages (`NaN`,
/// `+Inf`, `-0.1`, `1.01`).
pub(crate) fn go_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{v}")
    }
}

/// The info for `rate`/`increase` over a float series whose name does not
/// look like a counter's, or `None` when it does.
pub(crate) fn possible_non_counter(metric: &str) -> Option<String> {
    let counter_like = ["_total", "_sum", "_count", "_bucket"]
        .iter()
        .any(|s| metric.ends_with(s));
    (!metric.is_empty() && !counter_like).then(|| {
        format!(
            "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {metric:?}"
        )
    })
}

/// The warning for a quantile outside `[0, 1]`, or `None`.
pub(crate) fn invalid_quantile(q: f64) -> Option<String> {
    (q.is_nan() || !(0.0..=1.0).contains(&q)).then(|| {
        format!(
            "quantile value should be between 0 and 1, got {}",
            go_float(q)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        assert_eq!(possible_non_counter("x_total"), None);
        assert_eq!(
            possible_non_counter("x").as_deref(),
            Some("metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"x\"")
        );
        assert_eq!(invalid_quantile(0.5), None);
        assert_eq!(
            invalid_quantile(f64::NAN).as_deref(),
            Some("quantile value should be between 0 and 1, got NaN")
        );
        assert_eq!(go_float(1.01), "1.01");
        let mut a = Annotations::default();
        a.warn("w".into());
        a.warn("w".into());
        a.info("i".into());
        assert_eq!(a.warnings, vec!["PromQL warning: w"]);
        assert_eq!(a.infos, vec!["PromQL info: i"]);
    }
}
