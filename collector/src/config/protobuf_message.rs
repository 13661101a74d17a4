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
