//! The Kubernetes manifests in `deploy/`: every file a kustomization names
//! exists and parses; the references between objects agree (ConfigMap
//! names and keys, volumes and mounts, claims, service accounts, RBAC,
//! Service selectors and ports, probe ports); and the configuration files
//! the manifests mount load with the same code the binary uses, with the
//! paths and ports the manifests give them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml::Value;

/// One kustomization: its namespace, objects and generated ConfigMaps.
struct Kustomization {
    dir: PathBuf,
    namespace: String,
    objects: Vec<Value>,
    /// Generated ConfigMap name -> key -> file.
    config_maps: BTreeMap<String, BTreeMap<String, PathBuf>>,
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} cannot be read: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            serde::Deserialize::deserialize(d)
                .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
        })
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str().unwrap_or("")
}

fn list(v: &Value) -> Vec<Value> {
    v.as_sequence().cloned().unwrap_or_default()
}

fn load(dir: &Path) -> Kustomization {
    let k = yaml_docs(&dir.join("kustomization.yaml"))
        .pop()
        .expect("kustomization document");
    assert_eq!(s(&k, &["kind"]), "Kustomization");
    let namespace = s(&k, &["namespace"]).to_string();
    assert!(!namespace.is_empty(), "{}: namespace", dir.display());
    let mut objects = Vec::new();
    for r in list(&k["resources"]) {
        let path = dir.join(r.as_str().expect("resource path"));
        for doc in yaml_docs(&path) {
            for field in ["apiVersion", "kind"] {
                assert!(!s(&doc, &[field]).is_empty(), "{}: {field}", path.display());
            }
            assert!(
                !s(&doc, &["metadata", "name"]).is_empty(),
                "{}: metadata.name",
                path.display()
            );
            objects.push(doc);
        }
    }
    let mut config_maps = BTreeMap::new();
    for g in list(&k["configMapGenerator"]) {
        let mut keys = BTreeMap::new();
        for f in list(&g["files"]) {
            let f = f.as_str().expect("generator file");
            let (key, file) = f.split_once('=').unwrap_or((
                Path::new(f)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or(f),
                f,
            ));
            let path = dir.join(file);
            assert!(path.is_file(), "generator file {} exists", path.display());
            keys.insert(key.to_string(), path);
        }
        config_maps.insert(s(&g, &["name"]).to_string(), keys);
    }
    Kustomization {
        dir: dir.to_path_buf(),
        namespace,
        objects,
        config_maps,
    }
}

impl Kustomization {
    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|o| s(o, &["kind"]) == kind)
            .collect()
    }

    fn names(&self, kind: &str) -> BTreeSet<String> {
        self.of_kind(kind)
            .iter()
            .map(|o| s(o, &["metadata", "name"]).to_string())
            .collect()
    }

    fn workloads(&self) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|o| matches!(s(o, &["kind"]), "Deployment" | "StatefulSet"))
            .collect()
    }
}

/// What one container of a workload mounts: mount path -> the files the
/// mount holds (for ConfigMap volumes) or `None` (claims).
struct Mounts {
    files: BTreeMap<PathBuf, Option<BTreeMap<String, PathBuf>>>,
}

/// Checks one workload's internal references; returns its first
/// container's mounts, args and ports.
fn check_workload(k: &Kustomization, w: &Value) -> (Mounts, Vec<String>, BTreeMap<String, i64>) {
    let name = s(w, &["metadata", "name"]);
    let spec = &w["spec"];
    let pod_labels = &spec["template"]["metadata"]["labels"];
    for (key, value) in spec["selector"]["matchLabels"]
        .as_mapping()
        .expect("selector.matchLabels")
    {
        assert_eq!(&pod_labels[key], value, "{name}: selector label {key:?}");
    }
    let pod = &spec["template"]["spec"];
    if let Some(sa) = pod["serviceAccountName"].as_str() {
        assert!(
            k.names("ServiceAccount").contains(sa),
            "{name}: service account {sa}"
        );
    }
    let claims: BTreeSet<String> = k.names("PersistentVolumeClaim");
    let templates: BTreeSet<String> = list(&spec["volumeClaimTemplates"])
        .iter()
        .map(|t| s(t, &["metadata", "name"]).to_string())
        .collect();
    let mut volumes: BTreeMap<String, Option<BTreeMap<String, PathBuf>>> = BTreeMap::new();
    for v in list(&pod["volumes"]) {
        let vname = s(&v, &["name"]).to_string();
        if let Some(cm) = v["configMap"]["name"].as_str() {
            let keys = k.config_maps.get(cm).unwrap_or_else(|| {
                panic!("{name}: volume {vname} uses ConfigMap {cm}, not generated")
            });
            let mut files = BTreeMap::new();
            let items = list(&v["configMap"]["items"]);
            if items.is_empty() {
                files.extend(keys.iter().map(|(k, p)| (k.clone(), p.clone())));
            }
            for item in items {
                let key = s(&item, &["key"]);
                let file = keys
                    .get(key)
                    .unwrap_or_else(|| panic!("{name}: ConfigMap {cm} has no key {key}"));
                files.insert(s(&item, &["path"]).to_string(), file.clone());
            }
            volumes.insert(vname, Some(files));
        } else if let Some(claim) = v["persistentVolumeClaim"]["claimName"].as_str() {
            assert!(claims.contains(claim), "{name}: claim {claim}");
            volumes.insert(vname, None);
        } else {
            panic!("{name}: volume {vname} of an unchecked kind");
        }
    }
    for t in &templates {
        volumes.insert(t.clone(), None);
    }
    let containers = list(&pod["containers"]);
    let c = containers.first().expect("a container");
    let ports: BTreeMap<String, i64> = list(&c["ports"])
        .iter()
        .map(|p| {
            (
                s(p, &["name"]).to_string(),
                p["containerPort"].as_i64().expect("containerPort"),
            )
        })
        .collect();
    for probe in ["readinessProbe", "livenessProbe"] {
        let port = &c[probe]["httpGet"]["port"];
        if let Some(p) = port.as_str() {
            assert!(ports.contains_key(p), "{name}: {probe} port {p}");
        }
        assert!(
            s(&c[probe], &["httpGet", "path"]).starts_with("/-/"),
            "{name}: {probe} path"
        );
    }
    let mut mounts = Mounts {
        files: BTreeMap::new(),
    };
    for m in list(&c["volumeMounts"]) {
        let vname = s(&m, &["name"]);
        let vol = volumes
            .get(vname)
            .unwrap_or_else(|| panic!("{name}: mount of unknown volume {vname}"));
        mounts
            .files
            .insert(PathBuf::from(s(&m, &["mountPath"])), vol.clone());
    }
    let args = list(&c["args"])
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect();
    (mounts, args, ports)
}

fn flag<'a>(args: &'a [String], name: &str) -> &'a str {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
        .unwrap_or_else(|| panic!("args lack {name}: {args:?}"))
}

/// The repository file a mounted file comes from.
fn mounted_file(mounts: &Mounts, path: &str) -> PathBuf {
    let path = Path::new(path);
    let (dir, files) = mounts
        .files
        .iter()
        .filter(|(dir, _)| path.starts_with(dir))
        .max_by_key(|(dir, _)| dir.as_os_str().len())
        .unwrap_or_else(|| panic!("{} is not under any mount", path.display()));
    let rel = path.strip_prefix(dir).expect("under the mount");
    let files = files
        .as_ref()
        .unwrap_or_else(|| panic!("{} is on a claim, not a ConfigMap", path.display()));
    files
        .get(rel.to_str().expect("utf-8"))
        .cloned()
        .unwrap_or_else(|| panic!("no ConfigMap key is mounted at {}", path.display()))
}

fn port_of(addr: &str) -> i64 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {addr}"))
}

/// Checks every Service against the workloads and returns name -> port.
fn check_services(k: &Kustomization) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for svc in k.of_kind("Service") {
        let name = s(svc, &["metadata", "name"]);
        let selector = svc["spec"]["selector"].as_mapping().expect("selector");
        let target = k
            .workloads()
            .into_iter()
            .find(|w| {
                let labels = &w["spec"]["template"]["metadata"]["labels"];
                selector.iter().all(|(key, v)| &labels[key] == v)
            })
            .unwrap_or_else(|| panic!("Service {name} selects no workload"));
        let (_, _, ports) = check_workload(k, target);
        for p in list(&svc["spec"]["ports"]) {
            match &p["targetPort"] {
                Value::String(named) => {
                    assert!(
                        ports.contains_key(named),
                        "Service {name}: targetPort {named}"
                    )
                }
                Value::Number(n) => assert!(
                    ports.values().any(|v| Some(*v) == n.as_i64()),
                    "Service {name}: targetPort {n}"
                ),
                other => panic!("Service {name}: targetPort {other:?}"),
            }
            out.insert(name.to_string(), p["port"].as_i64().expect("port"));
        }
    }
    out
}

fn check_rbac(k: &Kustomization) {
    let roles = k.names("ClusterRole");
    for b in k.of_kind("ClusterRoleBinding") {
        let role = s(b, &["roleRef", "name"]);
        assert!(
            roles.contains(role),
            "binding to unknown ClusterRole {role}"
        );
        for subj in list(&b["subjects"]) {
            assert_eq!(s(&subj, &["kind"]), "ServiceAccount");
            assert!(k.names("ServiceAccount").contains(s(&subj, &["name"])));
            assert_eq!(s(&subj, &["namespace"]), k.namespace, "subject namespace");
        }
    }
}

#[test]
fn hub_manifests_are_consistent_and_its_config_loads() {
    let k = load(&deploy_dir());
    assert_eq!(k.names("Namespace"), BTreeSet::from([k.namespace.clone()]));
    let service_ports = check_services(&k);
    let hub = k.names("StatefulSet");
    assert_eq!(hub.len(), 1, "one hub StatefulSet");
    let w = k.workloads()[0];
    let (mounts, args, ports) = check_workload(&k, w);
    assert_eq!(args.first().map(String::as_str), Some("aggregator"));
    let config_path = flag(&args, "--config");
    let file = mounted_file(&mounts, config_path);
    let text = std::fs::read_to_string(&file).expect("hub config");
    let mut cfg = fleetwatch_aggregator::HubConfig::from_yaml(&text, &file.display().to_string())
        .unwrap_or_else(|e| panic!("the mounted hub config does not load: {e}"));
    cfg.base_dir = Path::new(config_path).parent().map(Path::to_path_buf);
    // Listen address, data directory and ports agree everywhere.
    assert_eq!(flag(&args, "--listen"), cfg.listen);
    assert_eq!(Some(&port_of(&cfg.listen)), ports.get("http"));
    assert_eq!(service_ports.get("fleetwatch-hub"), ports.get("http"));
    assert_eq!(Path::new(flag(&args, "--data-dir")), cfg.data_dir);
    assert!(
        matches!(mounts.files.get(&cfg.data_dir), Some(None)),
        "the data directory is a volume claim"
    );
    // Every rule file pattern resolves to mounted rule files that load.
    assert!(
        !cfg.rule_files.is_empty(),
        "the hub evaluates the seed's rules"
    );
    for pattern in &cfg.rule_files {
        let abs = Path::new(config_path)
            .parent()
            .expect("config dir")
            .join(pattern);
        let dir = abs.parent().expect("rules dir");
        let files = mounts
            .files
            .get(dir)
            .and_then(Option::as_ref)
            .unwrap_or_else(|| panic!("rule files {} are not on a ConfigMap mount", abs.display()));
        assert!(!files.is_empty());
        for (key, source) in files {
            assert!(key.ends_with(".yaml"), "{key} matches {pattern}");
            let rules = fleetwatch_rules::load_rule_file(source)
                .unwrap_or_else(|e| panic!("{}: {e}", source.display()));
            assert!(!rules.groups.is_empty());
        }
    }
    assert!(k.dir.join("rules/multi-cluster-alerts.yaml").is_file());
}

#[test]
fn collector_manifests_are_consistent_and_its_config_loads() {
    let k = load(&deploy_dir().join("collector"));
    check_rbac(&k);
    let service_ports = check_services(&k);
    let workloads = k.workloads();
    assert_eq!(workloads.len(), 1, "one collector Deployment");
    let (mounts, args, ports) = check_workload(&k, workloads[0]);
    assert_eq!(args.first().map(String::as_str), Some("collector"));
    let file = mounted_file(&mounts, flag(&args, "--config"));
    let cfg = fleetwatch_collector::config::CollectorConfig::load(&file)
        .unwrap_or_else(|e| panic!("the mounted collector config does not load: {e}"));
    cfg.validate()
        .unwrap_or_else(|e| panic!("the mounted collector config is invalid: {e}"));
    assert_eq!(Some(&port_of(flag(&args, "--listen"))), ports.get("http"));
    assert_eq!(service_ports.get("fleetwatch-collector"), ports.get("http"));
    // The queue lives on the claim, where --data-dir and storage.path point.
    let data_dir = PathBuf::from(flag(&args, "--data-dir"));
    assert_eq!(cfg.storage.path.as_ref(), Some(&data_dir));
    assert!(
        matches!(mounts.files.get(&data_dir), Some(None)),
        "queue on a claim"
    );
    assert!(
        cfg.global.external_labels.contains_key("cluster"),
        "the collector names its cluster"
    );
    // It writes to the hub's Service port and remote-write path.
    let hub = load(&deploy_dir());
    let hub_port = check_services(&hub)["fleetwatch-hub"];
    assert!(!cfg.remote_write.is_empty());
    for rw in &cfg.remote_write {
        let url = rw.url.as_str();
        assert!(url.ends_with("/api/v1/write"), "{url}");
        let host_port = url
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .expect("host");
        assert_eq!(port_of(host_port), hub_port, "{url} uses the hub's port");
    }
    // The seed's federation job is there as the seed has it.
    let fed = cfg
        .scrape_configs
        .iter()
        .find(|j| j.job_name == "federate-app-clusters")
        .expect("the seed's federation job");
    assert!(fed.honor_labels);
    assert_eq!(fed.metrics_path, "/federate");
    assert_eq!(fed.params["match[]"].len(), 3);
}
