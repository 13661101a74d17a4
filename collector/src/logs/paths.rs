//! Which files are tailed and how they are labelled: globs with `*` and
//! `?` in any path component, the labels the Kubernetes pod log layout
//! gives (`<namespace>_<pod>_<uid>/<container>/<n>.log`), and the label
//! and line filters of the `logs` section.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use regex::Regex;

use crate::config::LogsConfig;
use crate::discovery::wildcard;

/// At most this many files are matched by one glob.
pub const MAX_FILES_PER_GLOB: usize = 10_000;

/// The regular files matching `pattern`, sorted (at most
/// [`MAX_FILES_PER_GLOB`]).
pub fn expand_glob(pattern: &str) -> Vec<PathBuf> {
    let path = Path::new(pattern);
    let mut bases: Vec<PathBuf> = vec![PathBuf::new()];
    let comps: Vec<Component<'_>> = path.components().collect();
    for (i, comp) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        let name = match comp {
            Component::Normal(n) => n.to_string_lossy().into_owned(),
            other => {
                for b in &mut bases {
                    b.push(other.as_os_str());
                }
                continue;
            }
        };
        let mut next = Vec::new();
        for base in &bases {
            if !name.contains(['*', '?']) {
                next.push(base.join(&name));
                continue;
            }
            let dir = if base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                base.as_path()
            };
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.filter_map(Result::ok) {
                let ok_type = e.file_type().is_ok_and(|t| {
                    if last {
                        !t.is_dir()
                    } else {
                        t.is_dir() || t.is_symlink()
                    }
                });
                if ok_type && e.file_name().to_str().is_some_and(|n| wildcard(&name, n)) {
                    next.push(base.join(e.file_name()));
                }
                if next.len() >= MAX_FILES_PER_GLOB {
                    break;
                }
            }
        }
        bases = next;
    }
    bases.retain(|p| p.is_file());
    bases.sort();
    bases.truncate(MAX_FILES_PER_GLOB);
    bases
}

/// Labels from the path: `namespace`, `pod` and `container` for the pod
/// log layout, else `filename` (the whole path).
pub fn path_labels(path: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let name = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .map(str::to_string)
    };
    let container_dir = path.parent();
    let pod_dir = container_dir.and_then(Path::parent);
    if let (Some(container), Some(pod_dir)) = (name(container_dir), name(pod_dir)) {
        let parts: Vec<&str> = pod_dir.splitn(2, '_').collect();
        if let [namespace, rest] = parts.as_slice() {
            if let Some((pod, uid)) = rest.rsplit_once('_') {
                if ![*namespace, pod, uid, container.as_str()]
                    .iter()
                    .any(|s| s.is_empty())
                {
                    out.insert("namespace".to_string(), namespace.to_string());
                    out.insert("pod".to_string(), pod.to_string());
                    out.insert("container".to_string(), container);
                    return out;
                }
            }
        }
    }
    out.insert("filename".to_string(), path.to_string_lossy().into_owned());
    out
}

/// The line and label filters of the `logs` section, compiled.
#[derive(Debug, Clone)]
pub struct Filters {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    include_labels: Vec<(String, Regex)>,
    exclude_labels: Vec<(String, Regex)>,
}

impl Filters {
    /// Compiles the filters of a validated config.
    pub fn new(cfg: &LogsConfig) -> Result<Self, regex::Error> {
        let list = |v: &[String]| {
            v.iter()
                .map(|r| Regex::new(r))
                .collect::<Result<Vec<_>, _>>()
        };
        let map = |m: &BTreeMap<String, String>| {
            m.iter()
                .map(|(k, r)| Ok((k.clone(), Regex::new(&format!("^(?:{r})$"))?)))
                .collect::<Result<Vec<_>, regex::Error>>()
        };
        Ok(Self {
            include: list(&cfg.include)?,
            exclude: list(&cfg.exclude)?,
            include_labels: map(&cfg.include_labels)?,
            exclude_labels: map(&cfg.exclude_labels)?,
        })
    }

    /// Whether a file with these labels is tailed (a missing label is the
    /// empty string).
    pub fn keeps_file(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = |k: &str| labels.get(k).map_or("", String::as_str);
        self.include_labels
            .iter()
            .all(|(k, r)| r.is_match(value(k)))
            && !self
                .exclude_labels
                .iter()
                .any(|(k, r)| r.is_match(value(k)))
    }

    /// Whether a line is shipped.
    pub fn keeps_line(&self, line: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(line)))
            && !self.exclude.iter().any(|r| r.is_match(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_from_the_pod_layout() {
        let l = path_labels(Path::new(
            "/var/log/pods/vms-prod_virt-launcher-vm-1-abcde_0f3c-11/compute/0.log",
        ));
        assert_eq!(l["namespace"], "vms-prod");
        assert_eq!(l["pod"], "virt-launcher-vm-1-abcde");
        assert_eq!(l["container"], "compute");
        assert_eq!(l.len(), 3);
        // Not the layout: the whole path as filename.
        for p in [
            "/var/log/syslog",
            "/x/nounderscore/c/0.log",
            "/x/ns_pod/c/0.log",
            "0.log",
        ] {
            let l = path_labels(Path::new(p));
            assert_eq!(l.len(), 1, "{p}");
            assert_eq!(l["filename"], p);
        }
    }

    #[test]
    fn globs_match_in_every_component() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mk = |rel: &str| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, b"x").expect("write");
        };
        mk("a_p1_u1/c1/0.log");
        mk("a_p1_u1/c1/0.log.20240101");
        mk("b_p2_u2/c2/1.log");
        mk("b_p2_u2/c2/sub/2.log");
        let pattern = format!("{}/*/*/*.log", dir.path().display());
        let got = expand_glob(&pattern);
        assert_eq!(
            got,
            vec![
                dir.path().join("a_p1_u1/c1/0.log"),
                dir.path().join("b_p2_u2/c2/1.log")
            ]
        );
        assert!(expand_glob(&format!("{}/missing/*.log", dir.path().display())).is_empty());
        let exact = format!("{}/b_p2_u2/c2/1.log", dir.path().display());
        assert_eq!(expand_glob(&exact).len(), 1);
    }

    #[test]
    fn filters_lines_and_files() {
        let cfg: LogsConfig = serde_yaml::from_str(
            "url: http://h/loki/api/v1/push\ninclude: ['level=(warn|error)']\nexclude: ['healthz']\ninclude_labels: {namespace: 'prod-.*'}\nexclude_labels: {container: istio-proxy}\n",
        )
        .expect("config");
        let f = Filters::new(&cfg).expect("filters");
        assert!(f.keeps_line("level=error boom"));
        assert!(!f.keeps_line("level=info fine"));
        assert!(!f.keeps_line("level=warn GET /healthz"));
        let labels = |ns: &str, c: &str| {
            BTreeMap::from([
                ("namespace".to_string(), ns.to_string()),
                ("container".to_string(), c.to_string()),
            ])
        };
        assert!(f.keeps_file(&labels("prod-east", "compute")));
        assert!(!f.keeps_file(&labels("xprod-east", "compute")));
        assert!(!f.keeps_file(&labels("prod-east", "istio-proxy")));
        assert!(!f.keeps_file(&BTreeMap::new()));
    }
}
