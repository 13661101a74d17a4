//! `remote_write[].protobuf_message`: which remote write message an
//! endpoint is sent, with Prometheus's key values.

use serde::Deserialize;

/// The protobuf message (and so the protocol version) of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum ProtobufMessage {
    /// `prometheus.WriteRequest`: remote write 1.0 (the default).
    #[default]
    #[serde(rename = "prometheus.WriteRequest")]
    V1,
    /// `io.prometheus.write.v2.Request`: remote write 2.0 (interned
    /// symbols; the receiver confirms what it wrote in response headers).
    #[serde(rename = "io.prometheus.write.v2.Request")]
    V2,
}

#[cfg(test)]
mod tests {
    use super::ProtobufMessage;
    use crate::config::CollectorConfig;

    fn message(key: &str) -> Result<ProtobufMessage, String> {
        let yaml = format!("remote_write: [{{url: 'http://hub/w'{key}}}]");
        CollectorConfig::from_yaml_str(&yaml)
            .map(|c| c.remote_write[0].protobuf_message)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn parses_prometheus_values_default_1_0() {
        assert_eq!(message(""), Ok(ProtobufMessage::V1));
        assert_eq!(
            message(", protobuf_message: prometheus.WriteRequest"),
            Ok(ProtobufMessage::V1)
        );
        assert_eq!(
            message(", protobuf_message: io.prometheus.write.v2.Request"),
            Ok(ProtobufMessage::V2)
        );
        let err = message(", protobuf_message: v2").expect_err("unknown value");
        assert!(err.contains("io.prometheus.write.v2.Request"), "{err}");
    }
}
