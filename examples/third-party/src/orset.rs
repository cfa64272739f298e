//! `crdts::Orswot`, an add-wins observed-remove set of keys.

use std::collections::BTreeSet;

use converge::crdt::{Coin, Intent, OpCrdt, ReplicaId, Stamp, StateCrdt};
use crdts::orswot::Op;
use crdts::{CmRDT, CvRDT, Orswot};
use serde::{Deserialize, Serialize};

/// An Orswot op built at its origin from the origin's causal context, and the origin's stamp time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetOp {
    pub op: Op<u32, ReplicaId>,
    pub time: u64,
}

/// A set of keys: a put adds element `key`, a remove removes it. The actor is the replica id.
#[derive(Clone, Debug)]
pub struct OrSet {
    actor: ReplicaId,
    set: Orswot<u32, ReplicaId>,
    /// The greatest stamp time seen (bookkeeping for the simulator's Lamport clock).
    time: u64,
}

impl OrSet {
    pub fn new(actor: ReplicaId) -> Self {
        OrSet {
            actor,
            set: Orswot::new(),
            time: 0,
        }
    }

    /// The wrapped set.
    pub fn inner(&self) -> &Orswot<u32, ReplicaId> {
        &self.set
    }
}

/// Replicated state only: the Orswot (its clock, entries and deferred removes).
impl PartialEq for OrSet {
    fn eq(&self, other: &Self) -> bool {
        self.set == other.set
    }
}

impl StateCrdt for OrSet {
    type View = BTreeSet<u32>;

    fn merge(&mut self, other: &Self, _coin: &mut dyn Coin) {
        self.set.merge(other.set.clone());
        self.time = self.time.max(other.time);
    }

    fn view(&self) -> BTreeSet<u32> {
        self.set.read().val.into_iter().collect()
    }

    fn time_max(&self) -> u64 {
        self.time
    }

    fn size_bytes(&self) -> usize {
        // An entry: the element and one dot; the clock: one dot per actor.
        let entries: usize = self.set.iter().map(|_| 4 + 12).sum();
        entries + 12 * self.set.clock().iter().count()
    }
}

impl OpCrdt for OrSet {
    type Intent = Intent;
    type Op = SetOp;

    /// The causal contexts are read here, at the origin: an add gets the next dot of this replica's
    /// actor, a remove the clock of the entry as this replica observed it.
    fn prepare(&self, intent: &Intent, stamp: Stamp) -> SetOp {
        let op = match *intent {
            Intent::Put { key, .. } => {
                let add_ctx = self.set.read_ctx().derive_add_ctx(self.actor);
                self.set.add(key, add_ctx)
            }
            Intent::Remove { key } => {
                let rm_ctx = self.set.contains(&key).derive_rm_ctx();
                self.set.rm(key, rm_ctx)
            }
        };
        SetOp {
            op,
            time: stamp.time,
        }
    }

    fn apply(&mut self, op: &SetOp, _coin: &mut dyn Coin) {
        self.set.apply(op.op.clone());
        self.time = self.time.max(op.time);
    }

    fn op_size_bytes(op: &SetOp) -> usize {
        match &op.op {
            Op::Add { members, .. } => 12 + 4 * members.len(),
            Op::Rm { clock, members } => 12 * clock.iter().count() + 4 * members.len(),
        }
    }
}
