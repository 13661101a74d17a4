//! Template functions: Go's builtins and Prometheus's template functions.

use std::collections::BTreeMap;

use super::gofmt::{fmt_g, sprintf};
use super::value::Value;
use super::TemplateContext;

fn arity(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

/// Prometheus's `convertToFloat`: numbers, and strings that parse.
fn to_float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Int(i) => Ok(*i as f64),
        Value::Float(f) => Ok(*f),
        Value::Str(s) => parse_go_float(s)
            .ok_or_else(|| format!("strconv.ParseFloat: parsing {s:?}: invalid syntax")),
        other => Err(format!("can't convert {} to float", other.go_type())),
    }
}

fn parse_go_float(s: &str) -> Option<f64> {
    match s.trim() {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        t => t.parse().ok(),
    }
}

fn to_str(name: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        other => Err(format!(
            "wrong type for value; expected string; got {} (in {name})",
            other.go_type()
        )),
    }
}

/// Prometheus's `humanize`: SI prefixes.
pub fn humanize(mut v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return fmt_g(v, Some(4));
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", fmt_g(v, Some(4)))
}

/// Prometheus's `humanize1024`: binary prefixes.
pub fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return fmt_g(v, Some(4));
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", fmt_g(v, Some(4)))
}

/// Prometheus's `humanizeDuration`: seconds as `1d 2h 3m 4s`.
pub fn humanize_duration(mut v: f64) -> String {
    if !v.is_finite() {
        return fmt_g(v, Some(4));
    }
    if v == 0.0 {
        return format!("{}s", fmt_g(v, Some(4)));
    }
    if v.abs() >= 1.0 {
        let mut sign = "";
        if v < 0.0 {
            sign = "-";
            v = -v;
        }
        let d = v as i64;
        let (secs, mins, hours, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86400);
        if days != 0 {
            return format!("{sign}{days}d {hours}h {mins}m {secs}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {mins}m {secs}s");
        }
        if mins != 0 {
            return format!("{sign}{mins}m {secs}s");
        }
        return format!("{sign}{}s", fmt_g(v, Some(4)));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", fmt_g(v, Some(4)))
}

/// Go's `strings.Title`: upper-cases the first letter of each word.
pub fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = !(c.is_alphanumeric() || c == '_');
    }
    out
}

/// Go's `fmt.Sprint`: spaces between operands when neither is a string.
fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::Str(_)) && !matches!(args[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        out.push_str(&a.render());
    }
    out
}

fn compare(name: &str, a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) if matches!(name, "eq" | "ne") => Ok(x.cmp(y)),
        (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
        (x, y) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x
                .partial_cmp(&y)
                .ok_or_else(|| format!("{name}: NaN is not comparable")),
            _ => Err(format!(
                "{name}: incompatible types for comparison ({} and {})",
                a.go_type(),
                b.go_type()
            )),
        },
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

fn url_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn sample_field(name: &str, v: &Value, field: &str) -> Result<Value, String> {
    match v {
        Value::Map(m) if m.contains_key("Labels") => {
            Ok(m.get(field).cloned().unwrap_or(Value::Nil))
        }
        other => Err(format!(
            "{name}: expected a query sample, got {}",
            other.go_type()
        )),
    }
}

/// Every function a template may call (unknown names fail at parse time,
/// as in Go).
pub const KNOWN: &[&str] = &[
    "and",
    "or",
    "not",
    "len",
    "index",
    "print",
    "println",
    "printf",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "html",
    "js",
    "urlquery",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "title",
    "toUpper",
    "toLower",
    "reReplaceAll",
    "match",
    "safeHtml",
    "stripPort",
    "stripDomain",
    "parseDuration",
    "args",
    "externalURL",
    "pathPrefix",
    "graphLink",
    "tableLink",
    "query",
    "first",
    "value",
    "label",
    "strvalue",
    "sortByLabel",
];

/// Calls function `name` with evaluated `args` (a piped value last).
pub fn call(name: &str, args: Vec<Value>, ctx: &TemplateContext<'_>) -> Result<Value, String> {
    let a = &args;
    Ok(match name {
        // Go's builtins.
        "and" => {
            if a.is_empty() {
                return Err("and: missing arguments".into());
            }
            a.iter()
                .find(|v| !v.truthy())
                .unwrap_or(&a[a.len() - 1])
                .clone()
        }
        "or" => {
            if a.is_empty() {
                return Err("or: missing arguments".into());
            }
            a.iter()
                .find(|v| v.truthy())
                .unwrap_or(&a[a.len() - 1])
                .clone()
        }
        "not" => {
            arity(name, a, 1)?;
            Value::Bool(!a[0].truthy())
        }
        "len" => {
            arity(name, a, 1)?;
            Value::Int(match &a[0] {
                Value::Str(s) => s.len(),
                Value::Map(m) => m.len(),
                Value::List(l) => l.len(),
                other => return Err(format!("len of type {}", other.go_type())),
            } as i64)
        }
        "index" => {
            let Some((first, keys)) = a.split_first() else {
                return Err("index: missing arguments".into());
            };
            let mut v = first.clone();
            for k in keys {
                v = match (&v, k) {
                    (Value::Map(m), Value::Str(k)) => {
                        m.get(k).cloned().unwrap_or(Value::Str(String::new()))
                    }
                    (Value::List(l), i) => {
                        let i = i.as_f64().ok_or("index: list index must be a number")? as usize;
                        l.get(i)
                            .cloned()
                            .ok_or_else(|| format!("index out of range: {i}"))?
                    }
                    _ => return Err(format!("can't index item of type {}", v.go_type())),
                };
            }
            v
        }
        "print" => Value::Str(sprint(a)),
        "println" => {
            let parts: Vec<String> = a.iter().map(Value::render).collect();
            Value::Str(format!("{}\n", parts.join(" ")))
        }
        "printf" => {
            let Some((fmt, rest)) = a.split_first() else {
                return Err("printf: missing format".into());
            };
            Value::Str(sprintf(&to_str(name, fmt)?, rest))
        }
        "eq" => {
            if a.len() < 2 {
                return Err("eq: missing argument for comparison".into());
            }
            let mut any = false;
            for b in &a[1..] {
                if compare(name, &a[0], b)? == std::cmp::Ordering::Equal {
                    any = true;
                }
            }
            Value::Bool(any)
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            arity(name, a, 2)?;
            let o = compare(name, &a[0], &a[1])?;
            Value::Bool(match name {
                "ne" => o.is_ne(),
                "lt" => o.is_lt(),
                "le" => o.is_le(),
                "gt" => o.is_gt(),
                _ => o.is_ge(),
            })
        }
        "html" => Value::Str(html_escape(&sprint(a))),
        "js" => Value::Str(
            sprint(a)
                .replace('\\', "\\\\")
                .replace('\'', "\\'")
                .replace('"', "\\\"")
                .replace('<', "\\u003C")
                .replace('>', "\\u003E"),
        ),
        "urlquery" => Value::Str(url_escape(&sprint(a))),

        // Prometheus's functions.
        "humanize" => {
            arity(name, a, 1)?;
            Value::Str(humanize(to_float(&a[0])?))
        }
        "humanize1024" => {
            arity(name, a, 1)?;
            Value::Str(humanize1024(to_float(&a[0])?))
        }
        "humanizeDuration" => {
            arity(name, a, 1)?;
            Value::Str(humanize_duration(to_float(&a[0])?))
        }
        "humanizePercentage" => {
            arity(name, a, 1)?;
            Value::Str(format!("{}%", fmt_g(to_float(&a[0])? * 100.0, Some(4))))
        }
        "humanizeTimestamp" => {
            arity(name, a, 1)?;
            let v = to_float(&a[0])?;
            if !v.is_finite() {
                Value::Str(fmt_g(v, Some(4)))
            } else {
                let secs = v.floor() as i64;
                let nanos = ((v - v.floor()) * 1e9).round() as u32;
                let t = chrono::DateTime::from_timestamp(secs, nanos.min(999_999_999))
                    .ok_or("timestamp out of range")?;
                let mut s = t.format("%Y-%m-%d %H:%M:%S").to_string();
                if nanos > 0 {
                    let frac = format!("{:09}", nanos);
                    s.push('.');
                    s.push_str(frac.trim_end_matches('0'));
                }
                s.push_str(" +0000 UTC");
                Value::Str(s)
            }
        }
        "title" => {
            arity(name, a, 1)?;
            Value::Str(title(&to_str(name, &a[0])?))
        }
        "toUpper" => {
            arity(name, a, 1)?;
            Value::Str(to_str(name, &a[0])?.to_uppercase())
        }
        "toLower" => {
            arity(name, a, 1)?;
            Value::Str(to_str(name, &a[0])?.to_lowercase())
        }
        "reReplaceAll" => {
            arity(name, a, 3)?;
            let re = regex::Regex::new(&to_str(name, &a[0])?).map_err(|e| e.to_string())?;
            let repl = to_str(name, &a[1])?;
            Value::Str(
                re.replace_all(&to_str(name, &a[2])?, repl.as_str())
                    .into_owned(),
            )
        }
        "match" => {
            arity(name, a, 2)?;
            let re = regex::Regex::new(&to_str(name, &a[0])?).map_err(|e| e.to_string())?;
            Value::Bool(re.is_match(&to_str(name, &a[1])?))
        }
        "safeHtml" => {
            arity(name, a, 1)?;
            Value::Str(to_str(name, &a[0])?)
        }
        "stripPort" => {
            arity(name, a, 1)?;
            let s = to_str(name, &a[0])?;
            Value::Str(match s.rsplit_once(':') {
                Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => {
                    h.trim_start_matches('[').trim_end_matches(']').to_string()
                }
                _ => s,
            })
        }
        "stripDomain" => {
            arity(name, a, 1)?;
            let s = to_str(name, &a[0])?;
            let (host, port) = match s.rsplit_once(':') {
                Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !h.contains(':') => {
                    (h.to_string(), format!(":{p}"))
                }
                _ => (s.clone(), String::new()),
            };
            if host.parse::<std::net::IpAddr>().is_ok() {
                Value::Str(s)
            } else {
                Value::Str(format!("{}{port}", host.split('.').next().unwrap_or("")))
            }
        }
        "parseDuration" => {
            arity(name, a, 1)?;
            let ms = fleetwatch_model::duration::parse_duration_ms(&to_str(name, &a[0])?)
                .map_err(|e| e.to_string())?;
            Value::Float(ms as f64 / 1000.0)
        }
        "args" => {
            let m: BTreeMap<String, Value> = a
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("arg{i}"), v.clone()))
                .collect();
            Value::Map(m)
        }
        "externalURL" => Value::Str(ctx.external_url.to_string()),
        "pathPrefix" => Value::Str(String::new()),
        "graphLink" | "tableLink" => {
            arity(name, a, 1)?;
            let tab = if name == "graphLink" { 0 } else { 1 };
            Value::Str(format!(
                "/graph?g0.expr={}&g0.tab={tab}",
                url_escape(&to_str(name, &a[0])?)
            ))
        }
        "query" => {
            arity(name, a, 1)?;
            let q = ctx
                .querier
                .ok_or("query: no query engine in this context")?;
            let rows = q.query(&to_str(name, &a[0])?)?;
            Value::List(
                rows.into_iter()
                    .map(|(labels, v)| {
                        Value::sample(
                            Value::labels(
                                labels.iter().map(|l| (l.name.as_str(), l.value.as_str())),
                            ),
                            v,
                        )
                    })
                    .collect(),
            )
        }
        "first" => {
            arity(name, a, 1)?;
            match &a[0] {
                Value::List(l) => l
                    .first()
                    .cloned()
                    .ok_or("first() called on vector with no elements")?,
                other => {
                    return Err(format!(
                        "first: expected a query result, got {}",
                        other.go_type()
                    ))
                }
            }
        }
        "value" => {
            arity(name, a, 1)?;
            sample_field(name, &a[0], "Value")?
        }
        "label" => {
            arity(name, a, 2)?;
            let l = to_str(name, &a[0])?;
            sample_field(name, &a[1], "Labels")?.field(&l)?
        }
        "strvalue" => {
            arity(name, a, 1)?;
            sample_field(name, &a[0], "Labels")?.field("__value__")?
        }
        "sortByLabel" => {
            arity(name, a, 2)?;
            let l = to_str(name, &a[0])?;
            let Value::List(mut rows) = a[1].clone() else {
                return Err("sortByLabel: expected a query result".into());
            };
            rows.sort_by_key(|r| {
                r.field("Labels")
                    .and_then(|x| x.field(&l))
                    .map(|v| v.render())
                    .unwrap_or_default()
            });
            Value::List(rows)
        }
        other => return Err(format!("function {other:?} not defined")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanizers_match_prometheus() {
        assert_eq!(humanize(0.0), "0");
        assert_eq!(humanize(1234567.0), "1.235M");
        assert_eq!(humanize(0.0012), "1.2m");
        assert_eq!(humanize(12.5), "12.5");
        assert_eq!(humanize1024(1048576.0), "1Mi");
        assert_eq!(humanize1024(1.0), "1");
        assert_eq!(humanize_duration(0.0), "0s");
        assert_eq!(humanize_duration(3601.0), "1h 0m 1s");
        assert_eq!(humanize_duration(93784.0), "1d 2h 3m 4s");
        assert_eq!(humanize_duration(1.5), "1.5s");
        assert_eq!(humanize_duration(0.25), "250ms");
        assert_eq!(title("vm high memory"), "Vm High Memory");
    }
}
