//! Durations written in Prometheus syntax (`15s`, `1m`, `1h30m`, `500ms`).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A duration as written in a Prometheus config: `15s`, `1m`, `1h30m`,
/// `500ms`, `0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PromDuration(pub Duration);

impl PromDuration {
    /// A duration of `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }

    /// A duration of `s` seconds.
    pub const fn from_secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }

    /// The standard-library duration.
    pub fn as_duration(self) -> Duration {
        self.0
    }

    /// Parses Prometheus duration syntax.
    pub fn parse(s: &str) -> Result<Self, String> {
        let ms =
            fleetwatch_model::duration::parse_duration_ms(s.trim()).map_err(|e| e.to_string())?;
        let ms = u64::try_from(ms).map_err(|_| format!("negative duration {s:?}"))?;
        Ok(Self::from_millis(ms))
    }
}

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX);
        f.write_str(&fleetwatch_model::duration::format_duration_ms(ms))
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PromDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Prometheus duration such as 15s, 1m, 1h30m or 500ms")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PromDuration, E> {
                PromDuration::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PromDuration, E> {
                if v == 0 {
                    Ok(PromDuration::default())
                } else {
                    Err(E::custom(format!(
                        "duration {v} has no unit; write e.g. {v}s"
                    )))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PromDuration, E> {
                match u64::try_from(v) {
                    Ok(u) => self.visit_u64(u),
                    Err(_) => Err(E::custom(format!("negative duration {v}"))),
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_syntax() {
        assert_eq!(
            PromDuration::parse("15s").unwrap().0,
            Duration::from_secs(15)
        );
        assert_eq!(
            PromDuration::parse("1m").unwrap().0,
            Duration::from_secs(60)
        );
        assert_eq!(
            PromDuration::parse("1h30m").unwrap().0,
            Duration::from_secs(5400)
        );
        assert_eq!(
            PromDuration::parse("500ms").unwrap().0,
            Duration::from_millis(500)
        );
        assert_eq!(PromDuration::parse("0").unwrap().0, Duration::ZERO);
        for bad in ["", "15", "1.5s", "1x", "30m1h", "-1s", "s"] {
            assert!(
                PromDuration::parse(bad).is_err(),
                "{bad:?} should not parse"
            );
        }
        assert_eq!(PromDuration::from_secs(5400).to_string(), "1h30m");
    }

    #[test]
    fn deserializes_from_yaml() {
        let d: PromDuration = serde_yaml::from_str("'1m30s'").unwrap();
        assert_eq!(d.0, Duration::from_secs(90));
        let d: PromDuration = serde_yaml::from_str("250ms").unwrap();
        assert_eq!(d.0, Duration::from_millis(250));
        let err = serde_yaml::from_str::<PromDuration>("15").unwrap_err();
        assert!(err.to_string().contains("no unit"), "{err}");
        assert!(serde_yaml::from_str::<PromDuration>("fast").is_err());
    }
}
