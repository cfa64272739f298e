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

use converge_crdt::{digest_round, Intent, OpCrdt, ReplicaId, Stamp, StateCrdt};

use crate::outcome::{NodeId, Observer, Outcome, UpdateSet};
use crate::protocol::{
    Ctx, Protocol, Restart, Snapshot, Update, HEADER_BYTES, MESSAGE_MEMORY_BYTES,
};
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
    make: &dyn Fn(ReplicaId) -> C,
    observer: &mut dyn Observer<C>,
) -> Result<Outcome<C>, ScenarioError> {
    scenario.validate()?;
    refuse_without_key_ranges(&make(0))?;
    run_protocol(scenario, seed, &MerkleAntiEntropy, make, observer)
}

/// Whether `probe`'s type has key ranges: a bound, parts, and a key for an op.
pub fn refuse_without_key_ranges<C: OpCrdt>(probe: &C) -> Result<(), ScenarioError> {
    let op = probe.prepare(&Intent::Put { key: 0, value: 1 }, Stamp::new(1, 0));
    let lacks = if probe.key_bound().is_none() {
        Some("StateCrdt::key_bound")
    } else if probe.restricted(&[]).is_none() {
        Some("StateCrdt::restricted")
    } else if C::op_key(&op).is_none() {
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
