//! How samples are laid out in `samples.parquet`: column encodings, page
//! and row-group sizes, and the lossless decimal value codec.
//!
//! Two value layouts exist:
//! - `float64`: one `value: Float64` column (PLAIN, dictionary or
//!   BYTE_STREAM_SPLIT encoded, then zstd);
//! - `decimal`: `value_mantissa: Int64` + `value_exponent: Int8` with
//!   `value = mantissa / 10^exponent`, both DELTA_BINARY_PACKED then zstd.
//!   The exponent [`RAW_EXPONENT`] marks a value stored as its raw IEEE-754
//!   bits in the mantissa column (NaNs, staleness markers, infinities,
//!   values with no short decimal form), so every value round-trips
//!   bit for bit.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::DeltaBinaryPackedEncoderOptions;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;

/// Column: dense series id.
pub const COL_SERIES_ID: &str = "series_id";
/// Column: timestamp in milliseconds.
pub const COL_TIMESTAMP: &str = "timestamp";
/// Column: float value (float64 layout).
pub const COL_VALUE: &str = "value";
/// Column: decimal mantissa (decimal layout).
pub const COL_MANTISSA: &str = "value_mantissa";
/// Column: decimal exponent (decimal layout).
pub const COL_EXPONENT: &str = "value_exponent";

/// Exponent marking a mantissa that holds raw `f64` bits.
pub const RAW_EXPONENT: i8 = i8::MIN;

/// Largest decimal exponent tried (10^15 and below are exact in `f64`).
const MAX_EXPONENT: i8 = 15;

/// Mantissas stay below 2^53 so they convert to `f64` exactly.
const MAX_MANTISSA: i64 = 1 << 53;

/// How the value column is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueEncoding {
    /// `value: Float64`, PLAIN encoding.
    Plain,
    /// `value: Float64`, dictionary encoding falling back to PLAIN.
    Dictionary,
    /// `value: Float64`, BYTE_STREAM_SPLIT encoding.
    ByteStreamSplit,
    /// Decimal mantissa + exponent, DELTA_BINARY_PACKED.
    Decimal,
}

impl ValueEncoding {
    /// The name recorded in `meta.json`.
    pub fn layout_name(self) -> &'static str {
        match self {
            Self::Decimal => "decimal",
            _ => "float64",
        }
    }
}

/// Layout knobs for writing `samples.parquet`.
#[derive(Debug, Clone, Copy)]
pub struct SampleLayout {
    /// Value encoding.
    pub values: ValueEncoding,
    /// zstd level.
    pub zstd_level: i32,
    /// Maximum rows per row group.
    pub row_group_rows: usize,
    /// Maximum rows per data page (the page-skipping granularity).
    pub page_rows: usize,
    /// Values per DELTA_BINARY_PACKED block (a multiple of 128; split in 4
    /// mini blocks). Small blocks limit the damage of the large delta at
    /// each series boundary.
    pub delta_block: usize,
}

impl Default for SampleLayout {
    /// The layout chosen from measurements (`encoding_report` test): PLAIN
    /// float values then zstd level 3 beat BYTE_STREAM_SPLIT, dictionary
    /// and the decimal pair on a realistic fleet load; 128-value delta
    /// blocks; 128Ki-row groups; 8Ki-row pages (page-skipping granularity).
    fn default() -> Self {
        Self {
            values: ValueEncoding::Plain,
            zstd_level: 3,
            row_group_rows: 128 * 1024,
            page_rows: 8 * 1024,
            delta_block: 128,
        }
    }
}

impl SampleLayout {
    /// The Arrow schema of `samples.parquet` for this layout.
    pub fn schema(&self) -> SchemaRef {
        let mut fields = vec![
            Field::new(COL_SERIES_ID, DataType::UInt32, false),
            Field::new(COL_TIMESTAMP, DataType::Int64, false),
        ];
        match self.values {
            ValueEncoding::Decimal => {
                fields.push(Field::new(COL_MANTISSA, DataType::Int64, false));
                fields.push(Field::new(COL_EXPONENT, DataType::Int8, false));
            }
            _ => fields.push(Field::new(COL_VALUE, DataType::Float64, false)),
        }
        Arc::new(Schema::new(fields))
    }

    /// Writer properties: per-column encodings, zstd, page statistics (so
    /// the column index is written) and the offset index.
    pub fn properties(&self) -> WriterProperties {
        let zstd = ZstdLevel::try_new(self.zstd_level).unwrap_or_default();
        let mut b = WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_1_0)
            .set_compression(Compression::ZSTD(zstd))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(self.row_group_rows))
            .set_data_page_row_count_limit(self.page_rows)
            .set_write_batch_size(1024)
            .set_created_by("fleetwatch".to_string());
        if let Ok(o) = DeltaBinaryPackedEncoderOptions::try_new(self.delta_block, 4) {
            b = b.set_delta_binary_packed_encoder_options(o);
        }
        for col in [COL_SERIES_ID, COL_TIMESTAMP] {
            b = b
                .set_column_dictionary_enabled(ColumnPath::from(col), false)
                .set_column_encoding(ColumnPath::from(col), Encoding::DELTA_BINARY_PACKED);
        }
        let value = ColumnPath::from(COL_VALUE);
        b = match self.values {
            ValueEncoding::Plain => b
                .set_column_dictionary_enabled(value, false)
                .set_column_encoding(ColumnPath::from(COL_VALUE), Encoding::PLAIN),
            ValueEncoding::Dictionary => b.set_column_dictionary_enabled(value, true),
            ValueEncoding::ByteStreamSplit => b
                .set_column_dictionary_enabled(value, false)
                .set_column_encoding(ColumnPath::from(COL_VALUE), Encoding::BYTE_STREAM_SPLIT),
            ValueEncoding::Decimal => {
                let mut b = b;
                for col in [COL_MANTISSA, COL_EXPONENT] {
                    b = b
                        .set_column_dictionary_enabled(ColumnPath::from(col), false)
                        .set_column_encoding(ColumnPath::from(col), Encoding::DELTA_BINARY_PACKED);
                }
                b
            }
        };
        b.build()
    }
}

/// Properties for the small `series.parquet` and `postings.parquet` files.
pub fn index_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_created_by("fleetwatch".to_string())
        .build()
}

const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Decodes one decimal value.
pub fn decode_decimal(mantissa: i64, exponent: i8) -> f64 {
    if exponent == RAW_EXPONENT {
        return f64::from_bits(mantissa as u64);
    }
    match usize::try_from(exponent).ok().and_then(|e| POW10.get(e)) {
        Some(p) => mantissa as f64 / p,
        // Not written by this code: decode as best we can.
        None => mantissa as f64 * 10f64.powi(-i32::from(exponent)),
    }
}

/// The smallest exponent (and its mantissa) that round-trips `v` exactly.
fn shortest_decimal(v: f64) -> Option<(i64, i8)> {
    if !v.is_finite() {
        return None;
    }
    for e in 0..=MAX_EXPONENT {
        let s = v * POW10[e as usize];
        if s.abs() >= MAX_MANTISSA as f64 {
            return None;
        }
        if s == s.trunc() {
            let m = s as i64;
            if decode_decimal(m, e).to_bits() == v.to_bits() {
                return Some((m, e));
            }
        }
    }
    None
}

/// Encodes one series' values (a run sharing one exponent where possible,
/// so the delta-encoded mantissas stay small), appending to `mantissas`
/// and `exponents`. Every value decodes back to its exact bits.
pub fn encode_decimal_run(values: &[f64], mantissas: &mut Vec<i64>, exponents: &mut Vec<i8>) {
    let parts: Vec<Option<(i64, i8)>> = values.iter().map(|&v| shortest_decimal(v)).collect();
    let common = parts.iter().flatten().map(|&(_, e)| e).max().unwrap_or(0);
    for (&v, part) in values.iter().zip(&parts) {
        let scaled = part.and_then(|(m, e)| {
            let m = m.checked_mul(10i64.checked_pow(u32::from((common - e) as u8))?)?;
            (m.abs() < MAX_MANTISSA && decode_decimal(m, common).to_bits() == v.to_bits())
                .then_some(m)
        });
        match (scaled, part) {
            (Some(m), _) => {
                mantissas.push(m);
                exponents.push(common);
            }
            (None, Some((m, e))) => {
                mantissas.push(*m);
                exponents.push(*e);
            }
            (None, None) => {
                mantissas.push(v.to_bits() as i64);
                exponents.push(RAW_EXPONENT);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetwatch_model::STALE_NAN;

    #[test]
    fn decimal_round_trips_exact_bits() {
        let vals = [
            0.0,
            -0.0,
            1.0,
            0.1,
            0.25,
            123.456,
            4294967296.0,
            0.1 + 0.2,
            1e300,
            -5e-324,
            f64::NAN,
            STALE_NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            12345.67,
            9007199254740993.0,
        ];
        let (mut m, mut e) = (Vec::new(), Vec::new());
        encode_decimal_run(&vals, &mut m, &mut e);
        for (i, v) in vals.iter().enumerate() {
            assert_eq!(decode_decimal(m[i], e[i]).to_bits(), v.to_bits(), "{v}");
        }
        // A common exponent is used for decimals of one run.
        assert_eq!(e[3], e[4]);
    }
}
