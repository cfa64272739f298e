//! Merkle anti-entropy: every `interval`, each replica sends `fanout` random peers the digest of
//! its whole key space, and the two descend together only into the key ranges whose digests
//! differ, until the ranges are small enough to ship their entries.
//!
//! The key space `0..bound` ([`StateCrdt::key_bound`]) is a tree: a range splits into
//! [`BRANCHING`] equal children, and a range of at most [`LEAF_KEYS`] keys is a leaf. A range's
//! digest folds the digests of its entries in key order ([`range_digest`]), so two replicas
//! whose entries under a range are equal have equal digests there, and a replica holding nothing
//! under it has [`EMPTY_DIGEST`]. A node that receives digests compares each with its own
//! ([`compare`]): equal ranges are done; a range the peer holds nothing under, or a leaf, gets
//! its entries sent; a range this node holds nothing under is sent back with the empty digest, so
//! that the peer sends its entries; any other range gets its children's digests sent back. The
//! two sides take turns, one message a level, so an exchange between two replicas that differ
//! in a few keys costs a few messages of a few digests each, and one between equal replicas
//! costs one digest, where full-state anti-entropy ships the whole state every round.
//!
//! Entries travel as a part of the sender's state with [`Ctx::snapshot_keys`], which carries
//! exactly the updates the sender holds under those keys: the oracles' delivered sets stay exact
//! (the argument is on that method). A receiver merges the part, and when what it now holds
//! under those ranges differs from what the sender held (it had entries the sender lacked), it
//! sends its own part back once, so one exchange brings both sides level.
//!
//! **Per-key contexts.** A key's digest covers its entry and the updates the replica holds under
//! it (its context, as a store that keeps a version vector per key has one: [`MerkleNode`]), and
//! a part carries its updates' ids (counted in its bytes). Digests of entries alone would miss a
//! superseded write: replica A writes a cell at stamp 10, replica B wrote it at stamp 5; once
//! every replica shows A's write, their entries agree, no range differs, and a replica that
//! learned A's write first never learns B's. Its view is right, but it does not hold every
//! update, which is what eventual convergence asks (the first run of the story without
//! contexts ended not converged, replicas lacking a few superseded writes each). With contexts,
//! two replicas that hold different updates under a key see it differ until they hold the same.
//!
//! Only types with key ranges can run it ([`StateCrdt::key_bound`], [`StateCrdt::restricted`],
//! [`OpCrdt::op_key`]): [`run`] refuses any other before the run starts, naming the protocol.
//! A joining or restarting replica catches up through the same exchange, at once and then every
//! round, so `snapshot-on-join` changes nothing here.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use converge_crdt::{digest_round, OpCrdt, Stamp, StateCrdt, WorkloadIntent};

use crate::outcome::{NodeId, Observer, Outcome, UpdateSet};
use crate::protocol::{
    Ctx, Protocol, Restart, Snapshot, Update, HEADER_BYTES, MESSAGE_MEMORY_BYTES,
};
use crate::replicas::Replicas;
use crate::scenario::Scenario;
use crate::sim::run_protocol;
use crate::validation::ScenarioError;

/// Children of a range in the key tree.
pub const BRANCHING: u64 = 16;

/// Ranges of at most this many keys are leaves: their entries are sent rather than split.
pub const LEAF_KEYS: u64 = 16;

/// The digest of a range that holds no entry.
pub const EMPTY_DIGEST: u64 = 0;

/// A range's place on the wire: its depth (1 byte) and its index at that depth (4 bytes), since
/// every range sent is a node of the tree both sides share; then its digest (8 bytes).
pub const RANGE_DIGEST_BYTES: u64 = 5 + 8;

/// An update's id on the wire, in a part's contexts: origin (4 bytes) and sequence number (4).
pub const UPDATE_ID_BYTES: u64 = 8;

/// Where an update's hash in a context starts, so that it differs from an entry's digest.
const CONTEXT_SEED: u64 = 0x0063_6f6e_7465_7874;

/// `merkle-anti-entropy`.
#[derive(Clone, Copy, Debug, Default)]
pub struct MerkleAntiEntropy;

/// A replica's per-key contexts: for every key, a digest of the updates it holds under it.
#[derive(Clone, Debug, Default)]
pub struct MerkleNode {
    /// Key to the sum of its held updates' hashes (a sum, so that the order they arrived in does
    /// not matter).
    contexts: BTreeMap<u64, u64>,
    /// The updates counted in `contexts`.
    indexed: UpdateSet,
}

impl MerkleNode {
    /// Counts `update`, under key `key`, in the contexts (once).
    pub fn index(&mut self, update: u32, key: u64) {
        if self.indexed.insert(update) {
            let sum = self.contexts.entry(key).or_default();
            *sum = sum.wrapping_add(digest_round(CONTEXT_SEED, u64::from(update)));
        }
    }

    fn index_held<C: OpCrdt>(&mut self, update: Update, ctx: &Ctx<'_, C, MerkleAntiEntropy>) {
        self.index(update.index(), key_of(update, ctx));
    }
}

/// A replica's state with its contexts: what its digests cover.
#[derive(Clone, Copy)]
pub struct KeyView<'a, C> {
    pub state: &'a C,
    pub contexts: &'a BTreeMap<u64, u64>,
}

impl<C: StateCrdt> KeyView<'_, C> {
    /// The digest of the entries and contexts under `keys`.
    pub fn range_digest(&self, keys: Range<u64>) -> u64 {
        let contexts = self
            .contexts
            .range(keys.clone())
            .fold(0u64, |sum, (_, context)| sum.wrapping_add(*context));
        combine(range_digest(self.state, keys), contexts)
    }

    /// The digests of `keys`' children, in one pass over the entries and one over the contexts.
    fn children_digests(&self, keys: &Range<u64>) -> Vec<RangeDigest> {
        let ranges = children(keys);
        let width = ranges[0].end - ranges[0].start;
        let mut entries = vec![EMPTY_DIGEST; ranges.len()];
        let mut contexts = vec![0u64; ranges.len()];
        self.state.visit_keys(keys.clone(), &mut |entry| {
            let child = &mut entries[((entry.key - keys.start) / width) as usize];
            *child = digest_round(digest_round(*child, entry.key), entry.digest);
        });
        for (key, context) in self.contexts.range(keys.clone()) {
            let child = &mut contexts[((key - keys.start) / width) as usize];
            *child = child.wrapping_add(*context);
        }
        ranges
            .into_iter()
            .zip(entries.into_iter().zip(contexts))
            .map(|(keys, (entries, contexts))| RangeDigest {
                keys,
                digest: combine(entries, contexts),
            })
            .collect()
    }
}

/// A range's digest from its entries' and its contexts' ([`EMPTY_DIGEST`] when both are empty).
fn combine(entries: u64, contexts: u64) -> u64 {
    if entries == EMPTY_DIGEST && contexts == 0 {
        EMPTY_DIGEST
    } else {
        digest_round(digest_round(entries, 1), contexts)
    }
}

/// The key of a held update.
///
/// # Panics
/// If the CRDT keys no op of its own while it has key ranges (see `Ctx::snapshot_keys`).
fn key_of<C: OpCrdt>(update: Update, ctx: &Ctx<'_, C, MerkleAntiEntropy>) -> u64 {
    C::op_key(ctx.op(update)).unwrap_or_else(|| {
        panic!(
            "{} has key ranges but no key for one of its ops (OpCrdt::op_key)",
            std::any::type_name::<C>()
        )
    })
}

/// One range of keys and a node's digest of its entries there.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RangeDigest {
    pub keys: Range<u64>,
    pub digest: u64,
}

/// What Merkle anti-entropy sends.
#[derive(Debug, Hash)]
pub enum MerkleMessage<C> {
    /// The sender's digests of some ranges: the receiver compares them with its own.
    Digests(Arc<[RangeDigest]>),
    /// The sender's entries under some ranges, with its digests of them.
    Entries {
        part: Snapshot<C>,
        ranges: Arc<[RangeDigest]>,
        /// Whether the receiver should send its own part back if it held entries the sender
        /// lacked (not for a part that is itself such an answer, so that an exchange ends).
        answer: bool,
        /// The entries' encoded size, counted once when the part is made.
        entries_bytes: u64,
    },
}

/// The round timer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Round;

/// The digest of `state`'s entries under `keys`.
pub fn range_digest<C: StateCrdt>(state: &C, keys: Range<u64>) -> u64 {
    let mut digest = EMPTY_DIGEST;
    state.visit_keys(keys, &mut |entry| {
        digest = digest_round(digest_round(digest, entry.key), entry.digest);
    });
    digest
}

/// The children of a range that is not a leaf: [`BRANCHING`] ranges of equal width (the last
/// one perhaps narrower), covering it.
pub fn children(keys: &Range<u64>) -> Vec<Range<u64>> {
    let width = (keys.end - keys.start).div_ceil(BRANCHING);
    (0..BRANCHING)
        .map(|i| keys.start + i * width)
        .take_while(|start| *start < keys.end)
        .map(|start| start..(start + width).min(keys.end))
        .collect()
}

/// What a node answers to a peer's digests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Answer {
    /// Digests to send back: children of ranges that differ, and ranges this node holds nothing
    /// under (with [`EMPTY_DIGEST`]).
    pub digests: Vec<RangeDigest>,
    /// Ranges whose entries this node sends, with its digests of them.
    pub entries: Vec<RangeDigest>,
}

/// Compares the peer's digests with this node's (see the module docs).
pub fn compare<C: StateCrdt>(own: KeyView<'_, C>, received: &[RangeDigest]) -> Answer {
    let mut answer = Answer::default();
    for theirs in received {
        let mine = own.range_digest(theirs.keys.clone());
        if mine == theirs.digest {
            continue;
        }
        let keys = theirs.keys.clone();
        if mine == EMPTY_DIGEST {
            answer.digests.push(RangeDigest {
                keys,
                digest: EMPTY_DIGEST,
            });
        } else if theirs.digest == EMPTY_DIGEST || keys.end - keys.start <= LEAF_KEYS {
            answer.entries.push(RangeDigest { keys, digest: mine });
        } else {
            answer.digests.extend(own.children_digests(&keys));
        }
    }
    answer
}

/// The ranges of `sent` under which this node now differs from what the sender held.
pub fn still_differing<C: StateCrdt>(
    own: KeyView<'_, C>,
    sent: &[RangeDigest],
) -> Vec<RangeDigest> {
    sent.iter()
        .filter_map(|theirs| {
            let mine = own.range_digest(theirs.keys.clone());
            (mine != theirs.digest).then(|| RangeDigest {
                keys: theirs.keys.clone(),
                digest: mine,
            })
        })
        .collect()
}

/// Runs `scenario` under Merkle anti-entropy, or refuses a CRDT without key ranges, naming the
/// protocol and what the type lacks.
pub(crate) fn run<C: OpCrdt>(
    scenario: &Scenario,
    seed: u64,
    make: &dyn Replicas<C>,
    observer: &mut dyn Observer<C>,
) -> Result<Outcome<C>, ScenarioError> {
    scenario.validate()?;
    refuse_without_key_ranges(&make.make(0, 0))?;
    run_protocol(scenario, seed, &MerkleAntiEntropy, make, observer)
}

/// Whether `probe`'s type has key ranges: a bound, parts, and a key for an op. The op is probed
/// where the type's intents have a key/value form; a type with intents of its own only is asked
/// for its ops' keys at its first write (a missing one ends that run as a panic, with the seed).
pub fn refuse_without_key_ranges<C: OpCrdt>(probe: &C) -> Result<(), ScenarioError> {
    let op = C::Intent::from_key_value(0, Some(1))
        .map(|intent| probe.prepare(&intent, Stamp::new(1, 0)));
    let lacks = if probe.key_bound().is_none() {
        Some("StateCrdt::key_bound")
    } else if probe.restricted(&[]).is_none() {
        Some("StateCrdt::restricted")
    } else if op.is_some_and(|op| C::op_key(&op).is_none()) {
        Some("OpCrdt::op_key")
    } else {
        None
    };
    match lacks {
        None => Ok(()),
        Some(method) => Err(ScenarioError {
            path: "protocol.kind".into(),
            message: format!(
                "merkle-anti-entropy compares and exchanges key ranges, and {} has none: it \
                 does not implement {method} (with StateCrdt::key_bound, visit_keys, restricted \
                 and OpCrdt::op_key); choose anti-entropy for a type without key ranges",
                std::any::type_name::<C>()
            ),
        }),
    }
}

/// The node's key space as the root range.
fn root<C: OpCrdt>(ctx: &Ctx<'_, C, MerkleAntiEntropy>) -> Range<u64> {
    0..ctx.state().key_bound().unwrap_or(0)
}

fn view<'a, C: OpCrdt>(
    node: &'a MerkleNode,
    ctx: &'a Ctx<'_, C, MerkleAntiEntropy>,
) -> KeyView<'a, C> {
    KeyView {
        state: ctx.state(),
        contexts: &node.contexts,
    }
}

/// One round: the root's digest to `fanout` random peers.
fn round<C: OpCrdt>(node: &MerkleNode, ctx: &mut Ctx<'_, C, MerkleAntiEntropy>) {
    if !ctx.is_up() {
        return;
    }
    let targets = ctx.random_peers();
    if targets.is_empty() {
        return;
    }
    let keys = root(ctx);
    let digest = view(node, ctx).range_digest(keys.clone());
    ctx.send_all(
        targets,
        MerkleMessage::Digests(Arc::from([RangeDigest { keys, digest }])),
    );
}

/// Sends this node's entries under `ranges` to `to`.
fn send_entries<C: OpCrdt>(
    to: NodeId,
    ranges: Vec<RangeDigest>,
    answer: bool,
    ctx: &mut Ctx<'_, C, MerkleAntiEntropy>,
) {
    let mut keys: Vec<Range<u64>> = ranges.iter().map(|r| r.keys.clone()).collect();
    keys.sort_by_key(|k| k.start);
    let mut entries_bytes = 0;
    for range in &keys {
        ctx.state().visit_keys(range.clone(), &mut |entry| {
            entries_bytes += entry.size_bytes as u64
        });
    }
    let part = ctx
        .snapshot_keys(&keys)
        .expect("run refuses a CRDT without key ranges");
    // The part's contexts: the ids of the updates it carries.
    entries_bytes += UPDATE_ID_BYTES * u64::from(part.delivered().len());
    ctx.send(
        to,
        MerkleMessage::Entries {
            part,
            ranges: ranges.into(),
            answer,
            entries_bytes,
        },
    );
}

impl<C: OpCrdt> Protocol<C> for MerkleAntiEntropy {
    type Message = MerkleMessage<C>;
    type Node = MerkleNode;
    type Timer = Round;

    fn name(&self) -> String {
        "merkle-anti-entropy".into()
    }

    fn init(&self, ctx: &Ctx<'_, C, Self>) -> MerkleNode {
        let mut node = MerkleNode::default();
        for index in ctx.delivered().iter() {
            node.index_held(Update(index), ctx);
        }
        node
    }

    fn on_start(&self, _node: &mut MerkleNode, ctx: &mut Ctx<'_, C, Self>) {
        let period = ctx.options().interval.us.max(1);
        let offset = ctx.random_below(period);
        ctx.set_timer(offset, Round);
    }

    fn on_write(&self, node: &mut MerkleNode, update: Update, ctx: &mut Ctx<'_, C, Self>) {
        node.index_held(update, ctx);
    }

    fn on_timer(&self, node: &mut MerkleNode, _timer: Round, ctx: &mut Ctx<'_, C, Self>) {
        ctx.set_timer(ctx.options().interval.us.max(1), Round);
        round(node, ctx);
    }

    fn on_join(&self, node: &mut MerkleNode, ctx: &mut Ctx<'_, C, Self>) {
        round(node, ctx);
    }

    fn on_restart(&self, node: &mut MerkleNode, _restart: Restart, ctx: &mut Ctx<'_, C, Self>) {
        round(node, ctx);
    }

    fn on_message(
        &self,
        node: &mut MerkleNode,
        from: NodeId,
        message: &MerkleMessage<C>,
        ctx: &mut Ctx<'_, C, Self>,
    ) {
        match message {
            MerkleMessage::Digests(received) => {
                let Answer { digests, entries } = compare(view(node, ctx), received);
                if !digests.is_empty() {
                    ctx.send(from, MerkleMessage::Digests(digests.into()));
                }
                if !entries.is_empty() {
                    send_entries(from, entries, true, ctx);
                }
            }
            MerkleMessage::Entries {
                part,
                ranges,
                answer,
                ..
            } => {
                let new: Vec<u32> = part
                    .delivered()
                    .iter()
                    .filter(|index| !ctx.holds(Update(*index)))
                    .collect();
                ctx.merge(part);
                for index in new {
                    node.index_held(Update(index), ctx);
                }
                if *answer {
                    let differing = still_differing(view(node, ctx), ranges);
                    if !differing.is_empty() {
                        send_entries(from, differing, false, ctx);
                    }
                }
            }
        }
    }

    fn message_bytes(&self, message: &MerkleMessage<C>, _ctx: &Ctx<'_, C, Self>) -> u64 {
        HEADER_BYTES
            + match message {
                MerkleMessage::Digests(ranges) => RANGE_DIGEST_BYTES * ranges.len() as u64,
                MerkleMessage::Entries {
                    ranges,
                    entries_bytes,
                    ..
                } => 1 + RANGE_DIGEST_BYTES * ranges.len() as u64 + entries_bytes,
            }
    }

    fn message_memory_bytes(&self, message: &MerkleMessage<C>) -> u64 {
        let range = std::mem::size_of::<RangeDigest>() as u64;
        MESSAGE_MEMORY_BYTES
            + match message {
                MerkleMessage::Digests(ranges) => range * ranges.len() as u64,
                MerkleMessage::Entries { part, ranges, .. } => {
                    range * ranges.len() as u64 + part.memory_bytes()
                }
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use converge_crdt::{FixedCoin, Intent, LwwDict, LwwDictConfig, LwwGrid, LwwGridConfig};

    /// A xorshift stream: the tests draw states from fixed seeds, no global randomness.
    struct Draw(u64);

    impl Draw {
        fn below(&mut self, bound: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % bound
        }
    }

    fn grid() -> LwwGrid {
        LwwGrid::new(LwwGridConfig {
            rows: 16,
            cols: 16,
            ..Default::default()
        })
    }

    /// Applies `writes` random writes (puts and removes) drawn over `keys` keys with small stamp
    /// times, so that two states often agree under a key.
    fn write<C: OpCrdt<Intent = Intent>>(state: &mut C, draw: &mut Draw, writes: u64, keys: u64) {
        for _ in 0..writes {
            let key = draw.below(keys) as u32;
            let intent = if draw.below(5) == 0 {
                Intent::Remove { key }
            } else {
                Intent::Put {
                    key,
                    value: draw.below(3),
                }
            };
            let stamp = Stamp::new(1 + draw.below(3), draw.below(2) as u32);
            let op = state.prepare(&intent, stamp);
            state.apply(&op, &mut FixedCoin(false));
        }
    }

    /// Two states that share a history and then each take a few writes of their own.
    fn pair<C: OpCrdt<Intent = Intent>>(fresh: &C, draw: &mut Draw, keys: u64) -> (C, C) {
        let mut a = fresh.clone();
        write(&mut a, draw, 3 * keys.min(200) / 2, keys);
        let mut b = a.clone();
        let (own_a, own_b) = (draw.below(4), draw.below(4));
        write(&mut a, draw, own_a, keys);
        write(&mut b, draw, own_b, keys);
        (a, b)
    }

    /// Every range of the tree down to the leaves that starts below `below`.
    fn tree(keys: Range<u64>, below: u64) -> Vec<Range<u64>> {
        let mut out = vec![keys.clone()];
        if keys.end - keys.start > LEAF_KEYS {
            for child in children(&keys).into_iter().filter(|c| c.start < below) {
                out.extend(tree(child, below));
            }
        }
        out
    }

    fn no_contexts() -> BTreeMap<u64, u64> {
        BTreeMap::new()
    }

    fn digests_match_parts<C: OpCrdt<Intent = Intent>>(
        fresh: &C,
        keys: u64,
        ranges: &[Range<u64>],
    ) {
        let mut draw = Draw(0x9e37_79b9_7f4a_7c15);
        let (mut equal, mut differing) = (0, 0);
        for _ in 0..300 {
            let (a, b) = pair(fresh, &mut draw, keys);
            for range in ranges {
                let same_part = a.restricted(std::slice::from_ref(range))
                    == b.restricted(std::slice::from_ref(range));
                let same_digest =
                    range_digest(&a, range.clone()) == range_digest(&b, range.clone());
                assert_eq!(same_part, same_digest, "range {range:?} of {a:?} and {b:?}");
                if same_part {
                    equal += 1;
                } else {
                    differing += 1;
                }
            }
        }
        // Both answers must be common, or the test would say nothing.
        assert!(
            equal > 1_000 && differing > 300,
            "{equal} equal, {differing} differing"
        );
    }

    #[test]
    fn range_digests_are_equal_exactly_when_the_ranges_hold_the_same_entries() {
        digests_match_parts(&grid(), 256, &tree(0..256, 256));
        let dict = LwwDict::new(LwwDictConfig::default());
        digests_match_parts(&dict, 300, &tree(0..1 << 32, 300));
    }

    /// What one exchange between `a` (which starts the round) and `b` sends: the ranges each
    /// side ships entries of, the answers included, with the states after merging them.
    fn exchange<C: OpCrdt>(a: &C, b: &C) -> (Vec<RangeDigest>, Vec<RangeDigest>, C, C) {
        let contexts = no_contexts();
        let root = 0..a.key_bound().unwrap();
        let mut digests = vec![RangeDigest {
            digest: range_digest(a, root.clone()),
            keys: root,
        }];
        let (mut sent_by_a, mut sent_by_b) = (Vec::new(), Vec::new());
        // The sides take turns: b answers a's digests first.
        let mut b_turn = true;
        while !digests.is_empty() {
            let own = if b_turn { b } else { a };
            let answer = compare(
                KeyView {
                    state: own,
                    contexts: &contexts,
                },
                &digests,
            );
            if b_turn {
                sent_by_b.extend(answer.entries);
            } else {
                sent_by_a.extend(answer.entries);
            }
            digests = answer.digests;
            b_turn = !b_turn;
        }
        let part = |state: &C, sent: &[RangeDigest]| {
            let mut keys: Vec<Range<u64>> = sent.iter().map(|r| r.keys.clone()).collect();
            keys.sort_by_key(|k| k.start);
            state.restricted(&keys).unwrap()
        };
        let (mut a2, mut b2) = (a.clone(), b.clone());
        // Each receiver merges the part and answers once where it held entries the sender
        // lacked, as on_message does.
        for (sender, receiver, sent) in [(a, &mut b2, &sent_by_a), (b, &mut a2, &sent_by_b)] {
            receiver.merge(&part(sender, sent), &mut FixedCoin(false));
        }
        let answer_to_a = still_differing(
            KeyView {
                state: &b2,
                contexts: &contexts,
            },
            &sent_by_a,
        );
        a2.merge(&part(&b2, &answer_to_a), &mut FixedCoin(false));
        let answer_to_b = still_differing(
            KeyView {
                state: &a2,
                contexts: &contexts,
            },
            &sent_by_b,
        );
        b2.merge(&part(&a2, &answer_to_b), &mut FixedCoin(false));
        (sent_by_a, sent_by_b, a2, b2)
    }

    fn descent_finds_every_differing_key<C: OpCrdt<Intent = Intent>>(fresh: &C, keys: u64) {
        let mut draw = Draw(0x2545_f491_4f6c_dd1d);
        let mut exchanges_with_entries = 0;
        for _ in 0..300 {
            let (a, b) = pair(fresh, &mut draw, keys);
            let (sent_by_a, sent_by_b, a2, b2) = exchange(&a, &b);
            let covered = |key: u64| {
                sent_by_a
                    .iter()
                    .chain(&sent_by_b)
                    .any(|range| range.keys.contains(&key))
            };
            let entries = |state: &C| {
                let mut out = BTreeMap::new();
                state.visit_keys(0..state.key_bound().unwrap(), &mut |entry| {
                    out.insert(entry.key, entry.digest);
                });
                out
            };
            let (in_a, in_b) = (entries(&a), entries(&b));
            for key in in_a.keys().chain(in_b.keys()) {
                if in_a.get(key) != in_b.get(key) {
                    assert!(
                        covered(*key),
                        "key {key} differs and no range sent covers it"
                    );
                }
            }
            // Only ranges that differ are shipped.
            for range in sent_by_a.iter().chain(&sent_by_b) {
                assert_ne!(
                    range_digest(&a, range.keys.clone()),
                    range_digest(&b, range.keys.clone()),
                    "range {:?} was equal",
                    range.keys
                );
            }
            assert_eq!(a2, b2, "one exchange brings both sides level");
            exchanges_with_entries += usize::from(!sent_by_a.is_empty() || !sent_by_b.is_empty());
        }
        assert!(exchanges_with_entries > 100, "{exchanges_with_entries}");
    }

    #[test]
    fn the_descent_finds_every_differing_key_and_one_exchange_levels_both_sides() {
        descent_finds_every_differing_key(&grid(), 256);
        descent_finds_every_differing_key(&LwwDict::new(LwwDictConfig::default()), 300);
    }

    #[test]
    fn equal_entries_with_different_contexts_differ() {
        let mut state = grid();
        let op = state.prepare(&Intent::Put { key: 70, value: 1 }, Stamp::new(5, 0));
        state.apply(&op, &mut FixedCoin(false));
        let (mut one, mut both) = (MerkleNode::default(), MerkleNode::default());
        one.index(1, 70);
        both.index(1, 70);
        // A superseded write to the same cell, held by one side only.
        both.index(0, 70);
        fn view<'a>(state: &'a LwwGrid, node: &'a MerkleNode) -> KeyView<'a, LwwGrid> {
            KeyView {
                state,
                contexts: &node.contexts,
            }
        }
        let root = [RangeDigest {
            keys: 0..256,
            digest: view(&state, &both).range_digest(0..256),
        }];
        let answer = compare(view(&state, &one), &root);
        assert_eq!(answer.entries, Vec::new());
        let differing: Vec<Range<u64>> = answer
            .digests
            .iter()
            .filter(|child| child.digest != view(&state, &both).range_digest(child.keys.clone()))
            .map(|child| child.keys.clone())
            .collect();
        assert_eq!(differing, vec![64..80]);
        // Indexing an update twice counts it once.
        one.index(1, 70);
        both.index(0, 70);
        assert_eq!(view(&state, &one).range_digest(64..80), {
            let mut again = MerkleNode::default();
            again.index(1, 70);
            KeyView {
                state: &state,
                contexts: &again.contexts,
            }
            .range_digest(64..80)
        });
    }

    #[test]
    fn children_cover_a_range_in_at_most_branching_parts() {
        for keys in [0..256, 0..1 << 32, 5..37, 0..17, 100..101] {
            let parts = children(&keys);
            assert!(parts.len() as u64 <= BRANCHING && !parts.is_empty());
            assert_eq!(parts[0].start, keys.start);
            assert_eq!(parts.last().unwrap().end, keys.end);
            assert!(parts.windows(2).all(|w| w[0].end == w[1].start));
        }
    }
}
