//! Rule files for fleetwatch: Prometheus rule files and `PrometheusRule`
//! CRD YAML, loaded and validated (`fleetwatch rules check`); their
//! evaluation (groups on an interval, recording rules written back,
//! alerting rules with Prometheus's state machine and Go templates), alert
//! delivery (Alertmanager v2 and Alertmanager-style webhooks) and
//! promtool's rule unit tests (`fleetwatch rules test`).

pub mod alerting;
pub mod context;
pub mod group;
pub mod manager;
pub mod notify;
pub mod recording;
pub mod template;
pub mod unittest;
mod validate;

pub use alerting::{Alert, AlertState, AlertingRule, OutgoingAlert};
pub use context::{EvalContext, SampleAppender};
pub use group::{Group, RuleEntry, RuleHealth, RuleKind};
pub use manager::{expand_rule_files, load_groups, ManagerOptions, RuleManager, UpdateSummary};

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

pub use validate::validate;

/// Errors loading or validating rule files.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML does not parse or does not have the rule-file shape.
    #[error("{path}{}: {reason}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Yaml {
        /// The file.
        path: String,
        /// The line, where the YAML parser knows it.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
    },
    /// A rule or group is invalid.
    #[error("{path}: group {group:?}, rule {rule}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// The group name.
        group: String,
        /// The rule's name (alert or record) or its index.
        rule: String,
        /// What is wrong (a PromQL parse error included).
        reason: String,
    },
}

/// A rule file: `groups:` at the top (Prometheus), or under `spec:` in a
/// `PrometheusRule` custom resource.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// The rule groups.
    #[serde(default)]
    pub groups: Vec<RuleGroup>,
}

/// One rule group.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleGroup {
    /// Group name, unique within the file.
    pub name: String,
    /// Evaluation interval (Prometheus duration); the global default when absent.
    #[serde(default)]
    pub interval: Option<String>,
    /// Most alerts or series one evaluation may produce (0: no limit).
    #[serde(default)]
    pub limit: Option<u64>,
    /// Labels added to every rule's output in the group.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Rules, evaluated in order.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// An alerting or recording rule.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Alert name (alerting rule).
    #[serde(default)]
    pub alert: Option<String>,
    /// Series name (recording rule).
    #[serde(default)]
    pub record: Option<String>,
    /// The PromQL expression.
    pub expr: String,
    /// How long the condition must hold before the alert fires.
    #[serde(default, rename = "for")]
    pub for_: Option<String>,
    /// How long an alert keeps firing after the condition cleared.
    #[serde(default)]
    pub keep_firing_for: Option<String>,
    /// Labels added to the output.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations (templates) of an alert.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl Rule {
    /// The rule's name: the alert or record name.
    pub fn name(&self) -> &str {
        self.alert
            .as_deref()
            .or(self.record.as_deref())
            .unwrap_or("")
    }
}

#[derive(Deserialize)]
struct Crd {
    #[serde(rename = "apiVersion")]
    _api_version: Option<String>,
    kind: String,
    spec: RuleFile,
}

/// Parses rule-file YAML; `origin` names the source in errors. Accepts a
/// plain Prometheus rule file or a `PrometheusRule` resource (several
/// YAML documents allowed; their groups are concatenated).
pub fn parse_rule_file(text: &str, origin: &str) -> Result<RuleFile, RulesError> {
    let mut groups = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = serde_yaml::Value::deserialize(doc).map_err(|e| yaml_error(origin, &e))?;
        if value.is_null() {
            continue;
        }
        let is_crd = value.get("kind").is_some() || value.get("spec").is_some();
        if is_crd {
            let crd: Crd = serde_yaml::from_value(value).map_err(|e| yaml_error(origin, &e))?;
            if crd.kind != "PrometheusRule" {
                return Err(RulesError::Yaml {
                    path: origin.to_string(),
                    line: None,
                    reason: format!("kind {:?} is not PrometheusRule", crd.kind),
                });
            }
            groups.extend(crd.spec.groups);
        } else {
            let file: RuleFile =
                serde_yaml::from_value(value).map_err(|e| yaml_error(origin, &e))?;
            groups.extend(file.groups);
        }
    }
    Ok(RuleFile { groups })
}

fn yaml_error(origin: &str, e: &serde_yaml::Error) -> RulesError {
    RulesError::Yaml {
        path: origin.to_string(),
        line: e.location().map(|l| l.line()),
        reason: e.to_string(),
    }
}

/// Reads, parses and validates one rule file.
pub fn load_rule_file(path: &Path) -> Result<RuleFile, RulesError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| RulesError::Io {
        path: origin.clone(),
        source,
    })?;
    let file = parse_rule_file(&text, &origin)?;
    validate(&file, &origin)?;
    Ok(file)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod eval_tests;
