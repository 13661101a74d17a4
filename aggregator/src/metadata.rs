//! Metric metadata (type, help, unit) that arrives with remote writes,
//! kept per metric family for `/api/v1/metadata` (Grafana's query builder
//! and metric browser read it) and persisted to `metadata.json` in the data
//! directory so a restart does not forget it.
//!
//! Bounded: at most [`MAX_FAMILIES`] families and [`MAX_PER_FAMILY`]
//! distinct entries per family (targets may disagree on help texts); texts
//! longer than [`MAX_TEXT_BYTES`] are not kept.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use fleetwatch_model::remote_write::FamilyMetadata;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The most metric families kept.
pub const MAX_FAMILIES: usize = 100_000;
/// The most distinct entries kept per family; the oldest goes first.
pub const MAX_PER_FAMILY: usize = 8;
/// The longest help or unit text kept.
pub const MAX_TEXT_BYTES: usize = 4096;

const FILE_NAME: &str = "metadata.json";

/// One metadata entry as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// `counter`, `gauge`, `histogram`, `summary`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The HELP text.
    pub help: String,
    /// The unit.
    pub unit: String,
}

#[derive(Default)]
struct Inner {
    families: BTreeMap<String, Vec<Entry>>,
    dirty: bool,
}

/// The hub's metadata, shared by the write path and the API.
pub struct MetadataStore {
    path: PathBuf,
    inner: Mutex<Inner>,
}

impl MetadataStore {
    /// Opens the store under `data_dir`, loading what an earlier run saved.
    /// A file that does not parse is moved aside (and logged), not fatal:
    /// metadata is advisory and comes again with the next writes.
    pub fn open(data_dir: &Path) -> Self {
        let path = data_dir.join(FILE_NAME);
        let families = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<BTreeMap<String, Vec<Entry>>>(&bytes) {
                Ok(f) => f,
                Err(e) => {
                    let aside = path.with_extension("json.corrupt");
                    tracing::warn!(error = %e, file = %path.display(), moved_to = %aside.display(),
                        "metadata file does not parse; starting without metadata");
                    let _ = std::fs::rename(&path, &aside);
                    BTreeMap::new()
                }
            },
            Err(_) => BTreeMap::new(),
        };
        Self {
            path,
            inner: Mutex::new(Inner {
                families,
                dirty: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records entries from one write request.
    pub fn record(&self, entries: Vec<FamilyMetadata>) {
        if entries.is_empty() {
            return;
        }
        let mut inner = self.lock();
        for m in entries {
            if m.help.len() > MAX_TEXT_BYTES || m.unit.len() > MAX_TEXT_BYTES {
                continue;
            }
            let entry = Entry {
                kind: m.kind.to_string(),
                help: m.help,
                unit: m.unit,
            };
            let at_capacity = inner.families.len() >= MAX_FAMILIES;
            let list = match inner.families.get_mut(&m.family) {
                Some(list) => list,
                None if at_capacity => continue,
                None => inner.families.entry(m.family).or_default(),
            };
            if list.contains(&entry) {
                continue;
            }
            if list.len() >= MAX_PER_FAMILY {
                list.remove(0);
            }
            list.push(entry);
            inner.dirty = true;
        }
    }

    /// The API answer: families (all, or only `metric`) with their entries,
    /// at most `limit` families and `limit_per_metric` entries each.
    pub fn query(
        &self,
        metric: Option<&str>,
        limit: Option<usize>,
        limit_per_metric: Option<usize>,
    ) -> Value {
        let inner = self.lock();
        let per = limit_per_metric.unwrap_or(usize::MAX);
        let selected: Box<dyn Iterator<Item = (&String, &Vec<Entry>)>> = match metric {
            Some(m) => Box::new(inner.families.get_key_value(m).into_iter()),
            None => Box::new(inner.families.iter()),
        };
        let map: serde_json::Map<String, Value> = selected
            .take(limit.unwrap_or(usize::MAX))
            .map(|(name, entries)| {
                let list = entries
                    .iter()
                    .take(per)
                    .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
                    .collect();
                (name.clone(), Value::Array(list))
            })
            .collect();
        Value::Object(map)
    }

    /// Number of families held.
    pub fn len(&self) -> usize {
        self.lock().families.len()
    }

    /// True when no metadata is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the store to disk if it changed (temporary file, fsync,
    /// rename), so a crash leaves the old file or the new one.
    pub fn persist(&self) -> std::io::Result<()> {
        let bytes = {
            let mut inner = self.lock();
            if !inner.dirty {
                return Ok(());
            }
            inner.dirty = false;
            serde_json::to_vec(&inner.families).map_err(std::io::Error::other)?
        };
        let tmp = self.path.with_extension("json.tmp");
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if result.is_err() {
            self.lock().dirty = true;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(family: &str, kind: &'static str, help: &str) -> FamilyMetadata {
        FamilyMetadata {
            family: family.into(),
            kind,
            help: help.into(),
            unit: String::new(),
        }
    }

    #[test]
    fn records_deduplicates_bounds_and_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MetadataStore::open(dir.path());
        store.record(vec![
            meta("up", "gauge", "Target is up."),
            meta("up", "gauge", "Target is up."),
            meta("reqs_total", "counter", "Requests."),
            meta("huge", "gauge", &"x".repeat(MAX_TEXT_BYTES + 1)),
        ]);
        for i in 0..(MAX_PER_FAMILY + 2) {
            store.record(vec![meta("reqs_total", "counter", &format!("help {i}"))]);
        }
        assert_eq!(store.len(), 2);
        let all = store.query(None, None, None);
        assert_eq!(all["up"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            all["reqs_total"].as_array().map(Vec::len),
            Some(MAX_PER_FAMILY)
        );
        assert_eq!(all["up"][0]["type"], "gauge");
        assert_eq!(all["up"][0]["help"], "Target is up.");
        let one = store.query(Some("up"), None, None);
        assert_eq!(one.as_object().map(|m| m.len()), Some(1));
        let limited = store.query(None, Some(1), Some(1));
        assert_eq!(limited.as_object().map(|m| m.len()), Some(1));
        assert_eq!(limited["reqs_total"].as_array().map(Vec::len), Some(1));

        store.persist().expect("persist");
        let again = MetadataStore::open(dir.path());
        assert_eq!(again.query(None, None, None), all);
    }

    #[test]
    fn a_corrupt_file_is_moved_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(FILE_NAME), b"{not json").expect("write");
        let store = MetadataStore::open(dir.path());
        assert!(store.is_empty());
        assert!(dir.path().join("metadata.json.corrupt").exists());
    }
}
