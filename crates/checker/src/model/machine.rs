//! The stateright [`Model`]: initial state, actions, transitions and properties.
//!
//! Transitions rebuild the crate's real `LwwGrid` or `LwwDict` from a replica's slots, run the real
//! `merge`, `prepare` and `apply` (and so the real `incoming_wins` tie-break), and read the slots
//! back. The model never reimplements a merge rule, so a bug the checker finds is a bug in the
//! crate's code, not in a copy of it.
//!
//! Rebuilding a CRDT costs allocations, and the same replica receives the same payload in many
//! states, so every transition of one replica (a receive with a given coin pattern, a write) is
//! memoized per checker thread, keyed by the packed replica and payload. The memo holds results
//! of the crate's code, never a rule of its own.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use converge_crdt::dict::Entry;
use converge_crdt::{
    Clock, ClockKind, Coin, DictOp, FixedCoin, GridOp, Intent, LwwDict, LwwDictConfig, LwwGrid,
    LwwGridConfig, OpCrdt, Stamp, StateCrdt, TieBreak,
};
use stateright::{Model, Property};

use super::state::{
    Flight, Message, ModelStamp, ModelState, Payload, ReplicaState, Slot, Slots, MAX_WRITES,
};
use super::{ModelCrdt, ModelProtocol, NetworkKind};

/// The property names, in the order the report prefers them when several fail at the same depth.
pub(crate) const STRONG_CONVERGENCE: &str = "strong convergence";
pub(crate) const QUIESCENT_CONVERGED: &str = "quiescent implies converged";
pub(crate) const CONFLICT_OCCURS: &str = "a conflict occurs";
pub(crate) const EXPLORE: &str = "explore everything";

/// A validated configuration in the model's small integers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ModelSpec {
    pub crdt: ModelCrdt,
    pub protocol: ModelProtocol,
    pub network: NetworkKind,
    pub replicas: u8,
    pub writes_per_replica: u8,
    pub keys: u8,
    /// 0: every replica writes its own value (its id + 1); otherwise any value in `1..=values`.
    pub values: u8,
    pub drops: u8,
}

impl ModelSpec {
    pub(crate) fn tie_break(&self) -> TieBreak {
        match self.crdt {
            ModelCrdt::Grid { tie_break } | ModelCrdt::Dict { tie_break, .. } => tie_break,
        }
    }

    /// Whether renaming replicas commutes with every transition, which symmetry reduction needs.
    ///
    /// Replica ids enter a transition in four places: message ends, update ids, the replica id in
    /// stamps, and the tie-break. The first three are renamed consistently by the representative.
    /// The tie-break is the problem: `peer-id` lets the greater replica id win an equal-time tie, so
    /// after swapping two replicas the *other* write wins, and a state reached with one order would
    /// be continued with the other. That is unsound (it can report divergence between two replicas
    /// that resolved the same tie under different orders), so peer-id configurations run without
    /// symmetry. `keep-local` and `random` never look at replica ids, and the dictionary's removes
    /// compare only times once their replica id is forgotten (see `Slot`), so those configurations
    /// are symmetric: every replica runs the same program (write `k` goes to key `k % keys`, with
    /// any value, or with its own value, which is then renamed along with the replica: neither
    /// tie-break looks at values beyond equality, and views stay equal or unequal under a renaming
    /// of values), starts empty, and talks to every other replica.
    pub fn symmetry_is_sound(&self) -> bool {
        self.tie_break() != TieBreak::PeerId
    }

    pub(crate) fn flight(&self) -> Flight {
        match self.network {
            NetworkKind::Reliable | NetworkKind::Lossy => Flight::Fifo,
            NetworkKind::Reordering => Flight::Multiset,
            NetworkKind::Duplicating | NetworkKind::LossyDuplicating => Flight::Set,
        }
    }

    pub(crate) fn lossy(&self) -> bool {
        matches!(
            self.network,
            NetworkKind::Lossy | NetworkKind::LossyDuplicating
        )
    }

    /// The choices a write of `replica` offers: its own value or every value, and for the
    /// dictionary a remove (value 0).
    fn write_values(&self, replica: u8) -> impl Iterator<Item = u8> {
        let remove = matches!(self.crdt, ModelCrdt::Dict { .. });
        let (first, last) = if self.values == 0 {
            (replica + 1, replica + 1)
        } else {
            (1, self.values)
        };
        (first..=last).chain(remove.then_some(0))
    }
}

/// What the checker is asked to do with the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The three real properties.
    Verify,
    /// One property that always holds, so that stateright never stops early and never skips
    /// expanding a state: for counting the whole state space.
    Explore,
}

/// One step of the model. Messages are carried whole so that a path reads on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModelAction {
    /// Replica `replica` issues its next write; `value` 0 is a remove.
    Write { replica: u8, value: u8 },
    /// Deliver a message whose delivery flips no coin.
    Deliver(Message),
    /// Deliver a message under the random tie-break: bit `i` of `coins` is the `i`-th flip the
    /// merge asks for, `flips` how many it asks for.
    DeliverWithCoin {
        message: Message,
        coins: u8,
        flips: u8,
    },
    /// Lose a message (lossy networks, while the drop budget lasts).
    Drop(Message),
    /// Anti-entropy: `from` sends its whole current state to `to`.
    Sync { from: u8, to: u8 },
}

/// The stateright model for one configuration.
#[derive(Clone, Debug)]
pub(crate) struct ConvergeModel {
    pub spec: ModelSpec,
    pub mode: Mode,
    /// Names this model's entries in the per-thread memo (clones share it: same spec, same
    /// transitions).
    memo_id: u64,
    /// When to stop exploring; see [`ConvergeModel::with_deadline`].
    deadline: Option<Deadline>,
}

/// A wall-clock limit on a run, enforced through `within_boundary`.
///
/// Stateright's own timeout closes its job market, but a checker thread looks at the market only
/// when its own queue of states runs dry; with one thread that is the end of the search, so a
/// single-threaded run ignored its timeout and explored everything. Past the deadline every new
/// state is outside the boundary: the threads drain what they hold and stop, and the run, which
/// lasted its whole budget, is reported inconclusive.
#[derive(Clone, Debug)]
struct Deadline {
    at: Instant,
    /// Set once the deadline has passed, for every thread of the run.
    passed: Arc<AtomicBool>,
}

/// `within_boundary` reads the clock once per this many calls on each thread: about every
/// hundred microseconds at the speeds seen here, for a few nanoseconds a call.
const DEADLINE_CHECK_CALLS: u32 = 256;

thread_local! {
    static DEADLINE_COUNTDOWN: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

impl Deadline {
    fn passed(&self) -> bool {
        if self.passed.load(Ordering::Relaxed) {
            return true;
        }
        let check = DEADLINE_COUNTDOWN.with(|countdown| {
            let left = countdown.get();
            countdown.set(left.checked_sub(1).unwrap_or(DEADLINE_CHECK_CALLS));
            left == 0
        });
        if check && Instant::now() >= self.at {
            self.passed.store(true, Ordering::Relaxed);
            return true;
        }
        false
    }
}

/// A coin that answers from a bit pattern and counts how often it was asked.
struct PatternCoin {
    bits: u8,
    flips: u8,
}

impl Coin for PatternCoin {
    fn flip(&mut self) -> bool {
        let side = self.flips < 8 && self.bits & (1 << self.flips) != 0;
        self.flips = self.flips.saturating_add(1);
        side
    }
}

/// The crate's data type, rebuilt from slots.
enum Data {
    Grid(LwwGrid),
    Dict(LwwDict),
}

/// A model write as an intent: value 0 stands for a remove.
fn intent_of(key: u8, value: u8) -> Intent {
    if value == 0 {
        Intent::Remove {
            key: u32::from(key),
        }
    } else {
        Intent::Put {
            key: u32::from(key),
            value: u64::from(value),
        }
    }
}

// The model's integers are all tiny (times up to 12, values up to 4, keys up to 4, replicas up to
// 4), so the narrowing casts below cannot truncate anything the model put in.
fn stamp_of(stamp: ModelStamp) -> Stamp {
    Stamp::new(u64::from(stamp.time), u32::from(stamp.replica))
}

fn model_stamp(stamp: Stamp) -> ModelStamp {
    ModelStamp {
        time: stamp.time as u8,
        replica: stamp.replica as u8,
    }
}

/// The dictionary entry a slot stands for. A remove's replica id is not kept (see `Slot`); 0
/// stands in for it.
fn entry_of(slot: &Slot) -> Entry {
    Entry {
        add: slot
            .add
            .map(|(stamp, value)| (stamp_of(stamp), u64::from(value))),
        remove: slot.remove.map(|time| Stamp::new(u64::from(time), 0)),
    }
}

/// Entries one checker thread's memo holds at most; it starts over when full. A quarter of a
/// million entries is about 20 MB per thread, and the models explored here need far fewer.
const MEMO_ENTRIES_MAX: usize = 1 << 18;

/// A transition of one replica.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum MemoKey {
    Receive {
        replica: u128,
        payload: u128,
        coins: u8,
    },
    Write {
        replica: u128,
        writer: u8,
        value: u8,
    },
}

/// The replica after the transition, and the coin flips it asked for.
type MemoValue = (u128, u8);

struct Memo {
    model: u64,
    entries: HashMap<MemoKey, MemoValue, BuildHasherDefault<WordHasher>>,
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo {
        model: 0,
        entries: HashMap::default(),
    });
}

static NEXT_MEMO_ID: AtomicU64 = AtomicU64::new(1);

/// `compute()`, or what it returned last time for `key` under model `model`.
fn memoized(model: u64, key: MemoKey, compute: impl FnOnce() -> MemoValue) -> MemoValue {
    let hit = MEMO.with(|memo| {
        let mut memo = memo.borrow_mut();
        if memo.model != model {
            memo.entries.clear();
            memo.model = model;
        }
        memo.entries.get(&key).copied()
    });
    if let Some(value) = hit {
        return value;
    }
    let value = compute();
    MEMO.with(|memo| {
        let mut memo = memo.borrow_mut();
        if memo.entries.len() >= MEMO_ENTRIES_MAX {
            memo.entries.clear();
        }
        memo.entries.insert(key, value);
    });
    value
}

/// A multiply-rotate hasher over machine words (the FxHash recipe): memo keys are a few packed
/// words, for which SipHash would cost more than the lookup saves. Never used for fingerprints.
#[derive(Default)]
struct WordHasher(u64);

impl WordHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    fn write_u128(&mut self, value: u128) {
        self.add(value as u64);
        self.add((value >> 64) as u64);
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    fn write_isize(&mut self, value: isize) {
        self.add(value as u64);
    }
}

fn state_payload(replica: ReplicaState) -> Payload {
    Payload::State {
        slots: replica.slots(),
        updates: replica.delivered(),
    }
}

impl ConvergeModel {
    pub(crate) fn new(spec: ModelSpec, mode: Mode) -> ConvergeModel {
        ConvergeModel {
            spec,
            mode,
            memo_id: NEXT_MEMO_ID.fetch_add(1, Ordering::Relaxed),
            deadline: None,
        }
    }

    /// The same model, exploring nothing new after `at`.
    pub(crate) fn with_deadline(&self, at: Instant) -> ConvergeModel {
        ConvergeModel {
            deadline: Some(Deadline {
                at,
                passed: Arc::new(AtomicBool::new(false)),
            }),
            ..self.clone()
        }
    }

    fn build(&self, slots: Slots) -> Data {
        let coin = &mut FixedCoin(false);
        match self.spec.crdt {
            ModelCrdt::Grid { tie_break } => {
                let mut grid = LwwGrid::new(LwwGridConfig {
                    rows: 1,
                    cols: u32::from(self.spec.keys),
                    tie_break,
                });
                for (cell, slot) in slots.iter(self.spec.keys).enumerate() {
                    if let Some((stamp, value)) = slot.add {
                        // Applying to an empty cell always wins, so no coin is consulted.
                        grid.apply(
                            &GridOp {
                                cell: cell as u32,
                                value: (value != 0).then_some(u64::from(value)),
                                stamp: stamp_of(stamp),
                            },
                            coin,
                        );
                    }
                }
                Data::Grid(grid)
            }
            ModelCrdt::Dict { bias, tie_break } => {
                let mut dict = LwwDict::new(LwwDictConfig { bias, tie_break });
                for (key, slot) in slots.iter(self.spec.keys).enumerate() {
                    let entry = entry_of(&slot);
                    if let Some((stamp, value)) = entry.add {
                        dict.apply(
                            &DictOp::Add {
                                key: key as u32,
                                value,
                                stamp,
                            },
                            coin,
                        );
                    }
                    if let Some(stamp) = entry.remove {
                        dict.apply(
                            &DictOp::Remove {
                                key: key as u32,
                                stamp,
                            },
                            coin,
                        );
                    }
                }
                Data::Dict(dict)
            }
        }
    }

    fn read(&self, data: &Data) -> Slots {
        let mut slots = Slots::default();
        for key in 0..u32::from(self.spec.keys) {
            let slot = match data {
                Data::Grid(grid) => Slot {
                    add: grid
                        .cell(key)
                        .map(|cell| (model_stamp(cell.stamp), cell.value.unwrap_or(0) as u8)),
                    remove: None,
                },
                Data::Dict(dict) => match dict.entry(key) {
                    None => Slot::default(),
                    Some(entry) => Slot {
                        add: entry
                            .add
                            .map(|(stamp, value)| (model_stamp(stamp), value as u8)),
                        remove: entry.remove.map(|stamp| stamp.time as u8),
                    },
                },
            };
            slots.set(key as usize, slot);
        }
        slots
    }

    /// What a user sees of one key: the value or nothing.
    fn view_of(&self, slot: Slot) -> Option<u8> {
        match self.spec.crdt {
            ModelCrdt::Grid { .. } => slot.add.map(|(_, value)| value).filter(|v| *v != 0),
            ModelCrdt::Dict { bias, .. } => entry_of(&slot).lookup(bias).map(|v| v as u8),
        }
    }

    /// What a user of replica data sees: per key, the value or nothing.
    pub(crate) fn view(&self, slots: Slots) -> Vec<Option<u8>> {
        slots
            .iter(self.spec.keys)
            .map(|s| self.view_of(s))
            .collect()
    }

    fn same_view(&self, a: Slots, b: Slots) -> bool {
        a == b
            || a.iter(self.spec.keys)
                .zip(b.iter(self.spec.keys))
                .all(|(x, y)| self.view_of(x) == self.view_of(y))
    }

    /// The replica after receiving `message`, and how many coin flips the merge asked for.
    fn receive(&self, replica: ReplicaState, message: Message, coins: u8) -> (ReplicaState, u8) {
        let key = MemoKey::Receive {
            replica: replica.bits(),
            payload: message.payload_bits(),
            coins,
        };
        let (bits, flips) = memoized(self.memo_id, key, || {
            let (received, flips) = self.receive_uncached(replica, message.payload(), coins);
            (received.bits(), flips)
        });
        (ReplicaState::from_bits(bits), flips)
    }

    fn receive_uncached(
        &self,
        replica: ReplicaState,
        payload: Payload,
        coins: u8,
    ) -> (ReplicaState, u8) {
        let mut data = self.build(replica.slots());
        let mut coin = PatternCoin {
            bits: coins,
            flips: 0,
        };
        let mut clock = Clock {
            kind: ClockKind::Lamport,
            skew: Default::default(),
            last: u64::from(replica.clock()),
        };
        let delivered = match payload {
            Payload::State { slots, updates } => {
                let incoming = self.build(slots);
                match (&mut data, &incoming) {
                    (Data::Grid(local), Data::Grid(other)) => {
                        local.merge(other, &mut coin);
                        clock.observe(other.time_max());
                    }
                    (Data::Dict(local), Data::Dict(other)) => {
                        local.merge(other, &mut coin);
                        clock.observe(other.time_max());
                    }
                    // Both sides are built from the same spec, so the kinds always agree.
                    _ => {}
                }
                replica.delivered() | updates
            }
            Payload::Op {
                update,
                key,
                value,
                stamp,
            } => {
                let intent = intent_of(key, value);
                apply_intent(&mut data, &intent, stamp_of(stamp), &mut coin);
                clock.observe(u64::from(stamp.time));
                replica.delivered() | (1 << update)
            }
        };
        let next = ReplicaState::new(
            self.read(&data),
            clock.last as u8,
            replica.writes_done(),
            delivered,
        );
        (next, coin.flips)
    }

    /// How many coin flips delivering `message` to `replica` asks for. Only the random tie-break
    /// flips coins, so the others skip the dry run.
    fn flips(&self, replica: ReplicaState, message: Message) -> u8 {
        if self.spec.tie_break() != TieBreak::Random {
            return 0;
        }
        self.receive(replica, message, 0).1
    }

    /// Whether delivering `message` to `replica` would change it under some coin.
    fn would_change(&self, replica: ReplicaState, message: Message) -> bool {
        let flips = self.flips(replica, message).min(7);
        (0..1u16 << flips).any(|bits| self.receive(replica, message, bits as u8).0 != replica)
    }

    /// All writes issued, and nothing in flight (and, with anti-entropy, no possible exchange)
    /// would change any replica.
    pub(crate) fn quiescent(&self, state: &ModelState) -> bool {
        if state
            .replicas()
            .iter()
            .any(|r| r.writes_done() < self.spec.writes_per_replica)
        {
            return false;
        }
        if state
            .in_flight
            .iter()
            .any(|m| self.would_change(state.replica(usize::from(m.to())), *m))
        {
            return false;
        }
        if self.spec.protocol == ModelProtocol::AntiEntropy {
            for (from, sender) in state.replicas().iter().enumerate() {
                for (to, receiver) in state.replicas().iter().enumerate() {
                    let exchange = Message::new(from as u8, to as u8, state_payload(*sender));
                    if from != to && self.would_change(*receiver, exchange) {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Whether every replica sees the same thing.
    pub(crate) fn converged(&self, state: &ModelState) -> bool {
        let replicas = state.replicas();
        replicas
            .iter()
            .skip(1)
            .all(|r| self.same_view(r.slots(), replicas[0].slots()))
    }

    fn strongly_convergent(&self, state: &ModelState) -> bool {
        let replicas = state.replicas();
        for (i, a) in replicas.iter().enumerate() {
            for b in &replicas[i + 1..] {
                if a.delivered() == b.delivered() && !self.same_view(a.slots(), b.slots()) {
                    return false;
                }
            }
        }
        true
    }

    /// Two replicas hold different writes to one key with equal stamp times (or, in the dictionary,
    /// an add and a remove with equal times): exactly where tie-breaks and biases decide.
    fn conflict(&self, state: &ModelState) -> bool {
        let replicas = state.replicas();
        for key in 0..usize::from(self.spec.keys) {
            for (i, a) in replicas.iter().enumerate() {
                let a = a.slots().get(key);
                for b in &replicas[i..] {
                    let b = b.slots().get(key);
                    if let (Some((sa, va)), Some((sb, vb))) = (a.add, b.add) {
                        if sa.time == sb.time && (sa, va) != (sb, vb) {
                            return true;
                        }
                    }
                    if let (Some((sa, _)), Some(tb)) = (a.add, b.remove) {
                        if sa.time == tb {
                            return true;
                        }
                    }
                    if let (Some(ta), Some((sb, _))) = (a.remove, b.add) {
                        if sb.time == ta {
                            return true;
                        }
                    }
                }
            }
        }
        false
    }

    /// Whether message `index` in flight may be delivered next: on FIFO networks only the head of
    /// each link; elsewhere any message, identical copies counting as one choice.
    fn deliverable(state: &ModelState, index: usize) -> bool {
        let message = state.in_flight[index];
        let Some(previous) = index.checked_sub(1).map(|p| state.in_flight[p]) else {
            return true;
        };
        match state.flight {
            Flight::Fifo => (previous.from(), previous.to()) != (message.from(), message.to()),
            Flight::Multiset | Flight::Set => previous != message,
        }
    }

    /// The anti-entropy exchange `from -> to`, if one may start now.
    ///
    /// Real anti-entropy compares digests first and ships state only where they differ, and runs
    /// one exchange per peer at a time; the model does the same: an exchange starts only when the
    /// two replicas' data differ, and only while no exchange is in flight on that link (on
    /// duplicating networks, where messages never leave, while that same message is not already in
    /// flight). Without these rules the queues grow with every stale copy of every state, and the
    /// state space with them, for no behaviour a later exchange could not show.
    pub(crate) fn sync_message(&self, state: &ModelState, from: u8, to: u8) -> Option<Message> {
        let sender = *state.replicas().get(usize::from(from))?;
        let receiver = *state.replicas().get(usize::from(to))?;
        if from == to || sender.slots() == receiver.slots() {
            return None;
        }
        let message = Message::new(from, to, state_payload(sender));
        let busy = match state.flight {
            Flight::Set => state.in_flight.binary_search(&message).is_ok(),
            Flight::Fifo | Flight::Multiset => state
                .in_flight
                .iter()
                .any(|m| (m.from(), m.to()) == (from, to)),
        };
        (!busy).then_some(message)
    }

    fn write(&self, state: &ModelState, replica: u8, value: u8) -> ModelState {
        let mut next = state.clone();
        let r = usize::from(replica);
        let (written, payload) = self.issue(state.replica(r), replica, value);
        if let Some(payload) = payload {
            next.in_flight.extend(
                (0..self.spec.replicas)
                    .filter(|to| *to != replica)
                    .map(|to| Message::new(replica, to, payload)),
            );
        }
        next.set_replica(r, written);
        next.canonicalize();
        next
    }

    /// Replica `replica` (holding `current`) issues its next write: the replica afterwards, and
    /// what the write sends to every peer, if anything.
    pub(crate) fn issue(
        &self,
        current: ReplicaState,
        replica: u8,
        value: u8,
    ) -> (ReplicaState, Option<Payload>) {
        let key = MemoKey::Write {
            replica: current.bits(),
            writer: replica,
            value,
        };
        let (bits, _) = memoized(self.memo_id, key, || {
            (self.issue_uncached(current, replica, value).bits(), 0)
        });
        let written = ReplicaState::from_bits(bits);
        let update = replica * MAX_WRITES + current.writes_done();
        let payload = match self.spec.protocol {
            ModelProtocol::StateBroadcast => Some(state_payload(written)),
            ModelProtocol::OpBroadcast => Some(Payload::Op {
                update,
                key: current.writes_done() % self.spec.keys,
                value,
                // The write's stamp time is the clock it leaves behind: a Lamport tick.
                stamp: ModelStamp {
                    time: written.clock(),
                    replica,
                },
            }),
            ModelProtocol::AntiEntropy => None,
        };
        (written, payload)
    }

    /// The messages a write of `replica` sends from `state`, in the order it sends them (by
    /// receiver, as netsim's mesh does, so that a scripted replay numbers them alike).
    pub(crate) fn sent_by_write(&self, state: &ModelState, replica: u8, value: u8) -> Vec<Message> {
        let (_, payload) = self.issue(state.replica(usize::from(replica)), replica, value);
        payload
            .map(|payload| {
                (0..self.spec.replicas)
                    .filter(|to| *to != replica)
                    .map(|to| Message::new(replica, to, payload))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn issue_uncached(&self, current: ReplicaState, replica: u8, value: u8) -> ReplicaState {
        let key = current.writes_done() % self.spec.keys;
        let mut clock = Clock {
            kind: ClockKind::Lamport,
            skew: Default::default(),
            last: u64::from(current.clock()),
        };
        let time = clock.tick(0, None);
        let stamp = Stamp::new(time, u32::from(replica));
        let intent = intent_of(key, value);
        let mut data = self.build(current.slots());
        // A fresh Lamport stamp is greater than anything held, so no tie and no coin.
        apply_intent(&mut data, &intent, stamp, &mut FixedCoin(false));
        let update = replica * MAX_WRITES + current.writes_done();
        debug_assert_eq!(
            clock.last, time,
            "a Lamport tick leaves the clock at the new time"
        );
        ReplicaState::new(
            self.read(&data),
            clock.last as u8,
            current.writes_done() + 1,
            current.delivered() | (1 << update),
        )
    }

    fn deliver(&self, state: &ModelState, message: Message, coins: u8) -> Option<ModelState> {
        let index = position(state, message)?;
        let to = usize::from(message.to());
        let before = state.replica(to);
        let (received, _) = self.receive(before, message, coins);
        // On duplicating networks the message stays in flight (it may be delivered again): only a
        // real change to the receiver is a new state.
        if state.flight == Flight::Set && received == before {
            return None;
        }
        let mut next = state.clone();
        if state.flight != Flight::Set {
            next.in_flight.remove(index);
        }
        next.set_replica(to, received);
        Some(next)
    }
}

/// Where `message` is in flight (its first copy): a binary search where the messages are sorted
/// whole, a scan where only their links are.
fn position(state: &ModelState, message: Message) -> Option<usize> {
    match state.flight {
        Flight::Fifo => state.in_flight.iter().position(|m| *m == message),
        Flight::Multiset | Flight::Set => {
            let index = state.in_flight.partition_point(|m| *m < message);
            (state.in_flight.get(index) == Some(&message)).then_some(index)
        }
    }
}

fn apply_intent(data: &mut Data, intent: &Intent, stamp: Stamp, coin: &mut dyn Coin) {
    match data {
        Data::Grid(grid) => {
            let op = grid.prepare(intent, stamp);
            grid.apply(&op, coin);
        }
        Data::Dict(dict) => {
            let op = dict.prepare(intent, stamp);
            dict.apply(&op, coin);
        }
    }
}

impl Model for ConvergeModel {
    type State = ModelState;
    type Action = ModelAction;

    fn init_states(&self) -> Vec<ModelState> {
        vec![ModelState::new(
            self.spec.replicas,
            if self.spec.lossy() {
                self.spec.drops
            } else {
                0
            },
            self.spec.flight(),
            self.spec.values == 0,
        )]
    }

    /// Writes (by replica, then value), deliveries (in the canonical message order, then coin
    /// patterns), drops, then anti-entropy exchanges (by sender, then receiver): a fixed order, as
    /// stateright replays paths by action index.
    fn actions(&self, state: &ModelState, actions: &mut Vec<ModelAction>) {
        for (replica, r) in state.replicas().iter().enumerate() {
            if r.writes_done() < self.spec.writes_per_replica {
                for value in self.spec.write_values(replica as u8) {
                    actions.push(ModelAction::Write {
                        replica: replica as u8,
                        value,
                    });
                }
            }
        }
        for (index, message) in state.in_flight.iter().enumerate() {
            if !Self::deliverable(state, index) {
                continue;
            }
            let flips = self
                .flips(state.replica(usize::from(message.to())), *message)
                .min(7);
            if flips == 0 {
                actions.push(ModelAction::Deliver(*message));
            } else {
                for coins in 0..1u16 << flips {
                    actions.push(ModelAction::DeliverWithCoin {
                        message: *message,
                        coins: coins as u8,
                        flips,
                    });
                }
            }
        }
        if state.drops_left > 0 {
            for (i, message) in state.in_flight.iter().enumerate() {
                if i == 0 || state.in_flight[i - 1] != *message {
                    actions.push(ModelAction::Drop(*message));
                }
            }
        }
        if self.spec.protocol == ModelProtocol::AntiEntropy {
            let n = state.replicas().len() as u8;
            for from in 0..n {
                for to in 0..n {
                    if self.sync_message(state, from, to).is_some() {
                        actions.push(ModelAction::Sync { from, to });
                    }
                }
            }
        }
    }

    fn next_state(&self, state: &ModelState, action: ModelAction) -> Option<ModelState> {
        match action {
            ModelAction::Write { replica, value } => Some(self.write(state, replica, value)),
            ModelAction::Deliver(message) => self.deliver(state, message, 0),
            ModelAction::DeliverWithCoin { message, coins, .. } => {
                self.deliver(state, message, coins)
            }
            ModelAction::Drop(message) => {
                let index = position(state, message)?;
                let mut next = state.clone();
                next.in_flight.remove(index);
                next.drops_left = next.drops_left.checked_sub(1)?;
                Some(next)
            }
            ModelAction::Sync { from, to } => {
                let message = self.sync_message(state, from, to)?;
                let mut next = state.clone();
                next.in_flight.push(message);
                next.canonicalize();
                Some(next)
            }
        }
    }

    fn within_boundary(&self, _state: &ModelState) -> bool {
        self.deadline.as_ref().is_none_or(|d| !d.passed())
    }

    fn properties(&self) -> Vec<Property<Self>> {
        match self.mode {
            Mode::Verify => vec![
                Property::always(STRONG_CONVERGENCE, |model: &Self, state: &ModelState| {
                    model.strongly_convergent(state)
                }),
                Property::always(QUIESCENT_CONVERGED, |model: &Self, state: &ModelState| {
                    !model.quiescent(state) || model.converged(state)
                }),
                Property::sometimes(CONFLICT_OCCURS, |model: &Self, state: &ModelState| {
                    model.conflict(state)
                }),
            ],
            Mode::Explore => vec![Property::always(EXPLORE, |_: &Self, _: &ModelState| true)],
        }
    }
}
