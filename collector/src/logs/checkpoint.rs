//! How far each tailed file has been read: the checkpoint file
//! (`<logs dir>/checkpoint`), replaced atomically (temporary file, fsync,
//! rename, directory fsync) after every batch is durably queued.
//!
//! A checkpoint that is missing starts every file from its beginning; one
//! that is torn or garbage is reported (log line and
//! `fleetwatch_collector_log_checkpoint_errors_total`), set aside as
//! `checkpoint.corrupt` and treated as missing, so lines may be shipped
//! twice but none is lost.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::format::FileFormat;
use super::frame;

/// Name of the checkpoint file in the logs directory.
pub const CHECKPOINT_FILE: &str = "checkpoint";
/// Where a damaged checkpoint is moved.
const CORRUPT_FILE: &str = "checkpoint.corrupt";
const MAGIC: &[u8; 4] = b"FWLC";
/// A checkpoint larger than this is treated as damaged (not read).
const MAX_CHECKPOINT_BYTES: u64 = 256 << 20;

/// A CRI/Docker partial line waiting for its end.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Pending {
    /// Timestamp of the first part.
    pub ts_ns: i64,
    /// The parts so far (at most `max_line_bytes`).
    pub text: String,
    /// True once the line was cut at `max_line_bytes`; later parts are
    /// skipped until the line ends.
    pub cut: bool,
}

/// The reading state of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    /// Where the file was found.
    pub path: PathBuf,
    /// Device of the file.
    pub dev: u64,
    /// Inode of the file.
    pub ino: u64,
    /// Bytes of the fingerprint (the first bytes of the file, at most 256).
    pub fp_len: u64,
    /// CRC-32 of those bytes.
    pub fp: u32,
    /// Bytes consumed: every whole line before it was handled.
    pub offset: u64,
    /// The file's format once known.
    pub format: Option<FileFormat>,
    /// Partial lines per stream (`stdout`, `stderr`).
    #[serde(default)]
    pub pending: BTreeMap<String, Pending>,
    /// True while the rest of an over-long physical line is being skipped.
    #[serde(default)]
    pub skipping: bool,
}

impl FileState {
    /// The file's identity.
    pub fn key(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }
}

/// Everything the checkpoint file holds.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The sequence number of the last batch these offsets include.
    pub seq: u64,
    /// The files being read.
    pub files: Vec<FileState>,
}

/// What [`load`] found.
#[derive(Debug)]
pub struct Loaded {
    /// The checkpoint (empty when missing or damaged).
    pub checkpoint: Checkpoint,
    /// Why the file was unusable, when it was.
    pub damaged: Option<String>,
}

/// Reads the checkpoint in `dir`. Never fails: a damaged file is moved
/// aside and reported in [`Loaded::damaged`].
pub fn load(dir: &Path) -> Loaded {
    let path = dir.join(CHECKPOINT_FILE);
    let bytes = match frame::read_bounded(&path, MAX_CHECKPOINT_BYTES) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Loaded {
                checkpoint: Checkpoint::default(),
                damaged: None,
            }
        }
        Err(e) => return damaged(dir, &path, format!("cannot read it: {e}")),
    };
    let parsed = frame::decode(MAGIC, &bytes).and_then(|payload| {
        serde_json::from_slice::<Checkpoint>(payload).map_err(|e| format!("invalid content: {e}"))
    });
    match parsed {
        Ok(checkpoint) => Loaded {
            checkpoint,
            damaged: None,
        },
        Err(reason) => damaged(dir, &path, reason),
    }
}

fn damaged(dir: &Path, path: &Path, reason: String) -> Loaded {
    tracing::error!(file = %path.display(), reason = %reason, "log checkpoint is damaged; reading every file from its beginning (lines may be shipped twice)");
    if let Err(e) = std::fs::rename(path, dir.join(CORRUPT_FILE)) {
        tracing::warn!(file = %path.display(), error = %e, "cannot move the damaged log checkpoint aside");
    }
    Loaded {
        checkpoint: Checkpoint::default(),
        damaged: Some(reason),
    }
}

/// Replaces the checkpoint in `dir` durably.
pub fn save(dir: &Path, checkpoint: &Checkpoint) -> std::io::Result<()> {
    let payload = serde_json::to_vec(checkpoint).map_err(std::io::Error::other)?;
    frame::write_atomic(&dir.join(CHECKPOINT_FILE), &frame::encode(MAGIC, &payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        let mut pending = BTreeMap::new();
        pending.insert(
            "stdout".to_string(),
            Pending {
                ts_ns: 5,
                text: "half a li".to_string(),
                cut: false,
            },
        );
        Checkpoint {
            seq: 7,
            files: vec![FileState {
                path: PathBuf::from("ns_pod_uid/c/0.log"),
                dev: 1,
                ino: 2,
                fp_len: 3,
                fp: 4,
                offset: 99,
                format: Some(FileFormat::Cri),
                pending,
                skipping: false,
            }],
        }
    }

    #[test]
    fn saves_and_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = load(dir.path());
        assert_eq!(l.checkpoint, Checkpoint::default());
        assert!(l.damaged.is_none());
        save(dir.path(), &sample()).expect("save");
        let l = load(dir.path());
        assert_eq!(l.checkpoint, sample());
        assert!(l.damaged.is_none());
    }

    #[test]
    fn torn_or_garbage_checkpoint_falls_back_to_empty_and_is_set_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        save(dir.path(), &sample()).expect("save");
        let path = dir.path().join(CHECKPOINT_FILE);
        let bytes = std::fs::read(&path).expect("read");
        // Torn: cut in the middle.
        std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("tear");
        let l = load(dir.path());
        assert_eq!(l.checkpoint, Checkpoint::default());
        assert!(l.damaged.is_some_and(|r| r.contains("header says")));
        assert!(!path.exists());
        assert!(dir.path().join(CORRUPT_FILE).exists());
        // Garbage.
        std::fs::write(&path, b"\x00garbage garbage garbage").expect("garbage");
        let l = load(dir.path());
        assert_eq!(l.checkpoint, Checkpoint::default());
        assert_eq!(l.damaged.as_deref(), Some("wrong magic bytes"));
        // A valid frame around something that is not a checkpoint.
        std::fs::write(&path, frame::encode(MAGIC, b"[1,2]")).expect("write");
        let l = load(dir.path());
        assert!(l.damaged.is_some_and(|r| r.starts_with("invalid content")));
        // Saving again works after a damaged one.
        save(dir.path(), &sample()).expect("save");
        assert_eq!(load(dir.path()).checkpoint, sample());
    }
}
