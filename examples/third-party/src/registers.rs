//! `crdts::LWWReg`, one register per key.

use std::collections::BTreeMap;

use converge::crdt::{Coin, Intent, OpCrdt, Stamp, StateCrdt};
use crdts::{CmRDT, CvRDT, LWWReg};
use serde::{Deserialize, Serialize};

/// What orders writes to one register: `(stamp time, site id)`. crdts requires markers to be
/// globally unique; they are as long as every replica has its own site id, because one replica's
/// clock never issues the same time twice.
pub type Marker = (u64, u32);

/// The register a write produces; applying it is `LWWReg::apply` (an `update`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegisterWrite {
    pub key: u32,
    pub register: LWWReg<Option<u64>, Marker>,
}

/// A map from keys to crdts' last-writer-wins registers. A remove writes `None`.
///
/// `site` is the second half of every marker this replica issues. Give each replica its own
/// ([`LwwRegisters::new`]) and the type is a CRDT; give two replicas the same one
/// ([`LwwRegisters::counter_only`] gives every replica site 0, which is a marker of the counter alone)
/// and two concurrent writes can carry equal markers, which `LWWReg::merge` resolves by keeping
/// whatever the receiving side already has.
#[derive(Clone, Debug)]
pub struct LwwRegisters {
    site: u32,
    cells: BTreeMap<u32, LWWReg<Option<u64>, Marker>>,
}

impl LwwRegisters {
    /// Markers `(stamp time, site)`.
    pub fn new(site: u32) -> Self {
        LwwRegisters {
            site,
            cells: BTreeMap::new(),
        }
    }

    /// Markers of the stamp time alone (every replica uses site 0): the bug the harness finds.
    pub fn counter_only() -> Self {
        Self::new(0)
    }

    /// The registers, for law checks.
    pub fn registers(&self) -> &BTreeMap<u32, LWWReg<Option<u64>, Marker>> {
        &self.cells
    }

    fn write(&mut self, key: u32, register: LWWReg<Option<u64>, Marker>) {
        match self.cells.get_mut(&key) {
            Some(mine) => mine.merge(register),
            None => {
                self.cells.insert(key, register);
            }
        }
    }
}

/// Replicated state only: the site id is local configuration.
impl PartialEq for LwwRegisters {
    fn eq(&self, other: &Self) -> bool {
        self.cells == other.cells
    }
}

impl StateCrdt for LwwRegisters {
    /// The keys that hold a value, with it.
    type View = BTreeMap<u32, u64>;

    fn merge(&mut self, other: &Self, _coin: &mut dyn Coin) {
        for (key, register) in &other.cells {
            self.write(*key, register.clone());
        }
    }

    fn view(&self) -> Self::View {
        self.cells
            .iter()
            .filter_map(|(key, register)| register.val.map(|value| (*key, value)))
            .collect()
    }

    fn time_max(&self) -> u64 {
        self.cells.values().map(|r| r.marker.0).max().unwrap_or(0)
    }

    fn key_time(&self, key: u32) -> Option<u64> {
        self.cells.get(&key).map(|r| r.marker.0)
    }

    fn size_bytes(&self) -> usize {
        self.cells.len() * 28
    }
}

impl OpCrdt for LwwRegisters {
    type Intent = Intent;
    type Op = RegisterWrite;

    fn prepare(&self, intent: &Intent, stamp: Stamp) -> RegisterWrite {
        let val = match *intent {
            Intent::Put { value, .. } => Some(value),
            Intent::Remove { .. } => None,
        };
        RegisterWrite {
            key: intent.key(),
            register: LWWReg {
                val,
                marker: (stamp.time, self.site),
            },
        }
    }

    fn apply(&mut self, op: &RegisterWrite, _coin: &mut dyn Coin) {
        match self.cells.get_mut(&op.key) {
            Some(mine) => mine.apply(op.register.clone()),
            None => {
                self.cells.insert(op.key, op.register.clone());
            }
        }
    }

    fn op_size_bytes(_op: &RegisterWrite) -> usize {
        28
    }
}
