//! Systems packed into a few words, for a model checker that holds millions of them.
//!
//! A [`System`] owns its replicas, protocol states and messages through shared pointers: making
//! one copies a handful of vectors and touches a dozen reference counts, and on two threads
//! those counts, shared by every system that holds the same replica, bounce between the cores.
//! Yet a model checker meets the same few thousand replicas and messages in millions of
//! combinations. So each replica (with its protocol state and clock), each message, each set of
//! update records, each protocol stream and each set of timers is kept once, in [`Tables`]
//! that only grow, and a [`Packed`] system names them by index: making one allocates one
//! slice of words and touches no shared count. A packed system unpacks into the very system it
//! was packed from ([`Tables::unpack`]), which is how handlers run on it.
//!
//! Where a handler reads only its own node (see [`Handled`]), what a step does is remembered as
//! an [`Effect`] in indices, and [`Tables::foresee`] and [`Tables::make`] give the successor
//! from its parent and the effect without unpacking anything.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

use converge_crdt::{Clock, OpCrdt};

use super::{
    message_word, rest_word, Ending, ExploreSpec, Flight, Handled, HashParts, InFlight, NodeMeta,
    PendingTimer, StepEffect, System, WordHasher,
};
use crate::outcome::{NodeId, Replica, UpdateRecord};
use crate::protocol::Protocol;
use crate::streams::Stream;

/// A system as indices into [`Tables`]: the clock and counters, then one word per node, then
/// five per message in flight (which message, its link, its content hash, its number, when it
/// was sent), in the system's canonical order. Shared, not copied, by the states that hold it.
#[derive(Clone, PartialEq, Eq)]
pub struct Packed {
    words: Arc<[u64]>,
}

const NOW: usize = 0;
const NEXT_TIMER: usize = 1;
const NEXT_MESSAGE: usize = 2;
const STREAM: usize = 3;
const WRITES: usize = 4;
const EXTRAS: usize = 5;
const NODES: usize = 6;
const MESSAGE_WORDS: usize = 5;

/// Set in the extras word of a system that ended or has a connection down: where no effect
/// applies ([`Tables::is_plain`]). Indices stay below it.
const NOT_PLAIN: u64 = 1 << 63;

fn not_plain<C: OpCrdt, P: Protocol<C>>(system: &System<C, P>) -> u64 {
    match system.ending.is_none() && system.connections_down.is_empty() {
        true => 0,
        false => NOT_PLAIN,
    }
}

/// What a step did, in indices: the node it changed, the update records after it, its sends
/// in the order issued, and what the step changes of a system's hash. Made once from a
/// [`Handled`] step ([`Tables::effect`]); it holds for every system whose node, records,
/// extras and time are the ones it was made on ([`Tables::effect_key`]), and
/// [`Tables::foresee`] and [`Tables::make`] apply it there without looking anything up.
#[derive(Clone, Debug)]
pub struct Effect {
    node: u32,
    writes: u32,
    /// What the step adds to [`HashParts::nodes`] (wrapping): the node's new digest less its old.
    nodes_change: u64,
    /// [`HashParts::rest`] after the step, where it changed the records (a write).
    rest: Option<u64>,
    sends: Box<[Sent]>,
    pub step: StepEffect,
}

impl Effect {
    /// Whether the step leaves its node, the records and the network as they were: a delivery
    /// that leaves its message in flight then leads back to the system it came from.
    pub fn changes_nothing(&self) -> bool {
        self.nodes_change == 0 && self.rest.is_none() && self.sends.is_empty()
    }
}

/// One send of an [`Effect`]: the message, and its link, content hash and word in
/// [`HashParts::messages`] (where order does not count).
#[derive(Clone, Copy, Debug)]
struct Sent {
    index: u32,
    link: u64,
    digest: u64,
    word: u64,
}

/// Why [`Tables::foresee`] or [`Tables::make`] made no system: the step would go past a bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PastBound(pub &'static str);

/// One node: its replica, protocol state and clock, and their hash.
struct NodeEntry<C, N> {
    replica: Arc<Replica<C>>,
    state: N,
    clock: Clock,
    digest: u64,
}

/// The update records and how many each replica issued.
struct WritesEntry<C: OpCrdt> {
    records: Arc<Vec<UpdateRecord<C>>>,
    issued: Arc<Vec<u32>>,
    digest: u64,
}

/// What steps other than writes and deliveries change: timers, connections, the ending and the
/// incarnations.
struct Extras<T> {
    timers: Vec<PendingTimer<T>>,
    connections_down: BTreeMap<(NodeId, NodeId), u32>,
    ending: Option<Ending>,
    incarnations: Arc<Vec<u32>>,
}

/// Values kept once each and named by index, in the order first met. Reading one takes no
/// lock: entries never move or change once written.
struct Interned<T> {
    by_key: Mutex<HashMap<u64, u32>>,
    chunks: [OnceLock<Box<[OnceLock<T>]>>; CHUNKS],
}

/// Chunk `k` holds `FIRST_CHUNK << k` entries: about four billion in all.
const CHUNKS: usize = 24;
const FIRST_CHUNK: u64 = 256;

/// The chunk and place of entry `index`.
fn locate(index: u32) -> (usize, usize) {
    let n = u64::from(index) + FIRST_CHUNK;
    let chunk = (63 - n.leading_zeros()) as usize - FIRST_CHUNK.trailing_zeros() as usize;
    (chunk, (n - (FIRST_CHUNK << chunk)) as usize)
}

impl<T> Interned<T> {
    fn new() -> Self {
        Interned {
            by_key: Mutex::new(HashMap::new()),
            chunks: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    fn get(&self, index: u32) -> &T {
        let (chunk, place) = locate(index);
        self.chunks[chunk]
            .get()
            .and_then(|entries| entries[place].get())
            .expect("an index this table gave out")
    }

    /// The index of the value known by `key`, made by `make` the first time.
    fn intern(&self, key: u64, make: impl FnOnce() -> T) -> u32 {
        let mut by_key = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&index) = by_key.get(&key) {
            return index;
        }
        let index = u32::try_from(by_key.len()).expect("fewer than four billion entries");
        let (chunk, place) = locate(index);
        let entries = self.chunks[chunk]
            .get_or_init(|| (0..FIRST_CHUNK << chunk).map(|_| OnceLock::new()).collect());
        assert!(entries[place].set(make()).is_ok(), "a fresh slot");
        by_key.insert(key, index);
        index
    }
}

/// Everything packed systems of one explorer name.
pub struct Tables<C: OpCrdt, P: Protocol<C>> {
    nodes: Interned<NodeEntry<C, P::Node>>,
    /// Each message once (its link and content hash stand beside its index in a packed system).
    messages: Interned<Arc<P::Message>>,
    writes: Interned<WritesEntry<C>>,
    extras: Interned<Extras<P::Timer>>,
    streams: Interned<Arc<Stream>>,
    /// Nodes per system, replicas and servers.
    node_count: usize,
}

fn key_of(value: impl Hash) -> u64 {
    let mut hasher = WordHasher(0);
    value.hash(&mut hasher);
    hasher.finish()
}

impl<C, P> Tables<C, P>
where
    C: OpCrdt<Op: Hash, Intent: Hash> + Hash + 'static,
    P: Protocol<C, Node: Clone + Hash, Timer: Clone + Hash, Message: Hash>,
{
    pub(crate) fn new(node_count: usize) -> Self {
        Tables {
            node_count,
            nodes: Interned::new(),
            messages: Interned::new(),
            writes: Interned::new(),
            extras: Interned::new(),
            streams: Interned::new(),
        }
    }

    fn node(&self, replica: &Arc<Replica<C>>, state: &P::Node, meta: NodeMeta) -> u32 {
        self.nodes.intern(meta.digest, || NodeEntry {
            replica: Arc::clone(replica),
            state: state.clone(),
            clock: meta.clock,
            digest: meta.digest,
        })
    }

    fn message(&self, from: NodeId, to: NodeId, digest: u64, message: &Arc<P::Message>) -> u32 {
        self.messages
            .intern(key_of((from, to, digest)), || Arc::clone(message))
    }

    /// The records are known by every field, not only what the system's hash reads: a record
    /// keeps when it was issued, which replays read.
    fn writes_of(&self, system: &System<C, P>) -> u32 {
        let mut hasher = WordHasher(system.records_digest);
        system.issued.hash(&mut hasher);
        for record in system.records() {
            (record.index, record.id, record.at_us).hash(&mut hasher);
            (record.stale_against_time, record.concurrent).hash(&mut hasher);
        }
        self.writes.intern(hasher.finish(), || WritesEntry {
            records: Arc::clone(&system.records),
            issued: Arc::clone(&system.issued),
            digest: system.records_digest,
        })
    }

    fn extras_of(&self, system: &System<C, P>) -> u32 {
        let mut hasher = WordHasher(0);
        for timer in &system.timers {
            (timer.node, timer.at_us, timer.id, &timer.timer).hash(&mut hasher);
        }
        system.connections_down.hash(&mut hasher);
        system.ending.hash(&mut hasher);
        system.incarnations.hash(&mut hasher);
        self.extras.intern(hasher.finish(), || Extras {
            timers: system.timers.clone(),
            connections_down: system.connections_down.clone(),
            ending: system.ending.clone(),
            incarnations: Arc::clone(&system.incarnations),
        })
    }

    fn stream_of(&self, stream: &Arc<Stream>) -> u32 {
        let position = stream.position();
        self.streams.intern(key_of(position), || Arc::clone(stream))
    }

    /// `system`, packed.
    pub fn pack(&self, system: &System<C, P>) -> Packed {
        let mut words =
            Vec::with_capacity(NODES + system.nodes.len() + MESSAGE_WORDS * system.in_flight.len());
        words.extend([
            system.now_us,
            system.next_timer,
            system.next_message,
            u64::from(self.stream_of(&system.stream)),
            u64::from(self.writes_of(system)),
            u64::from(self.extras_of(system)) | not_plain(system),
        ]);
        for (node, replica) in system.nodes.iter().enumerate() {
            let index = self.node(replica, &system.states[node], system.meta[node]);
            words.push(u64::from(index));
        }
        for m in &system.in_flight {
            let index = self.message(m.from, m.to, m.digest, &m.message);
            words.extend(Flying::of(index, m.from, m.to, m.digest, m.number, m.sent_us).words());
        }
        Packed {
            words: words.into(),
        }
    }

    /// The system `packed` was packed from.
    pub fn unpack(&self, spec: &ExploreSpec, packed: &Packed) -> System<C, P> {
        let words = &packed.words;
        let writes = self.writes.get(packed.index(WRITES));
        let extras = self.extras.get(packed.index(EXTRAS));
        let entries =
            || (0..self.node_count).map(|node| self.nodes.get(packed.index(NODES + node)));
        System {
            now_us: words[NOW],
            nodes: entries().map(|e| Arc::clone(&e.replica)).collect(),
            states: entries().map(|e| e.state.clone()).collect(),
            meta: entries()
                .map(|e| NodeMeta {
                    clock: e.clock,
                    digest: e.digest,
                })
                .collect(),
            records: Arc::clone(&writes.records),
            issued: Arc::clone(&writes.issued),
            in_flight: self
                .flying(packed)
                .map(|m| InFlight {
                    from: m.from,
                    to: m.to,
                    message: Arc::clone(self.messages.get(m.index)),
                    number: m.number,
                    sent_us: m.sent_us,
                    digest: m.digest,
                })
                .collect(),
            timers: extras.timers.clone(),
            next_timer: words[NEXT_TIMER],
            next_message: words[NEXT_MESSAGE],
            stream: Arc::clone(self.streams.get(packed.index(STREAM))),
            ending: extras.ending.clone(),
            stride: spec.writes_per_replica,
            incarnations: Arc::clone(&extras.incarnations),
            connections_down: extras.connections_down.clone(),
            records_digest: writes.digest,
            flight: spec.flight,
        }
    }

    /// The messages in flight of `packed`, in order.
    fn flying<'a>(&self, packed: &'a Packed) -> impl Iterator<Item = Flying> + 'a {
        packed.words[NODES + self.node_count..]
            .chunks_exact(MESSAGE_WORDS)
            .map(Flying::read)
    }

    /// Message `index` in flight of `packed`.
    fn flying_at(&self, packed: &Packed, index: usize) -> Flying {
        let at = NODES + self.node_count + MESSAGE_WORDS * index;
        Flying::read(&packed.words[at..at + MESSAGE_WORDS])
    }

    /// The hash of `packed`'s system in parts, as [`System::hash_parts`] gives it.
    pub fn parts(&self, spec: &ExploreSpec, packed: &Packed) -> HashParts {
        let nodes = (0..self.node_count).map(|node| self.nodes.get(packed.index(NODES + node)));
        let links = self.flying(packed).map(|m| (m.from, m.to, m.digest));
        HashParts {
            rest: self.rest(
                packed.index(WRITES),
                packed.index(EXTRAS),
                packed.words[NOW],
            ),
            nodes: nodes.map(|entry| entry.digest).fold(0, u64::wrapping_add),
            messages: super::messages_word(spec.flight, links),
        }
    }

    /// [`HashParts::rest`] of a system with these writes and extras at `now_us`.
    fn rest(&self, writes: u32, extras: u32, now_us: u64) -> u64 {
        let writes = self.writes.get(writes);
        let extras = self.extras.get(extras);
        rest_word(
            writes.digest,
            &writes.issued,
            &extras.timers,
            now_us,
            &extras.connections_down,
            &extras.ending,
        )
    }

    /// Whether the system has no ending and every connection up: where effects apply.
    pub fn is_plain(&self, packed: &Packed) -> bool {
        packed.words[EXTRAS] & NOT_PLAIN == 0
    }

    /// Whether the system ended.
    pub fn has_ended(&self, packed: &Packed) -> bool {
        self.extras.get(packed.index(EXTRAS)).ending.is_some()
    }

    /// Whether the connection between `a` and `b` is down.
    pub fn is_disconnected(&self, packed: &Packed, a: NodeId, b: NodeId) -> bool {
        let extras = self.extras.get(packed.index(EXTRAS));
        extras.connections_down.contains_key(&(a.min(b), a.max(b)))
    }

    /// The connections that are down, as (lower node, higher node) in increasing order.
    pub fn connections_down(&self, packed: &Packed) -> Vec<(NodeId, NodeId)> {
        let extras = self.extras.get(packed.index(EXTRAS));
        extras.connections_down.keys().copied().collect()
    }

    pub fn timers_pending(&self, packed: &Packed) -> usize {
        self.extras.get(packed.index(EXTRAS)).timers.len()
    }

    /// How many writes `replica` has issued.
    pub fn issued(&self, packed: &Packed, replica: u32) -> u32 {
        self.writes.get(packed.index(WRITES)).issued[replica as usize]
    }

    pub fn in_flight_len(&self, packed: &Packed) -> usize {
        (packed.words.len() - NODES - self.node_count) / MESSAGE_WORDS
    }

    /// Message `index` in flight as (sender, receiver, content hash).
    pub fn link(&self, packed: &Packed, index: usize) -> (NodeId, NodeId, u64) {
        let m = self.flying_at(packed, index);
        (m.from, m.to, m.digest)
    }

    /// A word naming everything a step's effect may depend on: the node it acts on, the update
    /// records, the extras, the time and what `what` adds (the message, a write's choice). Equal words,
    /// equal effects, for protocols whose handlers read only their own node.
    /// `seed` tells models and kinds of step apart; `what` is below 2^32. Every delivery a
    /// model checker offers asks for one, so the indices go in two to a word.
    pub fn effect_key(&self, packed: &Packed, node: NodeId, seed: u64, what: u64) -> u64 {
        let words = &packed.words;
        let mut hasher = WordHasher(seed);
        hasher.write_u64(what << 32 | words[NODES + node as usize]);
        hasher.write_u64(words[WRITES] << 32 ^ words[EXTRAS]);
        hasher.write_u64(words[NOW]);
        hasher.finish()
    }

    /// Carries what is known of deliveries from `parent` to `child`, a system one step on. Bit
    /// `i` of each mask says something of delivering `parent`'s message `i` (of the first 64);
    /// the masks returned say it of `child`'s messages whose delivery has the very
    /// [`Tables::effect_key`] it had in `parent`: the same message in flight in both, and its
    /// receiver's node, the records, the extras and the time unchanged. So a model checker
    /// learns once, not in every state after, that delivering a message changes nothing.
    pub fn carried<const N: usize>(
        &self,
        parent: &Packed,
        child: &Packed,
        masks: [u64; N],
    ) -> [u64; N] {
        let (old, new) = (&parent.words, &child.words);
        let mut carried = [0; N];
        if [WRITES, EXTRAS, NOW].iter().any(|&at| old[at] != new[at]) {
            return carried;
        }
        // Both lists are in canonical order, by link then content: one walk pairs them.
        let start = NODES + self.node_count;
        let order = |m: &[u64]| (m[1], m[2]);
        let mut before = old[start..]
            .chunks_exact(MESSAGE_WORDS)
            .take(64)
            .enumerate();
        let mut paired = before.next();
        for (k, m) in new[start..]
            .chunks_exact(MESSAGE_WORDS)
            .take(64)
            .enumerate()
        {
            while paired.is_some_and(|(_, o)| order(o) < order(m)) {
                paired = before.next();
            }
            let Some((i, o)) = paired else { break };
            // The receiver is the low half of the link word.
            let to = NODES + (m[1] as u32 as usize);
            if o[..3] == m[..3] && old[to] == new[to] {
                for (out, mask) in carried.iter_mut().zip(masks) {
                    *out |= (mask >> i & 1) << k;
                }
            }
        }
        carried
    }

    /// The key of message `index` in flight for [`Tables::effect_key`].
    pub fn message_key(&self, packed: &Packed, index: usize) -> u64 {
        u64::from(self.flying_at(packed, index).index)
    }

    /// What a step that `handled` describes did to node `node` of `parent`, in indices; `next`
    /// is the system it made (for a write's records).
    pub fn effect(
        &self,
        parent: &Packed,
        handled: &Handled<C, P>,
        node: NodeId,
        next: &System<C, P>,
    ) -> Effect {
        let meta = NodeMeta {
            clock: handled.clock,
            digest: handled.step.node_digest,
        };
        let old = self.nodes.get(parent.index(NODES + node as usize)).digest;
        let writes = self.writes_of(next);
        let rest = (u64::from(writes) != parent.words[WRITES])
            .then(|| self.rest(writes, parent.index(EXTRAS), parent.words[NOW]));
        let sends = handled.step.sends.iter().zip(&handled.messages);
        let sends = sends.map(|(&(to, digest), message)| Sent {
            index: self.message(node, to, digest, message),
            link: link_word(node, to),
            digest,
            word: message_word(node, to, digest, 0),
        });
        Effect {
            node: self.node(&handled.replica, &handled.state, meta),
            writes,
            nodes_change: meta.digest.wrapping_sub(old),
            rest,
            sends: sends.collect(),
            step: handled.step.effect,
        }
    }

    /// The hash in parts of the system `change` makes of `packed`, without making it: what
    /// [`Tables::make`] would give. Mirrors `System::flush` and `System::settle`: a set
    /// keeps one copy, the bounds apply. The caller knows the system is plain
    /// ([`Tables::is_plain`]) and that an effect was made on the same node, records, extras
    /// and time.
    pub fn foresee(
        &self,
        spec: &ExploreSpec,
        (packed, parts): (&Packed, HashParts),
        change: &Change<'_>,
    ) -> Result<HashParts, PastBound> {
        let mut next = parts;
        if let Some(effect) = change.effect {
            next.nodes = parts.nodes.wrapping_add(effect.nodes_change);
            next.rest = effect.rest.unwrap_or(parts.rest);
        }
        if spec.flight == Flight::Queues {
            // A removal moves the messages behind it up their queue: count them all again.
            let made = self.make(spec, packed, change)?;
            next.messages = self.parts(spec, &made).messages;
            return Ok(next);
        }
        let messages = self.message_words(packed);
        let kept = |at: usize| Some(at) != change.removed;
        if let Some(index) = change.removed {
            let m = Flying::read(&messages[MESSAGE_WORDS * index..]);
            let word = message_word(m.from, m.to, m.digest, 0);
            next.messages = next.messages.wrapping_sub(word);
        }
        let mut count = messages.len() / MESSAGE_WORDS - usize::from(change.removed.is_some());
        let sends = change.effect.map_or(&[][..], |effect| &effect.sends);
        // Whether send `j` joins the network: a set keeps one copy of a message.
        let joins = |j: usize| {
            let index = u64::from(sends[j].index);
            let mut flying = messages.chunks_exact(MESSAGE_WORDS).enumerate();
            spec.flight != Flight::Set
                || !(sends[..j].iter().any(|e| e.index == sends[j].index)
                    || flying.any(|(at, m)| kept(at) && m[0] == index))
        };
        for (sent, send) in sends.iter().enumerate() {
            if !joins(sent) {
                continue;
            }
            let flying = messages.chunks_exact(MESSAGE_WORDS).enumerate();
            let on_link = flying
                .filter(|(at, m)| kept(*at) && m[1] == send.link)
                .count()
                + (0..sent)
                    .filter(|&j| sends[j].link == send.link && joins(j))
                    .count();
            if on_link + 1 > spec.link_max {
                return Err(PastBound("link_max"));
            }
            next.messages = next.messages.wrapping_add(send.word);
            count += 1;
        }
        if count > spec.in_flight_max {
            return Err(PastBound("in_flight_max"));
        }
        Ok(next)
    }

    /// The words of `packed`'s messages in flight.
    fn message_words<'a>(&self, packed: &'a Packed) -> &'a [u64] {
        &packed.words[NODES + self.node_count..]
    }

    /// The system `change` makes of `packed`: message `removed` goes, the node takes the
    /// effect's state, and its sends join the network numbered in turn (a set keeping one
    /// copy), each after every message it does not sort before, as the canonical order's
    /// stable sort places it.
    pub fn make(
        &self,
        spec: &ExploreSpec,
        packed: &Packed,
        change: &Change<'_>,
    ) -> Result<Packed, PastBound> {
        // The words are put together in a buffer the thread keeps, then copied once into
        // the shared slice: one allocation for every state made.
        thread_local! {
            static WORDS: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
        }
        WORDS.with_borrow_mut(|words| {
            words.clear();
            words.extend_from_slice(&packed.words);
            self.apply(spec, words, change)?;
            Ok(Packed {
                words: Arc::from(&words[..]),
            })
        })
    }

    /// Applies `change` to a packed system's `words` (see [`Tables::make`]).
    fn apply(
        &self,
        spec: &ExploreSpec,
        words: &mut Vec<u64>,
        change: &Change<'_>,
    ) -> Result<(), PastBound> {
        let start = NODES + self.node_count;
        if let Some(index) = change.removed {
            let at = start + MESSAGE_WORDS * index;
            words.drain(at..at + MESSAGE_WORDS);
        }
        if let Some(effect) = change.effect {
            words[NODES + change.node as usize] = u64::from(effect.node);
            words[WRITES] = u64::from(effect.writes);
            for send in effect.sends.iter() {
                let number = words[NEXT_MESSAGE];
                words[NEXT_MESSAGE] += 1;
                let messages = words[start..].chunks_exact(MESSAGE_WORDS);
                if spec.flight == Flight::Set
                    && messages.clone().any(|m| m[0] == u64::from(send.index))
                {
                    continue;
                }
                let key = |m: &[u64]| match spec.flight {
                    Flight::Queues => (m[1], 0),
                    Flight::Bag | Flight::Set => (m[1], m[2]),
                };
                let new = [
                    u64::from(send.index),
                    send.link,
                    send.digest,
                    number,
                    words[NOW],
                ];
                // After every message it does not sort before: a stable sort's place.
                let place = messages.clone().take_while(|m| key(m) <= key(&new)).count();
                let on_link = messages.filter(|m| m[1] == send.link).count() + 1;
                let at = start + MESSAGE_WORDS * place;
                words.splice(at..at, new);
                if on_link > spec.link_max {
                    return Err(PastBound("link_max"));
                }
            }
        }
        if (words.len() - start) / MESSAGE_WORDS > spec.in_flight_max {
            return Err(PastBound("in_flight_max"));
        }
        Ok(())
    }
}

/// A message's link as one word: sender above receiver, so that words sort as links do.
fn link_word(from: NodeId, to: NodeId) -> u64 {
    u64::from(from) << 32 | u64::from(to)
}

/// A step a packed system takes without running a handler: message `removed` goes (delivered
/// or lost), and `effect`, if any, is what the handler of `node` did.
pub struct Change<'a> {
    pub node: NodeId,
    pub removed: Option<usize>,
    pub effect: Option<&'a Effect>,
}

/// A message in flight in a packed system: which message, its link and content hash (what
/// orders and hashes it, kept beside it so that neither looks it up), its number and when it
/// was sent.
#[derive(Clone, Copy)]
struct Flying {
    index: u32,
    from: NodeId,
    to: NodeId,
    digest: u64,
    number: u64,
    sent_us: u64,
}

impl Flying {
    fn of(index: u32, from: NodeId, to: NodeId, digest: u64, number: u64, sent_us: u64) -> Self {
        Flying {
            index,
            from,
            to,
            digest,
            number,
            sent_us,
        }
    }

    fn read(words: &[u64]) -> Self {
        Flying {
            index: words[0] as u32,
            from: (words[1] >> 32) as NodeId,
            to: words[1] as NodeId,
            digest: words[2],
            number: words[3],
            sent_us: words[4],
        }
    }

    fn words(&self) -> [u64; MESSAGE_WORDS] {
        let link = link_word(self.from, self.to);
        [
            u64::from(self.index),
            link,
            self.digest,
            self.number,
            self.sent_us,
        ]
    }
}

impl Packed {
    fn index(&self, at: usize) -> u32 {
        self.words[at] as u32
    }
}

#[cfg(test)]
mod tests {
    use converge_crdt::{Intent, LwwGrid, LwwGridConfig};

    use super::*;
    use crate::explore::Explorer;
    use crate::protocol::{Ctx, Update};
    use crate::scenario::ProtocolSpec;

    /// Sends node 1 a greeting that never changes, then the update's number.
    struct Twice;

    impl<C: OpCrdt> Protocol<C> for Twice {
        type Message = u32;
        type Node = ();
        type Timer = ();

        fn init(&self, _ctx: &Ctx<'_, C, Self>) -> Self::Node {}

        fn on_write(&self, _node: &mut (), update: Update, ctx: &mut Ctx<'_, C, Self>) {
            ctx.send(1, 0);
            ctx.send(1, update.0 + 1);
        }

        fn on_message(&self, _: &mut (), _: NodeId, _: &u32, _: &mut Ctx<'_, C, Self>) {}
    }

    /// What is known of a message's delivery goes with the message to the system one step on
    /// where nothing its key reads changed, to its new place, and nowhere after a write.
    #[test]
    fn what_is_known_of_a_delivery_moves_with_its_message() {
        let spec = ExploreSpec {
            flight: Flight::Set,
            ..ExploreSpec::new(2, ProtocolSpec::default(), 2)
        };
        let explorer = Explorer::new(spec, Twice, |_| LwwGrid::new(LwwGridConfig::default()));
        let tables = explorer.tables();
        let put = |key| Intent::Put { key, value: 1 };
        // Two messages to node 1: the greeting (first in the canonical order) and the number.
        let two = explorer.start().write(&explorer, 0, put(0));
        let parent = tables.pack(&two);
        assert_eq!(tables.in_flight_len(&parent), 2);
        let greeting = tables.link(&parent, 0);
        let one = tables.pack(&two.drop_message(0));
        assert_ne!(
            tables.link(&one, 0),
            greeting,
            "the number moved to the front"
        );
        assert_eq!(tables.carried(&parent, &one, [0b10, 0b01]), [0b01, 0b00]);
        assert_eq!(tables.carried(&parent, &parent, [0b11]), [0b11]);
        let written = tables.pack(&two.write(&explorer, 0, put(1)));
        assert_eq!(tables.carried(&parent, &written, [0b11]), [0b00]);
    }

    /// Regression: a foresight counted a send the set already held as taking room on its link,
    /// and refused a step the made system keeps within the bound.
    #[test]
    fn a_send_a_set_already_holds_takes_no_room_on_its_link() {
        let spec = ExploreSpec {
            flight: Flight::Set,
            link_max: 3,
            ..ExploreSpec::new(2, ProtocolSpec::default(), 2)
        };
        let explorer = Explorer::new(spec, Twice, |_| LwwGrid::new(LwwGridConfig::default()));
        let tables = explorer.tables();
        let first = explorer
            .start()
            .write(&explorer, 0, Intent::Put { key: 0, value: 1 });
        let put = Intent::Put { key: 1, value: 2 };
        let (second, handled) = first.write_traced(&explorer, 0, put);
        let handled = handled.expect("a step that only changes its node and sends");
        let packed = tables.pack(&first);
        let effect = tables.effect(&packed, &handled, 0, &second);
        let change = Change {
            node: 0,
            removed: None,
            effect: Some(&effect),
        };
        let made = tables
            .make(&spec, &packed, &change)
            .expect("within the bounds");
        let foreseen = tables.foresee(&spec, (&packed, first.hash_parts()), &change);
        assert_eq!(foreseen, Ok(tables.parts(&spec, &made)));
        assert_eq!(foreseen, Ok(second.hash_parts()));
        assert_eq!(tables.unpack(&spec, &made).in_flight().len(), 3);
    }
}
