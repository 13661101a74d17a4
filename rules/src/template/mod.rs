//! Alert templates: a Go `text/template` subset as Prometheus runs it for
//! alert labels and annotations (`{{ $labels.x }}`, `{{ $value }}`,
//! `{{ $externalLabels.x }}`, pipelines, `if`/`else`/`range`/`with`, and
//! Prometheus's template functions such as `humanize` and `query`).

mod exec;
mod funcs;
mod gofmt;
mod parse;
mod value;

use std::collections::BTreeMap;

use fleetwatch_model::Labels;

pub use funcs::{humanize, humanize1024, humanize_duration};
pub use gofmt::{fmt_e_shortest, fmt_float, sprintf};
pub use value::Value;

/// A template failed to parse or to execute.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("template: {name}: {reason}")]
pub struct TemplateError {
    /// The template's name (the annotation or label it expands).
    pub name: String,
    /// What went wrong.
    pub reason: String,
}

/// Runs PromQL for the `query` template function.
pub trait TemplateQuerier {
    /// Evaluates `expr` at the template's evaluation time.
    fn query(&self, expr: &str) -> Result<Vec<(Labels, f64)>, String>;
}

/// What a template can reach besides its data.
pub struct TemplateContext<'a> {
    /// The `query` function's engine (none: `query` fails).
    pub querier: Option<&'a dyn TemplateQuerier>,
    /// The external URL (`externalURL`, `$externalURL`).
    pub external_url: &'a str,
}

/// The data of an alert template: `.Labels`, `.Value`, `.ExternalLabels`,
/// `.ExternalURL`, bound to `$labels`, `$value`, `$externalLabels` and
/// `$externalURL`.
#[derive(Debug, Clone, Default)]
pub struct AlertData {
    /// The alert's labels.
    pub labels: BTreeMap<String, String>,
    /// The sample value.
    pub value: f64,
    /// The hub's external labels.
    pub external_labels: BTreeMap<String, String>,
    /// The hub's external URL.
    pub external_url: String,
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    nodes: Vec<parse::Node>,
}

impl Template {
    /// Parses `src`; `name` identifies it in errors.
    pub fn parse(name: &str, src: &str) -> Result<Self, TemplateError> {
        let nodes = parse::parse(src).map_err(|reason| TemplateError {
            name: name.to_string(),
            reason,
        })?;
        Ok(Self {
            name: name.to_string(),
            nodes,
        })
    }

    /// Executes with alert data.
    pub fn expand(
        &self,
        data: &AlertData,
        querier: Option<&dyn TemplateQuerier>,
    ) -> Result<String, TemplateError> {
        let labels = exec::string_map(&data.labels);
        let ext = exec::string_map(&data.external_labels);
        let mut root = BTreeMap::new();
        root.insert("Labels".to_string(), labels.clone());
        root.insert("ExternalLabels".to_string(), ext.clone());
        root.insert(
            "ExternalURL".to_string(),
            Value::Str(data.external_url.clone()),
        );
        root.insert("Value".to_string(), Value::Float(data.value));
        let root = Value::Map(root);
        let vars = vec![
            ("labels".to_string(), labels),
            ("externalLabels".to_string(), ext),
            (
                "externalURL".to_string(),
                Value::Str(data.external_url.clone()),
            ),
            ("value".to_string(), Value::Float(data.value)),
        ];
        let ctx = TemplateContext {
            querier,
            external_url: &data.external_url,
        };
        exec::Exec::new(&ctx, root.clone(), vars)
            .run(&self.nodes, &root)
            .map_err(|reason| TemplateError {
                name: self.name.clone(),
                reason,
            })
    }
}

/// Parses and expands `src` in one step. A source without `{{` is returned
/// as is.
pub fn expand(
    name: &str,
    src: &str,
    data: &AlertData,
    querier: Option<&dyn TemplateQuerier>,
) -> Result<String, TemplateError> {
    if !src.contains("{{") {
        return Ok(src.to_string());
    }
    Template::parse(name, src)?.expand(data, querier)
}

#[cfg(test)]
mod tests;
