//! What a run produces and what an observer sees while it runs: the trace events, the replicas
//! with their delivered-update sets, the update records, message counts and coverage counters.
//! These types are the contract between the simulator and the checker that judges it.

use converge_crdt::{OpCrdt, ReplicaId, Stamp, UpdateId};
use serde::Serialize;

use crate::scenario::FaultSpec;

/// A node of the network: replicas are `0..replicas`; the relay server, when there is one, is
/// number `replicas`.
pub type NodeId = u32;

/// Why a message was lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DropCause {
    /// The link's drop probability (or a scripted drop).
    Network,
    /// A partition separates sender and receiver.
    Partition,
    /// The receiver (or the relay server) is down, has not joined, or has left.
    Down,
    /// The connection between sender and receiver dropped while the message was in flight, or
    /// was down when it was sent (a `connection-drop` fault).
    Disconnected,
}

/// One thing that happened. Every variant is part of the trace hash.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum EventKind {
    /// A replica issued an update (a local write).
    Write {
        replica: ReplicaId,
        update: UpdateId,
        key: u32,
    },
    Send {
        from: NodeId,
        to: NodeId,
        message: u64,
        bytes: u64,
    },
    /// A message arrived and was processed; `changed` tells whether the receiver's state changed.
    Deliver {
        from: NodeId,
        to: NodeId,
        message: u64,
        changed: bool,
    },
    Drop {
        from: NodeId,
        to: NodeId,
        message: u64,
        cause: DropCause,
    },
    /// The network made a second copy of a message.
    Duplicate {
        from: NodeId,
        to: NodeId,
        message: u64,
    },
    /// Fault number `fault` (an index into [`Outcome::faults`]) started or ended.
    FaultStart {
        fault: u32,
    },
    FaultEnd {
        fault: u32,
    },
    Crash {
        replica: ReplicaId,
    },
    Restart {
        replica: ReplicaId,
    },
    Join {
        replica: ReplicaId,
    },
    Leave {
        replica: ReplicaId,
    },
    /// A protocol timer fired (anti-entropy round, retransmission, delta poll).
    Timer {
        node: NodeId,
    },
    /// The settle period began: no more writes or faults.
    SettleStart,
}

/// An event with its place in the run.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct TraceEvent {
    /// Position in the run, from 0.
    pub index: u64,
    pub at_us: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// A replica's life cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Not started yet (a late joiner).
    Waiting,
    Up,
    Crashed,
    /// Left for good; no longer judged.
    Left,
}

/// The set of updates a replica has delivered, as a bitset over update indices (the order in which
/// updates were issued in the run), with an incrementally maintained fingerprint so that equal
/// sets can be found without comparing bitsets. Two sets with equal fingerprints and lengths are
/// compared bit by bit before anything is concluded.
///
/// Updates spread to every replica roughly in issue order, so in a long run a set is a long run of
/// members from update 0, then a short ragged tail. The full leading words are not stored, only
/// counted (`base_words`): a copy (every state message carries one) and a union cost the tail, not
/// the run's length.
#[derive(Debug, Default)]
pub struct UpdateSet {
    /// Every update below `64 * base_words` is a member.
    base_words: usize,
    /// `words[i]` holds updates `64 * (base_words + i)` and up. Never starts with a full word: full
    /// leading words are folded into `base_words`, which makes the representation canonical (up to
    /// trailing zero words).
    words: Vec<u64>,
    len: u32,
    fingerprint: u64,
}

impl Clone for UpdateSet {
    fn clone(&self) -> Self {
        UpdateSet {
            base_words: self.base_words,
            words: self.words.clone(),
            len: self.len,
            fingerprint: self.fingerprint,
        }
    }

    /// Reuses this set's buffer: state messages are written over spare ones.
    fn clone_from(&mut self, source: &Self) {
        self.base_words = source.base_words;
        self.words.clone_from(&source.words);
        self.len = source.len;
        self.fingerprint = source.fingerprint;
    }
}

impl UpdateSet {
    /// Adds update `index`; returns whether it was new.
    pub fn insert(&mut self, index: u32) -> bool {
        let word = index as usize / 64;
        if word < self.base_words {
            return false;
        }
        let local = word - self.base_words;
        if self.words.len() <= local {
            self.words.resize(local + 1, 0);
        }
        let bit = 1u64 << (index % 64);
        if self.words[local] & bit != 0 {
            return false;
        }
        self.words[local] |= bit;
        self.len += 1;
        self.fingerprint ^= mix64(u64::from(index));
        if local == 0 {
            self.fold_full_words();
        }
        true
    }

    /// Moves full leading words into `base_words`.
    fn fold_full_words(&mut self) {
        let full = self.words.iter().take_while(|w| **w == u64::MAX).count();
        if full > 0 {
            self.words.drain(..full);
            self.base_words += full;
        }
    }

    /// Adds every update of `other`.
    pub fn union_with(&mut self, other: &UpdateSet) {
        let other_end = other.base_words + other.words.len();
        if other_end > self.base_words + self.words.len() {
            self.words.resize(other_end - self.base_words, 0);
        }
        // Words `other` holds in full, then its stored words, from where this set stores its own.
        let from = self.base_words;
        for word in from..other_end.max(other.base_words) {
            let theirs = if word < other.base_words {
                u64::MAX
            } else {
                other.words[word - other.base_words]
            };
            let mine = &mut self.words[word - from];
            let mut new = theirs & !*mine;
            *mine |= new;
            while new != 0 {
                let bit = new.trailing_zeros();
                new &= new - 1;
                self.len += 1;
                self.fingerprint ^= mix64(word as u64 * 64 + u64::from(bit));
            }
        }
        self.fold_full_words();
    }

    pub fn contains(&self, index: u32) -> bool {
        let word = index as usize / 64;
        word < self.base_words
            || self
                .words
                .get(word - self.base_words)
                .is_some_and(|w| w & (1u64 << (index % 64)) != 0)
    }

    /// The memory the set's stored words take, in bytes.
    pub fn memory_bytes(&self) -> u64 {
        8 * self.words.len() as u64
    }

    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// An order-independent hash of the members: equal sets have equal fingerprints.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Whether both hold the same updates. Cheap when they differ in length or fingerprint.
    pub fn same_as(&self, other: &UpdateSet) -> bool {
        if self.len != other.len || self.fingerprint != other.fingerprint {
            return false;
        }
        // The representation is canonical up to trailing zero words: the stored words are
        // compared as slices (one memory comparison) and the longer may only add zeros.
        if self.base_words != other.base_words {
            return false;
        }
        let (shorter, longer) = if self.words.len() <= other.words.len() {
            (&self.words, &other.words)
        } else {
            (&other.words, &self.words)
        };
        shorter[..] == longer[..shorter.len()] && longer[shorter.len()..].iter().all(|w| *w == 0)
    }

    /// The members of this set that `other` lacks, in issue order. It looks only at the words
    /// beyond those `other` holds in full, so it costs the ragged tail, not the run's length.
    pub fn difference<'a>(&'a self, other: &'a UpdateSet) -> impl Iterator<Item = u32> + 'a {
        let end = self.base_words + self.words.len();
        (other.base_words..end.max(other.base_words)).flat_map(move |word| {
            let mut missing = self.word(word) & !other.word(word);
            std::iter::from_fn(move || {
                (missing != 0).then(|| {
                    let bit = missing.trailing_zeros();
                    missing &= missing - 1;
                    word as u32 * 64 + bit
                })
            })
        })
    }

    /// Word `word` of the bitset, whether stored or folded.
    fn word(&self, word: usize) -> u64 {
        if word < self.base_words {
            u64::MAX
        } else {
            self.words.get(word - self.base_words).copied().unwrap_or(0)
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        let end = (self.base_words + self.words.len()) as u32 * 64;
        (0..end).filter(|i| self.contains(*i))
    }
}

impl PartialEq for UpdateSet {
    fn eq(&self, other: &Self) -> bool {
        self.same_as(other)
    }
}

impl Eq for UpdateSet {}

impl std::hash::Hash for UpdateSet {
    /// Equal sets have equal sizes and fingerprints.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.len.hash(state);
        self.fingerprint.hash(state);
    }
}

/// A fixed, version-stable 64-bit mixer (splitmix64's finalizer).
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// One replica as the observer and the outcome see it.
#[derive(Debug)]
pub struct Replica<C> {
    pub id: ReplicaId,
    pub status: Status,
    pub crdt: C,
    pub delivered: UpdateSet,
}

impl<C: Clone> Clone for Replica<C> {
    fn clone(&self) -> Self {
        Replica {
            id: self.id,
            status: self.status,
            crdt: self.crdt.clone(),
            delivered: self.delivered.clone(),
        }
    }

    /// Reuses this replica's buffers where the type's own `clone_from` does: the model checker
    /// copies every replica of a system into the same spare ones before each handler it runs.
    fn clone_from(&mut self, source: &Self) {
        self.id = source.id;
        self.status = source.status;
        self.crdt.clone_from(&source.crdt);
        self.delivered.clone_from(&source.delivered);
    }
}

/// One issued update, recorded where it originated.
#[derive(Clone, Debug, Serialize)]
#[serde(bound = "")]
pub struct UpdateRecord<C: OpCrdt> {
    /// Position in issue order: the bit of this update in every [`UpdateSet`].
    pub index: u32,
    pub id: UpdateId,
    pub at_us: u64,
    pub intent: C::Intent,
    pub stamp: Stamp,
    pub op: C::Op,
    /// When the origin issued this update, the greatest stamp time it had already seen on the same
    /// key, if that time was not below the new stamp's: the new write is causally later than a
    /// write it cannot beat (the intent oracle reports these).
    pub stale_against_time: Option<u64>,
    /// Whether, when issued, another replica's update to the same key was not yet delivered at the
    /// origin (a concurrent write to one key: what conflict coverage counts).
    pub concurrent: bool,
}

/// What an observer sees after each event.
pub struct World<'a, C: OpCrdt> {
    pub now_us: u64,
    pub replicas: &'a [Replica<C>],
    /// The update records kept so far: every one, or for protocols that send whole states the
    /// first `bounds.update_records_kept_max`. At a write event the new update's record is last
    /// either way, so an observer that needs every record takes each one there.
    pub updates: &'a [UpdateRecord<C>],
    /// Replicas whose state or delivered set this event may have changed.
    pub touched: &'a [ReplicaId],
    /// Whether the settle period has begun.
    pub settling: bool,
}

/// Watches a run event by event; the checker's oracles are observers. An observer cannot change
/// the run, except to ask it to stop early.
pub trait Observer<C: OpCrdt> {
    fn on_event(&mut self, event: &TraceEvent, world: &World<'_, C>);

    /// Whether the person running the simulation asked it to stop (Ctrl-C). The run loop asks
    /// every [`INTERRUPT_CHECK_EVENTS`] actions rather than after every event, because the loop
    /// is the hot path; a run that stops this way ends with [`End::Interrupted`].
    fn interrupted(&self) -> bool {
        false
    }
}

/// How many queued actions the run loop handles between two calls of [`Observer::interrupted`].
/// A power of two, so that the check is a mask; at millions of events per second it still
/// notices an interruption within about a millisecond.
pub const INTERRUPT_CHECK_EVENTS: u64 = 1_024;

/// Two observers side by side, each shown every event; the run stops when either asks.
impl<C: OpCrdt, A: Observer<C>, B: Observer<C>> Observer<C> for (A, B) {
    fn on_event(&mut self, event: &TraceEvent, world: &World<'_, C>) {
        self.0.on_event(event, world);
        self.1.on_event(event, world);
    }

    fn interrupted(&self) -> bool {
        self.0.interrupted() || self.1.interrupted()
    }
}

/// An observer that watches nothing.
pub struct NoObserver;

impl<C: OpCrdt> Observer<C> for NoObserver {
    fn on_event(&mut self, _event: &TraceEvent, _world: &World<'_, C>) {}
}

/// Message counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct MessageStats {
    pub sent: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub bytes_sent: u64,
}

/// What the run exercised (non-vacuity). A clean verdict on a run that exercised no conflict is not
/// evidence, and reports say so.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Coverage {
    /// Writes issued while another replica's write to the same key was not yet delivered locally.
    pub concurrent_writes_same_key: u64,
    /// Writes issued while a partition was in force, counted when both sides of it wrote.
    pub writes_both_sides_of_partition: u64,
    /// Deliveries of a duplicate copy.
    pub duplicate_deliveries: u64,
    /// Deliveries that overtook a message sent earlier on the same link.
    pub reordered_deliveries: u64,
    /// Replicas that joined late.
    pub late_joins: u64,
    pub crashes: u64,
    pub restarts: u64,
    /// Retransmissions sent by reliable protocols.
    pub retransmissions: u64,
    /// Connections dropped (`connection-drop` faults that took effect).
    pub connection_drops: u64,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum End {
    /// The run reached the end of its settle period (or ran out of events earlier).
    Completed,
    /// A named bound from [`crate::scenario::Bounds`] was reached.
    BoundReached { bound: String },
    /// The observer asked the run to stop ([`Observer::interrupted`]) before it ended; the
    /// outcome covers the events up to that point.
    Interrupted,
    /// Code the run called panicked (a user's CRDT or protocol, most likely) while handling the
    /// action after event `after_events`; the outcome covers the events up to then, and the
    /// replicas as the panic left them.
    Panicked { message: String, after_events: u64 },
}

/// Everything a run produced.
#[derive(Clone, Debug)]
pub struct Outcome<C: OpCrdt> {
    pub seed: u64,
    /// The hash of the canonical encoding of every trace event: same scenario and seed, same hash.
    pub trace_hash: u64,
    pub events: u64,
    pub end: End,
    pub end_us: u64,
    pub settle_start_us: u64,
    pub replicas: Vec<Replica<C>>,
    /// The relay server's state, where the topology has one.
    pub server: Option<C>,
    /// The update records kept, in issue order: all of them, or for protocols that send whole
    /// states the first `bounds.update_records_kept_max` (see [`Outcome::updates_issued`]).
    pub updates: Vec<UpdateRecord<C>>,
    /// Updates issued in the whole run.
    pub updates_issued: u64,
    pub messages: MessageStats,
    pub coverage: Coverage,
    /// The first `bounds.trace_events_kept_max` events.
    pub trace: Vec<TraceEvent>,
    pub trace_truncated: bool,
    /// The faults in force: the scenario's and, in swarm mode, those drawn from the seed.
    pub faults: Vec<FaultSpec>,
    /// The default links' drop probability in force: the scenario's, or in swarm mode the one drawn
    /// from the seed (a scenario that replays this run without swarm needs it).
    pub network_drop: f64,
    /// The default links' duplicate probability in force, like `network_drop`.
    pub network_duplicate: f64,
    /// Messages still in flight when the run ended (each copy of a duplicate counts): with no
    /// timer that sends, a run that ends with none is quiet for good.
    pub in_flight_at_end: u64,
    /// The seed of every intent the run drew from a generator ([`crate::Replicas::draw_intent`]),
    /// as (update index, seed): what shrinking simplifies an intent from.
    pub intent_seeds: Vec<(u32, u64)>,
}

#[cfg(test)]
mod tests {
    use super::UpdateSet;

    fn set(members: impl IntoIterator<Item = u32>) -> UpdateSet {
        let mut set = UpdateSet::default();
        for member in members {
            set.insert(member);
        }
        set
    }

    /// Random inserts and unions against a plain ordered set: members, sizes and fingerprints
    /// agree, and equal membership is equality whatever the history of folds.
    #[test]
    fn sets_behave_like_plain_sets() {
        use std::collections::BTreeSet;
        let mut next = crate::test_random::below_generator(0x2545_f491_4f6c_dd1du64);
        let mut sets = vec![UpdateSet::default(); 4];
        let mut models = vec![BTreeSet::new(); 4];
        for step in 0..20_000u64 {
            let which = next(4) as usize;
            if next(10) < 8 {
                // Mostly in order, as updates spread, with stragglers.
                let index = (step / 3).saturating_sub(next(200)) as u32;
                assert_eq!(sets[which].insert(index), models[which].insert(index));
            } else {
                let from = next(4) as usize;
                let other = sets[from].clone();
                sets[which].union_with(&other);
                let other_model = models[from].clone();
                models[which].extend(other_model);
            }
            let (actual, model) = (&sets[which], &models[which]);
            assert_eq!(actual.len() as usize, model.len());
            assert_eq!(
                actual.fingerprint(),
                set(model.iter().copied()).fingerprint()
            );
            assert!(actual.iter().eq(model.iter().copied()));
        }
        for a in 0..4 {
            for b in 0..4 {
                assert_eq!(sets[a].same_as(&sets[b]), models[a] == models[b]);
            }
        }
    }

    #[test]
    fn union_past_full_words_counts_and_fingerprints_like_inserting() {
        // The first two words full on one side, scattered members after them on both.
        let mut mine = set((0..128).chain([130, 200]));
        let theirs = set((0..64).chain([129, 130, 300]));
        mine.union_with(&theirs);
        let expected = set((0..128).chain([129, 130, 200, 300]));
        assert_eq!(mine.len(), expected.len());
        assert_eq!(mine.fingerprint(), expected.fingerprint());
        assert!(mine.same_as(&expected));
        // A set whose full prefix is longer than the other's whole bitset.
        let mut long = set(0..256);
        long.union_with(&set([3]));
        assert!(long.same_as(&set(0..256)));
        // Trailing zero words do not make sets differ.
        let mut grown = set([1]);
        grown.union_with(&set([1]));
        grown.insert(500);
        assert!(!grown.same_as(&set([1])));
        assert!(set([1]).same_as(&{
            let mut s = set([1]);
            s.union_with(&UpdateSet::default());
            s
        }));
    }
}
