//! Real third-party CRDTs put through converge's harness, the way a user would do it: thin adapter
//! types in their own crate that implement [`converge::crdt::StateCrdt`] and
//! [`converge::crdt::OpCrdt`] on top of somebody else's library. The third-party crates are
//! dependencies of this example only.
//!
//! | adapter | wraps | a put is | a remove is | the op shipped |
//! |---|---|---|---|---|
//! | [`LwwRegisters`] | `crdts::LWWReg<Option<u64>, (u64, u32)>`, one per key | a register write | a write of `None` | the written register |
//! | [`OrSet`] | `crdts::Orswot<u32, u32>` | add element `key` | remove element `key` | the Orswot op, built from the origin's causal context |
//! | [`Counter`] | `crdts::GCounter<u32>` | an increment by `value % 10 + 1` | nothing | the origin's new dot |
//! | [`AutomergeMap`] | an `automerge::Automerge` document, a map at its root | `put("k{key}", value)` | `delete("k{key}")` | the change bytes committed at the origin |
//!
//! Every op also carries the stamp time its origin's clock issued, and every adapter reports the
//! greatest one it holds through [`StateCrdt::time_max`], so that the simulator's Lamport clocks
//! advance past a received state exactly as they do past a received op.

mod automerge_map;
mod counter;
mod orset;
mod registers;

pub use automerge_map::{AutomergeMap, ChangeOp};
pub use counter::{Counter, CounterOp};
pub use orset::{OrSet, SetOp};
pub use registers::{LwwRegisters, Marker, RegisterWrite};
