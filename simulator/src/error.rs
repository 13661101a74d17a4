//! The crate's error type.

/// Errors raised by the simulator's public API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A scenario name is not one of the known spellings.
    #[error(
        "unknown scenario {input:?}: expected one of normal, memory-pressure, migration-failures, cluster-down"
    )]
    UnknownScenario {
        /// The text as given.
        input: String,
    },
}
