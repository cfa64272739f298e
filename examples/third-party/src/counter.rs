//! `crdts::GCounter`, a grow-only counter.

use converge::crdt::{Coin, Intent, OpCrdt, ReplicaId, Stamp, StateCrdt};
use crdts::{CmRDT, CvRDT, Dot, GCounter};
use serde::{Deserialize, Serialize};

/// The origin's new dot (its new total, which makes applying it twice harmless), and its stamp time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CounterOp {
    pub dot: Dot<ReplicaId>,
    pub time: u64,
}

/// A grow-only counter: a put adds `value % 10 + 1` (as in the counter example), a remove adds
/// nothing.
#[derive(Clone, Debug)]
pub struct Counter {
    actor: ReplicaId,
    counter: GCounter<ReplicaId>,
    time: u64,
}

impl Counter {
    pub fn new(actor: ReplicaId) -> Self {
        Counter {
            actor,
            counter: GCounter::new(),
            time: 0,
        }
    }
}

impl PartialEq for Counter {
    fn eq(&self, other: &Self) -> bool {
        self.counter == other.counter
    }
}

impl StateCrdt for Counter {
    type View = u64;

    fn merge(&mut self, other: &Self, _coin: &mut dyn Coin) {
        self.counter.merge(other.counter.clone());
        self.time = self.time.max(other.time);
    }

    /// `GCounter::read` is a `BigUint`; every total here fits in a `u64`.
    fn view(&self) -> u64 {
        let digits = self.counter.read().to_u64_digits();
        assert!(digits.len() <= 1, "counter overflowed u64: {digits:?}");
        digits.first().copied().unwrap_or(0)
    }

    fn time_max(&self) -> u64 {
        self.time
    }
}

impl OpCrdt for Counter {
    type Intent = Intent;
    type Op = CounterOp;

    fn prepare(&self, intent: &Intent, stamp: Stamp) -> CounterOp {
        let by = match *intent {
            Intent::Put { value, .. } => value % 10 + 1,
            Intent::Remove { .. } => 0,
        };
        CounterOp {
            dot: self.counter.inc_many(self.actor, by),
            time: stamp.time,
        }
    }

    fn apply(&mut self, op: &CounterOp, _coin: &mut dyn Coin) {
        self.counter.apply(op.dot);
        self.time = self.time.max(op.time);
    }

    fn op_size_bytes(_op: &CounterOp) -> usize {
        20
    }
}
