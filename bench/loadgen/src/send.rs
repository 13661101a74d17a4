//! `loadgen send`: replays a load file against a remote-write endpoint.
//!
//! Requests of one scrape go out with up to `concurrency` in flight; every
//! request of a scrape is acknowledged before the next scrape's first one
//! starts, so each series' samples arrive in time order (what a receiver
//! without an out-of-order window needs). 5xx, 429 and connection errors
//! are retried with backoff; any other non-2xx answer stops the run.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Args;
use fleetwatch_model::remote_write::{CONTENT_TYPE_V1, VERSION_V1};
use reqwest::StatusCode;
use tokio::task::JoinSet;

use crate::format::{Reader, Record};

/// Most attempts for one request before the run fails.
const MAX_ATTEMPTS: u32 = 20;

/// Flags of `loadgen send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Load file written by `generate`.
    #[arg(long)]
    pub file: PathBuf,
    /// Remote-write URL, e.g. `http://127.0.0.1:9190/api/v1/write`.
    #[arg(long)]
    pub url: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Timeout of one request.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// What one request cost.
struct Outcome {
    samples: u64,
    retries: u32,
}

/// Runs `send` on a single-threaded runtime (the sender should take as
/// little of the machine as it can from the server being measured).
pub fn run(args: &SendArgs) -> Result<()> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(send(args))
}

async fn send(args: &SendArgs) -> Result<()> {
    let client = reqwest::Client::builder()
        .timeout(args.timeout)
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let mut reader = Reader::open(&args.file)?;
    let mut next = reader.next_record()?;
    let (mut samples, mut requests, mut retries) = (0u64, 0u64, 0u64);
    let began = Instant::now();
    while let Some(first) = next.take() {
        let scrape = first.scrape;
        let mut in_flight: JoinSet<Result<Outcome>> = JoinSet::new();
        let mut record = Some(first);
        while let Some(Record {
            samples: n, body, ..
        }) = record.take()
        {
            if in_flight.len() >= args.concurrency {
                let done = join_one(&mut in_flight).await?;
                samples += done.samples;
                retries += u64::from(done.retries);
            }
            let (client, url) = (client.clone(), args.url.clone());
            in_flight.spawn(post(client, url, Bytes::from(body), u64::from(n)));
            requests += 1;
            match reader.next_record()? {
                Some(r) if r.scrape == scrape => record = Some(r),
                other => next = other,
            }
        }
        while !in_flight.is_empty() {
            let done = join_one(&mut in_flight).await?;
            samples += done.samples;
            retries += u64::from(done.retries);
        }
    }
    let seconds = began.elapsed().as_secs_f64();
    println!(
        "sent_samples={samples} requests={requests} retries={retries} seconds={seconds:.3} samples_per_second={:.0}",
        samples as f64 / seconds.max(1e-9)
    );
    Ok(())
}

async fn join_one(set: &mut JoinSet<Result<Outcome>>) -> Result<Outcome> {
    match set.join_next().await {
        Some(joined) => joined.context("sender task failed")?,
        None => bail!("no request in flight"),
    }
}

/// POSTs one body until it is acknowledged.
async fn post(client: reqwest::Client, url: String, body: Bytes, samples: u64) -> Result<Outcome> {
    let mut backoff = Duration::from_millis(50);
    for attempt in 0..MAX_ATTEMPTS {
        let answer = client
            .post(&url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", CONTENT_TYPE_V1)
            .header("X-Prometheus-Remote-Write-Version", VERSION_V1)
            .header("User-Agent", "fleetwatch-loadgen")
            .body(body.clone())
            .send()
            .await;
        let reason = match answer {
            Ok(resp) if resp.status().is_success() => {
                return Ok(Outcome {
                    samples,
                    retries: attempt,
                })
            }
            Ok(resp)
                if resp.status().is_server_error()
                    || resp.status() == StatusCode::TOO_MANY_REQUESTS =>
            {
                format!("{}", resp.status())
            }
            Ok(resp) => {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                bail!(
                    "{url} answered {status}: {}",
                    text.chars().take(500).collect::<String>()
                );
            }
            Err(e) => e.to_string(),
        };
        if attempt + 1 == MAX_ATTEMPTS {
            bail!("{url}: giving up after {MAX_ATTEMPTS} attempts, last: {reason}");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
    bail!("{url}: no attempt made")
}
