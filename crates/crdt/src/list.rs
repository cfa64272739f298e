//! The replicated growable array (RGA): a sequence CRDT, the list of the genome story.
//!
//! Every element is identified by the stamp of the insert that made it (an [`ElemId`]) and
//! remembers the element it was inserted after (its *reference*, or the head of the list). A
//! delete leaves a tombstone: the element stays, hidden, so that inserts after it still find their
//! place. The elements form a tree (each hangs under its reference) and the list is the tree read
//! depth first, the children of one element in descending id order: a later insert after the same
//! element comes first, which is where its writer put it. The order is a function of the set of
//! inserts alone, so replicas that hold the same inserts and deletes hold the same list whatever
//! order they learned them in.
//!
//! # What it takes from the network
//!
//! Nothing. An op applies in any order and any number of times: an insert whose reference has not
//! arrived waits (in the state, as part of it) until the reference does, and a delete of an
//! element not yet seen is kept until the element arrives. Merge is the union of inserts and of
//! deletes. State-based, op-based and delta-based sync all run it as is.
//!
//! # Cost
//!
//! Tombstones stay, so a list's work grows with every insert it ever held. An op scans the list
//! once (for its reference, or its element) and shifts what follows; a merge walks both lists
//! once, since both are depth-first readings of one tree ([`Rga::merge_placed`]); a delta since a
//! version walks the list once.
//!
//! # Intents
//!
//! Workloads speak in [`Intent`]s; the list reads them through [`ListIntent::of`], one named
//! mapping meant to be replaced by a list's own intent type once workloads carry one:
//! `Put { key, value }` inserts `value` at visible position `key % (len + 1)` (`len` is the
//! number of visible elements at the writer), `Remove { key }` deletes the element at visible
//! position `key % len`, and nothing when the list is empty. [`OpCrdt::prepare`] turns the
//! position into the element before it (the reference) or the element deleted, which is what the
//! op carries: positions mean nothing at another replica.
//!
//! # What it guarantees
//!
//! Under a clock whose stamps exceed every stamp the writer holds (Lamport, hybrid, or the list as
//! one key of a per-key counter: [`StateCrdt::key_time`] is the list's greatest stamp time),
//! every insert lands right after its reference at its writer, and the converged list equals the
//! ops applied one by one in stamp order, each insert placed immediately after its reference and
//! each delete hiding its element. Applying the *intents* in stamp order (positions against the
//! sequential list) is not what RGA guarantees: two concurrent inserts at position 0 of an empty
//! list end in id order, whatever positions a sequential replay of their keys would give. The
//! specification the intent oracle checks, [`ListSpec`], reads each intent against the list its
//! writer saw instead, computed from what the writer held, never from the writer's ops. A clock that issues a stamp below one the writer holds (a wall clock
//! running behind) can put an insert behind elements it was meant to precede; the simulator
//! counts such writes as causally later writes that lost.
//!
//! # Element identity
//!
//! An id is the insert's stamp plus a 32-bit tag, a digest of the reference and the value. Stamps
//! identify writes as long as no replica reuses one, which a replica that restarts with a fresh
//! clock after losing its state does: the tag keeps two different inserts with one stamp apart
//! (an exact repeat, same stamp, reference and value, is one element). Two inserts with one id are
//! taken to be the same insert.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

use crate::stamp::{ReplicaId, Stamp};
use crate::traits::{digest_round, Coin, DeltaCrdt, Deltas, Intent, OpCrdt, StateCrdt};

/// An element's identity: the stamp of the insert that made it and a tag that tells apart two
/// inserts with one stamp (see the module docs). Ordered by time, then replica, then tag: among
/// the elements inserted after one element, the greatest id comes first.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ElemId {
    pub time: u64,
    pub replica: ReplicaId,
    pub tag: u32,
}

impl ElemId {
    /// The id of an insert of `value` after `after` (`None`: the head) stamped `stamp`.
    pub fn of_insert(stamp: Stamp, after: Option<ElemId>, value: u64) -> ElemId {
        let mut digest = digest_round(0, value);
        if let Some(after) = after {
            for word in [after.time, u64::from(after.replica), u64::from(after.tag)] {
                digest = digest_round(digest_round(digest, 1), word);
            }
        }
        // SplitMix64's finalizer, so that every bit of every word reaches the 32 bits kept.
        digest = (digest ^ digest >> 30).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        digest = (digest ^ digest >> 27).wrapping_mul(0x94d0_49bb_1331_11eb);
        digest ^= digest >> 31;
        ElemId {
            time: stamp.time,
            replica: stamp.replica,
            tag: (digest >> 32) as u32,
        }
    }

    pub fn stamp(&self) -> Stamp {
        Stamp::new(self.time, self.replica)
    }
}

/// An op of the list: what [`OpCrdt::prepare`] makes of an intent at the writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ListOp {
    /// A new element `id` holding `value`, right after `after` (`None`: at the head).
    Insert {
        id: ElemId,
        after: Option<ElemId>,
        value: u64,
    },
    /// Hides the element `target`.
    Delete { target: ElemId },
    /// A remove on an empty list: changes nothing.
    Noop,
}

/// What the list makes of a workload's [`Intent`]: the one place that maps keys to positions (see
/// the module docs), so that a list intent type can replace it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListIntent {
    /// Insert `value` so that it is at visible position `index` (0: the head).
    Insert { index: usize, value: u64 },
    /// Delete the element at visible position `index`.
    Delete { index: usize },
    /// Nothing to do (a remove on an empty list).
    Nothing,
}

impl ListIntent {
    /// `Put { key, value }`: insert `value` at visible position `key % (len + 1)`;
    /// `Remove { key }`: delete the element at visible position `key % len`, nothing when `len`
    /// is 0. `len` is the number of visible elements.
    pub fn of(intent: &Intent, len: usize) -> ListIntent {
        let len = len as u64;
        match *intent {
            Intent::Put { key, value } => ListIntent::Insert {
                index: (u64::from(key) % (len + 1)) as usize,
                value,
            },
            Intent::Remove { key } if len > 0 => ListIntent::Delete {
                index: (u64::from(key) % len) as usize,
            },
            Intent::Remove { .. } => ListIntent::Nothing,
        }
    }
}

/// What a user sees: the visible values, in list order.
pub type ListView = Vec<u64>;

/// One element of the list: what an insert made, whether it was deleted, and local bookkeeping.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Elem {
    id: ElemId,
    after: Option<ElemId>,
    value: u64,
    deleted: bool,
    /// How many ancestors it has in the tree (0: inserted at the head). Derived from the inserts;
    /// it tells where an element's subtree ends in the list.
    depth: u32,
    /// Local bookkeeping for deltas: the version at which it arrived or was deleted here.
    changed_at: u64,
}

impl PartialEq for Elem {
    /// Replicated state only (the depth follows from it, the change version is local).
    fn eq(&self, other: &Self) -> bool {
        (self.id, self.after, self.value, self.deleted)
            == (other.id, other.after, other.value, other.deleted)
    }
}

/// An insert whose reference has not arrived.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Waiting {
    after: ElemId,
    value: u64,
    changed_at: u64,
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        (self.after, self.value) == (other.after, other.value)
    }
}

/// An insert, however it was found (an op, an element of a state, a waiting one).
#[derive(Clone, Copy, Debug)]
struct Insert {
    id: ElemId,
    after: Option<ElemId>,
    value: u64,
}

/// The RGA list. See the module docs.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Rga {
    /// The elements whose reference chain reaches the head, in list order, tombstones included.
    elems: Vec<Elem>,
    /// Inserts whose reference is not among `elems`, by id.
    waiting: BTreeMap<ElemId, Waiting>,
    /// Deletes of elements not among `elems`, by target, with the version at which they arrived.
    orphan_deletes: BTreeMap<ElemId, u64>,
    /// Derived: the visible elements.
    visible: usize,
    /// Derived: the greatest stamp time of any insert held.
    time_max: u64,
    /// Local bookkeeping for deltas.
    version: u64,
}

impl Clone for Rga {
    fn clone(&self) -> Self {
        Rga {
            elems: self.elems.clone(),
            waiting: self.waiting.clone(),
            orphan_deletes: self.orphan_deletes.clone(),
            visible: self.visible,
            time_max: self.time_max,
            version: self.version,
        }
    }

    /// Reuses this list's buffer: the convergence oracles keep a copy of each replica's state
    /// and overwrite it whenever the replica changes.
    fn clone_from(&mut self, source: &Self) {
        self.elems.clone_from(&source.elems);
        self.waiting.clone_from(&source.waiting);
        self.orphan_deletes.clone_from(&source.orphan_deletes);
        self.visible = source.visible;
        self.time_max = source.time_max;
        self.version = source.version;
    }
}

impl PartialEq for Rga {
    /// Replicated state only: the inserts (placed or waiting) and the deletes.
    fn eq(&self, other: &Self) -> bool {
        self.visible == other.visible
            && self.elems == other.elems
            && self.waiting == other.waiting
            && self.orphan_deletes.len() == other.orphan_deletes.len()
            && self.orphan_deletes.keys().eq(other.orphan_deletes.keys())
    }
}

impl Hash for Rga {
    /// What equality compares, so that a model checker can fingerprint a list.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.elems.len().hash(state);
        for elem in &self.elems {
            (elem.id, elem.after, elem.value, elem.deleted).hash(state);
        }
        self.waiting.len().hash(state);
        for (id, waiting) in &self.waiting {
            (id, waiting.after, waiting.value).hash(state);
        }
        self.orphan_deletes.len().hash(state);
        for target in self.orphan_deletes.keys() {
            target.hash(state);
        }
    }
}

/// Waiting inserts of another state that a merge places one by one, each for a scan of the list;
/// more are placed by rebuilding the list at once ([`Rga::rebuild`]), which costs about as much
/// as this many scans.
const MERGE_INSERTS_ONE_BY_ONE_MAX: usize = 128;
/// Waiting inserts and orphan deletes of another state that a merge looks up here one by one,
/// each for a scan of the list; more are looked up in one walk over the list.
const LOOKUPS_ONE_BY_ONE_MAX: usize = 16;

impl Rga {
    /// An empty list.
    pub fn new() -> Self {
        Rga::default()
    }

    /// The number of visible elements.
    pub fn len(&self) -> usize {
        self.visible
    }

    pub fn is_empty(&self) -> bool {
        self.visible == 0
    }

    /// Elements held, tombstones and waiting inserts included: what the list's work grows with.
    pub fn elements(&self) -> usize {
        self.elems.len() + self.waiting.len()
    }

    /// Inserts held that wait for the element they were inserted after.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// The visible values in list order.
    pub fn values(&self) -> impl Iterator<Item = u64> + '_ {
        self.elems.iter().filter(|e| !e.deleted).map(|e| e.value)
    }

    /// The id of the visible element at `index`.
    fn visible_id(&self, index: usize) -> Option<ElemId> {
        self.elems
            .iter()
            .filter(|e| !e.deleted)
            .nth(index)
            .map(|e| e.id)
    }

    fn position(&self, id: ElemId) -> Option<usize> {
        self.elems.iter().position(|e| e.id == id)
    }

    fn bump(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    /// Adds an insert; returns whether it was new.
    fn insert(&mut self, insert: Insert) -> bool {
        if self.waiting.contains_key(&insert.id) {
            return false;
        }
        // One pass finds both whether the element is here and where its reference is.
        let mut reference = None;
        for (at, elem) in self.elems.iter().enumerate() {
            if elem.id == insert.id {
                return false;
            }
            if Some(elem.id) == insert.after {
                reference = Some(at);
            }
        }
        self.time_max = self.time_max.max(insert.id.time);
        let changed_at = self.bump();
        match (insert.after, reference) {
            (Some(after), None) => {
                self.waiting.insert(
                    insert.id,
                    Waiting {
                        after,
                        value: insert.value,
                        changed_at,
                    },
                );
            }
            _ => self.place(insert, reference, changed_at),
        }
        true
    }

    /// Puts an insert whose reference is placed (at `reference`, `None` for the head) into the
    /// list, then every waiting insert that waited for it (and for those, transitively).
    fn place(&mut self, first: Insert, reference: Option<usize>, changed_at: u64) {
        let mut ready = vec![(first, reference, changed_at)];
        while let Some((insert, reference, changed_at)) = ready.pop() {
            let reference = match (reference, insert.after) {
                (None, Some(after)) => Some(
                    self.position(after)
                        .expect("an insert is placed once its reference is"),
                ),
                (reference, _) => reference,
            };
            let (start, depth) = match reference {
                None => (0, 0),
                Some(at) => (at + 1, self.elems[at].depth + 1),
            };
            // Skip the reference's subtree up to its first child with a smaller id: children come
            // in descending id order, each followed by its own subtree (deeper elements).
            let mut at = start;
            while let Some(elem) = self.elems.get(at) {
                if elem.depth < depth || (elem.depth == depth && elem.id < insert.id) {
                    break;
                }
                at += 1;
            }
            // A delete that came first deletes it now; a delta since before the delete came
            // must carry the deletion, so the element changed when the later of the two came.
            let orphan_delete = self.orphan_deletes.remove(&insert.id);
            let deleted = orphan_delete.is_some();
            let changed_at = changed_at.max(orphan_delete.unwrap_or(0));
            self.visible += usize::from(!deleted);
            self.elems.insert(
                at,
                Elem {
                    id: insert.id,
                    after: insert.after,
                    value: insert.value,
                    deleted,
                    depth,
                    changed_at,
                },
            );
            if !self.waiting.is_empty() {
                let children: Vec<ElemId> = self
                    .waiting
                    .iter()
                    .filter(|(_, w)| w.after == insert.id)
                    .map(|(id, _)| *id)
                    .collect();
                for id in children {
                    let waiting = self.waiting.remove(&id).expect("listed just now");
                    ready.push((
                        Insert {
                            id,
                            after: Some(waiting.after),
                            value: waiting.value,
                        },
                        // Looked up when it is placed: placing others may move the reference.
                        None,
                        waiting.changed_at,
                    ));
                }
            }
        }
    }

    /// Adds a delete; returns whether it was new.
    fn delete(&mut self, target: ElemId) -> bool {
        match self.position(target) {
            Some(at) => self.delete_at(at),
            None if self.orphan_deletes.contains_key(&target) => false,
            None => {
                let changed_at = self.bump();
                self.orphan_deletes.insert(target, changed_at);
                true
            }
        }
    }

    fn delete_at(&mut self, at: usize) -> bool {
        if self.elems[at].deleted {
            return false;
        }
        let changed_at = self.bump();
        let elem = &mut self.elems[at];
        elem.deleted = true;
        elem.changed_at = changed_at;
        self.visible -= 1;
        true
    }

    /// Whether `other`'s placed elements all appear in this list, in the same order, with no
    /// delete this list lacks; `other`'s waiting inserts and orphan deletes are checked by the
    /// caller. One pass over both lists: the common case of a merge that brings nothing.
    fn covers_placed(&self, other: &Rga) -> bool {
        let mut mine = self.elems.iter();
        other.elems.iter().all(|theirs| {
            mine.by_ref()
                .find(|m| m.id == theirs.id)
                .is_some_and(|m| m.deleted || !theirs.deleted)
        })
    }

    /// Merges `other`'s placed elements into this list's, in one walk over both. Both are
    /// readings of subtrees of one tree (every insert's place follows from the inserts alone),
    /// depth first with each element's depth, so the walk always compares the next sibling of
    /// each side under the same parent: an element both hold is taken once (deleted if either
    /// deleted it), and otherwise the greater id comes first, with its whole subtree, which the
    /// other side lacks. Returns the ids of the elements new here, sorted.
    fn merge_placed(&mut self, other: &Rga) -> Vec<ElemId> {
        fn subtree_end(elems: &[Elem], start: usize) -> usize {
            let depth = elems[start].depth;
            start
                + 1
                + elems[start + 1..]
                    .iter()
                    .take_while(|e| e.depth > depth)
                    .count()
        }
        let mine = std::mem::take(&mut self.elems);
        let theirs = &other.elems;
        let mut merged: Vec<Elem> = Vec::with_capacity(mine.len().max(theirs.len()));
        let mut arrived = Vec::new();
        let (mut i, mut j) = (0, 0);
        loop {
            match (mine.get(i), theirs.get(j)) {
                (None, None) => break,
                (Some(a), Some(b)) if a.depth == b.depth && a.id == b.id => {
                    let mut elem = *a;
                    if b.deleted && !a.deleted {
                        elem.deleted = true;
                        elem.changed_at = self.bump();
                        self.visible -= 1;
                    }
                    merged.push(elem);
                    i += 1;
                    j += 1;
                }
                (Some(a), b)
                    if b.is_none_or(|b| {
                        a.depth > b.depth || (a.depth == b.depth && a.id > b.id)
                    }) =>
                {
                    let end = subtree_end(&mine, i);
                    merged.extend_from_slice(&mine[i..end]);
                    i = end;
                }
                (_, None) => unreachable!("the arm above takes what is left of this list"),
                (_, Some(_)) => {
                    let end = subtree_end(theirs, j);
                    for elem in &theirs[j..end] {
                        // It may have waited here for its reference, and a delete of it may
                        // have come: then it changed here when they came, unless `other`
                        // brings a delete.
                        let waited = self.waiting.remove(&elem.id);
                        let orphan_delete = self.orphan_deletes.remove(&elem.id);
                        let deleted = elem.deleted || orphan_delete.is_some();
                        let changed_at = match waited {
                            Some(waiting) if !elem.deleted || orphan_delete.is_some() => {
                                waiting.changed_at.max(orphan_delete.unwrap_or(0))
                            }
                            _ => self.bump(),
                        };
                        self.visible += usize::from(!deleted);
                        self.time_max = self.time_max.max(elem.id.time);
                        merged.push(Elem {
                            deleted,
                            changed_at,
                            ..*elem
                        });
                        arrived.push(elem.id);
                    }
                    j = end;
                }
            }
        }
        self.elems = merged;
        arrived.sort_unstable();
        arrived
    }

    /// [`StateCrdt::merge`] with its two limits given (waiting inserts and orphan deletes of
    /// `other` looked up one by one, waiting inserts placed one by one), so that the law tests
    /// take every path with small states.
    #[doc(hidden)]
    pub fn merge_with_limits(
        &mut self,
        other: &Rga,
        lookups_one_by_one_max: usize,
        inserts_one_by_one_max: usize,
    ) {
        let nothing_waiting_new = other.waiting.keys().all(|id| self.waiting.contains_key(id));
        let nothing_orphan_new = other
            .orphan_deletes
            .keys()
            .all(|target| self.orphan_deletes.contains_key(target));
        if nothing_waiting_new && nothing_orphan_new && self.covers_placed(other) {
            return;
        }
        let arrived = self.merge_placed(other);
        // Inserts that waited here for an element that just arrived.
        if !self.waiting.is_empty() && !arrived.is_empty() {
            let unblocked: Vec<ElemId> = self
                .waiting
                .iter()
                .filter(|(_, w)| arrived.binary_search(&w.after).is_ok())
                .map(|(id, _)| *id)
                .collect();
            for id in unblocked {
                let waiting = self.waiting.remove(&id).expect("listed just now");
                let insert = Insert {
                    id,
                    after: Some(waiting.after),
                    value: waiting.value,
                };
                self.place(insert, None, waiting.changed_at);
            }
        }
        // `other`'s waiting inserts and orphan deletes that this list lacks (in id order, as
        // their maps keep them), less those whose element is placed here: one walk over this
        // list finds those when they are many.
        let mut new: Vec<Insert> = other
            .waiting
            .iter()
            .filter(|(id, _)| !self.waiting.contains_key(id))
            .map(|(id, w)| Insert {
                id: *id,
                after: Some(w.after),
                value: w.value,
            })
            .collect();
        let mut orphans: Vec<ElemId> = other
            .orphan_deletes
            .keys()
            .filter(|target| !self.orphan_deletes.contains_key(target))
            .copied()
            .collect();
        if new.len() + orphans.len() > lookups_one_by_one_max {
            let mut placed_new = vec![false; new.len()];
            let mut placed_target = vec![false; orphans.len()];
            let mut deleted_here = Vec::new();
            for (at, elem) in self.elems.iter().enumerate() {
                if let Ok(k) = new.binary_search_by_key(&elem.id, |i| i.id) {
                    placed_new[k] = true;
                }
                if let Ok(k) = orphans.binary_search(&elem.id) {
                    placed_target[k] = true;
                    deleted_here.push(at);
                }
            }
            for at in deleted_here {
                self.delete_at(at);
            }
            let mut placed = placed_new.into_iter();
            new.retain(|_| !placed.next().expect("one flag per insert"));
            let mut placed = placed_target.into_iter();
            orphans.retain(|_| !placed.next().expect("one flag per delete"));
        }
        if new.len() > inserts_one_by_one_max {
            self.rebuild(new, orphans);
            return;
        }
        for insert in new {
            self.insert(insert);
        }
        for target in orphans {
            self.delete(target);
        }
    }

    /// [`StateCrdt::merge`] by rebuilding the list from every insert at once, as a merge does
    /// when `other` holds many inserts that wait for their reference: for the law tests, which
    /// check that both ways give one state.
    #[doc(hidden)]
    pub fn merge_by_rebuilding(&mut self, other: &Rga) {
        let mut known: Vec<ElemId> = self
            .elems
            .iter()
            .map(|e| e.id)
            .chain(self.waiting.keys().copied())
            .collect();
        known.sort_unstable();
        let placed = other.elems.iter().map(|e| Insert {
            id: e.id,
            after: e.after,
            value: e.value,
        });
        let waiting = other.waiting.iter().map(|(id, w)| Insert {
            id: *id,
            after: Some(w.after),
            value: w.value,
        });
        let new = placed
            .chain(waiting)
            .filter(|i| known.binary_search(&i.id).is_err())
            .collect();
        let deletes = other
            .elems
            .iter()
            .filter(|e| e.deleted)
            .map(|e| e.id)
            .chain(other.orphan_deletes.keys().copied())
            .collect();
        self.rebuild(new, deletes);
    }

    /// Places `new` inserts (none of which this list holds) and deletes `deletes` by rebuilding
    /// the list from every insert at once: the tree of inserts sorted by reference and descending
    /// id, read depth first.
    fn rebuild(&mut self, new: Vec<Insert>, deletes: Vec<ElemId>) {
        struct Node {
            insert: Insert,
            /// The change version, for elements this list held.
            changed_at: Option<u64>,
            deleted: bool,
        }
        let mut nodes: Vec<Node> = self
            .elems
            .iter()
            .map(|e| Node {
                insert: Insert {
                    id: e.id,
                    after: e.after,
                    value: e.value,
                },
                changed_at: Some(e.changed_at),
                deleted: e.deleted,
            })
            .chain(self.waiting.iter().map(|(id, w)| Node {
                insert: Insert {
                    id: *id,
                    after: Some(w.after),
                    value: w.value,
                },
                changed_at: Some(w.changed_at),
                deleted: false,
            }))
            .collect();
        for insert in new {
            self.time_max = self.time_max.max(insert.id.time);
            nodes.push(Node {
                insert,
                changed_at: None,
                deleted: false,
            });
        }
        // Children of one reference together (the head's first), greatest id first.
        nodes.sort_unstable_by(|a, b| {
            (a.insert.after, b.insert.id).cmp(&(b.insert.after, a.insert.id))
        });
        // Each node's children, a range of `nodes`: one lookup per reference, none per leaf.
        let mut by_id: Vec<(ElemId, usize)> = nodes
            .iter()
            .enumerate()
            .map(|(index, node)| (node.insert.id, index))
            .collect();
        by_id.sort_unstable();
        let mut children = vec![0..0; nodes.len()];
        let mut head = 0..0;
        let mut start = 0;
        while start < nodes.len() {
            let after = nodes[start].insert.after;
            let end = start + nodes[start..].partition_point(|n| n.insert.after == after);
            match after {
                None => head = start..end,
                Some(after) => {
                    if let Ok(at) = by_id.binary_search_by_key(&after, |(id, _)| *id) {
                        children[by_id[at].1] = start..end;
                    }
                }
            }
            start = end;
        }
        let mut order: Vec<(usize, u32)> = Vec::with_capacity(nodes.len());
        let mut stack = vec![(head, 0u32)];
        while let Some((range, depth)) = stack.last_mut() {
            let Some(next) = range.next() else {
                stack.pop();
                continue;
            };
            let depth = *depth;
            order.push((next, depth));
            stack.push((children[next].clone(), depth + 1));
        }
        let mut placed = vec![false; nodes.len()];
        let mut elems = Vec::with_capacity(order.len());
        for (index, depth) in order {
            placed[index] = true;
            let node = &nodes[index];
            let changed_at = match node.changed_at {
                Some(at) => at,
                None => self.bump(),
            };
            elems.push(Elem {
                id: node.insert.id,
                after: node.insert.after,
                value: node.insert.value,
                deleted: node.deleted,
                depth,
                changed_at,
            });
        }
        let mut waiting = BTreeMap::new();
        for (node, placed) in nodes.iter().zip(placed) {
            if !placed {
                let changed_at = match node.changed_at {
                    Some(at) => at,
                    None => self.bump(),
                };
                let after = node.insert.after.expect("an insert at the head is placed");
                waiting.insert(
                    node.insert.id,
                    Waiting {
                        after,
                        value: node.insert.value,
                        changed_at,
                    },
                );
            }
        }
        self.elems = elems;
        self.waiting = waiting;
        // Orphan deletes whose element arrived now delete it.
        let orphans = std::mem::take(&mut self.orphan_deletes);
        self.visible = self.elems.iter().filter(|e| !e.deleted).count();
        let mut index: Vec<(ElemId, usize)> = self
            .elems
            .iter()
            .enumerate()
            .map(|(at, e)| (e.id, at))
            .collect();
        index.sort_unstable();
        let find = |id: ElemId| {
            index
                .binary_search_by_key(&id, |(id, _)| *id)
                .ok()
                .map(|i| index[i].1)
        };
        for (target, changed_at) in orphans {
            match find(target) {
                Some(at) if !self.elems[at].deleted => {
                    self.elems[at].deleted = true;
                    self.elems[at].changed_at = changed_at.max(self.elems[at].changed_at);
                    self.visible -= 1;
                }
                Some(_) => {}
                None => {
                    self.orphan_deletes.insert(target, changed_at);
                }
            }
        }
        for target in deletes {
            match find(target) {
                Some(at) => {
                    self.delete_at(at);
                }
                None => {
                    self.delete(target);
                }
            }
        }
    }
}

impl StateCrdt for Rga {
    type View = ListView;

    /// The union of both lists' inserts and deletes. The placed elements of both are pre-order
    /// readings of one tree, so one walk over both merges them ([`Rga::merge_placed`]); waiting
    /// inserts and orphan deletes follow.
    fn merge(&mut self, other: &Self, _coin: &mut dyn Coin) {
        self.merge_with_limits(other, LOOKUPS_ONE_BY_ONE_MAX, MERGE_INSERTS_ONE_BY_ONE_MAX);
    }

    fn view(&self) -> ListView {
        self.values().collect()
    }

    fn view_matches(&self, view: &ListView) -> bool {
        self.visible == view.len() && self.values().eq(view.iter().copied())
    }

    fn view_digest(&self) -> Option<u64> {
        Some(
            self.values()
                .fold(digest_round(0, self.visible as u64), digest_round),
        )
    }

    fn time_max(&self) -> u64 {
        self.time_max
    }

    /// The list is one key to a clock: a per-key counter stamps past every insert the list holds,
    /// which is what places a new insert where its writer meant (see the module docs).
    fn key_time(&self, _key: u32) -> Option<u64> {
        Some(self.time_max)
    }

    /// Every write to a list bears on every other: concurrent writes conflict wherever they are.
    fn conflict_key(_key: u32) -> u32 {
        0
    }

    fn size_bytes(&self) -> usize {
        // An insert: id (16), reference (17), value (8), deleted (1); an orphan delete: its id.
        (self.elems.len() + self.waiting.len()) * 42 + self.orphan_deletes.len() * 16
    }

    fn memory_bytes(&self) -> usize {
        // Ordered-map entries carry about a word of overhead each.
        const OVERHEAD_BYTES: usize = 8;
        self.elems.len() * std::mem::size_of::<Elem>()
            + self.waiting.len() * (std::mem::size_of::<(ElemId, Waiting)>() + OVERHEAD_BYTES)
            + self.orphan_deletes.len() * (std::mem::size_of::<(ElemId, u64)>() + OVERHEAD_BYTES)
    }

    fn deltas() -> Option<Deltas<Self>> {
        Some(Deltas::of())
    }
}

impl OpCrdt for Rga {
    type Intent = Intent;
    type Op = ListOp;

    fn prepare(&self, intent: &Intent, stamp: Stamp) -> ListOp {
        match ListIntent::of(intent, self.visible) {
            ListIntent::Insert { index, value } => {
                let after = index.checked_sub(1).and_then(|i| self.visible_id(i));
                ListOp::Insert {
                    id: ElemId::of_insert(stamp, after, value),
                    after,
                    value,
                }
            }
            ListIntent::Delete { index } => ListOp::Delete {
                target: self.visible_id(index).expect("index < visible"),
            },
            ListIntent::Nothing => ListOp::Noop,
        }
    }

    fn apply(&mut self, op: &ListOp, _coin: &mut dyn Coin) {
        match *op {
            ListOp::Insert { id, after, value } => {
                self.insert(Insert { id, after, value });
            }
            ListOp::Delete { target } => {
                self.delete(target);
            }
            ListOp::Noop => {}
        }
    }

    fn op_size_bytes(op: &ListOp) -> usize {
        match op {
            ListOp::Insert { .. } => 1 + 16 + 17 + 8,
            ListOp::Delete { .. } => 1 + 16,
            ListOp::Noop => 1,
        }
    }
}

/// The list's specification over intents, from RGA's documented semantics alone (it shares no
/// code with [`Rga`]): each update means something in the list its writer saw, which is the
/// specification itself over what the writer held when it issued the update. So the updates are
/// read in causal order, each interpreted against the list its writer saw ([`ListIntent::of`]):
/// an insert hangs under the element before its position (or the head), with the id
/// [`ElemId::of_insert`] gives it; a delete names the element at its position. The list a set of
/// updates shows is then the tree of its inserts read depth first, the children of one element in
/// descending id order, an insert whose reference is not held left out with everything under it,
/// and deleted elements hidden.
///
/// The cost is quadratic in the updates: every update reads the list its writer saw, in one pass
/// over every insert so far.
pub struct ListSpec;

/// An insert the specification placed, in the order of the tree read depth first.
#[derive(Clone, Debug)]
struct Placed {
    id: ElemId,
    value: u64,
    /// The update that inserted it.
    update: usize,
    /// Its ancestors in the tree (0: under the head).
    depth: usize,
    /// The updates that delete it.
    deleted_by: Vec<usize>,
}

impl ListSpec {
    /// The list a replica holding exactly `updates` shows. `updates` come in causal order (an
    /// update after every update its writer held when it issued it); `seen(i, j)`, for `j < i`,
    /// says whether the writer of update `i` held update `j` when it issued it. Every update a
    /// writer held must be among `updates`.
    pub fn view(updates: &[(Intent, Stamp)], seen: impl Fn(usize, usize) -> bool) -> ListView {
        let mut tree: Vec<Placed> = Vec::with_capacity(updates.len());
        for (i, (intent, stamp)) in updates.iter().enumerate() {
            let saw = shown(&tree, |j| seen(i, j));
            match ListIntent::of(intent, saw.len()) {
                ListIntent::Insert { index, value } => {
                    let after = index.checked_sub(1).map(|before| saw[before]);
                    let id = ElemId::of_insert(*stamp, after.map(|at| tree[at].id), value);
                    place(&mut tree, after, id, value, i);
                }
                ListIntent::Delete { index } => tree[saw[index]].deleted_by.push(i),
                ListIntent::Nothing => {}
            }
        }
        shown(&tree, |_| true)
            .into_iter()
            .map(|at| tree[at].value)
            .collect()
    }
}

/// Puts a new element into `tree` under the element at `after` (`None`: the head): after that
/// element's children with greater ids and everything under them. An id already there is the
/// same insert again.
fn place(tree: &mut Vec<Placed>, after: Option<usize>, id: ElemId, value: u64, update: usize) {
    if tree.iter().any(|placed| placed.id == id) {
        return;
    }
    let (mut at, depth) = match after {
        None => (0, 0),
        Some(parent) => (parent + 1, tree[parent].depth + 1),
    };
    while tree
        .get(at)
        .is_some_and(|next| next.depth > depth || (next.depth == depth && next.id > id))
    {
        at += 1;
    }
    let placed = Placed {
        id,
        value,
        update,
        depth,
        deleted_by: Vec::new(),
    };
    tree.insert(at, placed);
}

/// Where in `tree` the visible elements of the updates `included` picks out are, in list order:
/// an element shows when its insert is included, so is its parent (transitively), and no
/// included update deletes it.
fn shown(tree: &[Placed], included: impl Fn(usize) -> bool) -> Vec<usize> {
    // Whether the last element seen at each depth is in the list, tombstones included.
    let mut held_at_depth: Vec<bool> = Vec::new();
    let mut list = Vec::new();
    for (at, placed) in tree.iter().enumerate() {
        held_at_depth.truncate(placed.depth);
        let parent_held = placed.depth == 0 || held_at_depth[placed.depth - 1];
        let held = parent_held && included(placed.update);
        held_at_depth.push(held);
        if held && !placed.deleted_by.iter().any(|delete| included(*delete)) {
            list.push(at);
        }
    }
    list
}

impl DeltaCrdt for Rga {
    fn version(&self) -> u64 {
        self.version
    }

    /// The inserts and deletes that arrived after `version`, as a list of their own: an insert
    /// whose reference arrived earlier waits in the delta, and is placed where it is merged.
    fn delta_since(&self, version: u64) -> Self {
        let mut delta = Rga::default();
        // Walking the list in order, `reached[d]` says whether the last element seen at depth `d`
        // is placed in the delta, so each element learns in one step whether its reference is.
        let mut reached: Vec<bool> = Vec::new();
        for elem in &self.elems {
            let depth = elem.depth as usize;
            reached.truncate(depth);
            let changed = elem.changed_at > version;
            let reference_placed = depth == 0 || reached[depth - 1];
            if changed && reference_placed {
                delta.elems.push(Elem {
                    changed_at: 0,
                    ..*elem
                });
                delta.visible += usize::from(!elem.deleted);
            } else if changed {
                let after = elem.after.expect("an element at depth > 0 has a reference");
                delta.waiting.insert(
                    elem.id,
                    Waiting {
                        after,
                        value: elem.value,
                        changed_at: 0,
                    },
                );
                if elem.deleted {
                    delta.orphan_deletes.insert(elem.id, 0);
                }
            }
            if changed {
                delta.time_max = delta.time_max.max(elem.id.time);
            }
            reached.push(changed && reference_placed);
        }
        for (id, waiting) in &self.waiting {
            if waiting.changed_at > version {
                delta.time_max = delta.time_max.max(id.time);
                delta.waiting.insert(
                    *id,
                    Waiting {
                        changed_at: 0,
                        ..*waiting
                    },
                );
            }
        }
        for (target, changed_at) in &self.orphan_deletes {
            if *changed_at > version {
                delta.orphan_deletes.insert(*target, 0);
            }
        }
        delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traits::FixedCoin;

    fn put(key: u32, value: u64) -> Intent {
        Intent::Put { key, value }
    }

    /// Prepares and applies `intent` at `list` with a stamp one past everything it holds.
    fn write(list: &mut Rga, replica: ReplicaId, intent: Intent) -> ListOp {
        let stamp = Stamp::new(list.time_max() + 1, replica);
        let op = list.prepare(&intent, stamp);
        list.apply(&op, &mut FixedCoin(false));
        op
    }

    #[test]
    fn intents_map_to_positions() {
        assert_eq!(
            ListIntent::of(&put(7, 1), 3),
            ListIntent::Insert { index: 3, value: 1 }
        );
        assert_eq!(
            ListIntent::of(&put(7, 1), 0),
            ListIntent::Insert { index: 0, value: 1 }
        );
        assert_eq!(
            ListIntent::of(&Intent::Remove { key: 7 }, 3),
            ListIntent::Delete { index: 1 }
        );
        assert_eq!(
            ListIntent::of(&Intent::Remove { key: 7 }, 0),
            ListIntent::Nothing
        );
    }

    #[test]
    fn a_writer_sees_its_insert_where_it_asked() {
        let mut list = Rga::new();
        for (key, value) in [(0, 1), (1, 2), (1, 3), (0, 4), (4, 5)] {
            let before: Vec<u64> = list.view();
            let index = key as usize % (before.len() + 1);
            write(&mut list, 0, put(key, value));
            let mut expected = before;
            expected.insert(index, value);
            assert_eq!(list.view(), expected);
        }
        write(&mut list, 0, Intent::Remove { key: 1 });
        assert_eq!(list.view(), vec![4, 3, 2, 5]);
        assert_eq!(
            write(&mut Rga::new(), 0, Intent::Remove { key: 3 }),
            ListOp::Noop
        );
    }

    #[test]
    fn concurrent_inserts_at_one_place_end_in_id_order_everywhere() {
        let mut a = Rga::new();
        let mut b = Rga::new();
        let x = write(&mut a, 0, put(0, 10));
        let y = write(&mut b, 1, put(0, 20));
        a.apply(&y, &mut FixedCoin(false));
        b.apply(&x, &mut FixedCoin(false));
        assert_eq!(a, b);
        // Equal times: the greater replica id first.
        assert_eq!(a.view(), vec![20, 10]);
    }

    #[test]
    fn an_insert_waits_for_its_reference_and_a_delete_for_its_element() {
        let mut origin = Rga::new();
        let first = write(&mut origin, 0, put(0, 1));
        let second = write(&mut origin, 0, put(1, 2));
        let delete = write(&mut origin, 0, Intent::Remove { key: 0 });
        let mut late = Rga::new();
        let coin = &mut FixedCoin(false);
        late.apply(&delete, coin);
        late.apply(&second, coin);
        assert_eq!(late.view(), ListView::new());
        late.apply(&first, coin);
        late.apply(&first, coin);
        assert_eq!(late, origin);
        assert_eq!(late.view(), vec![2]);
    }

    #[test]
    fn clone_from_copies_the_whole_list() {
        let mut a = Rga::new();
        for i in 0..10 {
            write(&mut a, 0, put(i * 3, u64::from(i)));
        }
        let mut b = Rga::new();
        write(&mut b, 1, put(0, 99));
        b.clone_from(&a);
        assert_eq!(b, a);
        assert_eq!(
            (b.version(), b.len(), b.time_max()),
            (a.version(), a.len(), a.time_max())
        );
        write(&mut b, 1, put(0, 7));
        assert_ne!(b.view(), a.view(), "a deep copy");
    }

    #[test]
    fn one_by_one_and_rebuilt_merges_agree() {
        let mut a = Rga::new();
        for i in 0..30 {
            write(&mut a, 0, put(i * 7, u64::from(i)));
            if i % 4 == 0 {
                write(&mut a, 0, Intent::Remove { key: i });
            }
        }
        let mut b = Rga::new();
        for i in 0..5 {
            write(&mut b, 1, put(i * 3, 100 + u64::from(i)));
        }
        let coin = &mut FixedCoin(false);
        let mut rebuilt = b.clone();
        rebuilt.merge(&a, coin);
        let mut one_by_one = b.clone();
        for i in 0..=a.version() {
            one_by_one.merge(&a.delta_since(a.version() - i), coin);
        }
        assert_eq!(rebuilt, one_by_one);
        assert_eq!(rebuilt.len(), one_by_one.len());
        let mut other_way = a.clone();
        other_way.merge(&b, coin);
        assert_eq!(rebuilt, other_way);
        assert_eq!(rebuilt.view(), other_way.view());
    }
}
