//! A hub outage: the collector keeps scraping into its disk queue while the
//! hub is down, and after the hub comes back (same port, same data) every
//! sample scraped meanwhile is in the hub, with the scraped value, once.

use std::time::Duration;

use super::collector_queue_support::*;
use super::support::*;

/// How long the hub stays down: two minutes, as issue 5 asks (~360 scrapes
/// queued on disk meanwhile).
pub const OUTAGE: Duration = Duration::from_secs(120);

#[test]
fn hub_outage_loses_nothing_and_repeats_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut hub = RestartableHub::start(&tmp.path().join("hub"), tmp.path());
    let mut sims = Vec::new();
    for (i, name) in ["sim-a", "sim-b", "sim-c"].iter().enumerate() {
        let (p, addr) =
            start_simulator(name, &format!("app-{i}"), 2, 10 + i as u64, &[], tmp.path());
        let exposed = scrape(&addr);
        assert!(!exposed.is_empty());
        sims.push((name.to_string(), p, addr, exposed));
    }
    let jobs: Vec<(&str, &str)> = sims
        .iter()
        .map(|(n, _, a, _)| (n.as_str(), a.as_str()))
        .collect();
    let config = queue_collector_config(
        tmp.path(),
        "outage",
        &jobs,
        &hub.write_url(),
        "      max_shards: 4\n",
        "",
    );
    let data = tmp.path().join("collector-data");
    let mut collector = start_collector_proc("collector", &config, &data, tmp.path());

    wait_for(
        "all three jobs in the hub",
        Duration::from_secs(30),
        || collector.proc.log(),
        || {
            try_query(&hub.addr, "count(up{cluster=\"outage\"} == 1)")
                .filter(|r| r.first().map(value) == Some(3.0))
        },
    );

    hub.stop();
    let stopped_at = now_s();
    std::thread::sleep(OUTAGE);
    collector.proc.assert_running();
    let queued = collector.metric_sum("fleetwatch_collector_queue_bytes", &[]);
    let pending = collector.metric_sum("fleetwatch_collector_samples_pending", &[]);
    assert!(
        queued > 0.0 && pending > 0.0,
        "the outage is queued on disk: {queued} bytes, {pending} samples"
    );
    hub.restart();
    let restarted_at = now_s();

    // Scrapes after the restart arrive only after the backlog (FIFO per series).
    wait_for(
        "fresh samples after the restart",
        Duration::from_secs(60),
        || collector.proc.log(),
        || {
            let q = format!("count(timestamp(up{{cluster=\"outage\"}}) > {restarted_at:.3})");
            try_query(&hub.addr, &q).filter(|r| r.first().map(value) == Some(3.0))
        },
    );
    // Stop the targets: scraping goes on (up=0) but no more scraped samples.
    for (_, p, _, _) in sims.iter_mut() {
        p.kill();
    }
    let last = std::cell::RefCell::new(String::new());
    wait_for(
        "every scraped sample in the hub, once",
        Duration::from_secs(60),
        || format!("{}\n{}", last.borrow(), collector.proc.log()),
        || {
            let m = collector.metrics();
            let mut ok = true;
            let mut last = last.borrow_mut();
            last.clear();
            for (job, _, addr, exposed) in &sims {
                let invalid = sum_metric(
                    &m,
                    "fleetwatch_collector_samples_invalid_total",
                    &[("job", job)],
                );
                assert_eq!(invalid, 0.0, "{job}: no invalid samples");
                let scraped = sum_metric(
                    &m,
                    "fleetwatch_collector_samples_scraped_total",
                    &[("job", job)],
                );
                let in_hub = check_job_samples(&hub.addr, job, addr, "outage", exposed);
                last.push_str(&format!("{job}: scraped {scraped}, in hub {in_hub}\n"));
                ok &= in_hub as f64 == scraped && scraped > 0.0;
            }
            ok.then_some(())
        },
    );
    // The outage itself is covered: one `up` per job and second, roughly.
    for (job, ..) in &sims {
        let up = raw_samples(&hub.addr, &format!("up{{job=\"{job}\"}}"), "1h");
        let during = up
            .values()
            .flatten()
            .filter(|(ts, _)| {
                let t = *ts as f64 / 1000.0;
                t > stopped_at + 1.0 && t < restarted_at - 1.0
            })
            .count();
        let expected = (restarted_at - stopped_at - 2.0) as usize;
        // A scrape tick skipped on a loaded machine is not a lost sample (every
        // scraped sample is checked above); allow a few per minute.
        assert!(
            during + 3 + expected / 30 >= expected,
            "{job}: {during} scrapes from the outage in the hub, expected about {expected}"
        );
    }
    let dropped = collector.metric_sum("fleetwatch_collector_queue_dropped_samples_total", &[]);
    assert_eq!(dropped, 0.0, "nothing dropped from the queue");
    assert!(
        collector.proc.terminate(Duration::from_secs(20)),
        "collector stops cleanly"
    );
}
