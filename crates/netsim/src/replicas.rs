//! What a run needs from the user's side of a CRDT besides the protocol: how to build a replica's
//! empty state, what its users write when the type takes intents of its own, and what they
//! should see (a sequential specification over intents, for the intent oracle).
//!
//! A closure `|replica| MyCrdt::new(replica)` is a [`Replicas`] already, with the scenario's
//! key/value workload. [`Incarnations`] hands the factory the incarnation too, for a type that
//! must take a fresh identity after a restart that lost its state; a generator of the type's own
//! intents implements [`Replicas::draw_intent`] (`converge::verify::Verify::intents` builds one
//! from a proptest strategy).

use converge_crdt::{OpCrdt, ReplicaId, Stamp, StampedSpec, UpdateId};

use crate::UpdateSet;

/// How a run builds replicas and draws their writes.
pub trait Replicas<C: OpCrdt> {
    /// Replica `replica`'s empty state at `incarnation`: 0 when the run starts, and one more at
    /// each restart of that node. A volatile restart rebuilds the replica with the new number,
    /// which is how a type that names its updates by (replica, counter) takes a fresh identity
    /// instead of reusing names its lost state already handed out.
    fn make(&self, replica: ReplicaId, incarnation: u32) -> C;

    /// Whether writes come from [`Replicas::draw_intent`]. The default, `false`, draws them from
    /// the scenario's key/value workload ([`converge_crdt::WorkloadIntent::from_key_value`]).
    fn draws_intents(&self) -> bool {
        false
    }

    /// The intent a replica whose state is `state` writes next, drawn deterministically from
    /// `draw` (the same draw and state always give the same intent). `None` writes nothing, for a
    /// generator with nothing to offer in that state. Called only where
    /// [`Replicas::draws_intents`] says so.
    fn draw_intent(&self, _state: &C, _draw: &IntentDraw) -> Option<C::Intent> {
        None
    }

    /// Whether [`Replicas::expected_view`] gives a sequential specification.
    fn specifies(&self) -> bool {
        false
    }

    /// The view a replica that holds exactly `updates` must show, computed from their intents
    /// alone (never from the type's ops, so that a bug in `prepare` cannot hide in it): a
    /// counter's total, a set's members, a map's entries. `updates` come in the causal order the
    /// run fixed (an update after every update its origin held when it was issued), concurrent
    /// ones in stamp order. Called only where [`Replicas::specifies`] says so.
    fn expected_view(&self, _updates: &[Specified<'_, C::Intent>]) -> Option<C::View> {
        None
    }

    /// A specification folded update by update, for a type whose outcome depends on stamps
    /// alone ([`StampedSpec`]: the built-in grid and dictionary ship theirs). It costs the run
    /// nothing per update beyond the fold, where [`Replicas::expected_view`] keeps what each
    /// update's origin held. Used where [`Replicas::specifies`] is `false`; the default, `None`,
    /// leaves the replay of the type's own ops in stamp order as the reference.
    fn stamped_spec(&self) -> Option<Box<dyn StampedSpec<C>>> {
        None
    }
}

/// One update as a sequential specification sees it.
#[derive(Clone, Copy, Debug)]
pub struct Specified<'a, I> {
    pub intent: &'a I,
    pub stamp: Stamp,
    pub id: UpdateId,
    /// Its number in issue order over the whole run: what [`Specified::seen`] holds.
    pub index: u32,
    /// The updates its origin held when it issued it, itself included, by index: what an intent
    /// that means something only in its writer's state (a position in a list) was read against.
    /// Every one of them comes earlier in the causal order, but a replica can hold an update
    /// without some of what its writer had seen.
    pub seen: &'a UpdateSet,
}

/// Which intent to draw: the draw's seed, and the simplification steps shrinking took from it.
#[derive(Clone, Copy, Debug)]
pub struct IntentDraw<'a> {
    /// Taken from the run's workload stream (or written in a shrunk scenario).
    pub seed: u64,
    /// One entry per simplification step: `true` keeps the simpler value, `false` goes back to
    /// the one before. Empty for the intent as first drawn.
    pub simplified: &'a [bool],
}

impl<C: OpCrdt, F: Fn(ReplicaId) -> C> Replicas<C> for F {
    fn make(&self, replica: ReplicaId, _incarnation: u32) -> C {
        self(replica)
    }
}

/// A factory told the incarnation as well as the replica id: `Incarnations(|replica,
/// incarnation| MyCrdt::new(replica, incarnation))`.
#[derive(Clone, Copy, Debug)]
pub struct Incarnations<F>(pub F);

impl<C: OpCrdt, F: Fn(ReplicaId, u32) -> C> Replicas<C> for Incarnations<F> {
    fn make(&self, replica: ReplicaId, incarnation: u32) -> C {
        (self.0)(replica, incarnation)
    }
}
