//! Parsing one physical line of a container log: CRI
//! (`<RFC3339Nano> <stdout|stderr> <P|F>[:tags] <text>`), Docker's json-file
//! driver (`{"log":"text\n","stream":"stdout","time":"<RFC3339Nano>"}`) or
//! raw text; and picking the format of a file from its first line.

use serde::{Deserialize, Serialize};

use crate::config::LogFormat;

/// The format a file turned out to have (`auto` resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// CRI.
    Cri,
    /// Docker JSON lines.
    Docker,
    /// Plain lines.
    Raw,
}

impl FileFormat {
    /// The configured format, or the one `first_line` looks like for `auto`.
    pub fn resolve(configured: LogFormat, first_line: &str) -> Self {
        match configured {
            LogFormat::Cri => Self::Cri,
            LogFormat::Docker => Self::Docker,
            LogFormat::Raw => Self::Raw,
            LogFormat::Auto if parse_docker(first_line).is_ok() => Self::Docker,
            LogFormat::Auto if parse_cri(first_line).is_ok() => Self::Cri,
            LogFormat::Auto => Self::Raw,
        }
    }
}

/// One parsed physical line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Unix nanoseconds.
    pub ts_ns: i64,
    /// `stdout` or `stderr` (partial lines are joined per stream).
    pub stream: String,
    /// True when the line continues in the next entry of the same stream
    /// (CRI `P`; a Docker `log` without a trailing newline).
    pub partial: bool,
    /// The text, without the line's newline.
    pub text: String,
}

/// Why a physical line could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// A field is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// The timestamp is not RFC 3339.
    #[error("invalid timestamp {0:?}")]
    Timestamp(String),
    /// The stream is neither stdout nor stderr.
    #[error("invalid stream {0:?}")]
    Stream(String),
    /// The CRI tag is neither P nor F.
    #[error("invalid tag {0:?}")]
    Tag(String),
    /// The Docker line is not the expected JSON object.
    #[error("invalid json: {0}")]
    Json(String),
}

fn parse_ts(s: &str) -> Result<i64, FormatError> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .ok_or_else(|| FormatError::Timestamp(s.chars().take(64).collect()))
}

fn check_stream(s: &str) -> Result<String, FormatError> {
    match s {
        "stdout" | "stderr" => Ok(s.to_string()),
        other => Err(FormatError::Stream(other.chars().take(32).collect())),
    }
}

/// Parses a CRI line (without its newline).
pub fn parse_cri(line: &str) -> Result<Entry, FormatError> {
    let mut parts = line.splitn(4, ' ');
    let ts = parts.next().filter(|s| !s.is_empty());
    let ts = parse_ts(ts.ok_or(FormatError::Missing("timestamp"))?)?;
    let stream = check_stream(parts.next().ok_or(FormatError::Missing("stream"))?)?;
    let tags = parts.next().ok_or(FormatError::Missing("tag"))?;
    let partial = match tags.split(':').next() {
        Some("P") => true,
        Some("F") => false,
        _ => return Err(FormatError::Tag(tags.chars().take(32).collect())),
    };
    Ok(Entry {
        ts_ns: ts,
        stream,
        partial,
        text: parts.next().unwrap_or_default().to_string(),
    })
}

#[derive(Deserialize)]
struct DockerLine {
    log: String,
    #[serde(default = "stdout")]
    stream: String,
    time: String,
}

fn stdout() -> String {
    "stdout".to_string()
}

/// Parses a Docker json-file line (without its newline).
pub fn parse_docker(line: &str) -> Result<Entry, FormatError> {
    if !line.trim_start().starts_with('{') {
        return Err(FormatError::Json("not an object".to_string()));
    }
    let d: DockerLine = serde_json::from_str(line).map_err(|e| FormatError::Json(e.to_string()))?;
    let ts_ns = parse_ts(&d.time)?;
    let stream = check_stream(&d.stream)?;
    let mut text = d.log;
    let partial = !text.ends_with('\n');
    if !partial {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(Entry {
        ts_ns,
        stream,
        partial,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: &str = "2024-02-29T12:34:56.789000001Z";
    const TS_NS: i64 = 1_709_210_096_789_000_001;

    #[test]
    fn parses_cri_full_partial_and_empty_lines() {
        let e = parse_cri(&format!("{TS} stdout F hello world")).expect("cri");
        assert_eq!(
            e,
            Entry {
                ts_ns: TS_NS,
                stream: "stdout".into(),
                partial: false,
                text: "hello world".into()
            }
        );
        let p = parse_cri(&format!("{TS} stderr P part ")).expect("partial");
        assert!(p.partial);
        assert_eq!(p.stream, "stderr");
        assert_eq!(p.text, "part ");
        assert_eq!(
            parse_cri(&format!("{TS} stdout F")).expect("empty").text,
            ""
        );
        assert!(
            !parse_cri(&format!("{TS} stdout F:x tagged"))
                .expect("tags")
                .partial
        );
        let offset = parse_cri("2024-02-29T13:34:56.789+01:00 stdout F x").expect("offset");
        assert_eq!(offset.ts_ns, TS_NS - 1);
    }

    #[test]
    fn rejects_malformed_cri_lines() {
        assert_eq!(parse_cri(""), Err(FormatError::Missing("timestamp")));
        assert!(matches!(
            parse_cri("yesterday stdout F x"),
            Err(FormatError::Timestamp(_))
        ));
        assert!(matches!(
            parse_cri(&format!("{TS} stdlog F x")),
            Err(FormatError::Stream(_))
        ));
        assert!(matches!(
            parse_cri(&format!("{TS} stdout Q x")),
            Err(FormatError::Tag(_))
        ));
        assert_eq!(
            parse_cri(&format!("{TS} stdout")),
            Err(FormatError::Missing("tag"))
        );
    }

    #[test]
    fn parses_docker_lines_and_partials() {
        let full = format!(r#"{{"log":"a \"q\"\n","stream":"stderr","time":"{TS}"}}"#);
        let e = parse_docker(&full).expect("docker");
        assert_eq!(e.text, "a \"q\"");
        assert_eq!(e.stream, "stderr");
        assert_eq!(e.ts_ns, TS_NS);
        assert!(!e.partial);
        let part = format!(r#"{{"log":"no newline","stream":"stdout","time":"{TS}"}}"#);
        assert!(parse_docker(&part).expect("partial").partial);
        assert!(matches!(
            parse_docker("{\"log\":1}"),
            Err(FormatError::Json(_))
        ));
        assert!(matches!(
            parse_docker("{not json"),
            Err(FormatError::Json(_))
        ));
        assert!(matches!(
            parse_docker(r#"{"log":"x\n","time":"never"}"#),
            Err(FormatError::Timestamp(_))
        ));
    }

    #[test]
    fn auto_detects_per_first_line() {
        let docker = format!(r#"{{"log":"x\n","stream":"stdout","time":"{TS}"}}"#);
        assert_eq!(
            FileFormat::resolve(LogFormat::Auto, &docker),
            FileFormat::Docker
        );
        let cri = format!("{TS} stdout F x");
        assert_eq!(FileFormat::resolve(LogFormat::Auto, &cri), FileFormat::Cri);
        assert_eq!(
            FileFormat::resolve(LogFormat::Auto, "plain text"),
            FileFormat::Raw
        );
        assert_eq!(
            FileFormat::resolve(LogFormat::Cri, "plain"),
            FileFormat::Cri
        );
    }
}
