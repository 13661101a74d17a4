//! A deterministic, realistic fleet load for tests: KubeVirt-style VM
//! series (memory gauges that wander in page steps, CPU and network
//! counters, constant gauges, ratios with full float precision), scraped
//! every 15 s with a few ms of jitter, and some staleness markers.

use fleetwatch_model::{Labels, Sample, STALE_NAN};

/// SplitMix64.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const METRICS: [&str; 10] = [
    "kubevirt_vmi_memory_used_bytes",
    "kubevirt_vmi_memory_available_bytes",
    "kubevirt_vmi_cpu_usage_seconds_total",
    "kubevirt_vmi_network_receive_bytes_total",
    "kubevirt_vmi_network_transmit_bytes_total",
    "kubevirt_vm_migration_failed_total",
    "up",
    "node_load1",
    "kubevirt_vmi_memory_usage_ratio",
    "kubevirt_vmi_storage_iops_read_total",
];

/// `num_series` series with `samples` samples each, starting at `start_ms`
/// every 15 s. Series `i` is metric `i % 10` of VM `i / 10`.
pub fn fleet(num_series: usize, samples: usize, start_ms: i64) -> Vec<(Labels, Vec<Sample>)> {
    let mut rng = Rng::new(42);
    let mut out = Vec::with_capacity(num_series);
    for i in 0..num_series {
        let vm = i / METRICS.len();
        let kind = i % METRICS.len();
        let labels = Labels::from_pairs([
            ("__name__", METRICS[kind].to_string()),
            ("cluster", format!("cluster-{}", vm % 3)),
            ("namespace", format!("ns-{}", vm % 17)),
            ("name", format!("vm-{vm:05}")),
            ("node", format!("node-{:03}", vm % 97)),
            ("job", "kubevirt".to_string()),
        ]);
        let jitter = vm % 2 == 0;
        let offset = (rng.below(15_000)) as i64;
        let mut v: f64 = match kind {
            0 => (1 + rng.below(8)) as f64 * 1073741824.0,
            1 => (2 + rng.below(14)) as f64 * 1073741824.0,
            2 => (rng.below(10_000_000) as f64) / 100.0,
            3 | 4 => rng.below(1 << 40) as f64,
            5 => rng.below(3) as f64,
            6 => 1.0,
            7 => (rng.below(400) as f64) / 100.0,
            8 => rng.unit(),
            _ => rng.below(1 << 30) as f64,
        };
        let stale_at = (kind == 0 && vm % 50 == 0).then(|| samples.saturating_sub(3));
        let mut s = Vec::with_capacity(samples);
        for k in 0..samples {
            let j = if jitter { rng.below(7) as i64 - 3 } else { 0 };
            let t = start_ms + offset + 15_000 * k as i64 + j;
            match kind {
                0 if rng.below(10) < 8 => v += (rng.below(2001) as f64 - 1000.0) * 4096.0,
                2 => v += (rng.below(3000) as f64) / 100.0,
                3 | 4 => v += rng.below(5_000_000) as f64,
                7 => v = (rng.below(400) as f64) / 100.0,
                8 => v = (v + rng.unit() * 0.01) / 1.005,
                9 => v += rng.below(200) as f64,
                _ => {}
            }
            if Some(k) == stale_at {
                s.push(Sample::new(t, STALE_NAN));
                break;
            }
            s.push(Sample::new(t, v));
        }
        out.push((labels, s));
    }
    out
}
