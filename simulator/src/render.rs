//! The metric families served and their rendering.
//!
//! One walk over the fleet ([`walk`]) feeds a [`Sink`]: the text sink writes
//! the exposition format, the values sink collects `(labels, value)` pairs
//! for [`crate::Simulator::last_values`]; both see exactly the same samples.
//! Label sets are pre-rendered per VM and node ([`LabelBlock`]), and every
//! line comes out with its labels in name order, byte for byte what
//! `fleetwatch_model::exposition::write_sample_line` would write (a test
//! checks this), at a fraction of the cost.

use std::fmt::Write as _;

use fleetwatch_model::exposition::{format_value, write_help_line, write_type_line};
use fleetwatch_model::labels::escape_label_value;
use fleetwatch_model::{Labels, METRIC_NAME};

use crate::fleet::{Fleet, LabelBlock, MigrationPhase, Vm, CPU_MODES};

/// A metric's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Gauge,
    Counter,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

/// One metric family: name, type and help text.
#[derive(Debug)]
pub(crate) struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

impl Family {
    /// The type as the `# TYPE` line spells it.
    pub fn kind_str(&self) -> &'static str {
        self.kind.as_str()
    }
}

const fn gauge(name: &'static str, help: &'static str) -> Family {
    Family {
        name,
        kind: Kind::Gauge,
        help,
    }
}

const fn counter(name: &'static str, help: &'static str) -> Family {
    Family {
        name,
        kind: Kind::Counter,
        help,
    }
}

// The seed's names.
const VM_MEMORY_USAGE: Family = gauge(
    "kubevirt_vm_memory_usage_bytes",
    "Memory in use by the VM's guest (available minus usable), in bytes.",
);
const VM_MEMORY_AVAILABLE: Family = gauge(
    "kubevirt_vm_memory_available_bytes",
    "Memory the VM's guest sees, in bytes.",
);
const VM_MIGRATION_FAILED: Family = counter(
    "kubevirt_vm_migration_failed_total",
    "Failed live migrations of the VM.",
);

// KubeVirt's own names.
const VMI_INFO: Family = gauge(
    "kubevirt_vmi_info",
    "Information about VirtualMachineInstances.",
);
const VMI_MEMORY_AVAILABLE: Family = gauge(
    "kubevirt_vmi_memory_available_bytes",
    "Amount of usable memory as seen by the domain. This value may not be accurate if a balloon driver is in use or if the guest OS does not initialize all assigned pages",
);
const VMI_MEMORY_USABLE: Family = gauge(
    "kubevirt_vmi_memory_usable_bytes",
    "The amount of memory which can be reclaimed by balloon without pushing the guest system to swap, corresponds to 'Available' in /proc/meminfo",
);
const VMI_MEMORY_USED: Family = gauge(
    "kubevirt_vmi_memory_used_bytes",
    "Amount of used memory as seen by the domain (available minus usable).",
);
const VMI_MEMORY_UNUSED: Family = gauge(
    "kubevirt_vmi_memory_unused_bytes",
    "The amount of memory left completely unused by the system. Memory that is available but used for reclaimable caches should NOT be reported as free",
);
const VMI_MEMORY_CACHED: Family = gauge(
    "kubevirt_vmi_memory_cached_bytes",
    "The amount of memory that is being used to cache I/O and is available to be reclaimed, corresponds to the sum of 'Buffers' + 'Cached' + 'SwapCached' in /proc/meminfo",
);
const VMI_MEMORY_RESIDENT: Family = gauge(
    "kubevirt_vmi_memory_resident_bytes",
    "Resident set size of the process running the domain.",
);
const VMI_MEMORY_DOMAIN: Family = gauge(
    "kubevirt_vmi_memory_domain_bytes",
    "The amount of memory in bytes allocated to the domain. The memory value in domain xml file.",
);
const VMI_MEMORY_BALLOON: Family = gauge(
    "kubevirt_vmi_memory_actual_balloon_bytes",
    "Current balloon size in bytes.",
);
const VMI_SWAP_IN: Family = gauge(
    "kubevirt_vmi_memory_swap_in_traffic_bytes",
    "The total amount of data read from swap space of the guest in bytes.",
);
const VMI_SWAP_OUT: Family = gauge(
    "kubevirt_vmi_memory_swap_out_traffic_bytes",
    "The total amount of memory written out to swap space of the guest in bytes.",
);
const VMI_PGMAJFAULT: Family = counter(
    "kubevirt_vmi_memory_pgmajfault_total",
    "The number of page faults when disk IO was required. Page faults occur when a process makes a valid access to virtual memory that is not available.",
);
const VMI_PGMINFAULT: Family = counter(
    "kubevirt_vmi_memory_pgminfault_total",
    "The number of other page faults, when disk IO was not required. Page faults occur when a process makes a valid access to virtual memory that is not available.",
);
const VMI_CPU_USAGE: Family = counter(
    "kubevirt_vmi_cpu_usage_seconds_total",
    "Total CPU time spent in all modes (sum of both vcpu and hypervisor usage).",
);
const VMI_CPU_USER: Family = counter(
    "kubevirt_vmi_cpu_user_usage_seconds_total",
    "Total CPU time spent in user mode.",
);
const VMI_CPU_SYSTEM: Family = counter(
    "kubevirt_vmi_cpu_system_usage_seconds_total",
    "Total CPU time spent in system mode.",
);
const VMI_VCPU_SECONDS: Family = counter(
    "kubevirt_vmi_vcpu_seconds_total",
    "Total amount of time spent in each state by each vcpu (cpu_time excluding hypervisor time). Where `id` is the vcpu identifier and `state` can be one of the following: [`OFFLINE`, `RUNNING`, `BLOCKED`].",
);
const VMI_VCPU_WAIT: Family = counter(
    "kubevirt_vmi_vcpu_wait_seconds_total",
    "Amount of time spent by each vcpu while waiting on I/O.",
);
const VMI_VCPU_DELAY: Family = counter(
    "kubevirt_vmi_vcpu_delay_seconds_total",
    "Amount of time spent by each vcpu waiting in the queue instead of running.",
);
const VMI_NET_RX: Family = counter(
    "kubevirt_vmi_network_receive_bytes_total",
    "Total network traffic received in bytes.",
);
const VMI_NET_TX: Family = counter(
    "kubevirt_vmi_network_transmit_bytes_total",
    "Total network traffic transmitted in bytes.",
);
const VMI_DISK_READ: Family = counter(
    "kubevirt_vmi_storage_read_traffic_bytes_total",
    "Total number of bytes read from storage.",
);
const VMI_DISK_WRITE: Family = counter(
    "kubevirt_vmi_storage_write_traffic_bytes_total",
    "Total number of written bytes.",
);
const VMI_MIGRATION_REMAINING: Family = gauge(
    "kubevirt_vmi_migration_data_remaining_bytes",
    "The remaining guest OS data to be migrated to the new VM.",
);
const VMI_MIGRATION_PROCESSED: Family = gauge(
    "kubevirt_vmi_migration_data_processed_bytes",
    "The total Guest OS data processed and migrated to the new VM.",
);
const VMI_MIGRATION_DIRTY_RATE: Family = gauge(
    "kubevirt_vmi_migration_dirty_memory_rate_bytes",
    "The rate of memory being dirty in the Guest OS.",
);
const VMI_MIGRATION_TRANSFER_RATE: Family = gauge(
    "kubevirt_vmi_migration_memory_transfer_rate_bytes",
    "The rate at which the memory is being transferred.",
);
const VMI_MIGRATION_SUCCEEDED: Family = gauge(
    "kubevirt_vmi_migration_succeeded",
    "Indicates if the VMI migration succeeded.",
);
const VMI_MIGRATION_FAILED: Family = gauge(
    "kubevirt_vmi_migration_failed",
    "Indicates if the VMI migration failed.",
);
const MIGRATIONS_PENDING: Family = gauge(
    "kubevirt_vmi_migrations_in_pending_phase",
    "Number of current pending migrations.",
);
const MIGRATIONS_SCHEDULING: Family = gauge(
    "kubevirt_vmi_migrations_in_scheduling_phase",
    "Number of current scheduling migrations.",
);
const MIGRATIONS_RUNNING: Family = gauge(
    "kubevirt_vmi_migrations_in_running_phase",
    "Number of current running migrations.",
);
const MIGRATIONS_UNSET: Family = gauge(
    "kubevirt_vmi_migrations_in_unset_phase",
    "Number of current unset migrations.",
);

// node-exporter.
const NODE_CPU: Family = counter(
    "node_cpu_seconds_total",
    "Seconds the CPUs spent in each mode.",
);
const NODE_MEM_TOTAL: Family = gauge(
    "node_memory_MemTotal_bytes",
    "Memory information field MemTotal_bytes.",
);
const NODE_MEM_AVAILABLE: Family = gauge(
    "node_memory_MemAvailable_bytes",
    "Memory information field MemAvailable_bytes.",
);
const NODE_LOAD1: Family = gauge("node_load1", "1m load average.");

/// Every family served, in the order served.
#[cfg(test)]
pub(crate) const FAMILIES: [&Family; 40] = [
    &VM_MEMORY_USAGE,
    &VM_MEMORY_AVAILABLE,
    &VM_MIGRATION_FAILED,
    &VMI_INFO,
    &VMI_MEMORY_AVAILABLE,
    &VMI_MEMORY_USABLE,
    &VMI_MEMORY_USED,
    &VMI_MEMORY_UNUSED,
    &VMI_MEMORY_CACHED,
    &VMI_MEMORY_RESIDENT,
    &VMI_MEMORY_DOMAIN,
    &VMI_MEMORY_BALLOON,
    &VMI_SWAP_IN,
    &VMI_SWAP_OUT,
    &VMI_PGMAJFAULT,
    &VMI_PGMINFAULT,
    &VMI_CPU_USAGE,
    &VMI_CPU_USER,
    &VMI_CPU_SYSTEM,
    &VMI_VCPU_SECONDS,
    &VMI_VCPU_WAIT,
    &VMI_VCPU_DELAY,
    &VMI_NET_RX,
    &VMI_NET_TX,
    &VMI_DISK_READ,
    &VMI_DISK_WRITE,
    &VMI_MIGRATION_REMAINING,
    &VMI_MIGRATION_PROCESSED,
    &VMI_MIGRATION_DIRTY_RATE,
    &VMI_MIGRATION_TRANSFER_RATE,
    &VMI_MIGRATION_SUCCEEDED,
    &VMI_MIGRATION_FAILED,
    &MIGRATIONS_PENDING,
    &MIGRATIONS_SCHEDULING,
    &MIGRATIONS_RUNNING,
    &MIGRATIONS_UNSET,
    &NODE_CPU,
    &NODE_MEM_TOTAL,
    &NODE_MEM_AVAILABLE,
    &NODE_LOAD1,
];

/// Receives the walk's families and samples.
pub(crate) trait Sink {
    /// A family starts; false skips its samples.
    fn begin(&mut self, fam: &Family) -> bool;
    /// One sample. Its labels are `pre`, then `base`, then `post`; the walk
    /// passes them so that the concatenation is sorted by name.
    fn sample(
        &mut self,
        fam: &Family,
        pre: &[(&str, &str)],
        base: &LabelBlock,
        post: &[(&str, &str)],
        value: f64,
    );
}

/// Writes the text exposition format.
pub(crate) struct TextSink<'a> {
    pub out: &'a mut String,
}

fn push_pair(out: &mut String, first: &mut bool, name: &str, value: &str) {
    out.push(if *first { '{' } else { ',' });
    *first = false;
    out.push_str(name);
    out.push_str("=\"");
    if value.contains(['\\', '"', '\n']) {
        out.push_str(&escape_label_value(value));
    } else {
        out.push_str(value);
    }
    out.push('"');
}

impl Sink for TextSink<'_> {
    fn begin(&mut self, fam: &Family) -> bool {
        write_help_line(self.out, fam.name, fam.help);
        write_type_line(self.out, fam.name, fam.kind_str());
        true
    }

    fn sample(
        &mut self,
        fam: &Family,
        pre: &[(&str, &str)],
        base: &LabelBlock,
        post: &[(&str, &str)],
        value: f64,
    ) {
        let out = &mut *self.out;
        out.push_str(fam.name);
        let mut first = true;
        for (k, v) in pre {
            push_pair(out, &mut first, k, v);
        }
        if !base.rendered.is_empty() {
            out.push(if first { '{' } else { ',' });
            first = false;
            out.push_str(&base.rendered);
        }
        for (k, v) in post {
            push_pair(out, &mut first, k, v);
        }
        if !first {
            out.push('}');
        }
        out.push(' ');
        push_value(out, value);
        out.push('\n');
    }
}

/// Largest integer below which every integer is exactly representable.
const EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// Appends `value` as `format_value` formats it, without its allocation,
/// and with a fast path for whole numbers (most values served are bytes
/// or counts).
fn push_value(out: &mut String, value: f64) {
    if value.is_sign_positive() && value < EXACT_INT && value.fract() == 0.0 {
        let mut n = value as u64;
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for &b in &buf[i..] {
            out.push(char::from(b));
        }
    } else if value.is_finite() {
        let _ = write!(out, "{value}");
    } else {
        out.push_str(&format_value(value));
    }
}

/// Collects the samples of one family as label sets (with `__name__`).
pub(crate) struct ValuesSink<'a> {
    pub name: &'a str,
    pub out: Vec<(Labels, f64)>,
}

impl Sink for ValuesSink<'_> {
    fn begin(&mut self, fam: &Family) -> bool {
        fam.name == self.name
    }

    fn sample(
        &mut self,
        fam: &Family,
        pre: &[(&str, &str)],
        base: &LabelBlock,
        post: &[(&str, &str)],
        value: f64,
    ) {
        let pairs = std::iter::once((METRIC_NAME, fam.name))
            .chain(pre.iter().copied())
            .chain(base.pairs.iter().map(|(k, v)| (*k, v.as_str())))
            .chain(post.iter().copied());
        self.out.push((Labels::from_pairs(pairs), value));
    }
}

/// Counter values as served: whole bytes and faults.
fn whole(v: f64) -> f64 {
    v.floor()
}

/// CPU seconds as served: milliseconds for VMs.
fn millis(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Node CPU seconds as served: clock ticks (hundredths).
fn ticks(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// One family with one sample per VM and no extra labels.
fn per_vm<S: Sink>(
    sink: &mut S,
    fam: &Family,
    vms: &[Vm],
    labels: fn(&Vm) -> &LabelBlock,
    value: fn(&Vm) -> f64,
) {
    if !sink.begin(fam) {
        return;
    }
    for vm in vms {
        sink.sample(fam, &[], labels(vm), &[], value(vm));
    }
}

fn seed(vm: &Vm) -> &LabelBlock {
    &vm.seed_labels
}

fn vmi(vm: &Vm) -> &LabelBlock {
    &vm.vmi_labels
}

/// Walks every family of the fleet's current state into `sink`.
pub(crate) fn walk<S: Sink>(fleet: &Fleet, sink: &mut S) {
    let vms = fleet.vms.as_slice();
    per_vm(sink, &VM_MEMORY_USAGE, vms, seed, |vm| vm.used_bytes as f64);
    per_vm(sink, &VM_MEMORY_AVAILABLE, vms, seed, |vm| {
        vm.available_bytes as f64
    });
    per_vm(sink, &VM_MIGRATION_FAILED, vms, seed, |vm| {
        vm.migration_failed_total
    });

    per_vm(sink, &VMI_INFO, vms, |vm| &vm.info_labels, |_| 1.0);
    per_vm(sink, &VMI_MEMORY_AVAILABLE, vms, vmi, |vm| {
        vm.available_bytes as f64
    });
    per_vm(sink, &VMI_MEMORY_USABLE, vms, vmi, |vm| {
        vm.usable_bytes() as f64
    });
    per_vm(sink, &VMI_MEMORY_USED, vms, vmi, |vm| vm.used_bytes as f64);
    per_vm(sink, &VMI_MEMORY_UNUSED, vms, vmi, |vm| {
        vm.unused_bytes() as f64
    });
    per_vm(sink, &VMI_MEMORY_CACHED, vms, vmi, |vm| {
        vm.cached_bytes as f64
    });
    per_vm(sink, &VMI_MEMORY_RESIDENT, vms, vmi, |vm| {
        vm.resident_bytes as f64
    });
    per_vm(sink, &VMI_MEMORY_DOMAIN, vms, vmi, |vm| {
        vm.domain_bytes as f64
    });
    per_vm(sink, &VMI_MEMORY_BALLOON, vms, vmi, |vm| {
        vm.domain_bytes as f64
    });
    per_vm(sink, &VMI_SWAP_IN, vms, vmi, |vm| whole(vm.swap_in));
    per_vm(sink, &VMI_SWAP_OUT, vms, vmi, |vm| whole(vm.swap_out));
    per_vm(sink, &VMI_PGMAJFAULT, vms, vmi, |vm| whole(vm.pgmajfault));
    per_vm(sink, &VMI_PGMINFAULT, vms, vmi, |vm| whole(vm.pgminfault));
    per_vm(sink, &VMI_CPU_USAGE, vms, vmi, |vm| millis(vm.cpu_total));
    per_vm(sink, &VMI_CPU_USER, vms, vmi, |vm| millis(vm.cpu_user));
    per_vm(sink, &VMI_CPU_SYSTEM, vms, vmi, |vm| millis(vm.cpu_system));

    let ids = fleet.ids.as_slice();
    if sink.begin(&VMI_VCPU_SECONDS) {
        for vm in vms {
            for (id, c) in ids.iter().zip(&vm.vcpus) {
                sink.sample(
                    &VMI_VCPU_SECONDS,
                    &[("id", id)],
                    &vm.vmi_labels,
                    &[("state", "running")],
                    millis(c.running),
                );
            }
        }
    }
    if sink.begin(&VMI_VCPU_WAIT) {
        for vm in vms {
            for (id, c) in ids.iter().zip(&vm.vcpus) {
                sink.sample(
                    &VMI_VCPU_WAIT,
                    &[("id", id)],
                    &vm.vmi_labels,
                    &[],
                    millis(c.wait),
                );
            }
        }
    }
    if sink.begin(&VMI_VCPU_DELAY) {
        for vm in vms {
            for (id, c) in ids.iter().zip(&vm.vcpus) {
                sink.sample(
                    &VMI_VCPU_DELAY,
                    &[("id", id)],
                    &vm.vmi_labels,
                    &[],
                    millis(c.delay),
                );
            }
        }
    }
    for (fam, rx) in [(&VMI_NET_RX, true), (&VMI_NET_TX, false)] {
        if sink.begin(fam) {
            for vm in vms {
                for i in &vm.interfaces {
                    let v = if rx { i.rx } else { i.tx };
                    sink.sample(fam, &[("interface", i.name)], &vm.vmi_labels, &[], whole(v));
                }
            }
        }
    }
    for (fam, read) in [(&VMI_DISK_READ, true), (&VMI_DISK_WRITE, false)] {
        if sink.begin(fam) {
            for vm in vms {
                for d in &vm.drives {
                    let v = if read { d.read } else { d.write };
                    sink.sample(fam, &[("drive", d.name)], &vm.vmi_labels, &[], whole(v));
                }
            }
        }
    }

    type MigrationValue = fn(&crate::fleet::Migration) -> f64;
    let migration_gauges: [(&Family, MigrationValue); 4] = [
        (&VMI_MIGRATION_REMAINING, |m| {
            (m.total_bytes - m.processed_bytes).round()
        }),
        (&VMI_MIGRATION_PROCESSED, |m| m.processed_bytes.round()),
        (&VMI_MIGRATION_DIRTY_RATE, |m| m.dirty_rate),
        (&VMI_MIGRATION_TRANSFER_RATE, |m| m.transfer_rate),
    ];
    for (fam, value) in migration_gauges {
        if sink.begin(fam) {
            for vm in vms {
                if let Some(m) = vm
                    .migration
                    .as_ref()
                    .filter(|m| m.phase == MigrationPhase::Running)
                {
                    sink.sample(fam, &[], &vm.vmi_labels, &[], value(m));
                }
            }
        }
    }
    for (fam, succeeded) in [
        (&VMI_MIGRATION_SUCCEEDED, true),
        (&VMI_MIGRATION_FAILED, false),
    ] {
        if sink.begin(fam) {
            for vm in vms {
                for f in vm.finished.iter().filter(|f| f.succeeded == succeeded) {
                    sink.sample(fam, &[], &f.labels, &[], 1.0);
                }
            }
        }
    }
    let in_phase = |p: MigrationPhase| {
        vms.iter()
            .filter(|vm| vm.migration.as_ref().is_some_and(|m| m.phase == p))
            .count() as f64
    };
    for (fam, value) in [
        (&MIGRATIONS_PENDING, in_phase(MigrationPhase::Pending)),
        (&MIGRATIONS_SCHEDULING, in_phase(MigrationPhase::Scheduling)),
        (&MIGRATIONS_RUNNING, in_phase(MigrationPhase::Running)),
        (&MIGRATIONS_UNSET, 0.0),
    ] {
        if sink.begin(fam) {
            sink.sample(fam, &[], &LabelBlock::EMPTY, &[], value);
        }
    }

    let nodes = fleet.nodes.as_slice();
    if sink.begin(&NODE_CPU) {
        for node in nodes {
            for (id, modes) in ids.iter().zip(&node.cpu) {
                for (mode, v) in CPU_MODES.iter().zip(modes) {
                    sink.sample(
                        &NODE_CPU,
                        &[("cpu", id), ("mode", mode)],
                        &node.labels,
                        &[],
                        ticks(*v),
                    );
                }
            }
        }
    }
    type NodeValue = fn(&crate::fleet::Node) -> f64;
    let node_gauges: [(&Family, NodeValue); 3] = [
        (&NODE_MEM_TOTAL, |n| n.mem_total as f64),
        (&NODE_MEM_AVAILABLE, |n| n.mem_available as f64),
        (&NODE_LOAD1, |n| n.load1),
    ];
    for (fam, value) in node_gauges {
        if sink.begin(fam) {
            for node in nodes {
                sink.sample(fam, &[], &node.labels, &[], value(node));
            }
        }
    }
}

/// Renders the fleet as exposition text into `out`.
pub(crate) fn render_text(fleet: &Fleet, out: &mut String) {
    walk(fleet, &mut TextSink { out });
}

/// The samples of family `name`.
pub(crate) fn values(fleet: &Fleet, name: &str) -> Vec<(Labels, f64)> {
    let mut sink = ValuesSink {
        name,
        out: Vec::new(),
    };
    walk(fleet, &mut sink);
    sink.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_format_as_the_model_does() {
        for v in [
            0.0,
            -0.0,
            1.0,
            7.0,
            10.0,
            4096.0,
            123.456,
            0.001,
            1e15,
            1e21,
            EXACT_INT - 1.0,
            EXACT_INT,
            -3.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            let mut out = String::new();
            push_value(&mut out, v);
            assert_eq!(out, format_value(v), "{v}");
        }
    }
}
