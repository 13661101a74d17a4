//! Block metadata: the `meta.json` written last into every block, and the
//! time-sortable block ids.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::io::invalid;
use crate::StorageError;

/// The `meta.json` format version this code writes and reads.
pub const META_VERSION: u32 = 1;

/// Summary of one block, as the store lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockMeta {
    /// The block id (a ULID: sorts by creation time).
    pub id: String,
    /// Smallest timestamp the block covers (inclusive, ms).
    pub min_time: i64,
    /// Largest timestamp the block covers (inclusive, ms).
    pub max_time: i64,
    /// Number of series.
    pub num_series: u64,
    /// Number of samples.
    pub num_samples: u64,
    /// Compaction level: 1 for a block cut from the head, +1 per compaction.
    pub level: u32,
    /// Ids of the blocks this one was compacted from (empty at level 1).
    pub sources: Vec<String>,
    /// Total size of the block's files in bytes.
    pub bytes: u64,
}

/// Compaction lineage as stored in `meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CompactionMeta {
    /// Compaction level.
    pub level: u32,
    /// Direct source block ids.
    pub sources: Vec<String>,
}

/// The on-disk `meta.json` document.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MetaFile {
    /// Format version ([`META_VERSION`]).
    pub version: u32,
    /// Block id.
    pub id: String,
    /// Smallest covered timestamp (ms, inclusive).
    pub min_time: i64,
    /// Largest covered timestamp (ms, inclusive).
    pub max_time: i64,
    /// Number of series.
    pub num_series: u64,
    /// Number of samples.
    pub num_samples: u64,
    /// Compaction lineage.
    pub compaction: CompactionMeta,
    /// Size in bytes of every data file of the block, by file name.
    pub files: BTreeMap<String, u64>,
    /// How `samples.parquet` stores values (`"float64"` or `"decimal"`).
    #[serde(default = "default_value_encoding")]
    pub value_encoding: String,
}

fn default_value_encoding() -> String {
    "float64".to_string()
}

impl MetaFile {
    /// Parses and validates a `meta.json` body.
    pub fn parse(path: &str, body: &[u8]) -> Result<Self, StorageError> {
        let meta: MetaFile = serde_json::from_slice(body)
            .map_err(|e| invalid(path, format!("bad meta.json: {e}")))?;
        if meta.version != META_VERSION {
            return Err(invalid(
                path,
                format!("unsupported block meta version {}", meta.version),
            ));
        }
        if meta.min_time > meta.max_time {
            return Err(invalid(path, "meta.json has min_time > max_time"));
        }
        Ok(meta)
    }

    /// The summary the store exposes.
    pub fn summary(&self) -> BlockMeta {
        BlockMeta {
            id: self.id.clone(),
            min_time: self.min_time,
            max_time: self.max_time,
            num_series: self.num_series,
            num_samples: self.num_samples,
            level: self.compaction.level,
            sources: self.compaction.sources.clone(),
            bytes: self.total_bytes(),
        }
    }

    /// Total bytes of the data files plus an estimate for meta.json itself.
    pub fn total_bytes(&self) -> u64 {
        self.files.values().sum::<u64>()
    }
}

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new ULID-style id: 48 bits of milliseconds then 80 random bits, in
/// Crockford base32 (26 characters). Ids sort by creation time.
pub fn new_block_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let ms = now.as_millis() as u64 & ((1 << 48) - 1);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(now.subsec_nanos());
    h.write_u32(std::process::id());
    let r1 = h.finish();
    h.write_u64(r1);
    let r2 = h.finish() & 0xffff;
    // 128 bits: ms(48) | r1(64) | r2(16)
    let value: u128 = (u128::from(ms) << 80) | (u128::from(r1) << 16) | u128::from(r2);
    let mut out = [0u8; 26];
    for (i, c) in out.iter_mut().enumerate() {
        let shift = 125 - 5 * i as i32;
        let idx = if shift >= 0 {
            (value >> shift) & 31
        } else {
            (value << (-shift)) & 31
        };
        *c = CROCKFORD[idx as usize];
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// True when `s` looks like a block id this code wrote.
pub fn is_block_id(s: &str) -> bool {
    s.len() == 26 && s.bytes().all(|b| CROCKFORD.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_valid() {
        let a = new_block_id();
        let b = new_block_id();
        assert_ne!(a, b);
        assert!(is_block_id(&a), "{a}");
        assert!(!is_block_id("tmp"));
    }

    #[test]
    fn meta_round_trip() {
        let m = MetaFile {
            version: META_VERSION,
            id: new_block_id(),
            min_time: 1,
            max_time: 2,
            num_series: 3,
            num_samples: 4,
            compaction: CompactionMeta {
                level: 1,
                sources: vec![],
            },
            files: BTreeMap::from([("samples.parquet".to_string(), 10)]),
            value_encoding: "decimal".into(),
        };
        let body = serde_json::to_vec(&m).unwrap();
        assert_eq!(MetaFile::parse("x", &body).unwrap(), m);
        assert!(MetaFile::parse("x", b"{").is_err());
    }
}
