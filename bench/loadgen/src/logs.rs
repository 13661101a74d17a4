//! `loadgen logs-generate` / `logs-send`: the load of the logs benchmark
//! (`bench/logs.sh`).
//!
//! `logs-generate` writes realistic pod logs (namespaces x pods x
//! containers; JSON, logfmt and klog-style plain lines) as pre-encoded Loki
//! push bodies (protobuf + snappy) into one file, with a unique needle
//! string in exactly `--needles` lines. `logs-send` replays the file
//! against `/loki/api/v1/push` and prints lines/s and MB/s of raw log.
//!
//! File format: per request `u32 body length | u32 lines | u64 raw line
//! bytes | body`, little endian.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Args;
use fleetwatch_model::loki::{encode_protobuf, PushEntry, PushStream};
use fleetwatch_model::Labels;
use tokio::task::JoinSet;

/// Flags of `loadgen logs-generate`.
#[derive(Debug, Args)]
pub struct LogsGenerateArgs {
    /// Output file.
    #[arg(long)]
    pub out: PathBuf,
    /// Lines in total.
    #[arg(long, default_value_t = 5_000_000)]
    pub lines: u64,
    /// Namespaces.
    #[arg(long, default_value_t = 12)]
    pub namespaces: usize,
    /// Pods per namespace.
    #[arg(long, default_value_t = 20)]
    pub pods: usize,
    /// Lines per stream per request.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Streams per request.
    #[arg(long, default_value_t = 40)]
    pub streams_per_request: usize,
    /// The lines span this much time, ending a minute before now.
    #[arg(long, default_value = "4h", value_parser = humantime::parse_duration)]
    pub span: Duration,
    /// The needle string (present in exactly `--needles` lines).
    #[arg(long, default_value = "needle-5f3c9e1a7b")]
    pub needle: String,
    /// Lines carrying the needle.
    #[arg(long, default_value_t = 10)]
    pub needles: u64,
    /// Seed of the generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Flags of `loadgen logs-send`.
#[derive(Debug, Args)]
pub struct LogsSendArgs {
    /// Load file written by `logs-generate`.
    #[arg(long)]
    pub file: PathBuf,
    /// Push URL, e.g. `http://127.0.0.1:9190/loki/api/v1/push`.
    #[arg(long)]
    pub url: String,
    /// Requests in flight.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Timeout of one request.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const LEVELS: &[&str] = &["info", "info", "info", "info", "debug", "warn", "error"];
const PATHS: &[&str] = &[
    "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances",
    "/api/v1/nodes",
    "/healthz",
    "/metrics",
    "/apis/subresources.kubevirt.io/v1/virtualmachines/migrate",
];
const MSGS: &[&str] = &[
    "Synced VirtualMachineInstance",
    "Processing event",
    "Updating cluster config",
    "Migration target pod is ready",
    "failed to update VMI status, will retry",
    "Guest agent connected",
    "reconcile finished",
];

struct Stream {
    labels: Labels,
    ns: String,
    pod: String,
    kind: u8,
}

fn line(rng: &mut Rng, s: &Stream, ts_ns: i64, needle: Option<&str>) -> String {
    let level = rng.pick(LEVELS);
    let msg = rng.pick(MSGS);
    let vm = rng.below(5_000);
    let trace = rng.next();
    let dur = rng.below(2_000) as f64 / 10.0;
    let extra = needle.map(|n| format!(" {n}")).unwrap_or_default();
    let secs = ts_ns / 1_000_000_000;
    let micros = (ts_ns % 1_000_000_000) / 1_000;
    match s.kind {
        0 => format!(
            "{{\"ts\":\"{secs}.{micros:06}\",\"level\":\"{level}\",\"component\":\"virt-handler\",\"msg\":\"{msg}{extra}\",\"namespace\":\"{}\",\"name\":\"vm-{vm:05}\",\"kind\":\"VirtualMachineInstance\",\"uid\":\"{trace:016x}\",\"duration_ms\":{dur}}}",
            s.ns
        ),
        1 => format!(
            "ts={secs}.{micros:06} level={level} caller=controller.go:{} msg=\"{msg}{extra}\" vmi=vm-{vm:05} namespace={} pod={} trace_id={trace:016x} duration={dur}ms",
            rng.below(900) + 100,
            s.ns,
            s.pod
        ),
        _ => format!(
            "I{secs} {micros:06}       1 {}:{}] \"HTTP\" verb=\"GET\" URI=\"{}/vm-{vm:05}\" latency=\"{dur}ms\" resp={} {msg}{extra}",
            rng.pick(&["server.go", "handler.go", "reflector.go"]),
            rng.below(900) + 100,
            rng.pick(PATHS),
            rng.pick(&["200", "200", "200", "201", "404", "500"])
        ),
    }
}

/// Writes the load file.
pub fn generate(args: &LogsGenerateArgs) -> Result<()> {
    if args.batch == 0 || args.streams_per_request == 0 {
        bail!("--batch and --streams-per-request must be at least 1");
    }
    let mut rng = Rng(args.seed.max(1));
    let mut streams = Vec::new();
    for n in 0..args.namespaces {
        for p in 0..args.pods {
            let ns = format!("ns-{n:02}");
            let pod = format!("virt-launcher-vm-{p:03}-{:05x}", rng.below(1 << 20));
            let container = ["compute", "guest-console-log"][p % 2];
            streams.push(Stream {
                labels: Labels::from_pairs([
                    ("job", "bench"),
                    ("cluster", ["east", "west", "central"][n % 3]),
                    ("namespace", ns.as_str()),
                    ("pod", pod.as_str()),
                    ("container", container),
                ]),
                ns,
                pod,
                kind: (p % 3) as u8,
            });
        }
    }
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as i64;
    let end = now_ns - 60_000_000_000;
    let span = args.span.as_nanos() as i64;
    let start = end - span;
    let per_line = span / args.lines.max(1) as i64;
    // Lines get the needle at these global indexes.
    let mut needle_at: Vec<u64> = Vec::new();
    while (needle_at.len() as u64) < args.needles.min(args.lines) {
        let i = rng.below(args.lines);
        if !needle_at.contains(&i) {
            needle_at.push(i);
        }
    }
    needle_at.sort_unstable();
    let mut out = BufWriter::new(
        File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?,
    );
    let (mut written, mut raw, mut requests) = (0u64, 0u64, 0u64);
    let mut si = 0usize;
    let mut next_needle = 0usize;
    while written < args.lines {
        let mut req = Vec::with_capacity(args.streams_per_request);
        let mut lines_in_req = 0u64;
        let mut raw_in_req = 0u64;
        for _ in 0..args.streams_per_request {
            if written >= args.lines {
                break;
            }
            let s = &streams[si % streams.len()];
            si += 1;
            let mut entries = Vec::with_capacity(args.batch);
            for _ in 0..args.batch {
                if written >= args.lines {
                    break;
                }
                let ts = start + written as i64 * per_line;
                let needle = if needle_at.get(next_needle) == Some(&written) {
                    next_needle += 1;
                    Some(args.needle.as_str())
                } else {
                    None
                };
                let l = line(&mut rng, s, ts, needle);
                raw_in_req += l.len() as u64;
                entries.push(PushEntry {
                    timestamp_ns: ts,
                    line: l,
                    metadata: vec![],
                });
                written += 1;
                lines_in_req += 1;
            }
            req.push(PushStream {
                labels: s.labels.clone(),
                entries,
            });
        }
        let body = encode_protobuf(&req);
        out.write_all(&(body.len() as u32).to_le_bytes())?;
        out.write_all(&(lines_in_req as u32).to_le_bytes())?;
        out.write_all(&raw_in_req.to_le_bytes())?;
        out.write_all(&body)?;
        raw += raw_in_req;
        requests += 1;
    }
    out.flush()?;
    println!(
        "{{\"lines\":{written},\"raw_bytes\":{raw},\"requests\":{requests},\"streams\":{},\"start_ns\":{start},\"end_ns\":{end},\"needle\":\"{}\",\"needles\":{}}}",
        streams.len(),
        args.needle,
        next_needle
    );
    Ok(())
}

/// Replays the load file.
pub fn send(args: &LogsSendArgs) -> Result<()> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(send_all(args))
}

async fn send_all(args: &LogsSendArgs) -> Result<()> {
    let client = reqwest::Client::builder().timeout(args.timeout).build()?;
    let mut reader = BufReader::new(
        File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?,
    );
    let (mut lines, mut raw, mut requests) = (0u64, 0u64, 0u64);
    let mut in_flight: JoinSet<Result<()>> = JoinSet::new();
    let began = Instant::now();
    let mut header = [0u8; 16];
    loop {
        match reader.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len > 256 << 20 {
            bail!("corrupt load file: request of {len} bytes");
        }
        lines += u64::from(u32::from_le_bytes([
            header[4], header[5], header[6], header[7],
        ]));
        let mut rb = [0u8; 8];
        rb.copy_from_slice(&header[8..16]);
        raw += u64::from_le_bytes(rb);
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body)?;
        if in_flight.len() >= args.concurrency {
            if let Some(r) = in_flight.join_next().await {
                r??;
            }
        }
        let client = client.clone();
        let url = args.url.clone();
        let body = Bytes::from(body);
        in_flight.spawn(async move {
            for attempt in 0..20u32 {
                let resp = client
                    .post(&url)
                    .header("Content-Type", "application/x-protobuf")
                    .header("Content-Encoding", "snappy")
                    .body(body.clone())
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().is_success() => return Ok(()),
                    Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
                        let s = r.status();
                        bail!("push rejected: {s} {}", r.text().await.unwrap_or_default());
                    }
                    _ => tokio::time::sleep(Duration::from_millis(100 << attempt.min(5))).await,
                }
            }
            bail!("push failed after 20 attempts")
        });
        requests += 1;
    }
    while let Some(r) = in_flight.join_next().await {
        r??;
    }
    let secs = began.elapsed().as_secs_f64();
    println!(
        "{{\"lines\":{lines},\"raw_bytes\":{raw},\"requests\":{requests},\"seconds\":{secs:.3},\"lines_per_sec\":{:.0},\"raw_mb_per_sec\":{:.2}}}",
        lines as f64 / secs,
        raw as f64 / 1e6 / secs
    );
    Ok(())
}
