//! End-to-end tests: the real `fleetwatch` binary (test build) and real
//! peers (Debian's Prometheus and promtool), on loopback only. One test
//! binary so the suite links once.

mod e2e {
    pub mod bad_input;
    pub mod cli;
    pub mod corruption;
    pub mod crash;
    pub mod dashboards;
    pub mod demo;
    pub mod deploy;
    pub mod differential;
    pub mod federate;
    pub mod grafana;
    pub mod peers;
    pub mod pipeline;
    pub mod restart;
    pub mod support;
}
