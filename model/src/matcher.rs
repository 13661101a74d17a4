//! Label matchers (`=`, `!=`, `=~`, `!~`) with fully anchored regexes.

use regex::Regex;

use crate::{Labels, ModelError};

/// The four Prometheus matcher operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (anchored)
    RegexMatch,
    /// `!~` (anchored)
    RegexNoMatch,
}

/// One label matcher. A missing label matches as the empty string, as in
/// Prometheus.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The operator.
    pub op: MatchOp,
    /// The value or pattern as written.
    pub value: String,
    regex: Option<Pattern>,
}

/// A compiled regex pattern. Patterns that are plain literals or
/// alternations of literals (`prod-east`, `a|b|c`: most dashboard
/// variables) and `.*`/`.+` are matched without a regex engine, as
/// Prometheus's fast regex matcher does; compiling a regex cost more than
/// the rest of a small query.
#[derive(Debug, Clone)]
enum Pattern {
    /// One of these strings, exactly.
    Literals(Vec<String>),
    /// Anything (`.*`).
    Any,
    /// Anything but the empty string (`.+`).
    NonEmpty,
    /// A compiled, anchored regex.
    Regex(Regex),
}

impl Pattern {
    fn compile(pattern: &str) -> Result<Self, regex::Error> {
        match pattern {
            ".*" => return Ok(Self::Any),
            ".+" => return Ok(Self::NonEmpty),
            _ => {}
        }
        // Characters with a meaning outside a character class (`-`, `&`
        // and `~` only have one inside, `#` only in verbose mode).
        const META: &[char] = &[
            '\\', '.', '+', '*', '?', '(', ')', '|', '[', ']', '{', '}', '^', '$',
        ];
        let literal = |p: &str| !p.contains(META);
        if pattern.split('|').all(literal) {
            return Ok(Self::Literals(
                pattern.split('|').map(str::to_string).collect(),
            ));
        }
        Regex::new(&format!("^(?s:{pattern})$")).map(Self::Regex)
    }

    fn is_match(&self, value: &str) -> bool {
        match self {
            Self::Literals(l) => l.iter().any(|x| x == value),
            Self::Any => true,
            Self::NonEmpty => !value.is_empty(),
            Self::Regex(r) => r.is_match(value),
        }
    }
}

impl Matcher {
    /// Builds a matcher; regex patterns are anchored (`^(?:...)$`).
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, ModelError> {
        let value = value.into();
        let regex = match op {
            MatchOp::RegexMatch | MatchOp::RegexNoMatch => Some(Pattern::compile(&value).map_err(
                |e| ModelError::InvalidRegex {
                    pattern: value.clone(),
                    reason: e.to_string(),
                },
            )?),
            _ => None,
        };
        Ok(Self {
            name: name.into(),
            op,
            value,
            regex,
        })
    }

    /// An equality matcher (never fails).
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            regex: None,
        }
    }

    /// True when `value` (the empty string for a missing label) matches.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::RegexMatch => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::RegexNoMatch => !self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// True when the matcher accepts the empty string (and so series
    /// lacking the label).
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// True when `labels` satisfy this matcher.
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }
}

/// True when `labels` satisfy every matcher in `matchers`.
pub fn matches_all(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches_labels(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_operators() {
        let l = Labels::from_pairs([("job", "kubevirt"), ("cluster", "prod-east")]);
        assert!(Matcher::equal("job", "kubevirt").matches_labels(&l));
        assert!(Matcher::new(MatchOp::NotEqual, "job", "x")
            .unwrap()
            .matches_labels(&l));
        assert!(Matcher::new(MatchOp::RegexMatch, "cluster", "prod-.*")
            .unwrap()
            .matches_labels(&l));
        // Anchored: a partial match does not count.
        assert!(!Matcher::new(MatchOp::RegexMatch, "cluster", "prod")
            .unwrap()
            .matches_labels(&l));
        assert!(Matcher::new(MatchOp::RegexNoMatch, "cluster", "staging")
            .unwrap()
            .matches_labels(&l));
        // Missing label matches as empty.
        assert!(Matcher::equal("absent", "").matches_labels(&l));
        assert!(Matcher::new(MatchOp::RegexMatch, "absent", ".*")
            .unwrap()
            .matches_empty());
        assert!(Matcher::new(MatchOp::RegexMatch, "a", "(").is_err());
    }

    #[test]
    fn literal_patterns_match_as_the_regex_would() {
        let values = [
            "",
            "prod-east",
            "prod-west",
            "staging",
            "prod",
            "a|b",
            "x.y",
            "xzy",
        ];
        for pattern in [
            "prod-east",
            "prod-east|staging",
            "prod-.*",
            ".*",
            ".+",
            "",
            "a|",
            "x.y",
            "x\\.y",
            "prod-(east|west)",
            "st[a-z]+",
        ] {
            let fast = Pattern::compile(pattern).expect("compiles");
            let slow = Regex::new(&format!("^(?s:{pattern})$")).expect("compiles");
            for v in values {
                assert_eq!(fast.is_match(v), slow.is_match(v), "{pattern:?} on {v:?}");
            }
        }
        assert!(matches!(
            Pattern::compile("a|b|c"),
            Ok(Pattern::Literals(_))
        ));
        assert!(matches!(
            Pattern::compile("cluster-2"),
            Ok(Pattern::Literals(_))
        ));
        assert!(matches!(Pattern::compile("a.b"), Ok(Pattern::Regex(_))));
    }
}
