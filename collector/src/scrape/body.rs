//! Reading a scrape response's body (decompressed by the client when the
//! target sent gzip) into a reused buffer, within a size limit.

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Larger than the limit.
    TooLarge,
    /// The connection failed.
    Read(reqwest::Error),
}

/// Reads `resp`'s body into `buf` (cleared first), chunk by chunk, failing
/// as soon as it would be larger than `limit` bytes.
pub async fn read_body(
    resp: &mut reqwest::Response,
    limit: u64,
    buf: &mut Vec<u8>,
) -> Result<(), BodyError> {
    buf.clear();
    if let Some(len) = resp.content_length() {
        if len > limit {
            return Err(BodyError::TooLarge);
        }
        // Bounded by the limit just checked.
        buf.reserve(usize::try_from(len).unwrap_or(0));
    }
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Read)? {
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(())
}
