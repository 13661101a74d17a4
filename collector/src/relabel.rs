//! Prometheus relabeling: `relabel_configs` (targets, before scraping),
//! `metric_relabel_configs` (scraped series) and `write_relabel_configs`
//! (series sent to one endpoint) share these rules.
//!
//! Semantics follow Prometheus's `model/relabel`: regexes are anchored at
//! both ends, the defaults are separator `;`, regex `(.*)`, replacement
//! `$1` and action `replace`; `$1`, `${1}`, `$name` expand as in Go (and
//! Rust's `regex`), and `$$` is a literal `$`. `hashmod` takes the MD5 of
//! the joined source values and uses its last 8 bytes, big-endian, modulo
//! `modulus`, exactly as Prometheus does.

mod md5;

use std::fmt;

use fleetwatch_model::{is_valid_label_name, Labels};
use regex::Regex;
use serde::de::{self, Deserializer};
use serde::Deserialize;

/// What a relabel rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RelabelAction {
    /// Writes the expanded replacement to `target_label` if the regex matches.
    #[default]
    Replace,
    /// Drops the series/target unless the regex matches.
    Keep,
    /// Drops the series/target if the regex matches.
    Drop,
    /// Drops unless the joined source values equal `target_label`'s value.
    KeepEqual,
    /// Drops if the joined source values equal `target_label`'s value.
    DropEqual,
    /// Sets `target_label` to MD5(joined values) mod `modulus`.
    HashMod,
    /// Copies labels whose names match to the expanded replacement name.
    LabelMap,
    /// Removes labels whose names match.
    LabelDrop,
    /// Removes labels whose names do not match.
    LabelKeep,
    /// Sets `target_label` to the lower-cased joined values.
    Lowercase,
    /// Sets `target_label` to the upper-cased joined values.
    Uppercase,
}

impl RelabelAction {
    /// The name used in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Replace => "replace",
            Self::Keep => "keep",
            Self::Drop => "drop",
            Self::KeepEqual => "keepequal",
            Self::DropEqual => "dropequal",
            Self::HashMod => "hashmod",
            Self::LabelMap => "labelmap",
            Self::LabelDrop => "labeldrop",
            Self::LabelKeep => "labelkeep",
            Self::Lowercase => "lowercase",
            Self::Uppercase => "uppercase",
        }
    }

    const ALL: [RelabelAction; 11] = [
        Self::Replace,
        Self::Keep,
        Self::Drop,
        Self::KeepEqual,
        Self::DropEqual,
        Self::HashMod,
        Self::LabelMap,
        Self::LabelDrop,
        Self::LabelKeep,
        Self::Lowercase,
        Self::Uppercase,
    ];
}

impl fmt::Display for RelabelAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RelabelAction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let lower = s.to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == lower)
            .ok_or_else(|| de::Error::custom(format!("unknown relabel action {s:?}")))
    }
}

/// The default regex, before anchoring.
pub const DEFAULT_REGEX: &str = "(.*)";
/// The default separator.
pub const DEFAULT_SEPARATOR: &str = ";";
/// The default replacement.
pub const DEFAULT_REPLACEMENT: &str = "$1";

/// One relabel rule as written in the config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator`.
    #[serde(default)]
    pub source_labels: Vec<String>,
    /// Put between joined values (default `;`).
    #[serde(default = "default_separator")]
    pub separator: String,
    /// The label written (may contain `$1`-style references for `replace`).
    #[serde(default)]
    pub target_label: String,
    /// The regex, anchored at both ends (default `(.*)`). A YAML scalar
    /// such as `true` or `1` is taken as its text, as Prometheus does.
    #[serde(default = "default_regex", deserialize_with = "scalar_string")]
    pub regex: String,
    /// The modulus of `hashmod`.
    #[serde(default)]
    pub modulus: u64,
    /// The replacement (default `$1`); any YAML scalar, as `regex`.
    #[serde(default = "default_replacement", deserialize_with = "scalar_string")]
    pub replacement: String,
    /// The action (default `replace`).
    #[serde(default)]
    pub action: RelabelAction,
}

impl Default for RelabelConfig {
    fn default() -> Self {
        Self {
            source_labels: Vec::new(),
            separator: default_separator(),
            target_label: String::new(),
            regex: default_regex(),
            modulus: 0,
            replacement: default_replacement(),
            action: RelabelAction::Replace,
        }
    }
}

/// A string, also from an unquoted YAML boolean or number (`regex: true`
/// in the classic `kubernetes-pods` job).
fn scalar_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct Scalar;
    impl de::Visitor<'_> for Scalar {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string (or a number or boolean)")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(Scalar)
}

fn default_separator() -> String {
    DEFAULT_SEPARATOR.to_string()
}
fn default_regex() -> String {
    DEFAULT_REGEX.to_string()
}
fn default_replacement() -> String {
    DEFAULT_REPLACEMENT.to_string()
}

/// Why a relabel rule is not valid (the same checks as Prometheus).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelabelError {
    /// The regex does not compile.
    #[error("invalid regex {regex:?}: {reason}")]
    Regex {
        /// The regex as written.
        regex: String,
        /// The compiler's message.
        reason: String,
    },
    /// A combination of fields the action does not allow.
    #[error("{0}")]
    Invalid(String),
}

/// A compiled relabel rule.
#[derive(Debug, Clone)]
pub struct RelabelRule {
    source_labels: Vec<String>,
    separator: String,
    target_label: String,
    regex: Regex,
    regex_is_default: bool,
    modulus: u64,
    replacement: String,
    action: RelabelAction,
}

/// A checked, compiled list of relabel rules, applied in order.
#[derive(Debug, Clone, Default)]
pub struct Relabeler {
    rules: Vec<RelabelRule>,
}

fn is_template_target(s: &str) -> bool {
    // Prometheus: ^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$
    let mut chars = s.chars().peekable();
    if s.is_empty() {
        return false;
    }
    let mut first = true;
    while let Some(c) = chars.next() {
        match c {
            '$' => match chars.peek() {
                Some('{') => {
                    chars.next();
                    let mut n = 0;
                    loop {
                        match chars.next() {
                            Some('}') if n > 0 => break,
                            Some(c) if c.is_ascii_alphanumeric() || c == '_' => n += 1,
                            _ => return false,
                        }
                    }
                }
                Some(c) if c.is_ascii_alphanumeric() || *c == '_' => {}
                _ => return false,
            },
            c if c.is_ascii_alphabetic() || c == '_' => {}
            c if c.is_ascii_digit() && !first => {}
            _ => return false,
        }
        first = false;
    }
    true
}

impl RelabelRule {
    /// Checks `cfg` as Prometheus does and compiles its regex.
    pub fn compile(cfg: &RelabelConfig) -> Result<Self, RelabelError> {
        use RelabelAction::*;
        let a = cfg.action;
        let bad = |msg: String| Err(RelabelError::Invalid(msg));
        if a == HashMod && cfg.modulus == 0 {
            return bad("relabel configuration for hashmod requires non-zero modulus".into());
        }
        let needs_target = matches!(
            a,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        );
        if needs_target && cfg.target_label.is_empty() {
            return bad(format!(
                "relabel configuration for {a} action requires 'target_label' value"
            ));
        }
        let t = &cfg.target_label;
        if a == Replace && !t.contains('$') && !is_valid_label_name(t) {
            return bad(format!("{t:?} is invalid 'target_label' for {a} action"));
        }
        if a == Replace && t.contains('$') && !is_template_target(t) {
            return bad(format!("{t:?} is invalid 'target_label' for {a} action"));
        }
        if matches!(a, Lowercase | Uppercase | KeepEqual | DropEqual | HashMod)
            && !is_valid_label_name(t)
        {
            return bad(format!("{t:?} is invalid 'target_label' for {a} action"));
        }
        if matches!(a, Lowercase | Uppercase | KeepEqual | DropEqual)
            && cfg.replacement != DEFAULT_REPLACEMENT
        {
            return bad(format!("'replacement' can not be set for {a} action"));
        }
        if a == LabelMap && !is_template_target(&cfg.replacement) {
            return bad(format!(
                "{:?} is invalid 'replacement' for {a} action",
                cfg.replacement
            ));
        }
        if matches!(a, KeepEqual | DropEqual)
            && (cfg.regex != DEFAULT_REGEX
                || cfg.modulus != 0
                || cfg.separator != DEFAULT_SEPARATOR
                || cfg.replacement != DEFAULT_REPLACEMENT)
        {
            return bad(format!(
                "{a} action requires only 'source_labels' and 'target_label', and no other fields"
            ));
        }
        if matches!(a, LabelDrop | LabelKeep)
            && (!cfg.source_labels.is_empty()
                || !cfg.target_label.is_empty()
                || cfg.modulus != 0
                || cfg.separator != DEFAULT_SEPARATOR
                || cfg.replacement != DEFAULT_REPLACEMENT)
        {
            return bad(format!(
                "{a} action requires only 'regex', and no other fields"
            ));
        }
        let regex =
            Regex::new(&format!("^(?:{})$", cfg.regex)).map_err(|e| RelabelError::Regex {
                regex: cfg.regex.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            source_labels: cfg.source_labels.clone(),
            separator: cfg.separator.clone(),
            target_label: cfg.target_label.clone(),
            regex,
            regex_is_default: cfg.regex == DEFAULT_REGEX,
            modulus: cfg.modulus,
            replacement: cfg.replacement.clone(),
            action: a,
        })
    }

    /// Applies this rule to `labels`; false means "drop".
    pub fn apply(&self, labels: &mut Labels) -> bool {
        use RelabelAction::*;
        let val = self
            .source_labels
            .iter()
            .map(|n| labels.get(n).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(&self.separator);
        match self.action {
            Drop => return !self.regex.is_match(&val),
            Keep => return self.regex.is_match(&val),
            DropEqual => return labels.get(&self.target_label).unwrap_or("") != val,
            KeepEqual => return labels.get(&self.target_label).unwrap_or("") == val,
            Replace => {
                if val.is_empty()
                    && self.regex_is_default
                    && !self.target_label.contains('$')
                    && !self.replacement.contains('$')
                {
                    labels.set(&self.target_label, &self.replacement);
                    return true;
                }
                let Some(caps) = self.regex.captures(&val) else {
                    return true;
                };
                let mut target = String::new();
                caps.expand(&self.target_label, &mut target);
                if !is_valid_label_name(&target) {
                    return true;
                }
                let mut res = String::new();
                caps.expand(&self.replacement, &mut res);
                // `set` with an empty value removes the label.
                labels.set(&target, &res);
            }
            Lowercase => labels.set(&self.target_label, &val.to_lowercase()),
            Uppercase => labels.set(&self.target_label, &val.to_uppercase()),
            HashMod => {
                let sum = md5::md5(val.as_bytes());
                let mut last = [0u8; 8];
                last.copy_from_slice(&sum[8..]);
                let m = u64::from_be_bytes(last) % self.modulus;
                labels.set(&self.target_label, &m.to_string());
            }
            LabelMap => {
                let snapshot: Vec<(String, String)> = labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect();
                for (name, value) in snapshot {
                    if self.regex.is_match(&name) {
                        let new = self.regex.replace_all(&name, self.replacement.as_str());
                        if is_valid_label_name(&new) {
                            labels.set(&new, &value);
                        }
                    }
                }
            }
            LabelDrop | LabelKeep => {
                let keep_matching = self.action == LabelKeep;
                let remove: Vec<String> = labels
                    .iter()
                    .filter(|l| self.regex.is_match(&l.name) != keep_matching)
                    .map(|l| l.name.clone())
                    .collect();
                for n in remove {
                    labels.remove(&n);
                }
            }
        }
        true
    }
}

impl Relabeler {
    /// Compiles `cfgs`; errors name the index of the bad rule.
    pub fn new(cfgs: &[RelabelConfig]) -> Result<Self, (usize, RelabelError)> {
        let rules = cfgs
            .iter()
            .enumerate()
            .map(|(i, c)| RelabelRule::compile(c).map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { rules })
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Applies every rule in order; `None` when a rule drops the set.
    pub fn process(&self, mut labels: Labels) -> Option<Labels> {
        for r in &self.rules {
            if !r.apply(&mut labels) {
                return None;
            }
        }
        Some(labels)
    }
}

#[cfg(test)]
mod tests;
