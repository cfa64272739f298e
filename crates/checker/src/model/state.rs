//! The compact, canonical state the model checker explores, and its symmetry reduction.
//!
//! Every field is a small integer or a sorted vector of them, so that a state hashes quickly, two
//! states that mean the same thing are equal, and the 64-bit fingerprints stateright keeps stay
//! stable. The CRDT values themselves are not stored: a replica holds one [`Slot`] per key, from
//! which the model rebuilds the real `LwwGrid` or `LwwDict` for every transition, so the merge, apply
//! and tie-break code that runs is exactly the crate's code (see `machine.rs`).

use stateright::Representative;

/// The most writes one replica can issue; update ids are numbered `origin * MAX_WRITES + seq - 1`
/// so that they fit a 16-bit set for 4 replicas.
pub(crate) const MAX_WRITES: u8 = 3;

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

/// What a message carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Payload {
    /// A whole replica state and the set of update ids it contains (ghost state: the receiver has
    /// delivered all of them once it merges the state).
    State { slots: Vec<Slot>, updates: u16 },
    /// One op: its update id (bit index), key, value (0 = remove) and stamp.
    Op {
        update: u8,
        key: u8,
        value: u8,
        stamp: ModelStamp,
    },
}

/// A message in flight from one replica to another.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Message {
    pub from: u8,
    pub to: u8,
    pub payload: Payload,
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

/// One replica: its data, its Lamport clock, how many writes it has issued and which updates it
/// has delivered (ghost state for the strong-convergence oracle).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplicaState {
    pub slots: Vec<Slot>,
    /// The greatest stamp time issued or observed.
    pub clock: u8,
    pub writes_done: u8,
    /// Bit `origin * MAX_WRITES + seq - 1` is set when the update has been delivered here.
    pub delivered: u16,
}

/// The whole system.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelState {
    pub replicas: Vec<ReplicaState>,
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
    /// Puts `in_flight` into its canonical order after messages were added or rewritten.
    pub(crate) fn canonicalize(&mut self) {
        match self.flight {
            // A stable sort keeps the send order within each link.
            Flight::Fifo => self.in_flight.sort_by_key(|m| (m.from, m.to)),
            Flight::Multiset => self.in_flight.sort(),
            Flight::Set => {
                self.in_flight.sort();
                self.in_flight.dedup();
            }
        }
    }

    /// The same state with replica `i` renamed `perm[i]` everywhere: positions, message ends,
    /// stamps and update ids.
    fn renamed(&self, perm: &[u8]) -> ModelState {
        let mut replicas = self.replicas.clone();
        for (old, replica) in self.replicas.iter().enumerate() {
            replicas[usize::from(perm[old])] = ReplicaState {
                slots: rename_slots(&replica.slots, perm, self.own_values),
                clock: replica.clock,
                writes_done: replica.writes_done,
                delivered: rename_updates(replica.delivered, perm),
            };
        }
        let in_flight = self
            .in_flight
            .iter()
            .map(|m| Message {
                from: perm[usize::from(m.from)],
                to: perm[usize::from(m.to)],
                payload: match &m.payload {
                    Payload::State { slots, updates } => Payload::State {
                        slots: rename_slots(slots, perm, self.own_values),
                        updates: rename_updates(*updates, perm),
                    },
                    Payload::Op {
                        update,
                        key,
                        value,
                        stamp,
                    } => Payload::Op {
                        update: rename_update(*update, perm),
                        key: *key,
                        value: rename_value(*value, perm, self.own_values),
                        stamp: rename_stamp(*stamp, perm),
                    },
                },
            })
            .collect();
        let mut renamed = ModelState {
            replicas,
            in_flight,
            drops_left: self.drops_left,
            flight: self.flight,
            own_values: self.own_values,
        };
        renamed.canonicalize();
        renamed
    }
}

fn rename_stamp(stamp: ModelStamp, perm: &[u8]) -> ModelStamp {
    ModelStamp {
        time: stamp.time,
        replica: perm[usize::from(stamp.replica)],
    }
}

/// Under the own-value workload, value `r + 1` belongs to replica `r` and is renamed with it; 0 (a
/// remove or a cleared cell) belongs to nobody.
fn rename_value(value: u8, perm: &[u8], own_values: bool) -> u8 {
    match value.checked_sub(1) {
        Some(owner) if own_values && usize::from(owner) < perm.len() => {
            perm[usize::from(owner)] + 1
        }
        _ => value,
    }
}

fn rename_slots(slots: &[Slot], perm: &[u8], own_values: bool) -> Vec<Slot> {
    slots
        .iter()
        .map(|slot| Slot {
            add: slot.add.map(|(stamp, value)| {
                (
                    rename_stamp(stamp, perm),
                    rename_value(value, perm, own_values),
                )
            }),
            remove: slot.remove,
        })
        .collect()
}

fn rename_update(update: u8, perm: &[u8]) -> u8 {
    perm[usize::from(update / MAX_WRITES)] * MAX_WRITES + update % MAX_WRITES
}

fn rename_updates(updates: u16, perm: &[u8]) -> u16 {
    let mut renamed = 0u16;
    for bit in 0..16u8 {
        if updates & (1 << bit) != 0 && usize::from(bit / MAX_WRITES) < perm.len() {
            renamed |= 1 << rename_update(bit, perm);
        }
    }
    renamed
}

/// Every permutation of `0..n`, in lexicographic order.
fn permutations(n: usize) -> Vec<Vec<u8>> {
    fn extend(prefix: &mut Vec<u8>, n: u8, out: &mut Vec<Vec<u8>>) {
        if prefix.len() == usize::from(n) {
            out.push(prefix.clone());
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
    // The model has at most 4 replicas; the cast cannot truncate.
    extend(&mut Vec::new(), n as u8, &mut out);
    out
}

impl Representative for ModelState {
    /// The least state, in the derived order, among all renamings of the replicas.
    ///
    /// Taking the minimum over the whole orbit (at most 4! = 24 renamings) makes the representative
    /// a true canonical form: two states get the same representative exactly when one is a renaming
    /// of the other. Stateright's sort-based rewrite plans only promise "some" member of the orbit,
    /// which reduces less and makes the unique-state count depend on thread timing.
    ///
    /// This is sound only when renaming replicas commutes with every transition. The checker turns
    /// symmetry on only for such configurations; see `ModelSpec::symmetry_is_sound`.
    fn representative(&self) -> Self {
        let mut best: Option<ModelState> = None;
        for perm in permutations(self.replicas.len()) {
            let candidate = self.renamed(&perm);
            if best.as_ref().is_none_or(|b| candidate < *b) {
                best = Some(candidate);
            }
        }
        best.unwrap_or_else(|| self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_cover_the_symmetric_group() {
        assert_eq!(permutations(3).len(), 6);
        assert_eq!(permutations(4).len(), 24);
        assert_eq!(permutations(2), vec![vec![0, 1], vec![1, 0]]);
    }

    #[test]
    fn update_ids_move_with_their_origin() {
        // Replica 0's second update (bit 1) becomes replica 2's second update (bit 7).
        assert_eq!(rename_updates(0b10, &[2, 0, 1]), 1 << 7);
    }
}
