//! Conflict-free replicated data types, pure and deterministic.
//!
//! This crate owns the data: what a replica holds, how two replicas' states merge, how an operation
//! is prepared where it originates and applied everywhere, and which stamps order concurrent writes.
//! It knows nothing about the network, time sources or randomness. Where a policy needs a random
//! choice (the `random` tie-break reproduces a real bug), the caller passes a [`Coin`]; the simulator
//! hands in one drawn from a seeded stream, so the same seed makes the same choices.
//!
//! The modules fit together like this:
//! - [`traits`]: the seams a user's own type implements ([`StateCrdt`], [`OpCrdt`], [`DeltaCrdt`]).
//!   The simulator and the checker only ever see a CRDT through these traits, so a user's type runs
//!   through exactly the same path as ours.
//! - [`stamp`]: stamps `(time, replica)`, update ids, and the tie-break policies shared by every
//!   last-writer-wins type.
//! - [`clock`]: Lamport, per-key counter, skewed wall clock and hybrid logical clock, each turning a
//!   virtual time passed in into stamp times.
//! - [`grid`] and [`dict`]: the LWW grid and the LWW-element dictionary.
//! - [`list`]: the RGA list, a sequence CRDT, with the mapping of workload intents to list
//!   positions ([`ListIntent::of`]).
//!
//! The one design decision that matters most: *observable state* ([`StateCrdt::view`], what a user
//! sees) is kept apart from *replicated state* (`PartialEq` on the type: values and stamps) and from
//! *local bookkeeping* (change counters for deltas, compared by neither). Convergence is judged on
//! views; the CRDT laws are judged on replicated state.

pub mod clock;
pub mod dict;
pub mod grid;
pub mod list;
pub mod stamp;
pub mod state_only;
pub mod traits;

pub use clock::{Clock, ClockKind};
pub use dict::{Bias, DictOp, DictSpec, DictView, LwwDict, LwwDictConfig};
pub use grid::{GridOp, GridSpec, GridView, LwwGrid, LwwGridConfig};
pub use list::{ElemId, ListIntent, ListOp, ListSpec, ListView, Rga};
pub use stamp::{ReplicaId, Stamp, TieBreak, UpdateId};
pub use state_only::{LocalUpdate, LocalWrite, StateOnly};
pub use traits::{
    digest_round, Coin, DeltaCrdt, Deltas, FixedCoin, Intent, KeyEntry, OpCrdt, StampedSpec,
    StateCrdt, WorkloadIntent,
};
