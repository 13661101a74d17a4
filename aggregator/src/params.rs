//! Request parameters as the Prometheus API reads them: from the query
//! string on GET and from the query string plus a form-encoded body on
//! POST; times as RFC 3339 or Unix seconds with fractions; durations as
//! Prometheus durations or float seconds.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;

use crate::error::ApiError;
use fleetwatch_model::duration::parse_duration_ms;

/// Smallest time Prometheus's API accepts as "no lower bound".
pub const MIN_TIME_MS: i64 = -9_223_372_036_854_775 + 1;
/// Largest time accepted as "no upper bound".
pub const MAX_TIME_MS: i64 = 9_223_372_036_854_775 - 1;

/// Parsed request parameters, in order, with repeats kept.
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    /// Reads the query string and, for a form-encoded body, the body.
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let raw = req.uri().query().map(str::to_string);
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_data(format!("cannot read the request body: {e}")))?;
        Ok(Self::collect(raw.as_deref(), &headers, &body))
    }
}

impl Params {
    /// Collects parameters from the raw query string and, for a
    /// form-encoded body, from the body too.
    pub fn collect(raw_query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Self {
        let mut out: Vec<(String, String)> = raw_query
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let is_form = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        if is_form && !body.is_empty() {
            out.extend(form_urlencoded::parse(body).into_owned());
        }
        Self(out)
    }

    /// The first value of `name`, if given and non-empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name` (for `match[]`).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Parses time parameter `name`, or returns `default`.
    pub fn time_or(&self, name: &str, default: i64) -> Result<i64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => parse_time(v)
                .map_err(|e| ApiError::bad_data(format!("invalid parameter \"{name}\": {e}"))),
        }
    }

    /// Parses duration parameter `name` in milliseconds, if present.
    pub fn duration(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|v| {
                parse_duration(v)
                    .map_err(|e| ApiError::bad_data(format!("invalid parameter \"{name}\": {e}")))
            })
            .transpose()
    }

    /// Parses an optional non-negative integer parameter.
    pub fn usize(&self, name: &str) -> Result<Option<usize>, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse::<usize>().map_err(|_| {
                    ApiError::bad_data(format!(
                        "invalid parameter \"{name}\": cannot parse {v:?} to a valid limit"
                    ))
                })
            })
            .transpose()
    }
}

/// Parses a time: Unix seconds (with fraction) or RFC 3339.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(secs) = s.parse::<f64>() {
        if !secs.is_finite() {
            return Err(format!("cannot parse {s:?} to a valid timestamp"));
        }
        let ms = (secs * 1000.0).round();
        return Ok(ms.clamp(MIN_TIME_MS as f64, MAX_TIME_MS as f64) as i64);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| format!("cannot parse {s:?} to a valid timestamp"))
}

/// Parses a duration: float seconds or a Prometheus duration.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if let Ok(secs) = s.parse::<f64>() {
        if !secs.is_finite() || secs.abs() > (i64::MAX / 1000) as f64 {
            return Err(format!(
                "cannot parse {s:?} to a valid duration. It overflows int64"
            ));
        }
        return Ok((secs * 1000.0).round() as i64);
    }
    parse_duration_ms(s).map_err(|_| format!("cannot parse {s:?} to a valid duration"))
}

/// Milliseconds to the seconds the JSON API prints: an integer for whole
/// seconds, else a number with the milliseconds as fraction (as Prometheus).
pub fn ms_to_secs(ms: i64) -> serde_json::Value {
    if ms % 1000 == 0 {
        serde_json::Value::from(ms / 1000)
    } else {
        serde_json::Value::from(ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations() {
        assert_eq!(parse_time("1435781451.781").unwrap(), 1_435_781_451_781);
        assert_eq!(
            parse_time("2015-07-01T20:10:51.781Z").unwrap(),
            1_435_781_451_781
        );
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_duration("15").unwrap(), 15_000);
        assert_eq!(parse_duration("0.5").unwrap(), 500);
        assert_eq!(parse_duration("1m30s").unwrap(), 90_000);
        assert!(parse_duration("1 minute").is_err());
    }

    #[test]
    fn form_body_and_query_merge() {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        let p = Params::collect(
            Some("match[]=up&time=1"),
            &h,
            b"match[]=%7Bjob%3D%22a%22%7D&query=sum(up)",
        );
        assert_eq!(p.all("match[]"), vec!["up", "{job=\"a\"}"]);
        assert_eq!(p.get("query"), Some("sum(up)"));
        assert_eq!(p.time_or("time", 0).unwrap(), 1000);
    }
}
