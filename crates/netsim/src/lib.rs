//! A deterministic discrete-event network simulator for replicated data types.
//!
//! This crate owns everything that happens between replicas: virtual time, the network (latency
//! distributions, drops, duplicates, reordering by jitter, per-link overrides), faults (partitions,
//! isolation, bridges, crashes with durable or volatile state, late joins, permanent leaves, clock
//! skew, relay-server outages, and swarm mode, which draws the fault mix from the seed), the
//! replication protocols (state broadcast, anti-entropy, op broadcast, reliable causal broadcast,
//! delta sync) over three topologies (relay server, full mesh, gossip), the workload, and the trace.
//!
//! How the modules fit:
//! - [`scenario`]: the plain-data description of a run (what scenario files deserialize into), and
//!   [`validation`], which refuses what cannot run before anything starts; [`crdts`]: the
//!   registry that maps a scenario's `[crdt] kind` to a type ([`CrdtSpec::dispatch`]).
//! - [`time`]: virtual durations with units.
//! - `streams`: named random streams derived from the root seed.
//! - [`protocol`]: the protocol seam, the [`Protocol`] trait any sync protocol implements (a user's
//!   own too) and the [`protocol::Ctx`] its handlers act through; [`protocols`]: the six built-in
//!   protocols, one module each, written against it; `topology`: mesh, relay and gossip.
//! - `sim`: the event queue, the nodes and the run loop; [`run`] (the scenario's built-in
//!   protocol) and [`run_protocol`] (any protocol) are its entry points. Its submodules extend
//!   the same `Sim` value: `sim::network` (per-link parameters, latency samplers, drops,
//!   duplicates, scripted fates), `sim::faults` (cuts, crashes, joins, leaves, outages, swarm
//!   draws) and `sim::trace` (events, the observer, the trace hash). `Sim` knows no protocol by
//!   name.
//! - [`outcome`]: what a run produces and what an [`Observer`] sees after every event.
//!
//! The decision that matters most: **a run is a pure function of (scenario, seed)**. Actions wait in
//! a heap ordered by (virtual time, sequence number); every random choice comes from a ChaCha stream
//! named for its purpose (`network`, `workload`, `faults`, `tie-breaks`, `protocol`), so adding a
//! fault does not shift the delays; only ordered collections are iterated; there is no wall clock
//! and no I/O. The trace hash, a multiply-xorshift chain over a canonical word-by-word encoding
//! of every event, is the proof.
//!
//! The simulator never judges: it keeps ghost bookkeeping (which updates each replica has
//! delivered, which writes were stale or concurrent) and shows it to observers, and the checker's
//! oracles decide what it means.

pub mod crdts;
pub mod explore;
pub mod outcome;
pub mod protocol;
pub mod protocols;
pub mod replicas;
pub mod scenario;
mod sim;
mod streams;
#[cfg(test)]
mod test_random;
pub mod time;
mod topology;
pub mod validation;

pub use crdts::{BuiltinCrdt, CrdtVisitor, RgaReplicas};
pub use outcome::*;
pub use protocol::{Protocol, Runner, ScenarioProtocol, UserProtocol};
pub use replicas::{Incarnations, IntentDraw, Replicas, Specified};
pub use scenario::*;
pub use sim::{run, run_protocol};
pub use time::{DurationError, SimDuration};
pub use validation::ScenarioError;
