//! Scenarios: what goes wrong in the simulated cluster, and the knobs each
//! one turns.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// A condition switched on in the simulated cluster. Several may be combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scenario {
    /// Nothing special: about 5% of the VMs run hot and a migration fails
    /// only now and then. Listing it changes nothing.
    Normal,
    /// About 30% of the VMs run hot, with swap traffic and major page faults.
    MemoryPressure,
    /// Migrations start often and most of them fail.
    MigrationFailures,
    /// The cluster's metrics endpoint is down: `/metrics` answers 503.
    ClusterDown,
}

impl Scenario {
    /// Every scenario, in documentation order.
    pub const ALL: [Scenario; 4] = [
        Scenario::Normal,
        Scenario::MemoryPressure,
        Scenario::MigrationFailures,
        Scenario::ClusterDown,
    ];

    /// The command-line spelling, e.g. `memory-pressure`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Normal => "normal",
            Scenario::MemoryPressure => "memory-pressure",
            Scenario::MigrationFailures => "migration-failures",
            Scenario::ClusterDown => "cluster-down",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scenario {
    type Err = Error;

    /// Parses the command-line spelling (case-insensitive; `_` is accepted
    /// for `-`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.as_str() == wanted)
            .ok_or_else(|| Error::UnknownScenario {
                input: s.to_string(),
            })
    }
}

/// Seconds in an hour.
const HOUR_S: f64 = 3600.0;

/// The knobs the combined scenarios set.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Effects {
    /// Fraction of the VMs that run hot (usage/available in 0.91..0.98).
    pub hot_fraction: f64,
    /// Hot VMs swap and fault heavily (memory pressure in the guest).
    pub pressure: bool,
    /// Expected migrations per VM per second.
    pub migration_rate: f64,
    /// Probability that a started migration fails.
    pub migration_failure: f64,
    /// `/metrics` answers 503.
    pub down: bool,
}

impl Effects {
    /// Combines a list of scenarios.
    pub fn from_scenarios(scenarios: &[Scenario]) -> Self {
        let mut e = Effects {
            hot_fraction: 0.05,
            pressure: false,
            // One migration per VM every six hours (node drains, rebalancing).
            migration_rate: 1.0 / (6.0 * HOUR_S),
            migration_failure: 0.05,
            down: false,
        };
        for sc in scenarios {
            match sc {
                Scenario::Normal => {}
                Scenario::MemoryPressure => {
                    e.hot_fraction = 0.30;
                    e.pressure = true;
                }
                Scenario::MigrationFailures => {
                    // One migration per VM every 15 minutes, most failing.
                    e.migration_rate = 1.0 / 900.0;
                    e.migration_failure = 0.6;
                }
                Scenario::ClusterDown => e.down = true,
            }
        }
        e
    }

    /// How many of `vms` VMs run hot: the fraction rounded, at least one
    /// when there are VMs at all.
    pub fn hot_count(&self, vms: usize) -> usize {
        if vms == 0 {
            return 0;
        }
        ((vms as f64 * self.hot_fraction).round() as usize).clamp(1, vms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for sc in Scenario::ALL {
            assert_eq!(sc.to_string().parse::<Scenario>(), Ok(sc));
        }
        assert_eq!(
            "Memory_Pressure".parse::<Scenario>(),
            Ok(Scenario::MemoryPressure)
        );
        assert!(matches!(
            "meltdown".parse::<Scenario>(),
            Err(Error::UnknownScenario { input }) if input == "meltdown"
        ));
    }

    #[test]
    fn effects_combine() {
        let normal = Effects::from_scenarios(&[]);
        assert_eq!(normal, Effects::from_scenarios(&[Scenario::Normal]));
        assert_eq!(normal.hot_count(20), 1);
        assert_eq!(normal.hot_count(0), 0);
        assert_eq!(normal.hot_count(3), 1);
        let both =
            Effects::from_scenarios(&[Scenario::MemoryPressure, Scenario::MigrationFailures]);
        assert_eq!(both.hot_count(100), 30);
        assert!(both.migration_rate > normal.migration_rate * 10.0);
        assert!(both.migration_failure > normal.migration_failure * 5.0);
        assert!(!both.down);
        assert!(Effects::from_scenarios(&[Scenario::ClusterDown]).down);
    }
}
