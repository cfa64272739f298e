//! A deterministic discrete-event network simulator for replicated data types.
//!
//! (Crate essay to be completed with the simulator.)

pub mod outcome;
pub mod scenario;
pub mod time;

pub use outcome::*;
pub use scenario::*;
pub use time::{DurationError, SimDuration};
