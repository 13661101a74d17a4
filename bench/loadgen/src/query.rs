//! `loadgen query`: times a PromQL range query against a Prometheus-style
//! HTTP API.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

/// Flags of `loadgen query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Base URL of the API, e.g. `http://127.0.0.1:9190`.
    #[arg(long)]
    pub url: String,
    /// The PromQL expression.
    #[arg(long)]
    pub query: String,
    /// Range start, in milliseconds since the epoch.
    #[arg(long)]
    pub start_ms: i64,
    /// Range end, in milliseconds since the epoch.
    #[arg(long)]
    pub end_ms: i64,
    /// Resolution step in seconds.
    #[arg(long, default_value_t = 60)]
    pub step: u64,
    /// Timed runs; the median, p50 and p90 are reported.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Untimed runs before the timed ones (caches, page cache).
    #[arg(long, default_value_t = 0)]
    pub warmup: usize,
    /// Timeout of one request.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// Runs `query`: prints `median_ms`, `p50_ms`, `p90_ms` (nearest rank),
/// `min_ms`, `max_ms` and the size of the answer (`series`, `points`) as
/// one `key=value` line.
pub fn run(args: &QueryArgs) -> Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(query(args))
}

async fn query(args: &QueryArgs) -> Result<()> {
    let client = reqwest::Client::builder().timeout(args.timeout).build()?;
    let url = format!("{}/api/v1/query_range", args.url.trim_end_matches('/'));
    let params = [
        ("query", args.query.clone()),
        ("start", format!("{:.3}", args.start_ms as f64 / 1000.0)),
        ("end", format!("{:.3}", args.end_ms as f64 / 1000.0)),
        ("step", args.step.to_string()),
    ];
    let mut times = Vec::with_capacity(args.runs);
    let (mut series, mut points) = (0usize, 0usize);
    for run in 0..args.warmup + args.runs {
        let began = Instant::now();
        let resp = client
            .get(&url)
            .query(&params)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = resp.status();
        let text = resp.text().await?;
        if run >= args.warmup {
            times.push(began.elapsed().as_secs_f64() * 1000.0);
        }
        if !status.is_success() {
            bail!(
                "{url} answered {status} to {:?}: {}",
                args.query,
                text.chars().take(500).collect::<String>()
            );
        }
        let json: serde_json::Value = serde_json::from_str(&text).context("answer is not JSON")?;
        if json["status"] != "success" {
            bail!("query {:?} failed: {}", args.query, json);
        }
        let result = json["data"]["result"]
            .as_array()
            .context("answer without data.result")?;
        series = result.len();
        points = result
            .iter()
            .map(|s| s["values"].as_array().map_or(0, Vec::len))
            .sum();
    }
    times.sort_by(f64::total_cmp);
    let median = if times.len() % 2 == 1 {
        times[times.len() / 2]
    } else {
        (times[times.len() / 2 - 1] + times[times.len() / 2]) / 2.0
    };
    println!(
        "median_ms={median:.1} p50_ms={:.1} p90_ms={:.1} min_ms={:.1} max_ms={:.1} series={series} points={points}",
        nearest_rank(&times, 0.5),
        nearest_rank(&times, 0.9),
        times[0],
        times[times.len() - 1]
    );
    Ok(())
}

/// The `q` quantile of sorted, non-empty `times` by the nearest-rank method
/// (the smallest value with at least `q` of the values at or below it).
fn nearest_rank(times: &[f64], q: f64) -> f64 {
    let rank = (q * times.len() as f64).ceil() as usize;
    times[rank.clamp(1, times.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::nearest_rank;

    #[test]
    fn nearest_rank_quantiles() {
        let t: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(nearest_rank(&t, 0.5), 5.0);
        assert_eq!(nearest_rank(&t, 0.9), 9.0);
        assert_eq!(nearest_rank(&[7.0], 0.9), 7.0);
    }
}
