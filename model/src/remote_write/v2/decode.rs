//! The one-pass walk over a decompressed remote write 2.0 body: the symbol
//! table is resolved once (offsets into the body, every symbol checked to
//! be UTF-8), then series are visited as borrowed label pairs, exactly the
//! shape the 1.0 walk gives the hub's write path. Every reference is
//! checked against the symbol table; nothing is trusted from the body
//! before it is bounds-checked.

use super::PROTO_V2;
use crate::remote_write::raw::{pairs_to_labels, parse_sample, RawLabels};
use crate::remote_write::wire::{Field, Reader};
use crate::remote_write::{metric_type_name, FamilyMetadata, SeriesSamples};
use crate::{snappy, ModelError, Sample};

/// The longest piece of a symbol quoted in an error.
const MAX_QUOTED: usize = 64;

fn invalid(reason: String) -> ModelError {
    ModelError::InvalidRequest {
        message: PROTO_V2,
        reason,
    }
}

/// A decompressed 2.0 request with its symbol table resolved.
#[derive(Debug)]
pub struct RawRequest<'a> {
    buf: &'a [u8],
    /// Byte ranges of the symbols in `buf`.
    symbols: Vec<(u32, u32)>,
}

impl<'a> RawRequest<'a> {
    /// Reads the symbol table of `request` (a decompressed body): checks
    /// the message structure at the top level, that every symbol is UTF-8,
    /// that `symbols[0]` is the empty string and that the reserved fields
    /// 1 to 3 (a 1.0 `WriteRequest` sent as 2.0) are absent. The table
    /// costs 8 bytes per symbol, and a symbol takes at least 2 bytes of
    /// body, so its size is bounded by the body's.
    pub fn parse(request: &'a [u8]) -> Result<Self, ModelError> {
        if u32::try_from(request.len()).is_err() {
            return Err(invalid(format!(
                "request of {} bytes is larger than 4 GiB",
                request.len()
            )));
        }
        let mut symbols = Vec::new();
        let mut r = Reader::new(request, PROTO_V2);
        while !r.done() {
            match r.next_field()? {
                Field::Bytes(4, s) => {
                    if std::str::from_utf8(s).is_err() {
                        return Err(invalid(format!(
                            "symbol {} is not valid UTF-8",
                            symbols.len()
                        )));
                    }
                    // Both offsets fit: the request length does.
                    let end = r.position() as u32;
                    symbols.push((end - s.len() as u32, end));
                }
                Field::Bytes(n @ 1..=3, _) | Field::Varint(n @ 1..=3, _) => {
                    return Err(invalid(format!(
                        "field {n} is reserved in {PROTO_V2} (is this a prometheus.WriteRequest body sent as 2.0?)"
                    )));
                }
                _ => {}
            }
        }
        let request = Self {
            buf: request,
            symbols,
        };
        if let Some(first) = request.symbol(0) {
            if !first.is_empty() {
                return Err(invalid(format!(
                    "symbols[0] must be the empty string, not {:?}",
                    quoted(first)
                )));
            }
        }
        Ok(request)
    }

    /// Number of symbols.
    pub fn num_symbols(&self) -> usize {
        self.symbols.len()
    }

    /// The symbol `r` refers to, if it is in range.
    pub fn symbol(&self, r: u32) -> Option<&'a [u8]> {
        let &(start, end) = self.symbols.get(r as usize)?;
        self.buf.get(start as usize..end as usize)
    }

    /// Visits every `TimeSeries` in order.
    pub fn for_each_series(
        &self,
        mut f: impl FnMut(RawSeries<'a, '_>) -> Result<(), ModelError>,
    ) -> Result<(), ModelError> {
        let mut r = Reader::new(self.buf, PROTO_V2);
        let mut index = 0;
        while !r.done() {
            if let Field::Bytes(5, msg) = r.next_field()? {
                f(RawSeries {
                    msg,
                    request: self,
                    index,
                })?;
                index += 1;
            }
        }
        Ok(())
    }
}

fn quoted(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    s.chars().take(MAX_QUOTED).collect()
}

/// A borrowed view of one `TimeSeries` of a [`RawRequest`].
#[derive(Clone, Copy)]
pub struct RawSeries<'a, 'r> {
    msg: &'a [u8],
    request: &'r RawRequest<'a>,
    index: usize,
}

/// What a series carries besides its labels and float samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeriesInfo<'a> {
    /// Float samples.
    pub samples: usize,
    /// Native histogram samples (checked to be well-formed, not decoded).
    pub histograms: usize,
    /// Exemplars (their label refs checked).
    pub exemplars: usize,
    /// The series' metadata, when the message has the field.
    pub metadata: Option<RawMetadata<'a>>,
}

/// A series' metadata with its refs resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawMetadata<'a> {
    /// The type as Prometheus's API spells it (`unknown` when unspecified).
    pub kind: &'static str,
    /// The HELP text (may be empty).
    pub help: &'a str,
    /// The unit (may be empty).
    pub unit: &'a str,
}

impl RawMetadata<'_> {
    /// True when it says nothing (unspecified type, no help, no unit).
    pub fn is_empty(&self) -> bool {
        self.kind == "unknown" && self.help.is_empty() && self.unit.is_empty()
    }

    /// The family entry for a series named `metric` (see [`family_name`]),
    /// or `None` when the metadata says nothing.
    pub fn to_family(&self, metric: &str) -> Option<FamilyMetadata> {
        (!self.is_empty()).then(|| FamilyMetadata {
            family: family_name(metric, self.kind).to_string(),
            kind: self.kind,
            help: self.help.to_string(),
            unit: self.unit.to_string(),
        })
    }
}

/// The metric family a series named `metric` belongs to: histogram series
/// (`_bucket`, `_sum`, `_count`) and summary series (`_sum`, `_count`) name
/// their family without the suffix; every other series is its own family.
pub fn family_name<'m>(metric: &'m str, kind: &str) -> &'m str {
    let suffixes: &[&str] = match kind {
        "histogram" | "gaugehistogram" => &["_bucket", "_sum", "_count"],
        "summary" => &["_sum", "_count"],
        _ => &[],
    };
    suffixes
        .iter()
        .find_map(|s| metric.strip_suffix(s))
        .filter(|base| !base.is_empty())
        .unwrap_or(metric)
}

impl<'a> RawSeries<'a, '_> {
    /// Parses the series in one pass: its label pairs into `labels`
    /// (cleared first; reuse the vector across series) and its float
    /// samples through `sample`. Errors: a ref out of range, an odd number
    /// of label refs, no labels, both samples and histograms.
    pub fn parse(
        &self,
        labels: &mut RawLabels<'a>,
        mut sample: impl FnMut(i64, f64),
    ) -> Result<SeriesInfo<'a>, ModelError> {
        labels.clear();
        let mut info = SeriesInfo::default();
        let mut name: Option<&'a [u8]> = None;
        let mut label_ref = |r: u64| -> Result<(), ModelError> {
            let s = self.resolve(r, "label")?;
            match name.take() {
                Some(n) => labels.push((n, s)),
                None => name = Some(s),
            }
            Ok(())
        };
        let mut r = Reader::new(self.msg, PROTO_V2);
        while !r.done() {
            match r.next_field()? {
                Field::Bytes(1, packed) => Reader::each_packed(packed, PROTO_V2, &mut label_ref)?,
                Field::Varint(1, v) => label_ref(v)?,
                Field::Bytes(2, s) => {
                    let (t, v) = parse_sample(s, PROTO_V2)?;
                    sample(t, v);
                    info.samples += 1;
                }
                Field::Bytes(3, h) => {
                    let mut hr = Reader::new(h, PROTO_V2);
                    while !hr.done() {
                        hr.next_field()?;
                    }
                    info.histograms += 1;
                }
                Field::Bytes(4, e) => {
                    self.check_exemplar(e)?;
                    info.exemplars += 1;
                }
                Field::Bytes(5, m) => info.metadata = Some(self.metadata(m)?),
                _ => {}
            }
        }
        if name.is_some() {
            return Err(self.error("has an odd number of label refs"));
        }
        if labels.is_empty() {
            return Err(self.error("has no labels"));
        }
        if info.samples > 0 && info.histograms > 0 {
            return Err(self.error("has both samples and histograms"));
        }
        Ok(info)
    }

    fn error(&self, what: &str) -> ModelError {
        invalid(format!("series {} {what}", self.index))
    }

    fn resolve(&self, r: u64, what: &str) -> Result<&'a [u8], ModelError> {
        u32::try_from(r)
            .ok()
            .and_then(|r| self.request.symbol(r))
            .ok_or_else(|| {
                invalid(format!(
                    "series {}: {what} ref {r} is out of range (the request has {} symbols)",
                    self.index,
                    self.request.num_symbols()
                ))
            })
    }

    fn resolve_str(&self, r: u64, what: &str) -> Result<&'a str, ModelError> {
        // Every symbol was checked to be UTF-8 by `RawRequest::parse`.
        std::str::from_utf8(self.resolve(r, what)?)
            .map_err(|_| self.error(&format!("{what} is not valid UTF-8")))
    }

    fn check_exemplar(&self, msg: &[u8]) -> Result<(), ModelError> {
        let mut refs = 0usize;
        let mut check = |r: u64| {
            refs += 1;
            self.resolve(r, "exemplar label").map(|_| ())
        };
        let mut r = Reader::new(msg, PROTO_V2);
        while !r.done() {
            match r.next_field()? {
                Field::Bytes(1, packed) => Reader::each_packed(packed, PROTO_V2, &mut check)?,
                Field::Varint(1, v) => check(v)?,
                _ => {}
            }
        }
        if refs % 2 == 1 {
            return Err(self.error("has an exemplar with an odd number of label refs"));
        }
        Ok(())
    }

    fn metadata(&self, msg: &[u8]) -> Result<RawMetadata<'a>, ModelError> {
        let (mut kind, mut help, mut unit) = (0, 0, 0);
        let mut r = Reader::new(msg, PROTO_V2);
        while !r.done() {
            match r.next_field()? {
                Field::Varint(1, v) => kind = v,
                Field::Varint(3, v) => help = v,
                Field::Varint(4, v) => unit = v,
                _ => {}
            }
        }
        Ok(RawMetadata {
            kind: metric_type_name(kind),
            help: self.resolve_str(help, "help")?,
            unit: self.resolve_str(unit, "unit")?,
        })
    }
}

/// A decoded, validated 2.0 request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecodedRequest {
    /// The series with their float samples, in request order.
    pub series: Vec<SeriesSamples>,
    /// The metadata of the series that carry any, one entry per series.
    pub metadata: Vec<FamilyMetadata>,
    /// Native histogram samples seen (not decoded).
    pub histograms: usize,
    /// Exemplars seen (not decoded).
    pub exemplars: usize,
}

/// Decodes and validates a snappy-compressed remote write 2.0 body whole.
pub fn decode_write_request_v2(body: &[u8], limit: usize) -> Result<DecodedRequest, ModelError> {
    let raw = snappy::decompress(body, limit)?;
    let request = RawRequest::parse(&raw)?;
    let mut out = DecodedRequest::default();
    let mut pairs = Vec::new();
    request.for_each_series(|series| {
        let mut samples = Vec::new();
        let info = series.parse(&mut pairs, |t, v| samples.push(Sample::new(t, v)))?;
        let labels = pairs_to_labels(&pairs)?;
        if let Some(m) = info.metadata {
            out.metadata
                .extend(m.to_family(labels.metric_name().unwrap_or_default()));
        }
        out.histograms += info.histograms;
        out.exemplars += info.exemplars;
        out.series.push(SeriesSamples { labels, samples });
        Ok(())
    })?;
    Ok(out)
}
