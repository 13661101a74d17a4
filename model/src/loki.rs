//! Loki push codec: the protobuf `PushRequest` of Loki's `pkg/push/push.proto`
//! (snappy block compressed, as Promtail, Alloy and the Loki clients send
//! it), the JSON push body, stream-label parsing (`{a="b", c="d"}`) and
//! the push limits the hub checks before storing anything.
//!
//! Messages are hand-derived with `prost` (no `protoc` in the build).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::{is_valid_label_name, snappy, Label, Labels, ModelError, METRIC_NAME};

/// `logproto.PushRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    /// The streams with their entries.
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

/// `logproto.StreamAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    /// Stream labels in selector syntax, e.g. `{app="x", namespace="y"}`.
    #[prost(string, tag = "1")]
    pub labels: String,
    /// The stream's entries.
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    /// The sender's hash of the labels (ignored by the hub).
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

/// `logproto.EntryAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    /// When the line was logged.
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    /// The log line.
    #[prost(string, tag = "2")]
    pub line: String,
    /// Structured metadata attached to the entry.
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

/// `logproto.LabelPairAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPairAdapter {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// One decoded log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEntry {
    /// Unix nanoseconds.
    pub timestamp_ns: i64,
    /// The line.
    pub line: String,
    /// Structured metadata, in the order sent.
    pub metadata: Vec<(String, String)>,
}

/// One decoded stream: validated labels and its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushStream {
    /// The stream's labels (sorted, valid, at least one).
    pub labels: Labels,
    /// The entries in the order sent.
    pub entries: Vec<PushEntry>,
}

impl PushStream {
    /// Raw bytes of the lines in this stream.
    pub fn line_bytes(&self) -> usize {
        self.entries.iter().map(|e| e.line.len()).sum()
    }
}

/// Errors decoding or validating a push.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LokiError {
    /// The body failed snappy or size checks.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The JSON body is malformed.
    #[error("body is not a valid Loki JSON push request: {reason}")]
    Json {
        /// What is wrong.
        reason: String,
    },
    /// A stream's label string does not parse or validate.
    #[error("error parsing labels '{labels}': {reason}")]
    InvalidLabels {
        /// The labels as sent.
        labels: String,
        /// What is wrong.
        reason: String,
    },
    /// A line is longer than allowed.
    #[error("Max entry size '{limit}' bytes exceeded for stream '{stream}' while adding an entry with length '{size}' bytes")]
    LineTooLong {
        /// The stream.
        stream: String,
        /// The line's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A stream has more labels than allowed.
    #[error("stream '{stream}' has {count} label names; limit {limit}")]
    TooManyLabels {
        /// The stream.
        stream: String,
        /// Labels in the stream.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A label name or value is too long.
    #[error("stream '{stream}' has a label {what} longer than {limit} bytes")]
    LabelTooLong {
        /// The stream.
        stream: String,
        /// `name` or `value`.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// The request carries more streams than allowed.
    #[error("push request has {count} streams; limit {limit}")]
    TooManyStreams {
        /// Streams in the request.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// An entry is stamped too far in the future.
    #[error("entry for stream '{stream}' has timestamp too new: {timestamp_ns} ns is more than {grace_ns} ns ahead of now ({now_ns} ns)")]
    TooNew {
        /// The stream.
        stream: String,
        /// The entry's timestamp.
        timestamp_ns: i64,
        /// Now.
        now_ns: i64,
        /// How far ahead is accepted.
        grace_ns: i64,
    },
    /// An entry is stamped before the oldest time accepted.
    #[error("entry for stream '{stream}' has timestamp too old: {timestamp_ns} ns, oldest acceptable timestamp is: {oldest_ns} ns")]
    TooOld {
        /// The stream.
        stream: String,
        /// The entry's timestamp.
        timestamp_ns: i64,
        /// The oldest accepted.
        oldest_ns: i64,
    },
}

impl LokiError {
    /// A short reason for counters (`invalid_labels`, `line_too_long`, ...).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Model(ModelError::TooLarge { .. }) => "too_large",
            Self::Model(ModelError::Snappy { .. }) => "invalid_snappy",
            Self::Model(ModelError::Protobuf { .. }) => "invalid_protobuf",
            Self::Model(_) => "invalid",
            Self::Json { .. } => "invalid_json",
            Self::InvalidLabels { .. } => "invalid_labels",
            Self::LineTooLong { .. } => "line_too_long",
            Self::TooManyLabels { .. } | Self::LabelTooLong { .. } => "invalid_labels",
            Self::TooManyStreams { .. } => "too_many_streams",
            Self::TooNew { .. } => "too_far_in_future",
            Self::TooOld { .. } => "too_old",
        }
    }
}

/// Decodes a snappy-compressed protobuf push body; `limit` bounds the
/// compressed and the declared decompressed size (checked before
/// allocating).
pub fn decode_protobuf(body: &[u8], limit: usize) -> Result<Vec<PushStream>, LokiError> {
    let raw = snappy::decompress(body, limit)?;
    decode_protobuf_uncompressed(&raw)
}

/// Decodes an uncompressed protobuf `PushRequest`.
pub fn decode_protobuf_uncompressed(raw: &[u8]) -> Result<Vec<PushStream>, LokiError> {
    let req = <PushRequest as prost::Message>::decode(raw).map_err(|e| {
        LokiError::Model(ModelError::Protobuf {
            message: "logproto.PushRequest",
            reason: e.to_string(),
        })
    })?;
    req.streams
        .into_iter()
        .map(|s| {
            let labels = parse_stream_labels(&s.labels)?;
            let entries = s
                .entries
                .into_iter()
                .map(|e| {
                    let ts = e.timestamp.unwrap_or_default();
                    PushEntry {
                        timestamp_ns: ts
                            .seconds
                            .saturating_mul(1_000_000_000)
                            .saturating_add(i64::from(ts.nanos)),
                        line: e.line,
                        metadata: e
                            .structured_metadata
                            .into_iter()
                            .map(|p| (p.name, p.value))
                            .collect(),
                    }
                })
                .collect();
            Ok(PushStream { labels, entries })
        })
        .collect()
}

/// Decodes a JSON push body:
/// `{"streams":[{"stream":{"a":"b"},"values":[["<ns>","line"],["<ns>","line",{"k":"v"}]]}]}`.
pub fn decode_json(body: &[u8]) -> Result<Vec<PushStream>, LokiError> {
    let bad = |reason: String| LokiError::Json { reason };
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    let streams = v
        .get("streams")
        .and_then(|s| s.as_array())
        .ok_or_else(|| bad("missing \"streams\" array".into()))?;
    let mut out = Vec::with_capacity(streams.len());
    for (i, s) in streams.iter().enumerate() {
        let map = s
            .get("stream")
            .and_then(|m| m.as_object())
            .ok_or_else(|| bad(format!("streams[{i}]: missing \"stream\" object")))?;
        let mut pairs = Vec::with_capacity(map.len());
        for (k, v) in map {
            let v = v
                .as_str()
                .ok_or_else(|| bad(format!("streams[{i}]: label {k:?} is not a string")))?;
            pairs.push(Label::new(k.clone(), v));
        }
        let rendered = render_pairs(&pairs);
        let labels = validate_labels(pairs, &rendered)?;
        let values = s
            .get("values")
            .and_then(|v| v.as_array())
            .ok_or_else(|| bad(format!("streams[{i}]: missing \"values\" array")))?;
        let mut entries = Vec::with_capacity(values.len());
        for (j, e) in values.iter().enumerate() {
            let arr = e.as_array().filter(|a| a.len() == 2 || a.len() == 3).ok_or_else(|| {
                bad(format!(
                    "streams[{i}].values[{j}]: expected [\"<unix ns>\", \"<line>\"] or [\"<unix ns>\", \"<line>\", {{metadata}}]"
                ))
            })?;
            let ts = match &arr[0] {
                serde_json::Value::String(s) => s.parse::<i64>().ok(),
                serde_json::Value::Number(n) => n.as_i64(),
                _ => None,
            }
            .ok_or_else(|| {
                bad(format!(
                    "streams[{i}].values[{j}]: timestamp {} is not an integer of Unix nanoseconds",
                    arr[0]
                ))
            })?;
            let line = arr[1]
                .as_str()
                .ok_or_else(|| bad(format!("streams[{i}].values[{j}]: line is not a string")))?;
            let mut metadata = Vec::new();
            if let Some(m) = arr.get(2) {
                let m = m.as_object().ok_or_else(|| {
                    bad(format!(
                        "streams[{i}].values[{j}]: structured metadata is not an object"
                    ))
                })?;
                for (k, v) in m {
                    let v = v.as_str().ok_or_else(|| {
                        bad(format!(
                            "streams[{i}].values[{j}]: metadata {k:?} is not a string"
                        ))
                    })?;
                    metadata.push((k.clone(), v.to_string()));
                }
            }
            entries.push(PushEntry {
                timestamp_ns: ts,
                line: line.to_string(),
                metadata,
            });
        }
        out.push(PushStream { labels, entries });
    }
    Ok(out)
}

/// Parses a stream's label string, `{a="b", c="d"}`, with Go string
/// escapes in values, and validates it: valid names, no `__name__`, no
/// duplicates, at least one label with a non-empty value.
pub fn parse_stream_labels(input: &str) -> Result<Labels, LokiError> {
    let err = |reason: String| LokiError::InvalidLabels {
        labels: input.to_string(),
        reason,
    };
    let s = input.trim();
    let inner = s
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or_else(|| err("expected labels in braces, e.g. {app=\"x\"}".into()))?;
    let bytes = inner.as_bytes();
    let mut pos = 0;
    let mut pairs = Vec::new();
    let skip_ws = |pos: &mut usize| {
        while *pos < bytes.len() && bytes[*pos].is_ascii_whitespace() {
            *pos += 1;
        }
    };
    loop {
        skip_ws(&mut pos);
        if pos >= bytes.len() {
            break;
        }
        let start = pos;
        while pos < bytes.len() && (bytes[pos].is_ascii_alphanumeric() || bytes[pos] == b'_') {
            pos += 1;
        }
        let name = &inner[start..pos];
        if name.is_empty() {
            return Err(err(format!(
                "expected a label name at offset {}",
                start + 1
            )));
        }
        skip_ws(&mut pos);
        if bytes.get(pos) != Some(&b'=') {
            return Err(err(format!("expected '=' after label name {name:?}")));
        }
        pos += 1;
        skip_ws(&mut pos);
        if bytes.get(pos) != Some(&b'"') {
            return Err(err(format!(
                "expected a double-quoted value for label {name:?}"
            )));
        }
        pos += 1;
        let (value, next) = unquote(inner, pos).map_err(|r| err(format!("label {name:?}: {r}")))?;
        pos = next;
        pairs.push(Label::new(name, value));
        skip_ws(&mut pos);
        match bytes.get(pos) {
            None => break,
            Some(b',') => pos += 1,
            Some(_) => return Err(err(format!("expected ',' or '}}' after label {name:?}"))),
        }
    }
    validate_labels(pairs, input)
}

/// Reads a double-quoted string body starting after the opening quote at
/// `pos`; returns the unescaped value and the offset after the closing quote.
pub(crate) fn unquote(s: &str, mut pos: usize) -> Result<(String, usize), String> {
    let bytes = s.as_bytes();
    let mut out = String::new();
    let mut run_start = pos;
    while pos < bytes.len() {
        match bytes[pos] {
            b'"' => {
                out.push_str(&s[run_start..pos]);
                return Ok((out, pos + 1));
            }
            b'\\' => {
                out.push_str(&s[run_start..pos]);
                let c = *bytes.get(pos + 1).ok_or("unterminated escape")?;
                pos += 2;
                match c {
                    b'n' => out.push('\n'),
                    b't' => out.push('\t'),
                    b'r' => out.push('\r'),
                    b'\\' => out.push('\\'),
                    b'"' => out.push('"'),
                    b'\'' => out.push('\''),
                    b'u' => {
                        let hex = s.get(pos..pos + 4).ok_or("short \\u escape")?;
                        let cp = u32::from_str_radix(hex, 16).map_err(|_| "bad \\u escape")?;
                        out.push(char::from_u32(cp).ok_or("bad \\u code point")?);
                        pos += 4;
                    }
                    other => return Err(format!("unknown escape \\{}", other as char)),
                }
                run_start = pos;
            }
            _ => pos += 1,
        }
    }
    Err("unterminated quoted string".into())
}

fn validate_labels(pairs: Vec<Label>, shown: &str) -> Result<Labels, LokiError> {
    let err = |reason: String| LokiError::InvalidLabels {
        labels: shown.to_string(),
        reason,
    };
    for l in &pairs {
        if l.name == METRIC_NAME {
            return Err(err("__name__ is not allowed in stream labels".into()));
        }
        if !is_valid_label_name(&l.name) {
            return Err(err(format!("invalid label name {:?}", l.name)));
        }
    }
    let labels = Labels::new(pairs).map_err(|e| err(e.to_string()))?;
    if labels.is_empty() {
        return Err(err(
            "at least one label pair with a non-empty value is required per stream".into(),
        ));
    }
    Ok(labels)
}

fn render_pairs(pairs: &[Label]) -> String {
    let mut out = String::from("{");
    for (i, l) in pairs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(
            out,
            "{}=\"{}\"",
            l.name,
            crate::labels::escape_label_value(&l.value)
        );
    }
    out.push('}');
    out
}

/// Limits a push is checked against before anything is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushLimits {
    /// Longest line in bytes.
    pub max_line_bytes: usize,
    /// Most labels per stream.
    pub max_labels_per_stream: usize,
    /// Longest label name in bytes.
    pub max_label_name_bytes: usize,
    /// Longest label value in bytes.
    pub max_label_value_bytes: usize,
    /// Most streams per request.
    pub max_streams_per_request: usize,
    /// How far ahead of now a timestamp may be, in nanoseconds.
    pub max_future_ns: i64,
}

impl Default for PushLimits {
    /// Loki's defaults where it has one: 256 KiB lines, 15 labels, 1024/2048
    /// bytes for names/values; 10,000 streams; 10 minutes ahead.
    fn default() -> Self {
        Self {
            max_line_bytes: 256 << 10,
            max_labels_per_stream: 15,
            max_label_name_bytes: 1024,
            max_label_value_bytes: 2048,
            max_streams_per_request: 10_000,
            max_future_ns: 10 * 60 * 1_000_000_000,
        }
    }
}

/// Checks every stream and entry of a push against `limits` (`now_ns` is
/// the current time; `oldest_ns` the oldest timestamp accepted). The first
/// problem found is returned; nothing is partially accepted.
pub fn validate_push(
    streams: &[PushStream],
    limits: &PushLimits,
    now_ns: i64,
    oldest_ns: i64,
) -> Result<(), LokiError> {
    if streams.len() > limits.max_streams_per_request {
        return Err(LokiError::TooManyStreams {
            count: streams.len(),
            limit: limits.max_streams_per_request,
        });
    }
    let newest_ok = now_ns.saturating_add(limits.max_future_ns);
    for s in streams {
        let shown = || s.labels.to_string();
        if s.labels.len() > limits.max_labels_per_stream {
            return Err(LokiError::TooManyLabels {
                stream: shown(),
                count: s.labels.len(),
                limit: limits.max_labels_per_stream,
            });
        }
        for l in s.labels.iter() {
            if l.name.len() > limits.max_label_name_bytes {
                return Err(LokiError::LabelTooLong {
                    stream: shown(),
                    what: "name",
                    limit: limits.max_label_name_bytes,
                });
            }
            if l.value.len() > limits.max_label_value_bytes {
                return Err(LokiError::LabelTooLong {
                    stream: shown(),
                    what: "value",
                    limit: limits.max_label_value_bytes,
                });
            }
        }
        for e in &s.entries {
            if e.line.len() > limits.max_line_bytes {
                return Err(LokiError::LineTooLong {
                    stream: shown(),
                    size: e.line.len(),
                    limit: limits.max_line_bytes,
                });
            }
            if e.timestamp_ns > newest_ok {
                return Err(LokiError::TooNew {
                    stream: shown(),
                    timestamp_ns: e.timestamp_ns,
                    now_ns,
                    grace_ns: limits.max_future_ns,
                });
            }
            if e.timestamp_ns < oldest_ns {
                return Err(LokiError::TooOld {
                    stream: shown(),
                    timestamp_ns: e.timestamp_ns,
                    oldest_ns,
                });
            }
        }
    }
    Ok(())
}

/// Encodes streams as an uncompressed protobuf `PushRequest` (for tests,
/// benchmarks and senders).
pub fn encode_protobuf_uncompressed(streams: &[PushStream]) -> Vec<u8> {
    let req = PushRequest {
        streams: streams
            .iter()
            .map(|s| StreamAdapter {
                labels: s.labels.to_string(),
                entries: s
                    .entries
                    .iter()
                    .map(|e| EntryAdapter {
                        timestamp: Some(Timestamp {
                            seconds: e.timestamp_ns.div_euclid(1_000_000_000),
                            nanos: e.timestamp_ns.rem_euclid(1_000_000_000) as i32,
                        }),
                        line: e.line.clone(),
                        structured_metadata: e
                            .metadata
                            .iter()
                            .map(|(n, v)| LabelPairAdapter {
                                name: n.clone(),
                                value: v.clone(),
                            })
                            .collect(),
                    })
                    .collect(),
                hash: 0,
            })
            .collect(),
    };
    prost::Message::encode_to_vec(&req)
}

/// Encodes streams as a snappy-compressed protobuf push body.
pub fn encode_protobuf(streams: &[PushStream]) -> Vec<u8> {
    snappy::compress(&encode_protobuf_uncompressed(streams))
}

/// Encodes streams as a JSON push body.
pub fn encode_json(streams: &[PushStream]) -> String {
    let streams: Vec<serde_json::Value> = streams
        .iter()
        .map(|s| {
            let stream: BTreeMap<&str, &str> = s
                .labels
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str()))
                .collect();
            let values: Vec<serde_json::Value> = s
                .entries
                .iter()
                .map(|e| {
                    let mut v = vec![
                        serde_json::Value::from(e.timestamp_ns.to_string()),
                        serde_json::Value::from(e.line.as_str()),
                    ];
                    if !e.metadata.is_empty() {
                        let m: serde_json::Map<String, serde_json::Value> = e
                            .metadata
                            .iter()
                            .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
                            .collect();
                        v.push(serde_json::Value::Object(m));
                    }
                    serde_json::Value::Array(v)
                })
                .collect();
            serde_json::json!({"stream": stream, "values": values})
        })
        .collect();
    serde_json::json!({ "streams": streams }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> PushStream {
        PushStream {
            labels: Labels::from_pairs([("app", "api"), ("namespace", "prod")]),
            entries: vec![
                PushEntry {
                    timestamp_ns: 1_700_000_000_123_456_789,
                    line: "level=info msg=\"hello\"".into(),
                    metadata: vec![],
                },
                PushEntry {
                    timestamp_ns: 1_700_000_001_000_000_000,
                    line: "{\"level\":\"error\"}".into(),
                    metadata: vec![("trace_id".into(), "abc".into())],
                },
            ],
        }
    }

    #[test]
    fn protobuf_round_trip() {
        let body = encode_protobuf(&[stream()]);
        let got = decode_protobuf(&body, 1 << 20).unwrap();
        assert_eq!(got, vec![stream()]);
    }

    #[test]
    fn json_round_trip() {
        let body = encode_json(&[stream()]);
        assert_eq!(decode_json(body.as_bytes()).unwrap(), vec![stream()]);
        let e =
            decode_json(br#"{"streams":[{"stream":{"a":"b"},"values":[["x","l"]]}]}"#).unwrap_err();
        assert!(e.to_string().contains("Unix nanoseconds"), "{e}");
        assert!(decode_json(b"{").is_err());
    }

    #[test]
    fn snappy_bomb_rejected_before_allocating() {
        // A snappy header declaring 1 GiB of output.
        let mut body = Vec::new();
        let mut n: u64 = 1 << 30;
        while n >= 0x80 {
            body.push((n as u8) | 0x80);
            n >>= 7;
        }
        body.push(n as u8);
        body.extend_from_slice(&[0, 0, 0, 0]);
        let e = decode_protobuf(&body, 1 << 20).unwrap_err();
        assert_eq!(e.reason(), "too_large");
        assert!(
            e.to_string().contains("declared decompressed length"),
            "{e}"
        );
    }

    #[test]
    fn parses_labels() {
        let l = parse_stream_labels(r#"{ namespace="prod", app = "a\"b\\c" }"#).unwrap();
        assert_eq!(l.get("app"), Some("a\"b\\c"));
        assert_eq!(l.get("namespace"), Some("prod"));
        for bad in [
            "{}",
            "app=\"x\"",
            "{app=x}",
            "{app=\"x\"",
            "{1app=\"x\"}",
            "{__name__=\"up\"}",
            "{a=\"1\", a=\"2\"}",
            "{a=\"\"}",
            "{a=\"x\" b=\"y\"}",
        ] {
            let e = parse_stream_labels(bad).unwrap_err();
            assert_eq!(e.reason(), "invalid_labels", "{bad}");
            assert!(e.to_string().contains("error parsing labels"), "{e}");
        }
    }

    #[test]
    fn limits() {
        let now = 1_700_000_000_000_000_000;
        let lim = PushLimits {
            max_line_bytes: 30,
            max_streams_per_request: 2,
            max_labels_per_stream: 2,
            ..PushLimits::default()
        };
        let mut s = stream();
        s.entries[0].timestamp_ns = now;
        s.entries[1].timestamp_ns = now;
        assert!(validate_push(&[s.clone()], &lim, now, 0).is_ok());
        let mut long = s.clone();
        long.entries[1].line = "x".repeat(31);
        let e = validate_push(&[long], &lim, now, 0).unwrap_err();
        assert_eq!(e.reason(), "line_too_long");
        assert!(e.to_string().contains("Max entry size '30'"), "{e}");
        let mut future = s.clone();
        future.entries[0].timestamp_ns = now + 11 * 60 * 1_000_000_000;
        assert_eq!(
            validate_push(&[future], &lim, now, 0).unwrap_err().reason(),
            "too_far_in_future"
        );
        assert_eq!(
            validate_push(&[s.clone(), s.clone(), s.clone()], &lim, now, 0)
                .unwrap_err()
                .reason(),
            "too_many_streams"
        );
        let mut many = s.clone();
        many.labels = Labels::from_pairs([("a", "1"), ("b", "2"), ("c", "3")]);
        assert!(validate_push(&[many], &lim, now, 0)
            .unwrap_err()
            .to_string()
            .contains("3 label names; limit 2"));
        assert_eq!(
            validate_push(&[s], &lim, now, now + 1)
                .unwrap_err()
                .reason(),
            "too_old"
        );
    }
}
