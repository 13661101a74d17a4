//! Validation of rule files, as `promtool check rules` does it.

use std::collections::HashSet;

use fleetwatch_model::duration::parse_duration_ms;
use fleetwatch_model::{is_valid_label_name, is_valid_metric_name};

use crate::template::Template;
use crate::{RuleFile, RulesError};

/// Checks every group and rule: unique group names, exactly one of
/// `alert`/`record`, a PromQL expression that parses, valid durations,
/// label names and record names, alert label and annotation templates
/// that parse, and no `for`/annotations on recording rules.
pub fn validate(file: &RuleFile, origin: &str) -> Result<(), RulesError> {
    let mut names = HashSet::new();
    for group in &file.groups {
        let err = |rule: String, reason: String| RulesError::Invalid {
            path: origin.to_string(),
            group: group.name.clone(),
            rule,
            reason,
        };
        if group.name.is_empty() {
            return Err(err("-".into(), "group name must not be empty".into()));
        }
        if !names.insert(group.name.as_str()) {
            return Err(err("-".into(), "group name is used more than once".into()));
        }
        if let Some(i) = &group.interval {
            parse_duration_ms(i).map_err(|e| err("-".into(), format!("interval: {e}")))?;
        }
        for (i, rule) in group.rules.iter().enumerate() {
            let id = if rule.name().is_empty() {
                format!("#{}", i + 1)
            } else {
                rule.name().to_string()
            };
            match (&rule.alert, &rule.record) {
                (Some(_), Some(_)) => {
                    return Err(err(
                        id,
                        "only one of 'alert' and 'record' may be set".into(),
                    ))
                }
                (None, None) => {
                    return Err(err(id, "one of 'alert' or 'record' must be set".into()))
                }
                (None, Some(record)) => {
                    if !is_valid_metric_name(record) {
                        return Err(err(id, format!("invalid recording rule name {record:?}")));
                    }
                    if rule.for_.is_some() || rule.keep_firing_for.is_some() {
                        return Err(err(
                            id,
                            "'for' and 'keep_firing_for' are only for alerting rules".into(),
                        ));
                    }
                    if !rule.annotations.is_empty() {
                        return Err(err(id, "annotations are only for alerting rules".into()));
                    }
                }
                (Some(alert), None) => {
                    if alert.is_empty() {
                        return Err(err(id, "alert name must not be empty".into()));
                    }
                }
            }
            if rule.expr.trim().is_empty() {
                return Err(err(id, "field 'expr' must be set".into()));
            }
            promql_parser::parser::parse(&rule.expr)
                .map_err(|e| err(id.clone(), format!("could not parse expression: {e}")))?;
            for (what, d) in [
                ("for", &rule.for_),
                ("keep_firing_for", &rule.keep_firing_for),
            ] {
                if let Some(d) = d {
                    parse_duration_ms(d).map_err(|e| err(id.clone(), format!("{what}: {e}")))?;
                }
            }
            for name in rule.labels.keys().chain(group.labels.keys()) {
                if !is_valid_label_name(name) {
                    return Err(err(id, format!("invalid label name {name:?}")));
                }
            }
            for name in rule.annotations.keys() {
                if !is_valid_label_name(name) {
                    return Err(err(id, format!("invalid annotation name {name:?}")));
                }
            }
            if rule.alert.is_some() {
                for (name, text) in rule.labels.iter().chain(rule.annotations.iter()) {
                    if let Err(e) = Template::parse(name, text) {
                        return Err(err(id, format!("{name}: {e}")));
                    }
                }
            }
        }
    }
    Ok(())
}
