//! A grow-only counter written the way a user of `converge` would write one: in their own crate,
//! through the public traits only. [`GCounter`] is correct; [`SummingCounter`] carries a planted bug
//! (its merge adds instead of taking the maximum) that the harness catches; [`SharedCounter`] has a
//! correct merge behind a `Clone` that shares its state, which debug builds catch.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use converge::crdt::{Coin, Intent, OpCrdt, ReplicaId, Stamp, StateCrdt};
use serde::{Deserialize, Serialize};

/// One increment, made at `replica`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Increment {
    pub replica: ReplicaId,
    pub by: u64,
}

/// A grow-only counter: one count per replica, merged by taking the maximum.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GCounter {
    counts: BTreeMap<ReplicaId, u64>,
}

impl StateCrdt for GCounter {
    type View = u64;

    fn merge(&mut self, other: &Self, _coin: &mut dyn Coin) {
        for (replica, count) in &other.counts {
            let mine = self.counts.entry(*replica).or_default();
            *mine = (*mine).max(*count);
        }
    }

    fn view(&self) -> u64 {
        self.counts.values().sum()
    }
}

impl OpCrdt for GCounter {
    type Intent = Intent;
    type Op = Increment;

    /// Every put adds its value modulo 10 plus one; removes add nothing.
    fn prepare(&self, intent: &Intent, stamp: Stamp) -> Increment {
        let by = match *intent {
            Intent::Put { value, .. } => value % 10 + 1,
            Intent::Remove { .. } => 0,
        };
        // The op carries the new total of its origin, so that applying it twice changes nothing.
        let total = self.counts.get(&stamp.replica).copied().unwrap_or(0) + by;
        Increment {
            replica: stamp.replica,
            by: total,
        }
    }

    fn apply(&mut self, op: &Increment, _coin: &mut dyn Coin) {
        let mine = self.counts.entry(op.replica).or_default();
        *mine = (*mine).max(op.by);
    }
}

/// The planted bug: merge adds the other side's counts, so a state received twice (a duplicated
/// message, or two gossip rounds) is counted twice.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SummingCounter {
    counts: BTreeMap<ReplicaId, u64>,
}

impl StateCrdt for SummingCounter {
    type View = u64;

    fn merge(&mut self, other: &Self, _coin: &mut dyn Coin) {
        for (replica, count) in &other.counts {
            *self.counts.entry(*replica).or_default() += count;
        }
    }

    fn view(&self) -> u64 {
        self.counts.values().sum()
    }
}

impl OpCrdt for SummingCounter {
    type Intent = Intent;
    type Op = Increment;

    fn prepare(&self, _intent: &Intent, stamp: Stamp) -> Increment {
        Increment {
            replica: stamp.replica,
            by: 1,
        }
    }

    fn apply(&mut self, op: &Increment, _coin: &mut dyn Coin) {
        *self.counts.entry(op.replica).or_default() += op.by;
    }
}

/// A correct grow-only counter behind a handle whose `Clone` shares the counts instead of copying
/// them (as some document libraries' handles do). Its merge is right, yet a copy of its state in
/// a message keeps changing with its sender, which converge cannot tell from a bug of the merge:
/// debug builds catch the shallow copy instead (see docs/verify-your-crdt.md).
#[derive(Clone, Debug, Default)]
pub struct SharedCounter {
    counts: Rc<RefCell<BTreeMap<ReplicaId, u64>>>,
}

impl PartialEq for SharedCounter {
    fn eq(&self, other: &Self) -> bool {
        *self.counts.borrow() == *other.counts.borrow()
    }
}

impl StateCrdt for SharedCounter {
    type View = u64;

    fn merge(&mut self, other: &Self, _coin: &mut dyn Coin) {
        // Copied out first: a shared handle may be merged with itself.
        let theirs = other.counts.borrow().clone();
        let mut mine = self.counts.borrow_mut();
        for (replica, count) in theirs {
            let entry = mine.entry(replica).or_default();
            *entry = (*entry).max(count);
        }
    }

    fn view(&self) -> u64 {
        self.counts.borrow().values().sum()
    }
}

impl OpCrdt for SharedCounter {
    type Intent = Intent;
    type Op = Increment;

    fn prepare(&self, intent: &Intent, stamp: Stamp) -> Increment {
        let by = match *intent {
            Intent::Put { value, .. } => value % 10 + 1,
            Intent::Remove { .. } => 0,
        };
        let total = self
            .counts
            .borrow()
            .get(&stamp.replica)
            .copied()
            .unwrap_or(0)
            + by;
        Increment {
            replica: stamp.replica,
            by: total,
        }
    }

    fn apply(&mut self, op: &Increment, _coin: &mut dyn Coin) {
        let mut counts = self.counts.borrow_mut();
        let mine = counts.entry(op.replica).or_default();
        *mine = (*mine).max(op.by);
    }
}
