//! Remote write 2.0 (`io.prometheus.write.v2.Request`): the content
//! negotiation constants, encoding series into a body with an interned
//! symbol table, and a one-pass, bounds-checked walk over a decompressed
//! body that the hub's write path uses like the 1.0 walk in [`super::raw`].

mod decode;
mod encode;
#[cfg(test)]
mod tests;

pub use decode::{
    decode_write_request_v2, family_name, DecodedRequest, RawMetadata, RawRequest, RawSeries,
    SeriesInfo,
};
pub use encode::{encode_write_request_v2, encode_write_request_v2_with_metadata};

/// The `proto=` value of a remote write 1.0 body.
pub const PROTO_V1: &str = "prometheus.WriteRequest";
/// The `proto=` value of a remote write 2.0 body.
pub const PROTO_V2: &str = "io.prometheus.write.v2.Request";
/// The `Content-Type` of a remote write 2.0 body.
pub const CONTENT_TYPE_V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";
/// The `X-Prometheus-Remote-Write-Version` a 2.0 sender sends.
pub const VERSION_V2: &str = "2.0.0";
/// The response header with the number of float samples written.
pub const SAMPLES_WRITTEN: &str = "X-Prometheus-Remote-Write-Samples-Written";
/// The response header with the number of histogram samples written.
pub const HISTOGRAMS_WRITTEN: &str = "X-Prometheus-Remote-Write-Histograms-Written";
/// The response header with the number of exemplars written.
pub const EXEMPLARS_WRITTEN: &str = "X-Prometheus-Remote-Write-Exemplars-Written";
