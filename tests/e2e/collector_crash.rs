//! The collector is SIGKILLed while its disk queue holds samples for a hub
//! that is down; restarted on the same data directory (hub still down),
//! then the hub comes back: what was queued before the kill arrives, and
//! nothing is repeated.

use std::time::Duration;

use super::collector_queue_support::*;
use super::support::*;

#[test]
fn collector_sigkill_keeps_queued_samples() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut hub = RestartableHub::start(&tmp.path().join("hub"), tmp.path());
    let mut sims = Vec::new();
    for (i, name) in ["crash-a", "crash-b"].iter().enumerate() {
        let (p, addr) =
            start_simulator(name, &format!("app-{i}"), 2, 20 + i as u64, &[], tmp.path());
        let exposed = scrape(&addr);
        sims.push((name.to_string(), p, addr, exposed));
    }
    let jobs: Vec<(&str, &str)> = sims
        .iter()
        .map(|(n, _, a, _)| (n.as_str(), a.as_str()))
        .collect();
    let config = queue_collector_config(tmp.path(), "crash", &jobs, &hub.write_url(), "", "");
    let data = tmp.path().join("collector-data");
    let mut first = start_collector_proc("collector-1", &config, &data, tmp.path());
    wait_for(
        "both jobs in the hub",
        Duration::from_secs(30),
        || first.proc.log(),
        || {
            try_query(&hub.addr, "count(up{cluster=\"crash\"} == 1)")
                .filter(|r| r.first().map(value) == Some(2.0))
        },
    );

    hub.stop();
    wait_for(
        "samples queued on disk",
        Duration::from_secs(30),
        || first.proc.log(),
        || {
            let pending = first.metric_sum("fleetwatch_collector_samples_pending", &[]);
            (pending > 100.0).then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    let m = first.metrics();
    let before: Vec<f64> = sims
        .iter()
        .map(|(job, ..)| {
            sum_metric(
                &m,
                "fleetwatch_collector_samples_scraped_total",
                &[("job", job)],
            )
        })
        .collect();
    // Let the scrape counted last finish its fsync, then kill.
    std::thread::sleep(Duration::from_millis(300));
    first.proc.kill();

    let second = start_collector_proc("collector-2", &config, &data, tmp.path());
    let recovered = second.metric_sum("fleetwatch_collector_samples_pending", &[]);
    assert!(
        recovered > 100.0,
        "the restarted collector recovered its queue: {recovered}"
    );
    std::thread::sleep(Duration::from_secs(3));
    hub.restart();

    wait_for(
        "fresh samples after the hub restart",
        Duration::from_secs(60),
        || second.proc.log(),
        || {
            let q = format!(
                "count(timestamp(up{{cluster=\"crash\"}}) > {:.3})",
                now_s() - 1.0
            );
            try_query(&hub.addr, &q).filter(|r| r.first().map(value) == Some(2.0))
        },
    );
    for (_, p, _, _) in sims.iter_mut() {
        p.kill();
    }
    let last = std::cell::RefCell::new(String::new());
    wait_for(
        "samples from both runs in the hub, none twice",
        Duration::from_secs(60),
        || format!("{}\n{}", last.borrow(), second.proc.log()),
        || {
            let m = second.metrics();
            let mut ok = true;
            let mut last = last.borrow_mut();
            last.clear();
            for ((job, _, addr, exposed), before) in sims.iter().zip(&before) {
                let after = sum_metric(
                    &m,
                    "fleetwatch_collector_samples_scraped_total",
                    &[("job", job)],
                );
                let in_hub = check_job_samples(&hub.addr, job, addr, "crash", exposed) as f64;
                let per_scrape = exposed.len() as f64;
                last.push_str(&format!(
                    "{job}: before kill {before}, after restart {after}, in hub {in_hub}\n"
                ));
                // Everything counted before the kill and after the restart
                // is there; at most the scrapes racing the kill are extra.
                assert!(
                    in_hub <= before + after + 2.0 * per_scrape,
                    "{job}: more in the hub than scraped:\n{last}"
                );
                ok &= in_hub >= before + after && after > 0.0;
            }
            ok.then_some(())
        },
    );
    let mut second = second;
    assert!(
        second.proc.terminate(Duration::from_secs(20)),
        "collector stops cleanly"
    );
}
