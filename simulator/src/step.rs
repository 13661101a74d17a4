//! Moving the simulated cluster forward in time.
//!
//! Gauges are a smooth function of the time since the first render plus a
//! little seeded jitter, clamped to their bounds (a hot VM always stays in
//! 0.915..0.975 of its memory, every other VM at or below 0.80). Counters
//! grow by rate × elapsed seconds and never go back. Migrations start at
//! random (a Poisson process per VM), go through the pending, scheduling
//! and running phases and then succeed (the VM moves to the target node) or
//! fail (`kubevirt_vm_migration_failed_total` grows).

use rand::rngs::StdRng;
use rand::Rng;

use crate::fleet::{
    mode_shares, name_suffix, FinishedMigration, Fleet, LabelBlock, Migration, MigrationPhase,
    Node, Vm, FINISHED_MIGRATIONS_KEPT, PAGE,
};
use crate::logs::{Level, LogQueue};
use crate::scenario::Effects;

/// Longest step taken at once: a longer gap (a paused process) counts as an hour.
pub(crate) const MAX_STEP_S: f64 = 3600.0;

/// Seconds a migration spends pending, then scheduling, before it runs.
const PENDING_S: f64 = 2.0;
const SCHEDULED_S: f64 = 5.0;

const FAILURE_REASONS: [&str; 4] = [
    "migration job aborted: operation failed: job 'migration out' failed: unexpectedly failed",
    "operation failed: Lost connection to destination host",
    "live migration is not completing: progress timeout of 150 seconds exceeded",
    "target virt-launcher pod failed to become ready: container compute exited with code 1",
];
const UNSCHEDULABLE: &str = "no node available to schedule the target virt-launcher pod";

fn lerp(u: f64, lo: f64, hi: f64) -> f64 {
    lo + u * (hi - lo)
}

fn page_floor(bytes: f64) -> u64 {
    (bytes.max(0.0) as u64) / PAGE * PAGE
}

/// Brings every VM to `t = 0` as if it had been running for its uptime,
/// and queues its boot and guest-agent log lines.
pub(crate) fn boot(
    fleet: &mut Fleet,
    now_ms: i64,
    effects: &Effects,
    rng: &mut StdRng,
    logs: Option<&mut LogQueue>,
) {
    let mut events = Vec::new();
    for (i, vm) in fleet.vms.iter_mut().enumerate() {
        update_vm(vm, 0.0, vm.uptime_s, effects, rng);
        let booted = now_ms - (vm.uptime_s * 1000.0) as i64;
        let agent = booted + (lerp(rng.random(), 15.0, 45.0) * 1000.0) as i64;
        events.push((booted, i, true));
        if agent <= now_ms {
            events.push((agent, i, false));
        }
    }
    update_nodes(fleet, 0.0, rng);
    if let Some(q) = logs {
        events.sort();
        for (ts, i, is_boot) in events {
            let vm = &fleet.vms[i];
            if is_boot {
                let msg = format!(
                    "Domain started: VirtualMachineInstance {}/{} is running",
                    vm.namespace, vm.name
                );
                q.push(vm, ts, Level::Info, "manager.go:1041", &msg);
            } else {
                let msg = format!(
                    "Guest agent connected on VirtualMachineInstance {}/{}",
                    vm.namespace, vm.name
                );
                q.push(vm, ts, Level::Info, "agent_poller.go:291", &msg);
            }
        }
    }
}

/// Moves the fleet to `t` seconds after the first render, `dt` seconds after
/// the previous one (`now_ms` is the wall clock of `t`).
pub(crate) fn step(
    fleet: &mut Fleet,
    t: f64,
    dt: f64,
    now_ms: i64,
    effects: &Effects,
    rng: &mut StdRng,
    mut logs: Option<&mut LogQueue>,
) {
    let dt = dt.clamp(0.0, MAX_STEP_S);
    let Fleet { vms, nodes, .. } = fleet;
    for vm in vms.iter_mut() {
        update_vm(vm, t, dt, effects, rng);
        migrate(vm, nodes, dt, now_ms, effects, rng, logs.as_deref_mut());
    }
    update_nodes(fleet, dt, rng);
}

/// Memory, CPU and I/O of one VM.
fn update_vm(vm: &mut Vm, t: f64, dt: f64, effects: &Effects, rng: &mut StdRng) {
    let (lo, hi) = vm.mem_bounds;
    let ratio = (vm.mem.at(t) + lerp(rng.random(), -0.003, 0.003)).clamp(lo, hi);
    vm.used_bytes = page_floor(vm.available_bytes as f64 * ratio);
    let usable = vm.available_bytes - vm.used_bytes;
    let cache = (vm.cache_fraction + lerp(rng.random(), -0.02, 0.02)).clamp(0.0, 0.9);
    vm.cached_bytes = page_floor(usable as f64 * cache);
    // QEMU's own footprint on top of the guest pages it touched.
    let overhead = (180 * (1 << 20) + vm.domain_bytes / 200) / PAGE * PAGE;
    vm.resident_bytes = vm.used_bytes + vm.cached_bytes + overhead;

    let pressure = vm.hot && effects.pressure;
    // A guest short of memory burns CPU reclaiming it.
    let reclaim = if pressure { 0.08 } else { 0.0 };
    let util = (vm.cpu.at(t) + reclaim + lerp(rng.random(), -0.02, 0.02)).clamp(0.01, 0.98);
    vm.cores = util * vm.vcpus.len() as f64;
    if dt <= 0.0 {
        return;
    }

    let n = vm.vcpus.len().max(1) as f64;
    let mut guest_s = 0.0;
    for vcpu in &mut vm.vcpus {
        let share = vm.cores * dt / n * lerp(rng.random(), 0.8, 1.2);
        guest_s += share;
        vcpu.running += share;
        vcpu.wait += share * if pressure { 0.12 } else { 0.02 };
        vcpu.delay += share * 0.01;
    }
    // cgroup CPU time: the vCPUs plus QEMU's emulation and I/O threads.
    let total = guest_s * 1.04;
    let user = total * 0.8;
    vm.cpu_user += user;
    vm.cpu_system += total - user;
    vm.cpu_total += total;

    vm.pgminfault += vm.minflt_rate * guest_s;
    let majflt_rate = match (vm.hot, pressure) {
        (_, true) => 40.0,
        (true, false) => 2.0,
        _ => 0.05,
    };
    vm.pgmajfault += majflt_rate * dt * lerp(rng.random(), 0.5, 1.5);
    if pressure {
        vm.swap_in += lerp(rng.random(), 200e3, 2e6) * dt;
        vm.swap_out += lerp(rng.random(), 500e3, 3e6) * dt;
    } else if vm.hot {
        vm.swap_in += lerp(rng.random(), 0.0, 8e3) * dt;
        vm.swap_out += lerp(rng.random(), 0.0, 16e3) * dt;
    }
    for iface in &mut vm.interfaces {
        iface.rx += iface.rx_rate * dt * lerp(rng.random(), 0.5, 1.5);
        iface.tx += iface.tx_rate * dt * lerp(rng.random(), 0.5, 1.5);
    }
    for drive in &mut vm.drives {
        drive.read += drive.read_rate * dt * lerp(rng.random(), 0.5, 1.5);
        drive.write += drive.write_rate * dt * lerp(rng.random(), 0.5, 1.5);
    }
}

/// Starts, advances and finishes one VM's migration.
fn migrate(
    vm: &mut Vm,
    nodes: &[Node],
    dt: f64,
    now_ms: i64,
    effects: &Effects,
    rng: &mut StdRng,
    mut logs: Option<&mut LogQueue>,
) {
    if vm.migration.is_none() {
        if dt <= 0.0 || rng.random::<f64>() >= 1.0 - (-effects.migration_rate * dt).exp() {
            return;
        }
        let migration = start_migration(vm, nodes.len(), now_ms, effects, rng);
        if let Some(q) = logs.as_deref_mut() {
            let msg = format!(
                "Starting live migration of VirtualMachineInstance {}/{}{} (migration {})",
                vm.namespace,
                vm.name,
                to_node(nodes, migration.target),
                migration.vmim
            );
            q.push(
                vm,
                now_ms,
                Level::Info,
                "live-migration-source.go:707",
                &msg,
            );
        }
        vm.migration = Some(migration);
    }
    let Some(m) = vm.migration.as_mut() else {
        return;
    };
    let elapsed = (now_ms - m.started_ms) as f64 / 1000.0;
    let finish_at = match (m.failure, m.target) {
        (Some(_), None) => PENDING_S + 1.0,
        (Some((_, at)), Some(_)) => SCHEDULED_S + m.duration_s * at,
        (None, _) => SCHEDULED_S + m.duration_s,
    };
    if elapsed < finish_at {
        m.phase = if elapsed < PENDING_S {
            MigrationPhase::Pending
        } else if elapsed < SCHEDULED_S {
            MigrationPhase::Scheduling
        } else {
            MigrationPhase::Running
        };
        m.processed_bytes = (m.transfer_rate * (elapsed - SCHEDULED_S).max(0.0)).min(m.total_bytes);
        return;
    }
    let Some(m) = vm.migration.take() else {
        return;
    };
    let at_ms = m.started_ms + (finish_at * 1000.0) as i64;
    let target = to_node(nodes, m.target);
    let succeeded = m.failure.is_none();
    match (m.failure, m.target) {
        (None, Some(t)) => {
            vm.node = t;
            vm.relabel(nodes);
            if let Some(q) = logs {
                let msg = format!(
                    "Live migration of VirtualMachineInstance {}/{}{target} succeeded (migration {})",
                    vm.namespace, vm.name, m.vmim
                );
                q.push(vm, at_ms, Level::Info, "live-migration-source.go:789", &msg);
            }
        }
        (failure, _) => {
            vm.migration_failed_total += 1.0;
            if let Some(q) = logs {
                let reason = failure.map_or(UNSCHEDULABLE, |f| f.0);
                let msg = format!(
                    "Live migration of VirtualMachineInstance {}/{}{target} failed (migration {}): {reason}",
                    vm.namespace, vm.name, m.vmim
                );
                q.push(
                    vm,
                    at_ms,
                    Level::Error,
                    "live-migration-source.go:811",
                    &msg,
                );
            }
        }
    }
    vm.finished.push_back(FinishedMigration {
        succeeded,
        labels: LabelBlock::new(vec![
            ("namespace", vm.namespace.to_string()),
            ("vmi", vm.name.clone()),
            ("vmim", m.vmim),
        ]),
    });
    while vm.finished.len() > FINISHED_MIGRATIONS_KEPT {
        vm.finished.pop_front();
    }
}

/// A new migration of `vm` to a random other node.
fn start_migration(
    vm: &Vm,
    node_count: usize,
    now_ms: i64,
    effects: &Effects,
    rng: &mut StdRng,
) -> Migration {
    let target = (node_count > 1).then(|| {
        let t = rng.random_range(0..node_count - 1);
        if t >= vm.node {
            t + 1
        } else {
            t
        }
    });
    let failure = if target.is_none() {
        Some((UNSCHEDULABLE, 0.0))
    } else if rng.random::<f64>() < effects.migration_failure {
        Some((
            FAILURE_REASONS[rng.random_range(0..FAILURE_REASONS.len())],
            lerp(rng.random(), 0.2, 0.9),
        ))
    } else {
        None
    };
    // Touched guest memory, copied at about 1 GB/s after a fixed setup cost.
    let total = (vm.used_bytes + vm.cached_bytes) as f64;
    let duration_s = lerp(rng.random(), 6.0, 20.0) + total / 1e9;
    let transfer_rate = (total / duration_s).round();
    Migration {
        vmim: format!("kubevirt-migrate-vm-{}", name_suffix(rng)),
        target,
        started_ms: now_ms,
        duration_s,
        failure,
        phase: MigrationPhase::Pending,
        total_bytes: total,
        processed_bytes: 0.0,
        transfer_rate,
        dirty_rate: (transfer_rate * lerp(rng.random(), 0.05, 0.3)).round(),
    }
}

/// `" to node <name>"`, or nothing when there is no target.
fn to_node(nodes: &[Node], target: Option<usize>) -> String {
    target
        .and_then(|t| nodes.get(t))
        .map(|n| format!(" to node {}", n.name))
        .unwrap_or_default()
}

/// Node gauges and CPU counters from the VMs placed on them.
fn update_nodes(fleet: &mut Fleet, dt: f64, rng: &mut StdRng) {
    let mut cores = vec![0.0f64; fleet.nodes.len()];
    let mut resident = vec![0u64; fleet.nodes.len()];
    for vm in &fleet.vms {
        if let (Some(c), Some(r)) = (cores.get_mut(vm.node), resident.get_mut(vm.node)) {
            *c += vm.cores;
            *r += vm.resident_bytes;
        }
    }
    for (n, node) in fleet.nodes.iter_mut().enumerate() {
        // Kubelet, virt-handler and system daemons keep a few cores busy.
        let busy_cores = cores[n] + 0.3;
        let floor = node.mem_total / 50;
        let jitter = lerp(rng.random(), 0.0, 256.0 * (1 << 20) as f64);
        let free = node.mem_total as f64 - node.reserved as f64 - resident[n] as f64 - jitter;
        node.mem_available = page_floor(free).max(floor / PAGE * PAGE);
        node.load1 = (busy_cores * lerp(rng.random(), 0.9, 1.1) * 100.0).round() / 100.0;
        if dt <= 0.0 {
            continue;
        }
        let busy = busy_cores / node.cpus as f64;
        for cpu in &mut node.cpu {
            let shares = mode_shares(busy * lerp(rng.random(), 0.7, 1.3));
            for (m, share) in cpu.iter_mut().zip(shares) {
                *m += dt * share;
            }
        }
    }
}
