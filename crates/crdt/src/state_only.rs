//! State-only types: a state-based CRDT that has no ops, only local updates and a merge, runs
//! under the protocols that ship whole states (state broadcast, anti-entropy) through
//! [`StateOnly`], without implementing [`OpCrdt`] itself.
//!
//! ```
//! use converge_crdt::{Coin, LocalUpdate, Stamp, StateCrdt, StateOnly, WorkloadIntent};
//! # use serde::{Deserialize, Serialize};
//! #[derive(Clone, Debug, Default, PartialEq)]
//! struct Max(u64);
//!
//! #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
//! struct Raise(u64);
//! impl WorkloadIntent for Raise {}
//!
//! impl StateCrdt for Max {
//!     type View = u64;
//!     fn merge(&mut self, other: &Self, _coin: &mut dyn Coin) { self.0 = self.0.max(other.0); }
//!     fn view(&self) -> u64 { self.0 }
//! }
//!
//! impl LocalUpdate for Max {
//!     type Intent = Raise;
//!     fn update(&mut self, raise: &Raise, _stamp: Stamp) { self.0 = self.0.max(raise.0); }
//! }
//!
//! let replica = StateOnly(Max::default()); // what `Verify::new`'s closure returns
//! assert_eq!(replica.view(), 0);
//! ```

use std::ops::{Deref, DerefMut};

use serde::{Deserialize, Serialize};

use crate::stamp::Stamp;
use crate::traits::{Coin, OpCrdt, StateCrdt, WorkloadIntent};

/// A state-based type's local update: what a user asks for, done to the replica where it is
/// asked. The update reaches other replicas only inside states, through `merge`.
pub trait LocalUpdate: StateCrdt {
    /// What a user asks for (see [`WorkloadIntent`]; the key/value [`crate::Intent`] works too).
    type Intent: WorkloadIntent;

    /// Does `intent` to this replica, stamped by its clock.
    fn update(&mut self, intent: &Self::Intent, stamp: Stamp);
}

/// A state-only type as the simulator runs it: its "op" is the local update itself, applied only
/// at its origin ([`OpCrdt::OPS_TRAVEL`] is `false`: a protocol that applies one elsewhere ends
/// the run as a panic that says so). Everything else is the wrapped type's.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateOnly<T>(pub T);

/// A local update as the record of a write keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocalWrite<I> {
    pub intent: I,
    pub stamp: Stamp,
}

impl<T> Deref for StateOnly<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for StateOnly<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: StateCrdt> StateCrdt for StateOnly<T> {
    type View = T::View;

    fn merge(&mut self, other: &Self, coin: &mut dyn Coin) {
        self.0.merge(&other.0, coin);
    }

    fn view(&self) -> T::View {
        self.0.view()
    }

    fn view_matches(&self, view: &T::View) -> bool {
        self.0.view_matches(view)
    }

    fn view_digest(&self) -> Option<u64> {
        self.0.view_digest()
    }

    fn time_max(&self) -> u64 {
        self.0.time_max()
    }

    fn key_time(&self, key: u32) -> Option<u64> {
        self.0.key_time(key)
    }

    fn conflict_key(key: u32) -> u32 {
        T::conflict_key(key)
    }

    fn size_bytes(&self) -> usize {
        self.0.size_bytes()
    }

    fn memory_bytes(&self) -> usize {
        self.0.memory_bytes()
    }
}

impl<T: LocalUpdate> OpCrdt for StateOnly<T> {
    type Intent = T::Intent;
    type Op = LocalWrite<T::Intent>;
    const OPS_TRAVEL: bool = false;

    fn prepare(&self, intent: &T::Intent, stamp: Stamp) -> LocalWrite<T::Intent> {
        LocalWrite {
            intent: intent.clone(),
            stamp,
        }
    }

    fn apply(&mut self, write: &LocalWrite<T::Intent>, _coin: &mut dyn Coin) {
        self.0.update(&write.intent, write.stamp);
    }
}
