//! End-to-end tests: the real `fleetwatch` binary (test build) and real
//! peers (Debian's Prometheus and promtool), on loopback only. One test
//! binary so the suite links once.

// The Kubernetes API stand-in of the collector's tests; not every helper
// is used here.
#[allow(dead_code)]
#[path = "../collector/tests/common/kube_api.rs"]
mod kube_api;

mod e2e {
    pub mod alerting;
    pub mod alerting_scenarios;
    pub mod alerting_support;
    pub mod bad_input;
    pub mod cli;
    pub mod collector_crash;
    pub mod collector_faults;
    pub mod collector_federation;
    pub mod collector_identity;
    pub mod collector_outage;
    pub mod collector_queue_support;
    pub mod collector_rw2;
    pub mod corruption;
    pub mod crash;
    pub mod dashboards;
    pub mod demo;
    pub mod deploy;
    pub mod differential;
    pub mod federate;
    pub mod grafana;
    pub mod kubernetes_sd;
    pub mod logs;
    pub mod logs_collector;
    pub mod peers;
    pub mod pipeline;
    pub mod restart;
    pub mod rules_reload;
    pub mod rules_test;
    pub mod support;
}
