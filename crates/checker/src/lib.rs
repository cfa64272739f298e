//! Judging convergence: oracles, exhaustive model checking, and shrinking.
//!
//! This crate decides what a run means. It never drives the network itself: it runs scenarios
//! through [`converge_netsim::run`] with its oracles attached as observers, and it explores small
//! configurations exhaustively with its own stateright model.
//!
//! - [`oracles`]: strong convergence after every event, the distinct-states timeline, eventual
//!   convergence and intent at the end.
//! - [`judge`]: runs a scenario with every oracle on and turns what they saw into a [`RunReport`]
//!   with a verdict, the evidence, and non-vacuity counts.
//! - [`shrink`]: delta debugging from a failing run to a minimal, scripted scenario.
//! - [`model`]: exhaustive model checking of 2-4 replicas with stateright.
//! - [`clone_check`]: in debug builds, a probe that a replica state's `Clone` is a deep copy,
//!   which every copy the simulator makes relies on.
//! - [`steps`]: a run replayed event by event, with the states of the replicas each event
//!   touched, for the report's counterexample stepper.
//!
//! The decision that matters most: oracles are observers that see the simulator's ghost state
//! (which updates each replica has delivered) but cannot change a run, so a run judged by any set of
//! oracles is the same run, with the same trace hash, as a run judged by none.

pub mod clone_check;
pub mod determinism;
pub mod judge;
pub mod liveness;
pub mod model;
pub mod oracles;
pub mod shrink;
pub mod spec;
pub mod steps;
pub use clone_check::{check_clone, CloneProbe, ShallowClone};
pub use determinism::{check_builtin_determinism, check_determinism, Nondeterminism};
pub use judge::{
    judge, judge_builtin, judge_builtin_until, judge_until, judge_with, Judged, RunReport,
    SCHEMA_VERSION,
};
pub use model::{check as check_model, CheckConfig, CheckError, CheckReport};
pub use oracles::{Oracle, Violation};
pub use shrink::{shrink, shrink_builtin, shrink_with, Shrunk};
