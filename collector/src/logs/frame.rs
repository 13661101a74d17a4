//! The on-disk envelope of the log checkpoint and of queued batches:
//! `magic (4 bytes) | len: u32 LE | crc32(payload): u32 LE | payload`,
//! written to a temporary file, fsynced, renamed over the target and the
//! directory fsynced, so a reader sees the old file or the new one whole.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

/// Bytes before the payload.
pub const HEADER_LEN: usize = 12;

/// Wraps `payload` in the envelope.
pub fn encode(magic: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(magic);
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The payload of an envelope, or why it is not a whole, intact one.
pub fn decode<'a>(magic: &[u8; 4], bytes: &'a [u8]) -> Result<&'a [u8], String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!("{} bytes is shorter than the header", bytes.len()));
    }
    if &bytes[0..4] != magic {
        return Err("wrong magic bytes".to_string());
    }
    let len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    let crc = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let payload = &bytes[HEADER_LEN..];
    if payload.len() != len {
        return Err(format!(
            "payload is {} bytes, the header says {len}",
            payload.len()
        ));
    }
    if crc32fast::hash(payload) != crc {
        return Err("checksum mismatch".to_string());
    }
    Ok(payload)
}

/// Reads a whole file of at most `max` bytes (checked before reading).
pub fn read_bounded(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let len = fs::metadata(path)?.len();
    if len > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{len} bytes is over the limit of {max}"),
        ));
    }
    fs::read(path)
}

/// Replaces `path` with `bytes` atomically and durably: write `<path>.tmp`,
/// fsync it, rename it over `path`, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    {
        let mut f = File::create(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Fsyncs a directory so renames and removals in it are durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let f = encode(b"TEST", b"hello");
        assert_eq!(decode(b"TEST", &f), Ok(&b"hello"[..]));
        assert!(decode(b"ABCD", &f).is_err());
        assert!(decode(b"TEST", &f[..f.len() - 1]).is_err());
        let mut flipped = f.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(
            decode(b"TEST", &flipped),
            Err("checksum mismatch".to_string())
        );
        assert!(decode(b"TEST", b"TE").is_err());
    }

    #[test]
    fn writes_atomically_and_reads_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x");
        write_atomic(&p, b"one").expect("write");
        write_atomic(&p, b"two").expect("rewrite");
        assert_eq!(read_bounded(&p, 3).expect("read"), b"two");
        assert!(read_bounded(&p, 2).is_err());
        assert!(!dir.path().join("x.tmp").exists());
    }
}
