//! `converge`: deterministic simulation and verification of CRDT convergence.
//!
//! This is the crate users depend on, and the home of the `converge` binary. It re-exports the
//! three crates that do the work, so that one dependency brings everything:
//!
//! - [`crdt`] (converge-crdt): the data. The traits a replicated type implements
//!   (`StateCrdt`, `OpCrdt`, `DeltaCrdt`), stamps and tie-break policies, clocks, and our three
//!   types, the LWW grid, the LWW-element dictionary and the RGA list.
//! - [`netsim`] (converge-netsim): the deterministic discrete-event simulator and the
//!   [`netsim::Scenario`] data model that scenario files deserialize into.
//! - [`checker`] (converge-checker): the oracles that judge a run, the stateright model checker,
//!   and shrinking by delta debugging.
//!
//! On top of them this crate owns everything that touches the outside world, and nothing else
//! does: [`scenario_file`] reads TOML and JSON files into validated scenarios with errors that
//! point at a line, a column and a key; [`verify`] is the `cargo test` entry point; [`report`]
//! renders judged runs as JSON, a self-contained HTML page and trace exports for Perfetto and
//! ShiViz; [`sweep`] runs many seeds on worker threads and merges sharded results; [`run_id`]
//! names each run, so that reports say which run they are.
//!
//! The decision that matters most here: rendering is pure (a report in, a string out) and only the
//! binary writes files, so every page and export can be tested as text, and a sweep's output
//! depends on its seeds alone, never on how many threads ran it.

pub use converge_checker as checker;
pub use converge_crdt as crdt;
pub use converge_netsim as netsim;
/// The proptest that [`verify::Verify::intents`] takes strategies of, so that a user writes
/// them against the same version.
pub use proptest;

pub mod report;
pub mod run_id;
pub mod scenario_file;
pub mod sweep;
pub mod verify;
