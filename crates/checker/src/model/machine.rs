//! The stateright [`Model`]: initial state, actions, transitions and properties.
//!
//! Transitions rebuild the crate's real `LwwGrid` or `LwwDict` from a replica's slots, run the real
//! `merge`, `prepare` and `apply` (and so the real `incoming_wins` tie-break), and read the slots
//! back. The model never reimplements a merge rule, so a bug the checker finds is a bug in the
//! crate's code, not in a copy of it.

use converge_crdt::dict::Entry;
use converge_crdt::{
    Clock, ClockKind, Coin, DictOp, FixedCoin, GridOp, Intent, LwwDict, LwwDictConfig, LwwGrid,
    LwwGridConfig, OpCrdt, Stamp, StateCrdt, TieBreak,
};
use stateright::{Model, Property};

use super::state::{
    Flight, Message, ModelStamp, ModelState, Payload, ReplicaState, Slot, MAX_WRITES,
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
    fn tie_break(&self) -> TieBreak {
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

    fn flight(&self) -> Flight {
        match self.network {
            NetworkKind::Reliable | NetworkKind::Lossy => Flight::Fifo,
            NetworkKind::Reordering => Flight::Multiset,
            NetworkKind::Duplicating | NetworkKind::LossyDuplicating => Flight::Set,
        }
    }

    fn lossy(&self) -> bool {
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
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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

// The model's integers are all tiny (times up to 12, values up to 3, keys up to 4, replicas up to
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

impl ConvergeModel {
    fn build(&self, slots: &[Slot]) -> Data {
        let coin = &mut FixedCoin(false);
        match self.spec.crdt {
            ModelCrdt::Grid { tie_break } => {
                let mut grid = LwwGrid::new(LwwGridConfig {
                    rows: 1,
                    cols: u32::from(self.spec.keys),
                    tie_break,
                });
                for (cell, slot) in slots.iter().enumerate() {
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
                for (key, slot) in slots.iter().enumerate() {
                    let entry = entry_of(slot);
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

    fn read(&self, data: &Data) -> Vec<Slot> {
        (0..u32::from(self.spec.keys))
            .map(|key| match data {
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
            })
            .collect()
    }

    /// What a user of replica data sees: per key, the value or nothing.
    pub(crate) fn view(&self, slots: &[Slot]) -> Vec<Option<u8>> {
        slots
            .iter()
            .map(|slot| match self.spec.crdt {
                ModelCrdt::Grid { .. } => slot.add.map(|(_, value)| value).filter(|v| *v != 0),
                ModelCrdt::Dict { bias, .. } => entry_of(slot).lookup(bias).map(|v| v as u8),
            })
            .collect()
    }

    /// The replica after receiving `payload`, and how many coin flips the merge asked for.
    fn receive(&self, replica: &ReplicaState, payload: &Payload, coins: u8) -> (ReplicaState, u8) {
        let mut data = self.build(&replica.slots);
        let mut coin = PatternCoin {
            bits: coins,
            flips: 0,
        };
        let mut clock = Clock {
            kind: ClockKind::Lamport,
            skew: Default::default(),
            last: u64::from(replica.clock),
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
                replica.delivered | updates
            }
            Payload::Op {
                update,
                key,
                value,
                stamp,
            } => {
                let intent = if *value == 0 {
                    Intent::Remove {
                        key: u32::from(*key),
                    }
                } else {
                    Intent::Put {
                        key: u32::from(*key),
                        value: u64::from(*value),
                    }
                };
                apply_intent(&mut data, &intent, stamp_of(*stamp), &mut coin);
                clock.observe(u64::from(stamp.time));
                replica.delivered | (1 << update)
            }
        };
        let next = ReplicaState {
            slots: self.read(&data),
            clock: clock.last as u8,
            writes_done: replica.writes_done,
            delivered,
        };
        (next, coin.flips)
    }

    /// How many coin flips delivering `payload` to `replica` asks for. Only the random tie-break
    /// flips coins, so the others skip the dry run.
    fn flips(&self, replica: &ReplicaState, payload: &Payload) -> u8 {
        if self.spec.tie_break() != TieBreak::Random {
            return 0;
        }
        self.receive(replica, payload, 0).1
    }

    /// Whether delivering `payload` to `replica` would change it under some coin.
    fn would_change(&self, replica: &ReplicaState, payload: &Payload) -> bool {
        let flips = self.flips(replica, payload).min(7);
        (0..1u16 << flips).any(|bits| self.receive(replica, payload, bits as u8).0 != *replica)
    }

    /// All writes issued, and nothing in flight (and, with anti-entropy, no possible exchange)
    /// would change any replica.
    pub(crate) fn quiescent(&self, state: &ModelState) -> bool {
        if state
            .replicas
            .iter()
            .any(|r| r.writes_done < self.spec.writes_per_replica)
        {
            return false;
        }
        if state
            .in_flight
            .iter()
            .any(|m| self.would_change(&state.replicas[usize::from(m.to)], &m.payload))
        {
            return false;
        }
        if self.spec.protocol == ModelProtocol::AntiEntropy {
            for (from, sender) in state.replicas.iter().enumerate() {
                for (to, receiver) in state.replicas.iter().enumerate() {
                    if from != to && self.would_change(receiver, &state_payload(sender)) {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Whether every replica sees the same thing.
    pub(crate) fn converged(&self, state: &ModelState) -> bool {
        let mut views = state.replicas.iter().map(|r| self.view(&r.slots));
        match views.next() {
            None => true,
            Some(first) => views.all(|v| v == first),
        }
    }

    fn strongly_convergent(&self, state: &ModelState) -> bool {
        for (i, a) in state.replicas.iter().enumerate() {
            for b in &state.replicas[i + 1..] {
                if a.delivered == b.delivered && self.view(&a.slots) != self.view(&b.slots) {
                    return false;
                }
            }
        }
        true
    }

    /// Two replicas hold different writes to one key with equal stamp times (or, in the dictionary,
    /// an add and a remove with equal times): exactly where tie-breaks and biases decide.
    fn conflict(&self, state: &ModelState) -> bool {
        for key in 0..usize::from(self.spec.keys) {
            let slots: Vec<&Slot> = state.replicas.iter().map(|r| &r.slots[key]).collect();
            for (i, a) in slots.iter().enumerate() {
                for b in &slots[i..] {
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

    fn deliverable<'a>(&self, state: &'a ModelState) -> Vec<&'a Message> {
        let mut out: Vec<&Message> = Vec::new();
        for (i, m) in state.in_flight.iter().enumerate() {
            let previous = i.checked_sub(1).map(|p| &state.in_flight[p]);
            let skip = match state.flight {
                // Only the head of each link: the message before it is on another link.
                Flight::Fifo => previous.is_some_and(|p| (p.from, p.to) == (m.from, m.to)),
                // Identical copies are one choice.
                Flight::Multiset | Flight::Set => previous == Some(m),
            };
            if !skip {
                out.push(m);
            }
        }
        out
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
        let sender = state.replicas.get(usize::from(from))?;
        let receiver = state.replicas.get(usize::from(to))?;
        if from == to || sender.slots == receiver.slots {
            return None;
        }
        let message = Message {
            from,
            to,
            payload: state_payload(sender),
        };
        let busy = match state.flight {
            Flight::Set => state.in_flight.contains(&message),
            Flight::Fifo | Flight::Multiset => {
                state.in_flight.iter().any(|m| (m.from, m.to) == (from, to))
            }
        };
        (!busy).then_some(message)
    }

    fn write(&self, state: &ModelState, replica: u8, value: u8) -> ModelState {
        let mut next = state.clone();
        let r = usize::from(replica);
        let (written, sent) = self.issue(&state.replicas[r], replica, value);
        next.in_flight.extend(sent);
        next.replicas[r] = written;
        next.canonicalize();
        next
    }

    /// Replica `replica` (holding `current`) issues its next write: the replica afterwards, and
    /// the messages the write sends, in the order it sends them (by receiver, as netsim's mesh
    /// does, so that a scripted replay numbers them alike).
    pub(crate) fn issue(
        &self,
        current: &ReplicaState,
        replica: u8,
        value: u8,
    ) -> (ReplicaState, Vec<Message>) {
        let key = current.writes_done % self.spec.keys;
        let mut clock = Clock {
            kind: ClockKind::Lamport,
            skew: Default::default(),
            last: u64::from(current.clock),
        };
        let time = clock.tick(0, None);
        let stamp = Stamp::new(time, u32::from(replica));
        let intent = if value == 0 {
            Intent::Remove {
                key: u32::from(key),
            }
        } else {
            Intent::Put {
                key: u32::from(key),
                value: u64::from(value),
            }
        };
        let mut data = self.build(&current.slots);
        // A fresh Lamport stamp is greater than anything held, so no tie and no coin.
        apply_intent(&mut data, &intent, stamp, &mut FixedCoin(false));
        let update = replica * MAX_WRITES + current.writes_done;
        let written = ReplicaState {
            slots: self.read(&data),
            clock: clock.last as u8,
            writes_done: current.writes_done + 1,
            delivered: current.delivered | (1 << update),
        };
        let mut sent = Vec::new();
        for to in (0..self.spec.replicas).filter(|to| *to != replica) {
            let payload = match self.spec.protocol {
                ModelProtocol::StateBroadcast => state_payload(&written),
                ModelProtocol::OpBroadcast => Payload::Op {
                    update,
                    key,
                    value,
                    stamp: model_stamp(stamp),
                },
                ModelProtocol::AntiEntropy => continue,
            };
            sent.push(Message {
                from: replica,
                to,
                payload,
            });
        }
        (written, sent)
    }

    fn deliver(&self, state: &ModelState, message: &Message, coins: u8) -> Option<ModelState> {
        let index = state.in_flight.iter().position(|m| m == message)?;
        let to = usize::from(message.to);
        let (received, _) = self.receive(&state.replicas[to], &message.payload, coins);
        let mut next = state.clone();
        if state.flight == Flight::Set {
            // The message stays in flight (it may be delivered again): only a real change to the
            // receiver is a new state.
            if received == state.replicas[to] {
                return None;
            }
        } else {
            next.in_flight.remove(index);
        }
        next.replicas[to] = received;
        Some(next)
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

fn state_payload(replica: &ReplicaState) -> Payload {
    Payload::State {
        slots: replica.slots.clone(),
        updates: replica.delivered,
    }
}

impl Model for ConvergeModel {
    type State = ModelState;
    type Action = ModelAction;

    fn init_states(&self) -> Vec<ModelState> {
        let replica = ReplicaState {
            slots: vec![Slot::default(); usize::from(self.spec.keys)],
            clock: 0,
            writes_done: 0,
            delivered: 0,
        };
        vec![ModelState {
            replicas: vec![replica; usize::from(self.spec.replicas)],
            in_flight: Vec::new(),
            drops_left: if self.spec.lossy() {
                self.spec.drops
            } else {
                0
            },
            flight: self.spec.flight(),
            own_values: self.spec.values == 0,
        }]
    }

    /// Writes (by replica, then value), deliveries (in the canonical message order, then coin
    /// patterns), drops, then anti-entropy exchanges (by sender, then receiver): a fixed order, as
    /// stateright replays paths by action index.
    fn actions(&self, state: &ModelState, actions: &mut Vec<ModelAction>) {
        for (replica, r) in state.replicas.iter().enumerate() {
            if r.writes_done < self.spec.writes_per_replica {
                for value in self.spec.write_values(replica as u8) {
                    actions.push(ModelAction::Write {
                        replica: replica as u8,
                        value,
                    });
                }
            }
        }
        let deliverable = self.deliverable(state);
        for message in &deliverable {
            let flips = self
                .flips(&state.replicas[usize::from(message.to)], &message.payload)
                .min(7);
            if flips == 0 {
                actions.push(ModelAction::Deliver((*message).clone()));
            } else {
                for coins in 0..1u16 << flips {
                    actions.push(ModelAction::DeliverWithCoin {
                        message: (*message).clone(),
                        coins: coins as u8,
                        flips,
                    });
                }
            }
        }
        if state.drops_left > 0 {
            for (i, message) in state.in_flight.iter().enumerate() {
                if i == 0 || state.in_flight[i - 1] != *message {
                    actions.push(ModelAction::Drop(message.clone()));
                }
            }
        }
        if self.spec.protocol == ModelProtocol::AntiEntropy {
            for from in 0..state.replicas.len() {
                for to in 0..state.replicas.len() {
                    if self.sync_message(state, from as u8, to as u8).is_some() {
                        actions.push(ModelAction::Sync {
                            from: from as u8,
                            to: to as u8,
                        });
                    }
                }
            }
        }
    }

    fn next_state(&self, state: &ModelState, action: ModelAction) -> Option<ModelState> {
        match action {
            ModelAction::Write { replica, value } => Some(self.write(state, replica, value)),
            ModelAction::Deliver(message) => self.deliver(state, &message, 0),
            ModelAction::DeliverWithCoin { message, coins, .. } => {
                self.deliver(state, &message, coins)
            }
            ModelAction::Drop(message) => {
                let index = state.in_flight.iter().position(|m| *m == message)?;
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
