//! File-based service discovery (`file_sd_configs`), as Prometheus does it:
//! YAML or JSON files holding a list of `{targets: [...], labels: {...}}`
//! groups; the last path component may contain `*` and `?` wildcards.
//! Files are polled; one that changed (modification time or size) or was
//! last read longer than its `refresh_interval` ago is read again. A file
//! that fails to parse keeps its previous groups (and the error is logged).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::config::{CollectorConfig, FileSdConfig, StaticConfig};

/// The label holding the file a target came from.
pub const FILEPATH_LABEL: &str = "__meta_filepath";

#[derive(Debug, Clone)]
struct Entry {
    stamp: Option<(SystemTime, u64)>,
    read_at: Instant,
    groups: Vec<StaticConfig>,
}

/// The groups read from every file the config's `file_sd_configs` name.
#[derive(Debug, Default)]
pub struct FileSd {
    files: BTreeMap<PathBuf, Entry>,
}

impl FileSd {
    /// Re-reads what changed; returns true when some file's groups changed
    /// (or a file appeared or vanished).
    pub fn refresh(&mut self, cfg: &CollectorConfig) -> bool {
        let mut wanted: BTreeMap<PathBuf, Duration> = BTreeMap::new();
        for sd in cfg.scrape_configs.iter().flat_map(|s| &s.file_sd_configs) {
            for pattern in &sd.files {
                for p in expand(Path::new(pattern)) {
                    let every = sd.refresh_interval.as_duration();
                    let e = wanted.entry(p).or_insert(every);
                    *e = (*e).min(every);
                }
            }
        }
        let before = self.files.len();
        self.files.retain(|p, _| wanted.contains_key(p));
        let mut changed = self.files.len() != before;
        for (path, every) in wanted {
            let stamp = std::fs::metadata(&path)
                .ok()
                .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
            let stale = match self.files.get(&path) {
                None => true,
                Some(e) => e.stamp != stamp || e.read_at.elapsed() >= every,
            };
            if !stale {
                continue;
            }
            let groups = match read_groups(&path) {
                Ok(g) => g,
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "cannot read file_sd file; keeping its previous targets");
                    match self.files.get_mut(&path) {
                        Some(old) => {
                            old.stamp = stamp;
                            old.read_at = Instant::now();
                        }
                        None => {
                            self.files.insert(
                                path,
                                Entry {
                                    stamp,
                                    read_at: Instant::now(),
                                    groups: Vec::new(),
                                },
                            );
                        }
                    }
                    continue;
                }
            };
            let same = self.files.get(&path).is_some_and(|e| e.groups == groups);
            changed |= !same;
            self.files.insert(
                path,
                Entry {
                    stamp,
                    read_at: Instant::now(),
                    groups,
                },
            );
        }
        changed
    }

    /// The groups of one `file_sd_configs` entry, with the file each came from.
    pub fn groups<'a>(&'a self, sd: &FileSdConfig) -> Vec<(&'a Path, &'a StaticConfig)> {
        let mut out = Vec::new();
        for pattern in &sd.files {
            for p in expand(Path::new(pattern)) {
                if let Some((path, e)) = self.files.get_key_value(&p) {
                    out.extend(e.groups.iter().map(|g| (path.as_path(), g)));
                }
            }
        }
        out
    }
}

/// Reads one file: YAML or JSON, a list of target groups; empty is no groups.
pub fn read_groups(path: &Path) -> Result<Vec<StaticConfig>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_yaml::from_str(&text).map_err(|e| e.to_string())
}

/// The files matching `pattern` (wildcards in the last component only), sorted.
pub fn expand(pattern: &Path) -> Vec<PathBuf> {
    let Some(name) = pattern.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    if !name.contains(['*', '?']) {
        return vec![pattern.to_path_buf()];
    }
    let dir = match pattern.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| e.file_name().to_str().is_some_and(|n| wildcard(name, n)))
        .map(|e| dir.join(e.file_name()))
        .collect();
    out.sort();
    out
}

/// `*` matches any run of characters, `?` one character.
pub(crate) fn wildcard(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Classic two-pointer match with backtracking to the last `*`.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard("*.json", "a.json"));
        assert!(wildcard("t?.y*ml", "t1.yaml"));
        assert!(!wildcard("*.json", "a.yaml"));
        assert!(wildcard("*", ""));
        assert!(!wildcard("a?", "a"));
    }

    #[test]
    fn reads_yaml_and_json_and_notices_changes() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.json");
        let b = dir.path().join("b.yml");
        std::fs::write(&a, r#"[{"targets": ["h1:1"], "labels": {"env": "x"}}]"#).unwrap();
        std::fs::write(&b, "- targets: ['h2:2']\n").unwrap();
        let cfg = CollectorConfig::from_yaml_str(&format!(
            "scrape_configs: [{{job_name: j, file_sd_configs: [{{files: ['{}/*.json', '{}']}}]}}]",
            dir.path().display(),
            b.display()
        ))
        .unwrap();
        let mut sd = FileSd::default();
        assert!(sd.refresh(&cfg));
        let sdc = &cfg.scrape_configs[0].file_sd_configs[0];
        let g = sd.groups(sdc);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].0, a.as_path());
        assert_eq!(g[0].1.targets, ["h1:1"]);
        assert_eq!(g[0].1.labels["env"], "x");
        assert!(!sd.refresh(&cfg), "nothing changed");
        // A broken file keeps its old groups; a fixed one is picked up.
        std::fs::write(&b, "- targets: [unclosed\n").unwrap();
        sd.refresh(&cfg);
        assert_eq!(sd.groups(sdc).len(), 2);
        std::fs::write(&b, "- targets: ['h2:2', 'h3:3']\n").unwrap();
        assert!(sd.refresh(&cfg));
        assert_eq!(sd.groups(sdc)[1].1.targets, ["h2:2", "h3:3"]);
        std::fs::remove_file(&a).unwrap();
        assert!(sd.refresh(&cfg), "a vanished file is a change");
        assert_eq!(sd.groups(sdc).len(), 1);
    }
}
