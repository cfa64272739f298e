//! An automerge document whose root map holds `"k{key}" -> u64`.

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, AutomergeError, Change, ChangeHash, ReadDoc, ROOT};
use converge::crdt::{Coin, Intent, OpCrdt, ReplicaId, Stamp, StateCrdt};
use serde::{Deserialize, Serialize};

/// The change an intent committed at its origin, as automerge encodes it, and the origin's stamp
/// time. `change` is `None` for a remove of a key the origin does not hold (automerge makes no change
/// for it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeOp {
    pub change: Option<Vec<u8>>,
    pub time: u64,
}

/// One replica's automerge document.
///
/// - Each replica has its own actor id, derived from its replica id ([`AutomergeMap::actor_for`]).
/// - An op is the change committed at the origin (on a copy of the origin's document, since
///   [`OpCrdt::prepare`] only reads), applied everywhere with `apply_changes`.
/// - A state merge is `Automerge::merge` (spelled out as its two steps, to spare a copy).
/// - Convergence is judged on the hydrated root map, never on saved bytes.
/// - automerge holds back a change whose dependencies it has not seen (until they arrive). Such a
///   change is kept in `waiting` and travels with the state, so that whoever merges this state gets
///   every change this replica has received, applied or not.
#[derive(Clone, Debug)]
pub struct AutomergeMap {
    doc: Automerge,
    /// Changes received whose dependencies this document lacks, oldest first.
    waiting: Vec<Vec<u8>>,
    /// Whether `waiting` travels with the state (see [`AutomergeMap::forgetting_waiting`]).
    forward_waiting: bool,
    /// Errors automerge returned (a malformed or conflicting change); zero in every correct run.
    errors: u32,
    time: u64,
}

impl AutomergeMap {
    pub fn new(replica: ReplicaId) -> Self {
        AutomergeMap {
            doc: Automerge::new().with_actor(Self::actor_for(replica)),
            waiting: Vec::new(),
            forward_waiting: true,
            errors: 0,
            time: 0,
        }
    }

    /// The naive adapter: a state merge carries only the changes automerge has applied, so a change
    /// this replica received before its dependencies is not passed on by merging its state.
    pub fn forgetting_waiting(replica: ReplicaId) -> Self {
        AutomergeMap {
            forward_waiting: false,
            ..Self::new(replica)
        }
    }

    /// A replica's actor id: 16 bytes, `converge` and the replica id, so that no two replicas share
    /// one and a rerun makes the same changes.
    pub fn actor_for(replica: ReplicaId) -> ActorId {
        let mut bytes = *b"converge\0\0\0\0\0\0\0\0";
        bytes[12..].copy_from_slice(&replica.to_be_bytes());
        ActorId::from(&bytes[..])
    }

    /// The document.
    pub fn doc(&self) -> &Automerge {
        &self.doc
    }

    /// Errors automerge returned while applying or merging.
    pub fn errors(&self) -> u32 {
        self.errors
    }

    /// Applies encoded changes, then keeps aside those automerge is holding back.
    fn receive(&mut self, encoded: impl IntoIterator<Item = Vec<u8>>) {
        let mut changes = Vec::new();
        for bytes in encoded {
            match Change::from_bytes(bytes) {
                Ok(change) => changes.push(change),
                Err(_) => self.errors += 1,
            }
        }
        if changes.is_empty() {
            return;
        }
        let hashes: Vec<ChangeHash> = changes.iter().map(Change::hash).collect();
        if self.doc.apply_changes(changes.clone()).is_err() {
            self.errors += 1;
        }
        for (change, hash) in changes.into_iter().zip(hashes) {
            if self.doc.get_change_by_hash(&hash).is_none()
                && !self
                    .waiting
                    .iter()
                    .any(|w| w.as_slice() == change.raw_bytes())
            {
                self.waiting.push(change.raw_bytes().to_vec());
            }
        }
        self.settle_waiting();
    }

    /// Drops from `waiting` what automerge has applied since.
    fn settle_waiting(&mut self) {
        let doc = &self.doc;
        self.waiting.retain(|bytes| {
            Change::from_bytes(bytes.clone())
                .map(|c| doc.get_change_by_hash(&c.hash()).is_none())
                .unwrap_or(false)
        });
    }
}

/// Replicated state: the set of changes (named by the document's heads) and the waiting ones.
impl PartialEq for AutomergeMap {
    fn eq(&self, other: &Self) -> bool {
        let mut mine = self.doc.get_heads();
        let mut theirs = other.doc.get_heads();
        mine.sort();
        theirs.sort();
        let mut waiting_mine: Vec<&Vec<u8>> = self.waiting.iter().collect();
        let mut waiting_theirs: Vec<&Vec<u8>> = other.waiting.iter().collect();
        waiting_mine.sort();
        waiting_theirs.sort();
        mine == theirs && waiting_mine == waiting_theirs
    }
}

fn key_name(key: u32) -> String {
    format!("k{key}")
}

impl StateCrdt for AutomergeMap {
    /// The hydrated root map.
    type View = BTreeMap<String, u64>;

    fn merge(&mut self, other: &Self, _coin: &mut dyn Coin) {
        // What `Automerge::merge` does, without the copy of `other` its `&mut` would need here.
        let added = self.doc.get_changes_added(&other.doc);
        if !added.is_empty() && self.doc.apply_changes(added).is_err() {
            self.errors += 1;
        }
        if self.forward_waiting && !other.waiting.is_empty() {
            self.receive(other.waiting.clone());
        } else {
            self.settle_waiting();
        }
        self.time = self.time.max(other.time);
    }

    fn view(&self) -> Self::View {
        self.doc
            .keys(ROOT)
            .filter_map(|key| {
                let (value, _) = self.doc.get(ROOT, key.as_str()).ok()??;
                Some((key, value.as_u64()?))
            })
            .collect()
    }

    fn time_max(&self) -> u64 {
        self.time
    }
}

impl OpCrdt for AutomergeMap {
    type Intent = Intent;
    type Op = ChangeOp;

    /// Commits the intent on a copy of this document (same actor, same heads), and ships the
    /// change's bytes.
    fn prepare(&self, intent: &Intent, stamp: Stamp) -> ChangeOp {
        let key = key_name(intent.key());
        let mut doc = self.doc.clone();
        let committed = doc.transact(|tx| -> Result<(), AutomergeError> {
            match *intent {
                Intent::Put { value, .. } => tx.put(ROOT, key.as_str(), value),
                Intent::Remove { .. } => {
                    if tx.get(ROOT, key.as_str())?.is_some() {
                        tx.delete(ROOT, key.as_str())
                    } else {
                        Ok(())
                    }
                }
            }
        });
        let change = committed
            .ok()
            .and_then(|success| success.hash)
            .and_then(|hash| doc.get_change_by_hash(&hash))
            .map(|change| change.raw_bytes().to_vec());
        ChangeOp {
            change,
            time: stamp.time,
        }
    }

    fn apply(&mut self, op: &ChangeOp, _coin: &mut dyn Coin) {
        if let Some(bytes) = &op.change {
            self.receive([bytes.clone()]);
        }
        self.time = self.time.max(op.time);
    }

    fn op_size_bytes(op: &ChangeOp) -> usize {
        8 + op.change.as_ref().map_or(0, Vec::len)
    }
}
