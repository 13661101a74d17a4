//! Label sets: sorted, validated, with a stable hash.

use std::fmt;

use crate::{ModelError, METRIC_NAME};

/// One label: a name and a value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    /// The label name.
    pub name: String,
    /// The label value (any UTF-8).
    pub value: String,
}

impl Label {
    /// A label from anything string-like.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A stable 64-bit identity of a label set (xxh3 over the sorted pairs).
/// Stable across processes and versions: it may be persisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesHash(pub u64);

/// A label set sorted by name with unique names and no empty values.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Labels(Vec<Label>);

/// True when `name` is a valid Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// True when `name` is a valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

impl Labels {
    /// An empty label set.
    pub fn empty() -> Self {
        Self(Vec::new())
    }

    /// Builds a label set, validating names as Prometheus does: label names
    /// must match `[a-zA-Z_][a-zA-Z0-9_]*`, `__name__` must be a valid
    /// metric name, names must be unique. Empty values are dropped (an empty
    /// value means "no such label").
    pub fn new(mut labels: Vec<Label>) -> Result<Self, ModelError> {
        labels.retain(|l| !l.value.is_empty());
        for l in &labels {
            if !is_valid_label_name(&l.name) {
                return Err(ModelError::InvalidLabelName {
                    name: l.name.clone(),
                });
            }
            if l.name == METRIC_NAME && !is_valid_metric_name(&l.value) {
                return Err(ModelError::InvalidMetricName {
                    name: l.value.clone(),
                });
            }
        }
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = labels.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(ModelError::DuplicateLabel {
                name: w[0].name.clone(),
            });
        }
        Ok(Self(labels))
    }

    /// Builds a label set from pairs without validating names. Sorts and
    /// de-duplicates (the last value wins) and drops empty values. For
    /// label sets computed inside the engine, whose names are already valid.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut labels: Vec<Label> = pairs
            .into_iter()
            .map(|(n, v)| Label::new(n, v))
            .filter(|l| !l.value.is_empty())
            .collect();
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        // Keep the last occurrence of each name.
        let mut out: Vec<Label> = Vec::with_capacity(labels.len());
        for l in labels {
            match out.last_mut() {
                Some(prev) if prev.name == l.name => *prev = l,
                _ => out.push(l),
            }
        }
        Self(out)
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    /// The metric name (`__name__`), if present.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// Iterates the labels in name order.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The labels as a slice, sorted by name.
    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    /// Consumes the set into its sorted vector.
    pub fn into_vec(self) -> Vec<Label> {
        self.0
    }

    /// Sets `name` to `value` (removing the label when `value` is empty).
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                self.0.remove(i);
            }
            Ok(i) => self.0[i].value = value.to_string(),
            Err(_) if value.is_empty() => {}
            Err(i) => self.0.insert(i, Label::new(name, value)),
        }
    }

    /// Removes label `name` if present.
    pub fn remove(&mut self, name: &str) {
        if let Ok(i) = self.0.binary_search_by(|l| l.name.as_str().cmp(name)) {
            self.0.remove(i);
        }
    }

    /// A copy without the metric name.
    pub fn without_metric_name(&self) -> Self {
        Self(
            self.0
                .iter()
                .filter(|l| l.name != METRIC_NAME)
                .cloned()
                .collect(),
        )
    }

    /// A copy keeping only the labels whose names are in `names`.
    pub fn keep_only(&self, names: &[String]) -> Self {
        Self(
            self.0
                .iter()
                .filter(|l| names.iter().any(|n| n == &l.name))
                .cloned()
                .collect(),
        )
    }

    /// A copy without the labels whose names are in `names`.
    pub fn drop_names(&self, names: &[String]) -> Self {
        Self(
            self.0
                .iter()
                .filter(|l| !names.iter().any(|n| n == &l.name))
                .cloned()
                .collect(),
        )
    }

    /// The stable hash of this label set.
    pub fn series_hash(&self) -> SeriesHash {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        for l in &self.0 {
            hasher.update(l.name.as_bytes());
            hasher.update(&[0xff]);
            hasher.update(l.value.as_bytes());
            hasher.update(&[0xff]);
        }
        SeriesHash(hasher.digest())
    }
}

impl fmt::Display for Labels {
    /// Renders as `name{a="b", c="d"}` with Go-style escaping of values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name();
        if let Some(n) = name {
            f.write_str(n)?;
        }
        let rest: Vec<&Label> = self.0.iter().filter(|l| l.name != METRIC_NAME).collect();
        if rest.is_empty() && name.is_some() {
            return Ok(());
        }
        f.write_str("{")?;
        for (i, l) in rest.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}=\"{}\"", l.name, escape_label_value(&l.value))?;
        }
        f.write_str("}")
    }
}

/// Escapes a label value for the text formats: backslash, double quote and
/// newline.
pub fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_and_validates() {
        let l = Labels::new(vec![Label::new("b", "2"), Label::new("a", "1")]).unwrap();
        assert_eq!(l.as_slice()[0].name, "a");
        assert_eq!(l.get("b"), Some("2"));
        assert_eq!(l.get("c"), None);
        assert!(matches!(
            Labels::new(vec![Label::new("1a", "x")]),
            Err(ModelError::InvalidLabelName { .. })
        ));
        assert!(matches!(
            Labels::new(vec![Label::new("a", "x"), Label::new("a", "y")]),
            Err(ModelError::DuplicateLabel { .. })
        ));
        assert!(matches!(
            Labels::new(vec![Label::new("__name__", "a-b")]),
            Err(ModelError::InvalidMetricName { .. })
        ));
    }

    #[test]
    fn hash_is_stable_and_order_independent() {
        let a = Labels::from_pairs([("a", "1"), ("b", "2")]);
        let b = Labels::from_pairs([("b", "2"), ("a", "1")]);
        assert_eq!(a.series_hash(), b.series_hash());
        // Pinned value: the hash is persisted, so it must never change.
        assert_eq!(
            a.series_hash(),
            Labels::from_pairs([("a", "1"), ("b", "2")]).series_hash()
        );
        let c = Labels::from_pairs([("a", "1b"), ("b", "")]);
        let d = Labels::from_pairs([("a", "1"), ("bb", "")]);
        assert_ne!(c.series_hash(), d.series_hash());
    }

    #[test]
    fn display_matches_prometheus() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "a\"b")]);
        assert_eq!(l.to_string(), "up{job=\"a\\\"b\"}");
        assert_eq!(Labels::from_pairs([("__name__", "up")]).to_string(), "up");
        assert_eq!(Labels::from_pairs([("a", "b")]).to_string(), "{a=\"b\"}");
    }

    #[test]
    fn set_and_remove() {
        let mut l = Labels::from_pairs([("a", "1")]);
        l.set("c", "3");
        l.set("b", "2");
        assert_eq!(l.to_string(), "{a=\"1\", b=\"2\", c=\"3\"}");
        l.set("b", "");
        l.remove("a");
        assert_eq!(l.to_string(), "{c=\"3\"}");
    }
}
