//! The seams a CRDT implements to run through the simulator and the checker.
//!
//! Three traits, one per replication style, sharing a base:
//! - [`StateCrdt`]: state-based. Replicas ship whole states and [`StateCrdt::merge`] them.
//! - [`OpCrdt`]: op-based. An [`Intent`] is *prepared* into an op where it originates (stamped
//!   there), then the op's effect is *applied* on every replica, the origin included.
//! - [`DeltaCrdt`]: delta-state. A replica hands a peer only what changed since a position in its own
//!   change history; merging that delta has the same effect as merging the whole state.
//!
//! Each op-based type names what its users ask for, [`OpCrdt::Intent`]. The built-in types take the
//! key/value [`Intent`] (put a value under a key, remove a key), so that one key/value workload
//! drives them all; a user's type may take its own ([`WorkloadIntent`]): a counter's increment,
//! a list's insert at a position.

use std::fmt::Debug;
use std::ops::Range;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::stamp::Stamp;

/// A source of fair coin flips, passed in by the caller wherever a policy needs a random choice.
/// The crate itself never draws randomness.
pub trait Coin {
    fn flip(&mut self) -> bool;
}

/// A coin that always lands the same way: for deterministic policies, tests and scripted replays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedCoin(pub bool);

impl Coin for FixedCoin {
    fn flip(&mut self) -> bool {
        self.0
    }
}

/// What a user asked for, before any replica stamped it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Intent {
    /// Write `value` under `key` (a grid cell index, a dictionary key, an element, ...).
    Put { key: u32, value: u64 },
    /// Remove `key`. Types without removal treat it as a no-op.
    Remove { key: u32 },
}

impl Intent {
    pub fn key(&self) -> u32 {
        match *self {
            Intent::Put { key, .. } | Intent::Remove { key } => key,
        }
    }
}

/// The type of what a user asks of a CRDT ([`OpCrdt::Intent`]): the built-in key/value
/// [`Intent`], or a type's own (a counter's increment, a list's insert at a position, several
/// edits of one transaction). Workloads carry it, scenario files write it (through serde, as
/// `intent = { ... }` in `[[workload.ops]]`), and shrinking keeps it whole.
pub trait WorkloadIntent:
    Clone + Debug + PartialEq + Serialize + DeserializeOwned + 'static
{
    /// The key this intent writes: writes to one key issued concurrently count as a conflict
    /// (whether a run exercised conflicts at all), and clocks that count per key read the time
    /// held under it. The default, 0, says that every intent bears on every other (a counter, a
    /// list whose positions shift with every edit).
    fn key(&self) -> u32 {
        0
    }

    /// The intent that a scenario's key/value workload stands for: a put of `value` under `key`,
    /// or a remove of `key` where `value` is `None`. The built-in [`Intent`] is exactly that; a
    /// type with intents of its own keeps the default, `None`, and gets its writes from a
    /// generator (`Verify::intents`) or from `intent = { ... }` in a scenario file, never from a
    /// key and a value smuggled into a meaning they do not have.
    fn from_key_value(_key: u32, _value: Option<u64>) -> Option<Self> {
        None
    }

    /// This intent as a key and a value (`None`: a remove), if it is one: the inverse of
    /// [`WorkloadIntent::from_key_value`], which reports and scenario files use to write it the
    /// way they write the built-in types' writes. The default, `None`, writes the intent's serde
    /// form instead.
    fn as_key_value(&self) -> Option<(u32, Option<u64>)> {
        None
    }

    /// Whether the intents have a key/value form at all: what a key/value workload, key/value
    /// writes in files and the replay of a type's own ops as its specification need.
    fn has_key_value_form() -> bool {
        Self::from_key_value(0, None).is_some()
    }
}

/// Plain values as intents (a character for a text, a number for a counter), with the defaults:
/// every intent bears on every other, no key/value form. The orphan rule would keep a user from
/// writing these; a richer intent is a type of its own.
macro_rules! plain_intents {
    ($($plain:ty),*) => { $(impl WorkloadIntent for $plain {})* };
}

plain_intents!(char, bool, u8, u16, u32, u64, i8, i16, i32, i64, String);

impl WorkloadIntent for Intent {
    fn key(&self) -> u32 {
        Intent::key(self)
    }

    fn from_key_value(key: u32, value: Option<u64>) -> Option<Self> {
        Some(match value {
            Some(value) => Intent::Put { key, value },
            None => Intent::Remove { key },
        })
    }

    fn as_key_value(&self) -> Option<(u32, Option<u64>)> {
        Some(match *self {
            Intent::Put { key, value } => (key, Some(value)),
            Intent::Remove { key } => (key, None),
        })
    }
}

/// A state-based CRDT.
///
/// `PartialEq` must compare the *replicated* state (values and stamps) and ignore local bookkeeping;
/// the CRDT laws (commutative, associative, idempotent merge) are stated with it. Equal states must
/// have equal views: the convergence oracles compare states first and render views only when the
/// states differ (debug builds check it).
pub trait StateCrdt: Clone + Debug + PartialEq {
    /// What a user of the data type observes. Convergence is judged on views.
    type View: Clone + Debug + PartialEq + Serialize;

    /// Merges `other` into `self`. Policies that break ties at random draw from `coin`.
    fn merge(&mut self, other: &Self, coin: &mut dyn Coin);

    /// The observable state.
    fn view(&self) -> Self::View;

    /// Whether this state's view equals `view`. The default renders the view; a type whose view
    /// is built (allocated) may compare in place, which is how the convergence oracles compare a
    /// changed replica with the views they hold after every event.
    fn view_matches(&self, view: &Self::View) -> bool {
        self.view() == *view
    }

    /// A hash of this state's view, if the type offers one: states with equal views must have
    /// equal digests. The convergence oracles use it to find a view among many without comparing
    /// it with each (with hundreds of replicas, hundreds of distinct views); without one they
    /// compare views one by one.
    fn view_digest(&self) -> Option<u64> {
        None
    }

    /// The greatest stamp time this state holds, so that a Lamport clock can advance past it when the
    /// state is received. Types without stamps keep the default, zero.
    fn time_max(&self) -> u64 {
        0
    }

    /// The stamp time currently held under `key`, for clocks that count per key ("old stamp + 1").
    fn key_time(&self, _key: u32) -> Option<u64> {
        None
    }

    /// The key under which writes to `key` conflict, for the count of concurrent writes to one
    /// key that tells whether a run exercised conflicts at all (non-vacuity). The default is the
    /// key itself; a type whose every write bears on every other (a list, whose positions shift
    /// with each insert and delete) answers one key for all.
    fn conflict_key(key: u32) -> u32 {
        key
    }

    /// An estimate of the encoded size in bytes, used to count the bytes a protocol sends. The
    /// default measures nothing.
    fn size_bytes(&self) -> usize {
        0
    }

    /// An estimate of the memory a copy of this state holds, in bytes: what a state in flight is
    /// charged against the run's memory bound (`bounds.in-flight-bytes-max`). The default is
    /// [`StateCrdt::size_bytes`]; a type whose copy holds much more than it encodes (a dense
    /// table of mostly empty cells) says so here.
    fn memory_bytes(&self) -> usize {
        self.size_bytes()
    }

    /// The type's deltas, if it has them: a type that implements [`DeltaCrdt`] says so here with
    /// `Some(Deltas::of())`, which is how delta sync, written for any type, finds
    /// [`DeltaCrdt::version`] and [`DeltaCrdt::delta_since`] (a trait bound cannot be asked about
    /// at run time). The default, `None`, makes a delta-sync run refuse to start with an error
    /// that names the type, rather than ship something other than deltas.
    fn deltas() -> Option<Deltas<Self>> {
        None
    }

    // ----- key ranges (Merkle anti-entropy) -----
    //
    // Protocols that compare and exchange parts of a state (Merkle anti-entropy) need a state
    // made of independent per-key entries: the keys' space, each entry's digest and size, and
    // the part of a state under some keys. A type that is not made that way keeps the defaults,
    // and those protocols refuse to run it, naming themselves, before the run starts.

    /// The keys this type's entries live under, `0..bound`, if its state is made of independent
    /// per-key entries that [`StateCrdt::visit_keys`] and [`StateCrdt::restricted`] expose. Every
    /// replica of one configuration must give the same bound. The default, `None`, says that the
    /// type has no key ranges.
    fn key_bound(&self) -> Option<u64> {
        None
    }

    /// Calls `visit` with every key in `keys` that holds an entry, in key order: the entry's
    /// digest (two equal entries must have equal digests; it covers the replicated state, stamps
    /// included, not only the view) and its encoded size with its key. Called only when
    /// [`StateCrdt::key_bound`] is `Some`.
    fn visit_keys(&self, _keys: Range<u64>, _visit: &mut dyn FnMut(KeyEntry)) {}

    /// The part of this state under the keys in `ranges` (sorted, disjoint), as a state of its
    /// own: every entry under those keys as it is here, every other key as in a fresh state.
    /// Merging it must have the same effect as applying every op this state holds whose
    /// [`OpCrdt::op_key`] lies in `ranges`, which is what lets the simulator say exactly which
    /// updates such a part carries. The default, `None`, says that the type has no key ranges.
    fn restricted(&self, _ranges: &[Range<u64>]) -> Option<Self> {
        None
    }
}

/// One key's entry as [`StateCrdt::visit_keys`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyEntry {
    pub key: u64,
    /// A hash of the entry's replicated state: equal entries have equal digests.
    pub digest: u64,
    /// The entry's encoded size with its key, in bytes, as a message of key ranges carries it.
    pub size_bytes: usize,
}

/// A type's [`DeltaCrdt`] methods as plain functions (see [`StateCrdt::deltas`]).
pub struct Deltas<C> {
    /// [`DeltaCrdt::version`].
    pub version: fn(&C) -> u64,
    /// [`DeltaCrdt::delta_since`].
    pub delta_since: fn(&C, u64) -> C,
}

impl<C: DeltaCrdt> Deltas<C> {
    /// The methods of `C`'s [`DeltaCrdt`] implementation.
    pub fn of() -> Self {
        Deltas {
            version: C::version,
            delta_since: C::delta_since,
        }
    }
}

impl<C> Clone for Deltas<C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C> Copy for Deltas<C> {}

/// An op-based CRDT: ops are built first, then applied, which makes them easy to send, log, replay
/// and shrink.
pub trait OpCrdt: StateCrdt {
    /// What a user asks for: the built-in key/value [`Intent`] (`type Intent = Intent;`), or the
    /// type's own ([`WorkloadIntent`]).
    type Intent: WorkloadIntent;
    type Op: Clone + Debug + PartialEq + Serialize + DeserializeOwned;

    /// Whether ops may be applied away from their origin. `false` only for state-only types
    /// ([`crate::StateOnly`]), whose "op" is a local update that reaches other replicas inside
    /// states; the simulator ends a run whose protocol applies one elsewhere, saying so.
    const OPS_TRAVEL: bool = true;

    /// Turns an intent into an op at its origin, carrying the stamp the origin's clock issued.
    fn prepare(&self, intent: &Self::Intent, stamp: Stamp) -> Self::Op;

    /// Applies an op's effect. Called on every replica, the origin included.
    fn apply(&mut self, op: &Self::Op, coin: &mut dyn Coin);

    /// An estimate of an op's encoded size in bytes.
    fn op_size_bytes(_op: &Self::Op) -> usize {
        0
    }

    /// The one key whose entry `op` changes, in the key space of [`StateCrdt::key_bound`], for
    /// types with key ranges: an op must change nothing outside its key's entry. The default,
    /// `None`, says that the type has no key ranges.
    fn op_key(_op: &Self::Op) -> Option<u64> {
        None
    }
}

/// A sequential specification over intents whose outcome depends on the updates' stamps alone,
/// not on the order they come in (a last-writer-wins type's: the greatest stamp wins), folded one
/// update at a time so that a run keeps nothing per update to check it. It is written from the
/// type's documented semantics, never from its code, so that a bug in `prepare`, `apply` or
/// `merge` cannot hide in it. The built-in grid and dictionary ship theirs
/// ([`crate::grid::GridSpec`], [`crate::dict::DictSpec`]).
pub trait StampedSpec<C: OpCrdt> {
    /// Takes one update into account, in any order.
    fn add(&mut self, intent: &C::Intent, stamp: Stamp);

    /// What a replica holding exactly the updates added so far must show.
    fn view(&self) -> C::View;
}

/// A delta-state CRDT. Implement [`StateCrdt::deltas`] too (`Some(Deltas::of())`), so that delta
/// sync finds these methods.
pub trait DeltaCrdt: StateCrdt {
    /// This replica's position in its own change history: it grows by one for every entry that a
    /// local op, an applied op or a merge changes.
    fn version(&self) -> u64;

    /// The part of this state that changed after `version`, as a state of its own. A peer that held
    /// everything this replica held at `version` and merges the delta holds what this replica holds.
    fn delta_since(&self, version: u64) -> Self;
}

/// One multiply-xorshift round of a view digest (see [`StateCrdt::view_digest`]): folds `word`
/// into `digest`. Enough to spread a view over 64 bits; a collision only costs the oracles one
/// more comparison of views.
pub fn digest_round(digest: u64, word: u64) -> u64 {
    let mixed = (digest ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    mixed ^ (mixed >> 32)
}
