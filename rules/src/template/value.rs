//! Values inside a template: Go's basic kinds, maps, lists.

use std::collections::BTreeMap;

use super::gofmt::fmt_float;

/// A value a template computes with.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Go's nil.
    Nil,
    /// A boolean.
    Bool(bool),
    /// An integer (number literals without a point or exponent).
    Int(i64),
    /// A float64 (sample values).
    Float(f64),
    /// A string.
    Str(String),
    /// A map with string keys (label sets, query samples).
    Map(BTreeMap<String, Value>),
    /// A list (query results).
    List(Vec<Value>),
}

impl Value {
    /// A map of strings (a label set).
    pub fn labels<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
        Value::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), Value::Str(v.to_string())))
                .collect(),
        )
    }

    /// A query sample: a map with `Labels` and `Value`.
    pub fn sample(labels: Value, value: f64) -> Value {
        let mut m = BTreeMap::new();
        m.insert("Labels".to_string(), labels);
        m.insert("Value".to_string(), Value::Float(value));
        Value::Map(m)
    }

    /// The value as Go's `fmt.Sprint` prints it.
    pub fn render(&self) -> String {
        match self {
            Value::Nil => "<nil>".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => fmt_float(*f),
            Value::Str(s) => s.clone(),
            Value::Map(m) => {
                let parts: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{k}:{}", v.render()))
                    .collect();
                format!("map[{}]", parts.join(" "))
            }
            Value::List(l) => {
                let parts: Vec<String> = l.iter().map(Value::render).collect();
                format!("[{}]", parts.join(" "))
            }
        }
    }

    /// Go's type name, for error messages.
    pub fn go_type(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Map(_) => "map",
            Value::List(_) => "slice",
        }
    }

    /// Go's truth: false, 0, nil and empty strings, maps and lists are false.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::List(l) => !l.is_empty(),
        }
    }

    /// The number, if the value is numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// A field (map key) of the value; a missing key is the empty string
    /// (Prometheus runs templates with `missingkey=zero`).
    pub fn field(&self, name: &str) -> Result<Value, String> {
        match self {
            Value::Map(m) => Ok(m.get(name).cloned().unwrap_or(Value::Str(String::new()))),
            Value::Nil => Err(format!("nil pointer evaluating .{name}")),
            other => Err(format!(
                "can't evaluate field {name} in type {}",
                other.go_type()
            )),
        }
    }
}
