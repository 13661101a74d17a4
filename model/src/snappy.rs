//! Snappy *block* format (as remote write and Loki push use it), with the
//! declared decompressed length checked against a limit before anything
//! is allocated.

use crate::ModelError;

/// Decompresses a snappy block, refusing a body larger than `limit` bytes
/// and a declared decompressed length above `limit` before allocating.
pub fn decompress(body: &[u8], limit: usize) -> Result<Vec<u8>, ModelError> {
    if body.len() > limit {
        return Err(ModelError::TooLarge {
            what: "compressed body",
            size: body.len(),
            limit,
        });
    }
    let declared = snap::raw::decompress_len(body).map_err(|e| ModelError::Snappy {
        reason: e.to_string(),
    })?;
    if declared > limit {
        return Err(ModelError::TooLarge {
            what: "declared decompressed length",
            size: declared,
            limit,
        });
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| ModelError::Snappy {
            reason: e.to_string(),
        })
}

/// Compresses `data` as one snappy block.
pub fn compress(data: &[u8]) -> Vec<u8> {
    // Encoding into a buffer sized by max_compress_len cannot fail for
    // inputs below snappy's 4 GiB block limit; fall back to an empty body
    // (which the receiver rejects) rather than panicking.
    snap::raw::Encoder::new()
        .compress_vec(data)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_limits() {
        let data = vec![7u8; 10_000];
        let c = compress(&data);
        assert_eq!(decompress(&c, 20_000).unwrap(), data);
        assert!(matches!(
            decompress(&c, 5_000),
            Err(ModelError::TooLarge {
                what: "declared decompressed length",
                ..
            })
        ));
        assert!(matches!(
            decompress(b"\xff\xff\xff\xff\xff\xff", 100),
            Err(ModelError::Snappy { .. })
        ));
        assert!(matches!(
            decompress(&[0u8; 200], 100),
            Err(ModelError::TooLarge {
                what: "compressed body",
                ..
            })
        ));
    }
}
