//! The load file: pre-encoded remote-write bodies, length-prefixed.
//!
//! Layout: the 8-byte magic [`MAGIC`], then records until the end of the
//! file. A record is three little-endian `u32`s — the scrape index, the
//! number of samples in the body, the body length — followed by the body
//! (snappy-compressed protobuf `WriteRequest`, exactly what is POSTed).
//! Records are in time order: all of scrape `n` before any of scrape `n+1`.
//!
//! Beside the load file, `<file>.meta` holds `key=value` lines describing it
//! (series, samples, time range), for the scripts.

use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// First bytes of a load file.
pub const MAGIC: &[u8; 8] = b"FWLOAD01";

/// One pre-encoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Index of the scrape (time step) the samples belong to.
    pub scrape: u32,
    /// Samples in the body.
    pub samples: u32,
    /// The request body as sent.
    pub body: Vec<u8>,
}

/// Writes records to a load file.
pub struct Writer {
    out: BufWriter<File>,
}

impl Writer {
    /// Creates (truncates) `path` and writes the magic.
    pub fn create(path: &Path) -> Result<Self> {
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(MAGIC)?;
        Ok(Self { out })
    }

    /// Appends one record.
    pub fn write(&mut self, scrape: u32, samples: u32, body: &[u8]) -> Result<()> {
        let len = u32::try_from(body.len()).context("request body over 4 GiB")?;
        self.out.write_all(&scrape.to_le_bytes())?;
        self.out.write_all(&samples.to_le_bytes())?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(body)?;
        Ok(())
    }

    /// Flushes and syncs the file.
    pub fn finish(mut self) -> Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_all()?;
        Ok(())
    }
}

/// Reads records from a load file, in order.
pub struct Reader {
    input: BufReader<File>,
}

impl Reader {
    /// Opens `path` and checks the magic.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut input = BufReader::with_capacity(1 << 20, file);
        let mut magic = [0u8; 8];
        input
            .read_exact(&mut magic)
            .with_context(|| format!("{} is too short for a load file", path.display()))?;
        if &magic != MAGIC {
            bail!("{} is not a load file (bad magic)", path.display());
        }
        Ok(Self { input })
    }

    /// The next record, or `None` at a clean end of file.
    pub fn next_record(&mut self) -> Result<Option<Record>> {
        let mut head = [0u8; 12];
        match self.input.read_exact(&mut head[..4]) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        self.input
            .read_exact(&mut head[4..])
            .context("truncated record header")?;
        let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        let (scrape, samples, len) = (word(0), word(4), word(8));
        let mut body = vec![0u8; len as usize];
        self.input
            .read_exact(&mut body)
            .context("truncated record body")?;
        Ok(Some(Record {
            scrape,
            samples,
            body,
        }))
    }
}

/// The path of the `.meta` file beside `path`.
pub fn meta_path(path: &Path) -> PathBuf {
    let mut os = path.as_os_str().to_owned();
    os.push(".meta");
    PathBuf::from(os)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let dir = std::env::temp_dir().join(format!("loadgen-format-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("load.bin");
        let mut w = Writer::create(&path).unwrap();
        w.write(0, 2, b"abc").unwrap();
        w.write(1, 5, b"").unwrap();
        w.finish().unwrap();
        let mut r = Reader::open(&path).unwrap();
        let first = r.next_record().unwrap().unwrap();
        assert_eq!(
            (first.scrape, first.samples, first.body.as_slice()),
            (0, 2, &b"abc"[..])
        );
        let second = r.next_record().unwrap().unwrap();
        assert_eq!(
            (second.scrape, second.samples, second.body.len()),
            (1, 5, 0)
        );
        assert!(r.next_record().unwrap().is_none());

        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 14]).unwrap();
        let mut r = Reader::open(&path).unwrap();
        assert!(r.next_record().is_err());
        std::fs::write(&path, b"nope").unwrap();
        assert!(Reader::open(&path).is_err());
        assert_eq!(meta_path(&path), dir.join("load.bin.meta"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
