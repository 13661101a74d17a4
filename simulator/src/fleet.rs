//! The simulated cluster: nodes, VMs, their static description and their
//! current values. Generation is a pure function of the options and the
//! seed; [`crate::step`] moves the values with time.

use std::collections::VecDeque;

use fleetwatch_model::labels::escape_label_value;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::scenario::Effects;

/// Guest page size: memory values are whole pages.
pub(crate) const PAGE: u64 = 4096;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Usage/available bounds of a hot VM (the brief: between 0.91 and 0.98).
pub(crate) const HOT_RANGE: (f64, f64) = (0.915, 0.975);
/// Usage/available bounds of every other VM (clearly below 0.85).
pub(crate) const COOL_RANGE: (f64, f64) = (0.20, 0.80);
/// Finished migration objects kept per VM (KubeVirt garbage-collects older ones).
pub(crate) const FINISHED_MIGRATIONS_KEPT: usize = 3;

/// A pre-rendered label set: the sorted pairs and their text form
/// `a="x",b="y"` (no braces), escaped as the model's exposition writer does.
#[derive(Debug, Clone, Default)]
pub(crate) struct LabelBlock {
    /// The text form, without braces.
    pub rendered: String,
    /// The pairs, sorted by name.
    pub pairs: Vec<(&'static str, String)>,
}

impl LabelBlock {
    /// An empty block, for series without labels.
    pub const EMPTY: LabelBlock = LabelBlock {
        rendered: String::new(),
        pairs: Vec::new(),
    };

    /// Sorts the pairs by name, drops empty values (an empty value means
    /// "no such label") and renders them.
    pub fn new(mut pairs: Vec<(&'static str, String)>) -> Self {
        pairs.retain(|(_, v)| !v.is_empty());
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        let mut rendered = String::new();
        for (i, (k, v)) in pairs.iter().enumerate() {
            if i > 0 {
                rendered.push(',');
            }
            rendered.push_str(k);
            rendered.push_str("=\"");
            rendered.push_str(&escape_label_value(v));
            rendered.push('"');
        }
        Self { rendered, pairs }
    }
}

/// A KubeVirt instance type (`u1` and `cx1` series of the common instancetypes).
#[derive(Debug)]
pub(crate) struct InstanceType {
    pub name: &'static str,
    pub vcpus: u32,
    pub memory_gib: u64,
    /// The value of the `flavor` label of `kubevirt_vmi_info`.
    pub flavor: &'static str,
    pub weight: u32,
}

const INSTANCE_TYPES: [InstanceType; 5] = [
    InstanceType {
        name: "u1.small",
        vcpus: 1,
        memory_gib: 2,
        flavor: "small",
        weight: 20,
    },
    InstanceType {
        name: "u1.medium",
        vcpus: 1,
        memory_gib: 4,
        flavor: "medium",
        weight: 35,
    },
    InstanceType {
        name: "u1.large",
        vcpus: 2,
        memory_gib: 8,
        flavor: "large",
        weight: 25,
    },
    InstanceType {
        name: "u1.xlarge",
        vcpus: 4,
        memory_gib: 16,
        flavor: "large",
        weight: 15,
    },
    InstanceType {
        name: "cx1.2xlarge",
        vcpus: 8,
        memory_gib: 16,
        flavor: "large",
        weight: 5,
    },
];

/// A guest operating system as the guest agent reports it.
#[derive(Debug)]
pub(crate) struct Guest {
    /// The VM's preference (`kubevirt_vmi_info{preference}`).
    pub preference: &'static str,
    /// The `os` label (from the template annotation).
    pub os: &'static str,
    pub name: &'static str,
    pub version_id: &'static str,
    pub kernel_release: &'static str,
    pub workload: &'static str,
    pub weight: u32,
}

const GUESTS: [Guest; 5] = [
    Guest {
        preference: "fedora",
        os: "fedora",
        name: "Fedora Linux",
        version_id: "40",
        kernel_release: "6.8.5-301.fc40.x86_64",
        workload: "server",
        weight: 30,
    },
    Guest {
        preference: "rhel.9",
        os: "rhel9",
        name: "Red Hat Enterprise Linux",
        version_id: "9.4",
        kernel_release: "5.14.0-427.13.1.el9_4.x86_64",
        workload: "server",
        weight: 30,
    },
    Guest {
        preference: "ubuntu",
        os: "ubuntu",
        name: "Ubuntu",
        version_id: "22.04",
        kernel_release: "5.15.0-105-generic",
        workload: "server",
        weight: 20,
    },
    Guest {
        preference: "centos.stream9",
        os: "centos-stream9",
        name: "CentOS Stream",
        version_id: "9",
        kernel_release: "5.14.0-437.el9.x86_64",
        workload: "server",
        weight: 10,
    },
    Guest {
        preference: "windows.2k22",
        os: "windows2k22",
        name: "Microsoft Windows Server 2022 Datacenter",
        version_id: "2022",
        kernel_release: "20348",
        workload: "desktop",
        weight: 10,
    },
];

const NAMESPACES: [(&str, u32); 4] = [
    ("tenant-a", 35),
    ("tenant-b", 30),
    ("tenant-c", 20),
    ("infra", 15),
];

/// Values of the VMI label `app`, exported by KubeVirt as
/// `kubernetes_vmi_label_app` (the cardinality risk the spec mentions).
const APPS: [&str; 4] = ["web", "db", "cache", "batch"];

/// Node CPU modes, as node-exporter names them (sorted).
pub(crate) const CPU_MODES: [&str; 8] = [
    "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
];

/// A smooth bounded wander: `center + amp * sin(2π t / period + phase)`.
#[derive(Debug, Clone)]
pub(crate) struct Wander {
    pub center: f64,
    pub amp: f64,
    pub period_s: f64,
    pub phase: f64,
}

impl Wander {
    /// The value at `t` seconds after the simulation started.
    pub fn at(&self, t: f64) -> f64 {
        self.center + self.amp * (std::f64::consts::TAU * t / self.period_s + self.phase).sin()
    }
}

/// Per-vCPU counters (seconds).
#[derive(Debug, Clone, Default)]
pub(crate) struct VcpuCounters {
    pub running: f64,
    pub wait: f64,
    pub delay: f64,
}

/// One network interface of a VM.
#[derive(Debug, Clone)]
pub(crate) struct Interface {
    pub name: &'static str,
    pub rx_rate: f64,
    pub tx_rate: f64,
    pub rx: f64,
    pub tx: f64,
}

/// One disk of a VM.
#[derive(Debug, Clone)]
pub(crate) struct Drive {
    pub name: &'static str,
    pub read_rate: f64,
    pub write_rate: f64,
    pub read: f64,
    pub write: f64,
}

/// Where a running migration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MigrationPhase {
    Pending,
    Scheduling,
    Running,
}

/// A live migration in flight.
#[derive(Debug, Clone)]
pub(crate) struct Migration {
    /// The VirtualMachineInstanceMigration object's name.
    pub vmim: String,
    /// The target node; `None` when no other node exists.
    pub target: Option<usize>,
    pub started_ms: i64,
    /// Seconds the copy phase lasts.
    pub duration_s: f64,
    /// Why it will fail, and at which fraction of the copy phase.
    pub failure: Option<(&'static str, f64)>,
    pub phase: MigrationPhase,
    /// Migration gauges as of the last step.
    pub total_bytes: f64,
    pub processed_bytes: f64,
    pub transfer_rate: f64,
    pub dirty_rate: f64,
}

/// A finished migration object: `kubevirt_vmi_migration_{succeeded,failed}`.
#[derive(Debug, Clone)]
pub(crate) struct FinishedMigration {
    pub succeeded: bool,
    /// Labels `namespace`, `vmi`, `vmim`.
    pub labels: LabelBlock,
}

/// One simulated VM (and its VMI).
#[derive(Debug, Clone)]
pub(crate) struct Vm {
    pub name: String,
    pub namespace: &'static str,
    pub uid: String,
    pub pod: String,
    pub node: usize,
    pub instance_type: &'static InstanceType,
    pub guest: &'static Guest,
    pub evictable: bool,
    pub app: Option<&'static str>,
    pub hot: bool,
    pub uptime_s: f64,
    /// Bytes the domain is given.
    pub domain_bytes: u64,
    /// Bytes the guest sees (domain minus what the guest kernel reserves).
    pub available_bytes: u64,
    /// Fraction of available memory in use.
    pub mem: Wander,
    pub mem_bounds: (f64, f64),
    /// Fraction of the unused memory holding page cache.
    pub cache_fraction: f64,
    /// Fraction of the vCPUs busy.
    pub cpu: Wander,
    /// Minor faults per busy CPU second.
    pub minflt_rate: f64,

    // Current values.
    pub used_bytes: u64,
    pub cached_bytes: u64,
    pub resident_bytes: u64,
    /// Cores busy as of the last step.
    pub cores: f64,
    pub swap_in: f64,
    pub swap_out: f64,
    pub pgmajfault: f64,
    pub pgminfault: f64,
    pub cpu_user: f64,
    pub cpu_system: f64,
    pub cpu_total: f64,
    pub vcpus: Vec<VcpuCounters>,
    pub interfaces: Vec<Interface>,
    pub drives: Vec<Drive>,
    pub migration_failed_total: f64,
    pub migration: Option<Migration>,
    pub finished: VecDeque<FinishedMigration>,

    /// `name`, `namespace`, `node`: the seed's metric names.
    pub seed_labels: LabelBlock,
    /// The seed labels plus `kubernetes_vmi_label_*`: KubeVirt's VMI metrics.
    pub vmi_labels: LabelBlock,
    /// The labels of `kubevirt_vmi_info`.
    pub info_labels: LabelBlock,
}

impl Vm {
    /// The VMI's memory in use (available - usable).
    pub fn usable_bytes(&self) -> u64 {
        self.available_bytes - self.used_bytes
    }

    /// Memory the guest leaves unused (usable minus page cache).
    pub fn unused_bytes(&self) -> u64 {
        self.usable_bytes() - self.cached_bytes
    }

    /// The ratio the seed's `VMHighMemory` alert compares with 0.9, computed
    /// from the values exactly as served.
    pub fn usage_ratio(&self) -> f64 {
        self.used_bytes as f64 / self.available_bytes as f64
    }

    /// Re-renders the label blocks (after a migration moved the VM).
    pub fn relabel(&mut self, nodes: &[Node]) {
        let node = nodes
            .get(self.node)
            .map(|n| n.name.clone())
            .unwrap_or_default();
        let base = vec![
            ("name", self.name.clone()),
            ("namespace", self.namespace.to_string()),
            ("node", node),
        ];
        let mut vmi = base.clone();
        if let Some(app) = self.app {
            vmi.push(("kubernetes_vmi_label_app", app.to_string()));
            vmi.push(("kubernetes_vmi_label_kubevirt_io_domain", self.name.clone()));
        }
        let mut info = vmi.clone();
        let g = self.guest;
        info.extend([
            ("phase", "running".to_string()),
            ("os", g.os.to_string()),
            ("workload", g.workload.to_string()),
            ("flavor", self.instance_type.flavor.to_string()),
            ("instance_type", self.instance_type.name.to_string()),
            ("preference", g.preference.to_string()),
            ("guest_os_kernel_release", g.kernel_release.to_string()),
            ("guest_os_machine", "x86_64".to_string()),
            ("guest_os_name", g.name.to_string()),
            ("guest_os_version_id", g.version_id.to_string()),
            ("evictable", self.evictable.to_string()),
            ("vmi_pod", self.pod.clone()),
        ]);
        self.seed_labels = LabelBlock::new(base);
        self.vmi_labels = LabelBlock::new(vmi);
        self.info_labels = LabelBlock::new(info);
    }
}

/// One simulated node.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub name: String,
    pub cpus: usize,
    pub mem_total: u64,
    /// Memory the host keeps for itself (kubelet, system daemons).
    pub reserved: u64,
    pub mem_available: u64,
    pub load1: f64,
    /// Seconds per CPU per mode, in [`CPU_MODES`] order.
    pub cpu: Vec<[f64; CPU_MODES.len()]>,
    /// `node`.
    pub labels: LabelBlock,
}

/// The whole simulated cluster.
#[derive(Debug, Clone)]
pub(crate) struct Fleet {
    pub nodes: Vec<Node>,
    pub vms: Vec<Vm>,
    /// `"0"`, `"1"`, ...: label values for CPU and vCPU ids.
    pub ids: Vec<String>,
}

/// Picks an item by weight.
fn weighted<'a, T>(rng: &mut StdRng, items: &'a [T], weight: impl Fn(&T) -> u32) -> &'a T {
    let total: u32 = items.iter().map(&weight).sum();
    let mut pick = rng.random_range(0..total.max(1));
    for item in items {
        let w = weight(item);
        if pick < w {
            return item;
        }
        pick -= w;
    }
    &items[items.len() - 1]
}

/// A random UUID (version 4 layout).
pub(crate) fn uuid(rng: &mut StdRng) -> String {
    let a: u64 = rng.random();
    let b: u64 = rng.random();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// A `generateName` suffix as Kubernetes makes them.
pub(crate) fn name_suffix(rng: &mut StdRng) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

fn page_floor(bytes: f64) -> u64 {
    (bytes.max(0.0) as u64) / PAGE * PAGE
}

/// Number of decimal digits of `n` (at least 1).
fn digits(n: usize) -> usize {
    n.max(1).to_string().len()
}

/// Maps a uniform draw `u` in [0, 1) onto [lo, hi).
fn lerp(u: f64, lo: f64, hi: f64) -> f64 {
    lo + u * (hi - lo)
}

impl Fleet {
    /// Generates the cluster. The same `seed` always yields the same VMs,
    /// nodes and hot VMs; the scenarios only decide how many VMs run hot
    /// (a prefix of the same seeded order, so memory pressure heats a
    /// superset of the normally hot VMs).
    pub fn generate(
        cluster: &str,
        vms: usize,
        nodes: Option<usize>,
        seed: u64,
        effects: &Effects,
    ) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let node_count = nodes.unwrap_or(vms.div_ceil(10)).max(1);
        let node_width = digits(node_count).max(2);
        let vm_width = digits(vms).max(4);

        let mut order: Vec<usize> = (0..vms).collect();
        order.shuffle(&mut rng);
        let mut hot = vec![false; vms];
        for &i in order.iter().take(effects.hot_count(vms)) {
            hot[i] = true;
        }

        let mut fleet_vms = Vec::with_capacity(vms);
        for (i, &is_hot) in hot.iter().enumerate() {
            fleet_vms.push(generate_vm(&mut rng, i, vm_width, node_count, is_hot));
        }

        let mut fleet_nodes = Vec::with_capacity(node_count);
        for n in 0..node_count {
            let name = format!("{cluster}-node-{:0node_width$}", n + 1);
            let (vcpus, memory) = fleet_vms
                .iter()
                .filter(|vm| vm.node == n)
                .fold((0usize, 0u64), |(c, m), vm| {
                    (c + vm.vcpus.len(), m + vm.domain_bytes)
                });
            // Two vCPUs per core, memory with 25% headroom, in common sizes.
            let cpus = [16, 32, 48, 64, 96, 128]
                .into_iter()
                .find(|&c| c * 2 >= vcpus)
                .unwrap_or(128);
            let mem_total = (memory + memory / 4 + 8 * GIB).div_ceil(64 * GIB).max(1) * 64 * GIB;
            let uptime = lerp(rng.random(), 86_400.0, 30.0 * 86_400.0);
            let busy = lerp(rng.random(), 0.05, 0.15);
            let cpu = (0..cpus)
                .map(|_| {
                    let mut modes = [0.0; CPU_MODES.len()];
                    for (m, share) in modes.iter_mut().zip(mode_shares(busy)) {
                        *m = round_centis(uptime * share * lerp(rng.random(), 0.9, 1.1));
                    }
                    modes
                })
                .collect();
            fleet_nodes.push(Node {
                labels: LabelBlock::new(vec![("node", name.clone())]),
                name,
                cpus,
                mem_total,
                reserved: 4 * GIB,
                mem_available: mem_total,
                load1: 0.0,
                cpu,
            });
        }

        let max_ids = fleet_nodes.iter().map(|n| n.cpus).max().unwrap_or(0).max(8);
        let mut fleet = Fleet {
            nodes: fleet_nodes,
            vms: fleet_vms,
            ids: (0..max_ids).map(|i| i.to_string()).collect(),
        };
        for vm in &mut fleet.vms {
            vm.relabel(&fleet.nodes);
        }
        fleet
    }

    /// Names of the VMs whose usage/available exceeds 0.9, sorted.
    pub fn hot_vms(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .vms
            .iter()
            .filter(|vm| vm.usage_ratio() > 0.9)
            .map(|vm| vm.name.clone())
            .collect();
        names.sort();
        names
    }
}

/// Shares of wall time per CPU mode, in [`CPU_MODES`] order, for a CPU that
/// is `busy` (0..1) busy. Sums to 1.
pub(crate) fn mode_shares(busy: f64) -> [f64; CPU_MODES.len()] {
    let busy = busy.clamp(0.0, 0.97);
    let iowait = 0.01 + 0.02 * busy;
    [
        1.0 - busy - iowait, // idle
        iowait,              // iowait
        busy * 0.01,         // irq
        busy * 0.01,         // nice
        busy * 0.04,         // softirq
        0.0,                 // steal (bare metal)
        busy * 0.19,         // system
        busy * 0.75,         // user
    ]
}

/// Rounds to hundredths: node-exporter reports CPU time in clock ticks.
pub(crate) fn round_centis(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn generate_vm(rng: &mut StdRng, i: usize, width: usize, node_count: usize, hot: bool) -> Vm {
    let name = format!("vm-{:0width$}", i + 1);
    let namespace = weighted(rng, &NAMESPACES, |n| n.1).0;
    let instance_type = weighted(rng, &INSTANCE_TYPES, |t| t.weight);
    let guest = weighted(rng, &GUESTS, |g| g.weight);
    let uid = uuid(rng);
    let evictable = rng.random::<f64>() < 0.85;
    let app = if rng.random::<f64>() < 0.2 {
        Some(APPS[rng.random_range(0..APPS.len())])
    } else {
        None
    };
    let domain_bytes = instance_type.memory_gib * GIB;
    // The guest kernel keeps 2.5-4% plus a few MiB for itself.
    let reserved = domain_bytes as f64 * lerp(rng.random(), 0.025, 0.04) + 24.0 * MIB as f64;
    let available_bytes = page_floor(domain_bytes as f64 - reserved);

    // The same number of draws whether or not the VM is hot, so hotness
    // never shifts the other VMs' values.
    let (u_center, u_amp, u_period, u_phase) = (
        rng.random::<f64>(),
        rng.random::<f64>(),
        rng.random::<f64>(),
        rng.random::<f64>(),
    );
    let (mem, mem_bounds) = if hot {
        (
            Wander {
                center: lerp(u_center, 0.93, 0.955),
                amp: lerp(u_amp, 0.004, 0.015),
                period_s: lerp(u_period, 600.0, 2400.0),
                phase: u_phase * std::f64::consts::TAU,
            },
            HOT_RANGE,
        )
    } else {
        (
            Wander {
                center: lerp(u_center, 0.30, 0.68),
                amp: lerp(u_amp, 0.02, 0.10),
                period_s: lerp(u_period, 600.0, 2400.0),
                phase: u_phase * std::f64::consts::TAU,
            },
            COOL_RANGE,
        )
    };
    let cpu = Wander {
        center: lerp(rng.random(), 0.05, 0.45),
        amp: lerp(rng.random(), 0.01, 0.05),
        period_s: lerp(rng.random(), 300.0, 1200.0),
        phase: rng.random::<f64>() * std::f64::consts::TAU,
    };
    let mut interfaces = vec![Interface {
        name: "default",
        rx_rate: lerp(rng.random(), 20e3, 4e6),
        tx_rate: lerp(rng.random(), 10e3, 2e6),
        rx: 0.0,
        tx: 0.0,
    }];
    if rng.random::<f64>() < 0.3 {
        interfaces.push(Interface {
            name: "net1",
            rx_rate: lerp(rng.random(), 5e3, 1e6),
            tx_rate: lerp(rng.random(), 5e3, 1e6),
            rx: 0.0,
            tx: 0.0,
        });
    }
    let mut drives = vec![Drive {
        name: "rootdisk",
        read_rate: lerp(rng.random(), 10e3, 2e6),
        write_rate: lerp(rng.random(), 5e3, 1e6),
        read: 0.0,
        write: 0.0,
    }];
    if rng.random::<f64>() < 0.5 {
        drives.push(Drive {
            name: "datadisk",
            read_rate: lerp(rng.random(), 10e3, 5e6),
            write_rate: lerp(rng.random(), 10e3, 3e6),
            read: 0.0,
            write: 0.0,
        });
    }
    let pod = format!("virt-launcher-{name}");
    Vm {
        name,
        namespace,
        uid,
        pod,
        node: i % node_count,
        instance_type,
        guest,
        evictable,
        app,
        hot,
        uptime_s: lerp(rng.random(), 60.0, 600.0),
        domain_bytes,
        available_bytes,
        mem,
        mem_bounds,
        cache_fraction: lerp(rng.random(), 0.3, 0.6),
        cpu,
        minflt_rate: lerp(rng.random(), 200.0, 2000.0),
        used_bytes: 0,
        cached_bytes: 0,
        resident_bytes: 0,
        cores: 0.0,
        swap_in: 0.0,
        swap_out: 0.0,
        pgmajfault: 0.0,
        pgminfault: 0.0,
        cpu_user: 0.0,
        cpu_system: 0.0,
        cpu_total: 0.0,
        vcpus: vec![VcpuCounters::default(); instance_type.vcpus as usize],
        interfaces,
        drives,
        migration_failed_total: 0.0,
        migration: None,
        finished: VecDeque::new(),
        seed_labels: LabelBlock::default(),
        vmi_labels: LabelBlock::default(),
        info_labels: LabelBlock::default(),
    }
}
