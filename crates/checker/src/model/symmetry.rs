//! Symmetry reduction for the built-in configurations: states that differ only by a renaming of
//! the replicas are explored once.
//!
//! # When it is sound
//!
//! Renaming replicas must commute with every step and leave every property as it was. In the
//! built-in configurations that holds exactly when:
//!
//! - **ties are not broken by peer id.** Under `peer-id` the greater replica id wins an equal
//!   stamp time, so which replica wrote decides the outcome. Under `keep-local` and `random` an
//!   equal time keeps the local write or flips a coin whatever the ids are (`incoming_wins` in
//!   the crdt crate reads the replica only under `peer-id`).
//! - **the protocol treats every replica alike and keeps no time of its own.** State broadcast
//!   and op broadcast over a mesh send to every peer and set no timer in the model. Anti-entropy
//!   starts each replica's rounds at an offset drawn for that replica, so replicas are not
//!   interchangeable there, and it is not reduced.
//! - **the workload is the same program on every replica.** Write `k` of any replica goes to key
//!   `k % keys`; with `ValueChoice::Own` replica `r` puts `r + 1`, so a renaming renames those
//!   values too, and with `any-of` values are left as they are.
//!
//! The properties (strong convergence, quiescent implies converged, no panic, known nodes, a
//! conflict occurs) compare replicas pairwise or all together and never name one, so they hold
//! of a state exactly when they hold of its renamings. A shortest path to a violation renamed is
//! a shortest path to the renamed violation: verdicts and counterexample lengths are the same
//! with and without reduction, which `symmetry_keeps_verdicts_and_shortest_depths` in
//! `tests/suite/model_check.rs` checks on every configuration it pins.
//!
//! On a network of connections a renaming also renames the connections that are down (a set of
//! pairs) and leaves the connection-drop budget as it is. Dropping or restoring a connection
//! calls both ends' handler, the lower node first; a renaming may swap which end is lower, but
//! each handler changes only its own node and sends on its own links, which the state keeps
//! apart, so the order changes no state.
//!
//! One more identification, for the dictionary: two equal-time removes of one key keep the one
//! with the greater stamp, replica included, but only the remove's *time* is ever read again
//! (a lookup and every later offer compare times; an equal-time remove from the other replica
//! changes no view and no delivered set). The key therefore hashes a remove by its time alone,
//! so two states that differ only in which of two equal-time removes was kept are one state.
//!
//! # How
//!
//! The checker does not build renamed systems. A state's key is the least, over every renaming,
//! of a hash of the state *as it reads renamed*: each node's content renamed, in its new place;
//! the update records renamed; the messages in flight, each renamed, combined as a multiset (per
//! link in order where links are queues). Since the renamings form a group, every renaming of a
//! state has the same set of renamed hashes and so the same least one: the key is a canonical
//! form of the state's orbit, and two threads that meet different members of one orbit agree on
//! it, so state counts stay independent of threads. The search keeps exploring the state it
//! reached, not a renamed one, so paths stay paths.
//!
//! Nodes, records and messages repeat across millions of states, so their renamed hashes (one
//! per renaming) are remembered per checker thread, by content hash.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

use converge_crdt::{LwwDict, LwwGrid, ReplicaId, StateCrdt, WorkloadIntent};
use converge_netsim::explore::{Flight, System, WordHasher};
use converge_netsim::protocols::Message;
use converge_netsim::{mix64, UpdateSet};

use super::system::{Budgets, CheckedCrdt, CheckedProtocol};

/// The most replicas a reduced configuration has: 4! = 24 renamings.
const REPLICAS_MAX: usize = 4;

/// The most renamings: every permutation of [`REPLICAS_MAX`] replicas.
const RENAMINGS_MAX: usize = 24;

/// One renaming of replicas: replica `r` becomes `to[r]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Renaming {
    to: [u32; REPLICAS_MAX],
    /// `from[j]` is the replica that becomes `j`.
    from: [u32; REPLICAS_MAX],
    replicas: u32,
    /// Whether values are the writers' own (`r + 1`) and are renamed with them.
    own_values: bool,
    /// Dictionary keys, `0..keys`.
    keys: u32,
    /// Update `k` of replica `r` is `r * stride + k`.
    stride: u32,
}

impl Renaming {
    fn replica(&self, replica: ReplicaId) -> ReplicaId {
        if replica < self.replicas {
            self.to[replica as usize]
        } else {
            replica
        }
    }

    fn value(&self, value: u64) -> u64 {
        match value.checked_sub(1) {
            Some(writer) if self.own_values && writer < u64::from(self.replicas) => {
                u64::from(self.to[writer as usize]) + 1
            }
            _ => value,
        }
    }

    fn update(&self, update: u32) -> u32 {
        self.replica(update / self.stride) * self.stride + update % self.stride
    }

    /// A delivered or carried set, renamed, as a bit mask: at most 4 replicas of 3 writes.
    fn updates(&self, updates: &UpdateSet) -> u64 {
        updates
            .iter()
            .fold(0u64, |mask, update| mask | 1 << self.update(update))
    }
}

/// Every renaming of `replicas` replicas, the identity first.
fn renamings(replicas: u32, own_values: bool, keys: u32, stride: u32) -> Vec<Renaming> {
    fn extend(prefix: &mut Vec<u32>, n: u32, out: &mut Vec<[u32; REPLICAS_MAX]>) {
        if prefix.len() == n as usize {
            let mut to = [0, 1, 2, 3];
            to[..prefix.len()].copy_from_slice(prefix);
            out.push(to);
            return;
        }
        for next in 0..n {
            if !prefix.contains(&next) {
                prefix.push(next);
                extend(prefix, n, out);
                prefix.pop();
            }
        }
    }
    assert!(replicas as usize <= REPLICAS_MAX, "at most 4 replicas");
    let mut permutations = Vec::new();
    extend(&mut Vec::new(), replicas, &mut permutations);
    permutations
        .into_iter()
        .map(|to| {
            let mut from = [0, 1, 2, 3];
            for (old, new) in to.iter().enumerate().take(replicas as usize) {
                from[*new as usize] = old as u32;
            }
            Renaming {
                to,
                from,
                replicas,
                own_values,
                keys,
                stride,
            }
        })
        .collect()
}

/// A replica state as it reads with replicas renamed.
pub(crate) trait Renamed {
    fn hash_renamed(&self, renaming: &Renaming, hasher: &mut WordHasher);
}

impl Renamed for LwwGrid {
    fn hash_renamed(&self, renaming: &Renaming, hasher: &mut WordHasher) {
        let cells = self.key_bound().expect("a grid bounds its keys") as u32;
        for index in 0..cells {
            match self.cell(index) {
                None => hasher.write_u64(0),
                Some(cell) => {
                    hasher.write_u64(1 + u64::from(cell.value.is_some()));
                    hasher.write_u64(cell.value.map_or(0, |v| renaming.value(v)));
                    hasher.write_u64(cell.stamp.time);
                    hasher.write_u32(renaming.replica(cell.stamp.replica));
                }
            }
        }
    }
}

/// The list is never reduced (see [`LIST_NOTE`]): its elements are ordered by the replica ids
/// in their stamps, which no renaming may change.
impl Renamed for converge_crdt::Rga {
    fn hash_renamed(&self, _renaming: &Renaming, _hasher: &mut WordHasher) {
        unreachable!("{LIST_NOTE}");
    }
}

impl Renamed for LwwDict {
    /// A remove hashes by its time alone: see the module docs.
    fn hash_renamed(&self, renaming: &Renaming, hasher: &mut WordHasher) {
        for key in 0..renaming.keys {
            let Some(entry) = self.entry(key) else {
                hasher.write_u64(0);
                continue;
            };
            match entry.add {
                Some((stamp, value)) => {
                    hasher.write_u64(1);
                    hasher.write_u64(renaming.value(value));
                    hasher.write_u64(stamp.time);
                    hasher.write_u32(renaming.replica(stamp.replica));
                }
                None => hasher.write_u64(2),
            }
            hasher.write_u64(entry.remove.map_or(0, |stamp| stamp.time + 1));
        }
    }
}

/// How a built-in message hashes renamed.
fn hash_message<C: CheckedCrdt + Renamed>(
    message: &Message<C>,
    renaming: &Renaming,
    hasher: &mut WordHasher,
) {
    match message {
        Message::State(snapshot) => {
            hasher.write_u64(1);
            snapshot.state().hash_renamed(renaming, hasher);
            hasher.write_u64(renaming.updates(snapshot.delivered()));
        }
        Message::Ops(updates) => {
            hasher.write_u64(2);
            for update in updates.iter() {
                hasher.write_u32(renaming.update(update.index()));
            }
        }
        other => unreachable!(
            "only state and op broadcast are reduced by symmetry, which never send {other:?}"
        ),
    }
}

/// What the model needs to key a state by its orbit.
pub(crate) struct Reduction<C: CheckedCrdt, P: CheckedProtocol<C>> {
    renamings: Vec<Renaming>,
    flight: Flight,
    crdt: fn(&C, &Renaming, &mut WordHasher),
    message: MessageHash<P::Message>,
    /// Tells this model's remembered hashes from another's on the same thread.
    identity: u64,
}

type MessageHash<M> = Arc<dyn Fn(&M, &Renaming, &mut WordHasher) + Send + Sync>;

/// Why a built-in configuration is not reduced, or `None` where it may be.
pub(crate) fn unsound_because(
    peer_id: bool,
    anti_entropy: bool,
    replicas: u32,
) -> Option<&'static str> {
    if peer_id {
        Some(PEER_ID_NOTE)
    } else if anti_entropy {
        Some(ANTI_ENTROPY_NOTE)
    } else if replicas as usize > REPLICAS_MAX {
        Some("symmetry not applied: more replicas than the reduction renames")
    } else {
        None
    }
}

pub(crate) const PEER_ID_NOTE: &str = "symmetry not applied: the peer-id tie-break lets the \
    greater replica id win an equal stamp time, so replicas are not interchangeable";

pub(crate) const ANTI_ENTROPY_NOTE: &str = "symmetry not applied: anti-entropy starts each \
    replica's rounds at an offset drawn for that replica, so replicas are not interchangeable";

pub(crate) const LIST_NOTE: &str = "symmetry not applied: the list orders concurrent inserts at \
    one place by their stamps, replica ids included, so replicas are not interchangeable";

pub(crate) const OP_STREAM_NOTE: &str = "symmetry not applied: op stream keeps per-peer \
    positions in logs by node id, which the reduction does not rename";

pub(crate) const USER_NOTE: &str = "symmetry not applied: the model runs a user's own protocol \
    and type, which it cannot rename";

/// The shape of a built-in configuration that symmetry needs.
pub(crate) struct Shape {
    pub(crate) replicas: u32,
    pub(crate) own_values: bool,
    pub(crate) keys: u32,
    pub(crate) stride: u32,
    pub(crate) flight: Flight,
    pub(crate) identity: u64,
}

impl<C: CheckedCrdt + Renamed, P: CheckedProtocol<C, Message = Message<C>>> Reduction<C, P> {
    /// The reduction of a built-in configuration; the caller has checked [`unsound_because`].
    pub(crate) fn builtin(shape: Shape) -> Self {
        Reduction {
            renamings: renamings(shape.replicas, shape.own_values, shape.keys, shape.stride),
            flight: shape.flight,
            crdt: |crdt, renaming, hasher| crdt.hash_renamed(renaming, hasher),
            message: Arc::new(|message, renaming, hasher| hash_message(message, renaming, hasher)),
            identity: shape.identity,
        }
    }
}

/// Mixes the connection-drop budget and the connections that are down, renamed, into a
/// state's key: the pairs as a set, a sum of each renamed pair's hash with its lower end first.
/// Kept out of line: most models have no connections.
#[cold]
#[inline(never)]
fn hash_connections<C: CheckedCrdt, P: CheckedProtocol<C>>(
    hasher: &mut WordHasher,
    system: &System<C, P>,
    budgets: Budgets,
    renaming: &Renaming,
) {
    budgets.hash_connections(hasher);
    let down = system.connections_down().fold(0u64, |sum, (a, b)| {
        let (a, b) = (renaming.replica(a), renaming.replica(b));
        let mut pair = WordHasher(0);
        pair.write_u32(a.min(b));
        pair.write_u32(a.max(b));
        sum.wrapping_add(pair.finish())
    });
    if system.connections_down().next().is_some() {
        hasher.write_u64(down);
    }
}

/// Per-renaming hashes of one node, record set or message.
type Renamings = [u64; RENAMINGS_MAX];

/// What a remembered entry is the hash of, mixed into its key.
#[derive(Clone, Copy)]
enum Part {
    Node = 1,
    Records = 2,
    Message = 3,
}

/// Keys are hashes already: a table keyed by them needs no second hash.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, _bytes: &[u8]) {
        unreachable!("only u64 keys")
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = word;
    }
}

thread_local! {
    /// Renamed hashes remembered per checker thread (see the module docs).
    static RENAMED: RefCell<HashMap<u64, Renamings, BuildHasherDefault<PassThrough>>> =
        RefCell::default();
}

/// Entries remembered at most; the table starts again past it.
const RENAMED_MAX: usize = 1 << 17;

impl<C: CheckedCrdt, P: CheckedProtocol<C>> Reduction<C, P> {
    /// The state's key: the least hash of it over every renaming (see the module docs).
    pub(crate) fn key(&self, system: &System<C, P>, budgets: Budgets) -> u64 {
        debug_assert_eq!(system.timers_pending(), 0, "reduced protocols set no timer");
        let count = self.renamings.len();
        let replicas = self.renamings[0].replicas as usize;
        let mut nodes = [[0u64; RENAMINGS_MAX]; REPLICAS_MAX];
        for (node, hashes) in nodes.iter_mut().enumerate().take(replicas) {
            *hashes = self.remembered(Part::Node, system.node_digest(node as u32), || {
                self.node_hashes(system, node as u32)
            });
        }
        // The records name their writers in their stamps, so their digest tells every issue
        // pattern apart.
        let records = self.remembered(Part::Records, system.records_digest(), || {
            self.records_hashes(system)
        });
        let messages = self.message_sums(system);
        let ending = system.ending().map_or(0, |ending| {
            let mut hasher = WordHasher(0);
            ending.hash(&mut hasher);
            hasher.finish()
        });
        let connections =
            budgets.connection_drops_left != 0 || system.connections_down().next().is_some();
        (0..count)
            .map(|k| {
                let renaming = &self.renamings[k];
                let mut hasher = WordHasher(u64::from(budgets.drops_left));
                for new in 0..replicas {
                    let old = renaming.from[new] as usize;
                    hasher.write_u64(nodes[old][k]);
                }
                hasher.write_u64(records[k]);
                hasher.write_u64(messages[k]);
                hasher.write_u64(ending);
                // Only where the model drops connections, so that the keys of models without
                // connections stay what they were.
                if connections {
                    hash_connections(&mut hasher, system, budgets, renaming);
                }
                hasher.finish()
            })
            .min()
            .expect("at least the identity")
    }

    fn remembered(
        &self,
        part: Part,
        digest: u64,
        compute: impl FnOnce() -> Renamings,
    ) -> Renamings {
        let key = mix64(digest ^ self.identity.rotate_left(part as u32 * 11));
        if let Some(hashes) = RENAMED.with(|table| table.borrow().get(&key).copied()) {
            return hashes;
        }
        let hashes = compute();
        RENAMED.with(|table| {
            let mut table = table.borrow_mut();
            if table.len() >= RENAMED_MAX {
                table.clear();
            }
            table.insert(key, hashes);
        });
        hashes
    }

    /// Node `node`'s content renamed, once per renaming: its replica, delivered set, protocol
    /// state, clock and incarnation, not its place.
    fn node_hashes(&self, system: &System<C, P>, node: u32) -> Renamings {
        let replica = &system.nodes()[node as usize];
        let state = &system.protocol_states()[node as usize];
        let mut hashes = [0; RENAMINGS_MAX];
        for (hash, renaming) in hashes.iter_mut().zip(&self.renamings) {
            let mut hasher = WordHasher(0);
            replica.status.hash(&mut hasher);
            (self.crdt)(&replica.crdt, renaming, &mut hasher);
            hasher.write_u64(renaming.updates(&replica.delivered));
            state.hash(&mut hasher);
            hasher.write_u64(system.clock_time(node));
            hasher.write_u32(system.incarnation(node));
            *hash = hasher.finish();
        }
        hashes
    }

    /// The issued updates' records renamed, in the renamed update order, once per renaming. A
    /// record's op is its intent prepared with its stamp, which the built-in types do the same
    /// way for every replica, so the intent and the stamp stand for it.
    fn records_hashes(&self, system: &System<C, P>) -> Renamings {
        let mut hashes = [0; RENAMINGS_MAX];
        for (hash, renaming) in hashes.iter_mut().zip(&self.renamings) {
            let mut hasher = WordHasher(0);
            for new in 0..renaming.replicas {
                let old = renaming.from[new as usize];
                let issued = system.issued(old);
                hasher.write_u32(issued);
                for seq in 0..issued {
                    let record = system
                        .record(old * renaming.stride + seq)
                        .expect("an issued update has a record");
                    match record.intent.as_key_value() {
                        Some((key, Some(value))) => {
                            hasher.write_u32(key);
                            hasher.write_u64(renaming.value(value) + 1);
                        }
                        Some((key, None)) => {
                            hasher.write_u32(key);
                            hasher.write_u64(0);
                        }
                        // Symmetry applies to the built-in types only, whose intents are keys
                        // and values; any other intent is hashed as it is.
                        None => record.intent.hash(&mut hasher),
                    }
                    hasher.write_u64(record.stamp.time);
                }
            }
            *hash = hasher.finish();
        }
        hashes
    }

    /// The messages in flight renamed, once per renaming, as a multiset: a sum of each message's
    /// hash with its renamed ends (where links are queues, of each link's messages in order).
    fn message_sums(&self, system: &System<C, P>) -> Renamings {
        let flying = system.in_flight();
        let count = self.renamings.len();
        let mut sums = [0u64; RENAMINGS_MAX];
        // Per renaming, the hash of the current group: one message, or where links are queues
        // one link's messages so far.
        let mut groups = [0u64; RENAMINGS_MAX];
        for (index, message) in flying.iter().enumerate() {
            let starts = index == 0
                || self.flight != Flight::Queues
                || (flying[index - 1].from, flying[index - 1].to) != (message.from, message.to);
            if starts {
                for (group, renaming) in groups.iter_mut().zip(&self.renamings) {
                    let mut hasher = WordHasher(0);
                    hasher.write_u32(renaming.replica(message.from));
                    hasher.write_u32(renaming.replica(message.to));
                    *group = hasher.0;
                }
            }
            let content = self.remembered(Part::Message, system.message_digest(index), || {
                self.message_hashes(&message.message)
            });
            for k in 0..count {
                let mut hasher = WordHasher(groups[k]);
                hasher.write_u64(content[k]);
                groups[k] = hasher.0;
            }
            let ends = flying.get(index + 1).is_none_or(|next| {
                !(self.flight == Flight::Queues
                    && (next.from, next.to) == (message.from, message.to))
            });
            if ends {
                for k in 0..count {
                    sums[k] = sums[k].wrapping_add(WordHasher(groups[k]).finish());
                }
            }
        }
        sums
    }

    fn message_hashes(&self, message: &P::Message) -> Renamings {
        let mut hashes = [0; RENAMINGS_MAX];
        for (hash, renaming) in hashes.iter_mut().zip(&self.renamings) {
            let mut hasher = WordHasher(0);
            (self.message)(message, renaming, &mut hasher);
            *hash = hasher.finish();
        }
        hashes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renamings_are_every_permutation_with_their_inverses() {
        for (replicas, count) in [(2, 2), (3, 6), (4, 24)] {
            let all = renamings(replicas, true, 2, 3);
            assert_eq!(all.len(), count);
            assert_eq!(
                all[0].to[..replicas as usize],
                [0, 1, 2, 3][..replicas as usize]
            );
            for renaming in &all {
                for r in 0..replicas {
                    assert_eq!(renaming.from[renaming.to[r as usize] as usize], r);
                }
            }
        }
    }

    #[test]
    fn own_values_and_updates_move_with_their_writers() {
        let swap = renamings(3, true, 2, 2)
            .into_iter()
            .find(|r| r.to[..3] == [1, 0, 2])
            .expect("the swap of 0 and 1");
        assert_eq!(swap.value(1), 2, "replica 0's value becomes replica 1's");
        assert_eq!(swap.value(3), 3);
        assert_eq!(swap.value(9), 9, "not a writer's own value");
        assert_eq!(swap.update(1), 3, "replica 0's second write is replica 1's");
        assert_eq!(swap.update(4), 4);
        let any = renamings(3, false, 2, 2)[1];
        assert_eq!(any.value(1), 1, "any-of values are no one's");
    }
}
