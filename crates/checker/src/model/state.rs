//! The compact, canonical state the model checker explores, and its symmetry reduction.
//!
//! Everything is packed into integers: one key's [`Slot`] into 19 bits, a replica (all its slots,
//! its clock, its write count and its delivered set) into one `u128`, and a message (its ends and
//! its payload, a whole state or one op) into one `u128`. A state is an array of at most four
//! replica words, a sorted vector of message words and two bytes. So copying a state costs one
//! small allocation (the message vector), two states compare and hash word by word, two states
//! that mean the same thing are equal, and the 64-bit fingerprints stateright keeps are stable.
//!
//! The CRDT values themselves are not stored: a replica holds one [`Slot`] per key, from which the
//! model rebuilds the real `LwwGrid` or `LwwDict` for every transition, so the merge, apply and
//! tie-break code that runs is exactly the crate's code (see `machine.rs`).
//!
//! # Bounds that make the packing exact
//!
//! The model has at most [`MAX_REPLICAS`] replicas, [`MAX_KEYS`] keys and [`MAX_WRITES`] writes per
//! replica, so a Lamport time is at most 12 (every write of every replica in one causal chain;
//! 5 bits hold up to 31), a value at most 4 (4 bits), a replica id at most 3 (3 bits), an update id
//! at most 11 (4 bits) and a delivered set has 12 bits. `pack` asserts these in debug builds.

use stateright::Representative;

/// The most writes one replica can issue; update ids are numbered `origin * MAX_WRITES + seq - 1`
/// so that a delivered set of 4 replicas fits 12 bits.
pub(crate) const MAX_WRITES: u8 = 3;

/// The most replicas a configuration can have.
pub(crate) const MAX_REPLICAS: usize = 4;

/// The most keys (grid cells, dictionary keys) a configuration can have.
pub(crate) const MAX_KEYS: usize = 4;

const TIME_BITS: u32 = 5;
const REPLICA_BITS: u32 = 3;
const VALUE_BITS: u32 = 4;
const UPDATE_BITS: u32 = 4;
/// Bits of one delivered (or carried) update set: `MAX_REPLICAS * MAX_WRITES`.
const UPDATES_BITS: u32 = 12;
const SLOT_BITS: u32 = 19;
const SLOTS_BITS: u32 = SLOT_BITS * MAX_KEYS as u32;

const fn mask(bits: u32) -> u128 {
    (1u128 << bits) - 1
}

/// A stamp `(time, replica)` in the model's small integers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelStamp {
    pub time: u8,
    pub replica: u8,
}

/// What one replica holds under one key.
///
/// For the grid, `add` is the cell's write and `remove` stays empty. For the dictionary, `add` is the
/// latest add with its value and `remove` the time of the latest remove. The remove's replica id is
/// not kept: the dictionary only ever compares a remove's *time* with an add's (lookup and bias), so
/// which of two equal-time removes it keeps is invisible to every view, and forgetting it makes the
/// transition relation symmetric under renaming replicas (see [`ModelState::representative`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot {
    /// The winning write's stamp and value. Values are `1..=values`; the grid never writes 0.
    pub add: Option<(ModelStamp, u8)>,
    /// The latest remove's stamp time (dictionary only).
    pub remove: Option<u8>,
}

// Slot layout, low bit first: value (4), add replica (3), add time (5), add present (1), remove
// time (5), remove present (1).
const ADD_REPLICA_SHIFT: u32 = VALUE_BITS;
const ADD_TIME_SHIFT: u32 = ADD_REPLICA_SHIFT + REPLICA_BITS;
const ADD_PRESENT_SHIFT: u32 = ADD_TIME_SHIFT + TIME_BITS;
const REMOVE_TIME_SHIFT: u32 = ADD_PRESENT_SHIFT + 1;
const REMOVE_PRESENT_SHIFT: u32 = REMOVE_TIME_SHIFT + TIME_BITS;

impl Slot {
    fn pack(self) -> u32 {
        let mut bits = 0u32;
        if let Some((stamp, value)) = self.add {
            debug_assert!(
                u32::from(value) < 1 << VALUE_BITS,
                "value {value} overflows"
            );
            debug_assert!(u32::from(stamp.time) < 1 << TIME_BITS, "time overflows");
            debug_assert!(u32::from(stamp.replica) < 1 << REPLICA_BITS);
            bits |= u32::from(value)
                | u32::from(stamp.replica) << ADD_REPLICA_SHIFT
                | u32::from(stamp.time) << ADD_TIME_SHIFT
                | 1 << ADD_PRESENT_SHIFT;
        }
        if let Some(time) = self.remove {
            debug_assert!(u32::from(time) < 1 << TIME_BITS, "time overflows");
            bits |= u32::from(time) << REMOVE_TIME_SHIFT | 1 << REMOVE_PRESENT_SHIFT;
        }
        bits
    }

    fn unpack(bits: u32) -> Slot {
        let field = |shift: u32, width: u32| ((bits >> shift) & ((1 << width) - 1)) as u8;
        Slot {
            add: (bits >> ADD_PRESENT_SHIFT & 1 == 1).then(|| {
                (
                    ModelStamp {
                        time: field(ADD_TIME_SHIFT, TIME_BITS),
                        replica: field(ADD_REPLICA_SHIFT, REPLICA_BITS),
                    },
                    field(0, VALUE_BITS),
                )
            }),
            remove: (bits >> REMOVE_PRESENT_SHIFT & 1 == 1)
                .then(|| field(REMOVE_TIME_SHIFT, TIME_BITS)),
        }
    }
}

/// The slots of one replica, or of a state message: [`MAX_KEYS`] packed slots (keys a
/// configuration does not use stay empty).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slots(u128);

impl Slots {
    pub fn get(self, key: usize) -> Slot {
        Slot::unpack((self.0 >> (key as u32 * SLOT_BITS)) as u32 & mask(SLOT_BITS) as u32)
    }

    pub fn set(&mut self, key: usize, slot: Slot) {
        let shift = key as u32 * SLOT_BITS;
        self.0 = (self.0 & !(mask(SLOT_BITS) << shift)) | u128::from(slot.pack()) << shift;
    }

    /// The first `keys` slots.
    pub fn iter(self, keys: u8) -> impl Iterator<Item = Slot> {
        (0..usize::from(keys)).map(move |key| self.get(key))
    }

    fn bits(self) -> u128 {
        self.0
    }

    fn from_bits(bits: u128) -> Slots {
        Slots(bits & mask(SLOTS_BITS))
    }
}

// Replica layout, low bit first: slots (76), clock (5), writes done (2), delivered (12).
const CLOCK_SHIFT: u32 = SLOTS_BITS;
const WRITES_SHIFT: u32 = CLOCK_SHIFT + TIME_BITS;
const DELIVERED_SHIFT: u32 = WRITES_SHIFT + 2;

/// One replica, packed: its data, its Lamport clock, how many writes it has issued and which
/// updates it has delivered (ghost state for the strong-convergence oracle).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplicaState(u128);

impl ReplicaState {
    pub fn new(slots: Slots, clock: u8, writes_done: u8, delivered: u16) -> ReplicaState {
        debug_assert!(u32::from(clock) < 1 << TIME_BITS, "clock {clock} overflows");
        debug_assert!(writes_done <= MAX_WRITES);
        debug_assert!(u32::from(delivered) < 1 << UPDATES_BITS);
        ReplicaState(
            slots.bits()
                | u128::from(clock) << CLOCK_SHIFT
                | u128::from(writes_done) << WRITES_SHIFT
                | u128::from(delivered) << DELIVERED_SHIFT,
        )
    }

    pub fn slots(self) -> Slots {
        Slots::from_bits(self.0)
    }

    /// The greatest stamp time issued or observed.
    pub fn clock(self) -> u8 {
        (self.0 >> CLOCK_SHIFT) as u8 & mask(TIME_BITS) as u8
    }

    pub fn writes_done(self) -> u8 {
        (self.0 >> WRITES_SHIFT) as u8 & 0b11
    }

    /// Bit `origin * MAX_WRITES + seq - 1` is set when the update has been delivered here.
    pub fn delivered(self) -> u16 {
        (self.0 >> DELIVERED_SHIFT) as u16 & mask(UPDATES_BITS) as u16
    }

    pub(crate) fn bits(self) -> u128 {
        self.0
    }

    pub(crate) fn from_bits(bits: u128) -> ReplicaState {
        ReplicaState(bits)
    }

    /// This replica with replica `i` renamed `perm[i]` in its stamps, its delivered set and (under
    /// the own-value workload) its values.
    fn renamed(self, perm: &[u8; MAX_REPLICAS], own_values: bool) -> ReplicaState {
        ReplicaState::new(
            rename_slots(self.slots(), perm, own_values),
            self.clock(),
            self.writes_done(),
            rename_updates(self.delivered(), perm),
        )
    }
}

/// What a message carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Payload {
    /// A whole replica state and the set of update ids it contains (ghost state: the receiver has
    /// delivered all of them once it merges the state).
    State { slots: Slots, updates: u16 },
    /// One op: its update id (bit index), key, value (0 = remove) and stamp.
    Op {
        update: u8,
        key: u8,
        value: u8,
        stamp: ModelStamp,
    },
}

// Message layout: the ends in the top bits (so that sorting messages sorts them by link), then
// the payload's kind; a state payload holds slots (76) and updates (12), an op payload update (4),
// key (2), value (4), stamp time (5) and stamp replica (3).
const FROM_SHIFT: u32 = 126;
const TO_SHIFT: u32 = 124;
const OP_TAG_SHIFT: u32 = 123;
const PAYLOAD_MASK: u128 = mask(OP_TAG_SHIFT + 1);
const UPDATES_SHIFT: u32 = SLOTS_BITS;
const OP_KEY_SHIFT: u32 = UPDATE_BITS;
const OP_VALUE_SHIFT: u32 = OP_KEY_SHIFT + 2;
const OP_TIME_SHIFT: u32 = OP_VALUE_SHIFT + VALUE_BITS;
const OP_REPLICA_SHIFT: u32 = OP_TIME_SHIFT + TIME_BITS;

impl Payload {
    fn pack(self) -> u128 {
        match self {
            Payload::State { slots, updates } => {
                debug_assert!(u32::from(updates) < 1 << UPDATES_BITS);
                slots.bits() | u128::from(updates) << UPDATES_SHIFT
            }
            Payload::Op {
                update,
                key,
                value,
                stamp,
            } => {
                debug_assert!(u32::from(update) < 1 << UPDATE_BITS && usize::from(key) < MAX_KEYS);
                debug_assert!(u32::from(value) < 1 << VALUE_BITS);
                debug_assert!(u32::from(stamp.time) < 1 << TIME_BITS);
                1 << OP_TAG_SHIFT
                    | u128::from(update)
                    | u128::from(key) << OP_KEY_SHIFT
                    | u128::from(value) << OP_VALUE_SHIFT
                    | u128::from(stamp.time) << OP_TIME_SHIFT
                    | u128::from(stamp.replica) << OP_REPLICA_SHIFT
            }
        }
    }

    fn unpack(bits: u128) -> Payload {
        let field = |shift: u32, width: u32| ((bits >> shift) & mask(width)) as u8;
        if bits >> OP_TAG_SHIFT & 1 == 0 {
            Payload::State {
                slots: Slots::from_bits(bits),
                updates: (bits >> UPDATES_SHIFT & mask(UPDATES_BITS)) as u16,
            }
        } else {
            Payload::Op {
                update: field(0, UPDATE_BITS),
                key: field(OP_KEY_SHIFT, 2),
                value: field(OP_VALUE_SHIFT, VALUE_BITS),
                stamp: ModelStamp {
                    time: field(OP_TIME_SHIFT, TIME_BITS),
                    replica: field(OP_REPLICA_SHIFT, REPLICA_BITS),
                },
            }
        }
    }
}

/// A message in flight from one replica to another, packed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Message(u128);

impl Message {
    pub fn new(from: u8, to: u8, payload: Payload) -> Message {
        debug_assert!(usize::from(from) < MAX_REPLICAS && usize::from(to) < MAX_REPLICAS);
        Message(u128::from(from) << FROM_SHIFT | u128::from(to) << TO_SHIFT | payload.pack())
    }

    pub fn from(self) -> u8 {
        (self.0 >> FROM_SHIFT) as u8
    }

    pub fn to(self) -> u8 {
        (self.0 >> TO_SHIFT) as u8 & 0b11
    }

    pub fn payload(self) -> Payload {
        Payload::unpack(self.0 & PAYLOAD_MASK)
    }

    /// The payload's bits alone, for keys that do not care who sent it to whom.
    pub(crate) fn payload_bits(self) -> u128 {
        self.0 & PAYLOAD_MASK
    }

    /// The link `(from, to)` as one number; messages sort by it first.
    fn link(self) -> u8 {
        (self.0 >> TO_SHIFT) as u8
    }

    fn renamed(self, perm: &[u8; MAX_REPLICAS], own_values: bool) -> Message {
        let payload = match self.payload() {
            Payload::State { slots, updates } => Payload::State {
                slots: rename_slots(slots, perm, own_values),
                updates: rename_updates(updates, perm),
            },
            Payload::Op {
                update,
                key,
                value,
                stamp,
            } => Payload::Op {
                update: rename_update(update, perm),
                key,
                value: rename_value(value, perm, own_values),
                stamp: rename_stamp(stamp, perm),
            },
        };
        Message::new(
            perm[usize::from(self.from())],
            perm[usize::from(self.to())],
            payload,
        )
    }
}

/// How the in-flight messages are kept, which follows from the network kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flight {
    /// One FIFO queue per link, kept as a vector sorted stably by `(from, to)`: only the head of a
    /// link can be delivered, and delivery removes it.
    Fifo,
    /// A sorted multiset: any message can be delivered next, and delivery removes one copy.
    Multiset,
    /// A sorted set: any message can be delivered any number of times (duplication for free), and
    /// only a drop removes it.
    Set,
}

/// The whole system.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelState {
    /// The first `replica_count` entries are the replicas; the rest stay zero.
    replicas: [ReplicaState; MAX_REPLICAS],
    replica_count: u8,
    /// Canonically ordered; see [`Flight`].
    pub in_flight: Vec<Message>,
    pub drops_left: u8,
    /// Constant over a run, but kept here because the canonical order of `in_flight` (and so the
    /// representative under symmetry, a plain function of the state) depends on it.
    pub flight: Flight,
    /// Constant over a run: whether every replica writes its own value (its id + 1), in which case
    /// renaming replicas renames those values too.
    pub own_values: bool,
}

impl ModelState {
    /// `replica_count` empty replicas and nothing in flight.
    pub(crate) fn new(
        replica_count: u8,
        drops_left: u8,
        flight: Flight,
        own_values: bool,
    ) -> ModelState {
        debug_assert!(usize::from(replica_count) <= MAX_REPLICAS);
        ModelState {
            replicas: [ReplicaState::default(); MAX_REPLICAS],
            replica_count,
            in_flight: Vec::new(),
            drops_left,
            flight,
            own_values,
        }
    }

    pub fn replicas(&self) -> &[ReplicaState] {
        &self.replicas[..usize::from(self.replica_count)]
    }

    pub fn replica(&self, index: usize) -> ReplicaState {
        self.replicas()[index]
    }

    pub(crate) fn set_replica(&mut self, index: usize, replica: ReplicaState) {
        debug_assert!(index < usize::from(self.replica_count));
        self.replicas[index] = replica;
    }

    /// Puts `in_flight` into its canonical order after messages were added or rewritten.
    pub(crate) fn canonicalize(&mut self) {
        canonicalize(&mut self.in_flight, self.flight);
    }
}

fn canonicalize(in_flight: &mut Vec<Message>, flight: Flight) {
    match flight {
        // A stable sort keeps the send order within each link.
        Flight::Fifo => in_flight.sort_by_key(|m| m.link()),
        Flight::Multiset => in_flight.sort_unstable(),
        Flight::Set => {
            in_flight.sort_unstable();
            in_flight.dedup();
        }
    }
}

fn rename_stamp(stamp: ModelStamp, perm: &[u8; MAX_REPLICAS]) -> ModelStamp {
    ModelStamp {
        time: stamp.time,
        replica: perm[usize::from(stamp.replica)],
    }
}

/// Under the own-value workload, value `r + 1` belongs to replica `r` and is renamed with it; 0 (a
/// remove or a cleared cell) belongs to nobody.
fn rename_value(value: u8, perm: &[u8; MAX_REPLICAS], own_values: bool) -> u8 {
    match value.checked_sub(1) {
        Some(owner) if own_values && usize::from(owner) < MAX_REPLICAS => {
            perm[usize::from(owner)] + 1
        }
        _ => value,
    }
}

/// Renames the stamps' replicas (and, under the own-value workload, the values) of every slot,
/// working on the packed bits: this runs for every renaming of every state under symmetry.
fn rename_slots(slots: Slots, perm: &[u8; MAX_REPLICAS], own_values: bool) -> Slots {
    let mut bits = slots.bits();
    for key in 0..MAX_KEYS as u32 {
        let shift = key * SLOT_BITS;
        let slot = (bits >> shift) as u32;
        if slot >> ADD_PRESENT_SHIFT & 1 == 0 {
            continue;
        }
        let replica = (slot >> ADD_REPLICA_SHIFT) & ((1 << REPLICA_BITS) - 1);
        let value = slot & ((1 << VALUE_BITS) - 1);
        let renamed_replica = u32::from(perm[replica as usize]);
        let renamed_value = u32::from(rename_value(value as u8, perm, own_values));
        let field_mask =
            u128::from(((1u32 << REPLICA_BITS) - 1) << ADD_REPLICA_SHIFT | ((1 << VALUE_BITS) - 1))
                << shift;
        let fields = u128::from(renamed_replica << ADD_REPLICA_SHIFT | renamed_value) << shift;
        bits = (bits & !field_mask) | fields;
    }
    Slots(bits)
}

fn rename_update(update: u8, perm: &[u8; MAX_REPLICAS]) -> u8 {
    perm[usize::from(update / MAX_WRITES)] * MAX_WRITES + update % MAX_WRITES
}

/// Renames a set of update ids: update `origin * MAX_WRITES + k` becomes
/// `perm[origin] * MAX_WRITES + k`, so each origin's group of bits moves as one.
fn rename_updates(updates: u16, perm: &[u8; MAX_REPLICAS]) -> u16 {
    let group = (1u16 << MAX_WRITES) - 1;
    let mut renamed = 0u16;
    for (origin, target) in perm.iter().enumerate() {
        let bits = (updates >> (origin as u32 * u32::from(MAX_WRITES))) & group;
        renamed |= bits << (u32::from(*target) * u32::from(MAX_WRITES));
    }
    renamed
}

/// Every permutation of `0..n` (padded with the identity up to [`MAX_REPLICAS`]), in
/// lexicographic order.
fn permutations(n: usize) -> Vec<[u8; MAX_REPLICAS]> {
    fn extend(prefix: &mut Vec<u8>, n: u8, out: &mut Vec<[u8; MAX_REPLICAS]>) {
        if prefix.len() == usize::from(n) {
            let mut perm = [0, 1, 2, 3];
            perm[..prefix.len()].copy_from_slice(prefix);
            out.push(perm);
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
    let mut out = Vec::new();
    // At most MAX_REPLICAS replicas: the cast cannot truncate.
    extend(&mut Vec::new(), n as u8, &mut out);
    out
}

/// A renaming of replicas and its inverse.
struct Renaming {
    perm: [u8; MAX_REPLICAS],
    /// `inverse[perm[i]] == i`: which old replica lands at each position.
    inverse: [u8; MAX_REPLICAS],
}

/// The renamings of `n` replicas ([`permutations`] with their inverses), computed once.
fn renamings_of(n: usize) -> &'static [Renaming] {
    static TABLES: std::sync::OnceLock<Vec<Vec<Renaming>>> = std::sync::OnceLock::new();
    &TABLES.get_or_init(|| {
        (0..=MAX_REPLICAS)
            .map(|n| {
                permutations(n)
                    .into_iter()
                    .map(|perm| {
                        let mut inverse = [0u8; MAX_REPLICAS];
                        for (old, new) in perm.iter().enumerate() {
                            inverse[usize::from(*new)] = old as u8;
                        }
                        Renaming { perm, inverse }
                    })
                    .collect()
            })
            .collect()
    })[n]
}

impl Representative for ModelState {
    /// The least state, in the derived order, among all renamings of the replicas.
    ///
    /// Taking the minimum over the whole orbit (at most 4! = 24 renamings) makes the representative
    /// a true canonical form: two states get the same representative exactly when one is a renaming
    /// of the other. Stateright's sort-based rewrite plans only promise "some" member of the orbit,
    /// which reduces less and makes the unique-state count depend on thread timing.
    ///
    /// The derived order compares the replicas first, so the search renames only the replicas
    /// (a few words each) for every permutation, and renames and sorts the messages only for the
    /// permutations that tie for the least replicas (typically one; several when replicas hold the
    /// same thing).
    ///
    /// This is sound only when renaming replicas commutes with every transition. The checker turns
    /// symmetry on only for such configurations; see `ModelSpec::symmetry_is_sound`.
    fn representative(&self) -> Self {
        let n = usize::from(self.replica_count);
        let renamings = renamings_of(n);
        let mut best_replicas = self.replicas;
        let mut tied = [0usize; 24];
        let mut ties = 0;
        for (index, renaming) in renamings.iter().enumerate() {
            // Position by position, stopping as soon as this renaming is already greater.
            let mut renamed = [ReplicaState::default(); MAX_REPLICAS];
            let mut ordering = std::cmp::Ordering::Equal;
            for position in 0..n {
                let old = self.replicas[usize::from(renaming.inverse[position])];
                renamed[position] = old.renamed(&renaming.perm, self.own_values);
                if ordering == std::cmp::Ordering::Equal {
                    ordering = renamed[position].cmp(&best_replicas[position]);
                    if ordering == std::cmp::Ordering::Greater {
                        break;
                    }
                }
            }
            match ordering {
                std::cmp::Ordering::Less => {
                    best_replicas = renamed;
                    tied[0] = index;
                    ties = 1;
                }
                std::cmp::Ordering::Equal => {
                    tied[ties] = index;
                    ties += 1;
                }
                std::cmp::Ordering::Greater => {}
            }
        }
        let mut best: Option<Vec<Message>> = None;
        for &index in &tied[..ties] {
            let perm = &renamings[index].perm;
            let mut in_flight: Vec<Message> = self
                .in_flight
                .iter()
                .map(|m| m.renamed(perm, self.own_values))
                .collect();
            canonicalize(&mut in_flight, self.flight);
            if best.as_ref().is_none_or(|b| in_flight < *b) {
                best = Some(in_flight);
            }
        }
        ModelState {
            replicas: best_replicas,
            replica_count: self.replica_count,
            in_flight: best.unwrap_or_else(|| self.in_flight.clone()),
            drops_left: self.drops_left,
            flight: self.flight,
            own_values: self.own_values,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_cover_the_symmetric_group() {
        assert_eq!(renamings_of(3).len(), 6);
        assert_eq!(renamings_of(4).len(), 24);
        assert_eq!(permutations(2), [[0, 1, 2, 3], [1, 0, 2, 3]]);
        for renaming in renamings_of(4) {
            for replica in 0..MAX_REPLICAS {
                let moved = usize::from(renaming.perm[replica]);
                assert_eq!(usize::from(renaming.inverse[moved]), replica);
            }
        }
    }

    #[test]
    fn update_ids_move_with_their_origin() {
        // Replica 0's second update (bit 1) becomes replica 2's second update (bit 7).
        assert_eq!(rename_updates(0b10, &[2, 0, 1, 3]), 1 << 7);
    }

    #[test]
    fn packing_round_trips() {
        let slot = Slot {
            add: Some((
                ModelStamp {
                    time: 12,
                    replica: 3,
                },
                4,
            )),
            remove: Some(11),
        };
        assert_eq!(Slot::unpack(slot.pack()), slot);
        let mut slots = Slots::default();
        slots.set(3, slot);
        slots.set(1, Slot::default());
        assert_eq!(slots.get(3), slot);
        let replica = ReplicaState::new(slots, 12, 3, 0b1111_1111_1111);
        assert_eq!(
            (
                replica.slots(),
                replica.clock(),
                replica.writes_done(),
                replica.delivered()
            ),
            (slots, 12, 3, 0b1111_1111_1111)
        );
        for payload in [
            Payload::State {
                slots,
                updates: 0b1000_0000_0001,
            },
            Payload::Op {
                update: 11,
                key: 3,
                value: 4,
                stamp: ModelStamp {
                    time: 12,
                    replica: 3,
                },
            },
        ] {
            let message = Message::new(3, 2, payload);
            assert_eq!(
                (message.from(), message.to(), message.payload()),
                (3, 2, payload)
            );
        }
    }

    #[test]
    fn renamings_share_one_representative() {
        let stamp = |time, replica| ModelStamp { time, replica };
        let mut slots = Slots::default();
        slots.set(
            0,
            Slot {
                add: Some((stamp(1, 0), 1)),
                remove: None,
            },
        );
        let mut other = Slots::default();
        other.set(
            1,
            Slot {
                add: Some((stamp(2, 2), 3)),
                remove: Some(1),
            },
        );
        let mut state = ModelState::new(3, 1, Flight::Multiset, true);
        state.set_replica(0, ReplicaState::new(slots, 1, 1, 0b1));
        state.set_replica(2, ReplicaState::new(other, 2, 1, 0b1_000_001));
        state.in_flight = vec![
            Message::new(0, 1, Payload::State { slots, updates: 1 }),
            Message::new(
                2,
                0,
                Payload::Op {
                    update: 6,
                    key: 1,
                    value: 3,
                    stamp: stamp(2, 2),
                },
            ),
        ];
        state.canonicalize();
        let canonical = state.representative();
        for Renaming { perm, .. } in renamings_of(3) {
            let mut renamed = ModelState::new(3, 1, Flight::Multiset, true);
            for (old, replica) in state.replicas().iter().enumerate() {
                renamed.set_replica(usize::from(perm[old]), replica.renamed(perm, true));
            }
            renamed.in_flight = state
                .in_flight
                .iter()
                .map(|m| m.renamed(perm, true))
                .collect();
            renamed.canonicalize();
            assert_eq!(renamed.representative(), canonical, "{perm:?}");
            assert!(
                canonical <= renamed,
                "the representative is the least renaming"
            );
        }
    }

    #[test]
    fn messages_sort_by_link_first() {
        let op = |from, to, update| {
            Message::new(
                from,
                to,
                Payload::Op {
                    update,
                    key: 0,
                    value: 1,
                    stamp: ModelStamp::default(),
                },
            )
        };
        let mut in_flight = vec![op(1, 0, 0), op(0, 2, 9), op(0, 1, 5), op(0, 1, 2)];
        canonicalize(&mut in_flight, Flight::Fifo);
        assert_eq!(
            in_flight,
            vec![op(0, 1, 5), op(0, 1, 2), op(0, 2, 9), op(1, 0, 0)],
            "FIFO keeps the send order within a link"
        );
    }
}
