//! Steps on packed states ([`Packed`]): where the protocol's handlers read only their own node,
//! what a write or a delivery does depends on that node, the update records, the time and the
//! message or write alone. The first time, the handler runs on the unpacked system and what it
//! did is remembered in indices ([`Effect`]); every later time the successor is made from its
//! parent's words and the effect, without unpacking anything or running the handler. Drops run
//! no handler at all. Everything else (timers, connections) unpacks and runs.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use converge_netsim::explore::{Effect, Flight, HashParts, Packed, System, Tables};
use converge_netsim::outcome::NodeId;

use super::system::{
    fingerprint_from, handed_lately, Budgets, CheckedCrdt, CheckedProtocol, KeyBuild, Lazy,
    ModelAction, ModelState, SeamModel, Step,
};

/// What `actions` reads of a system: its shape, packed or made.
pub(crate) trait Shape {
    fn ended(&self) -> bool;
    fn issued(&self, replica: u32) -> u32;
    fn in_flight(&self) -> usize;
    /// Message `index` as (sender, receiver, content hash).
    fn link(&self, index: usize) -> (NodeId, NodeId, u64);
    fn is_disconnected(&self, a: NodeId, b: NodeId) -> bool;
    fn connections_down(&self) -> Vec<(NodeId, NodeId)>;
    fn timers_pending(&self) -> usize;
}

impl<C: CheckedCrdt, P: CheckedProtocol<C>> Shape for System<C, P> {
    fn ended(&self) -> bool {
        self.ending().is_some()
    }

    fn issued(&self, replica: u32) -> u32 {
        System::issued(self, replica)
    }

    fn in_flight(&self) -> usize {
        System::in_flight(self).len()
    }

    fn link(&self, index: usize) -> (NodeId, NodeId, u64) {
        let message = &System::in_flight(self)[index];
        (message.from, message.to, self.message_digest(index))
    }

    fn is_disconnected(&self, a: NodeId, b: NodeId) -> bool {
        System::is_disconnected(self, a, b)
    }

    fn connections_down(&self) -> Vec<(NodeId, NodeId)> {
        System::connections_down(self).collect()
    }

    fn timers_pending(&self) -> usize {
        System::timers_pending(self)
    }
}

/// A packed system with the tables it names.
pub(crate) struct PackedShape<'a, C: CheckedCrdt, P: CheckedProtocol<C>> {
    pub(crate) tables: &'a Tables<C, P>,
    pub(crate) packed: &'a Packed,
}

impl<C: CheckedCrdt, P: CheckedProtocol<C>> Shape for PackedShape<'_, C, P> {
    fn ended(&self) -> bool {
        self.tables.has_ended(self.packed)
    }

    fn issued(&self, replica: u32) -> u32 {
        self.tables.issued(self.packed, replica)
    }

    fn in_flight(&self) -> usize {
        self.tables.in_flight_len(self.packed)
    }

    fn link(&self, index: usize) -> (NodeId, NodeId, u64) {
        self.tables.link(self.packed, index)
    }

    fn is_disconnected(&self, a: NodeId, b: NodeId) -> bool {
        self.tables.is_disconnected(self.packed, a, b)
    }

    fn connections_down(&self) -> Vec<(NodeId, NodeId)> {
        self.tables.connections_down(self.packed)
    }

    fn timers_pending(&self) -> usize {
        self.tables.timers_pending(self.packed)
    }
}

/// Tells a write's effect key from a delivery's.
const WRITE: u64 = 1;
const DELIVERY: u64 = 2;

impl<C: CheckedCrdt, P: CheckedProtocol<C>> SeamModel<C, P> {
    /// The successor `action` makes of a packed state, or `None` where the step is not one
    /// made here (the caller unpacks and runs it): `Some(None)` where the step is not taken.
    pub(crate) fn packed_next_state(
        &self,
        state: &ModelState<C, P>,
        at: (&Packed, HashParts),
        action: ModelAction,
    ) -> Option<Option<ModelState<C, P>>> {
        let tables = self.explorer.tables();
        let packed = at.0;
        if !tables.is_plain(packed) {
            return None;
        }
        let next = match action {
            ModelAction::Drop { index } => {
                let Some(budgets) = state.budgets().after_a_drop() else {
                    return Some(None);
                };
                let step = Step {
                    node: 0,
                    removed: index,
                    effect: None,
                };
                self.after(state, at, step, budgets)
            }
            ModelAction::Write { .. } | ModelAction::Deliver { .. } => {
                self.remembered_step(state, at, action)
            }
            _ => return None,
        };
        Some(next)
    }

    /// A write or a delivery of a packed state, made from what the same step did before where
    /// a thread remembers it, and run otherwise (then remembered).
    fn remembered_step(
        &self,
        state: &ModelState<C, P>,
        at: (&Packed, HashParts),
        action: ModelAction,
    ) -> Option<ModelState<C, P>> {
        let (tables, packed) = (self.explorer.tables(), at.0);
        let (key, node, removed, coins) = match action {
            ModelAction::Write { replica, choice } => {
                let seed = self.effect_seed(WRITE, 0);
                let key = tables.effect_key(packed, replica, seed, u64::from(choice));
                (key, replica, Step::KEPT, 0)
            }
            ModelAction::Deliver { index, coins } => {
                let stays = self.explorer.spec().flight == Flight::Set;
                let to = tables.link(packed, index as usize).1;
                let removed = if stays { Step::KEPT } else { index };
                (self.delivery_key(packed, index, coins), to, removed, coins)
            }
            _ => unreachable!("only writes and deliveries have effects"),
        };
        let remembered = match self.with_known(key, |memo| memo.get(key)) {
            None => return self.run_step(state, action, Some(key)),
            Some(Known::Quiet) => return self.checked(state, action, None),
            Some(Known::Effect(remembered)) => remembered,
        };
        // A pattern with more coins than the handler flipped is another's.
        if u64::from(coins) >> remembered.flips.min(32) != 0 {
            return self.checked(state, action, None);
        }
        let effect = Some(remembered.effect);
        let next = self.after(
            state,
            at,
            Step {
                node,
                removed,
                effect,
            },
            state.budgets(),
        );
        self.checked(state, action, next)
    }

    /// A write or a delivery, the handler run; what it did is remembered under `remember`.
    pub(crate) fn run_step(
        &self,
        state: &ModelState<C, P>,
        action: ModelAction,
        remember: Option<u64>,
    ) -> Option<ModelState<C, P>> {
        match action {
            ModelAction::Write { replica, choice } => {
                self.write_made(state, replica, choice, remember)
            }
            ModelAction::Deliver { index, coins } => {
                self.deliver_made(state, index, coins, remember)
            }
            _ => unreachable!("only writes and deliveries have effects"),
        }
    }

    /// `next`, made from a remembered effect; debug builds check that running the step gives
    /// the same state, so that the whole test suite checks what effects make.
    fn checked(
        &self,
        state: &ModelState<C, P>,
        action: ModelAction,
        next: Option<ModelState<C, P>>,
    ) -> Option<ModelState<C, P>> {
        if cfg!(debug_assertions) {
            let made = self.run_step(state, action, None);
            // A successor this thread handed the checker lately is not made ([`Self::after`]).
            let made = made.filter(|made| !handed_lately(self.run, made.fingerprint()));
            assert_eq!(
                made.as_ref().map(ModelState::fingerprint),
                next.as_ref().map(ModelState::fingerprint),
                "a step made from its remembered effect is the step run"
            );
        }
        next
    }

    /// The seed of an effect key ([`Tables::effect_key`]): the model, the kind of step and the
    /// coins, each in bits of its own.
    fn effect_seed(&self, kind: u64, coins: u32) -> u64 {
        self.identity ^ kind ^ u64::from(coins) << 2
    }

    /// The effect key of delivering message `index` of `packed` with `coins`.
    fn delivery_key(&self, packed: &Packed, index: u32, coins: u32) -> u64 {
        let tables = self.explorer.tables();
        let (_, to, _) = tables.link(packed, index as usize);
        let message = tables.message_key(packed, index as usize);
        tables.effect_key(packed, to, self.effect_seed(DELIVERY, coins), message)
    }

    /// Whether a packed state's actions leave out the deliveries that change nothing: where
    /// messages stay in flight (a set) and no coin is flipped, so that a message is delivered
    /// one way. Such a delivery leads back to the state itself, and two thirds of what a
    /// duplicating network offers are such repeats: left out, they cost the checker nothing.
    fn omits_quiet(&self) -> bool {
        self.coin_bits == 0 && self.explorer.spec().flight == Flight::Set
    }

    /// What is known of delivering each message of packed `state` ([`Deliveries`]): carried
    /// from its parent where the delivery is the same, asked of the memo, or learned now by
    /// running it. The answer is the same on every thread and in every run, whatever each
    /// knew before, as the actions offered must be. Its successors made next carry it on.
    pub(crate) fn deliveries(&self, state: &ModelState<C, P>, packed: &Packed) -> Deliveries {
        let tables = self.explorer.tables();
        if !self.omits_quiet() || !tables.is_plain(packed) {
            return Deliveries::default();
        }
        let mut known = state.carried(&self.explorer, packed);
        for index in 0..tables.in_flight_len(packed).min(32) as u32 {
            let bit = 1 << index;
            if (known.quiet | known.loud) & bit == 0 {
                match self.delivery_quiet(state, packed, index) {
                    Some(true) => known.quiet |= bit,
                    Some(false) => known.loud |= bit,
                    None => {}
                }
            }
            if cfg!(debug_assertions) && known.quiet & bit != 0 {
                let made = self.deliver_made(state, index, 0, None);
                assert!(made.is_none(), "a delivery known quiet changes nothing");
            }
        }
        EXPANDING.set((state.fingerprint(), known));
        known
    }

    /// Whether delivering message `index` of packed `state` changes nothing, run now where no
    /// thread knows; `None` where what the delivery does is not remembered.
    fn delivery_quiet(
        &self,
        state: &ModelState<C, P>,
        packed: &Packed,
        index: u32,
    ) -> Option<bool> {
        let key = self.delivery_key(packed, index, 0);
        let known = || self.with_known(key, |memo| memo.is_quiet(key));
        known().or_else(|| {
            self.deliver_made(state, index, 0, Some(key));
            known()
        })
    }

    /// The successor `step` makes of a packed state, foreseen and made only when expanded;
    /// `None` where it is the state itself (a self-loop adds nothing to explore), a state this
    /// thread handed the checker lately ([`handed_lately`]: the checker holds it, and most
    /// successors are such revisits, which are then neither made nor dropped) or goes past a
    /// bound.
    fn after(
        &self,
        state: &ModelState<C, P>,
        (packed, parts): (&Packed, HashParts),
        step: Step,
        budgets: Budgets,
    ) -> Option<ModelState<C, P>> {
        let tables = self.explorer.tables();
        match tables.foresee(self.explorer.spec(), (packed, parts), &step.change()) {
            Ok(parts) => {
                let fingerprint = fingerprint_from(parts, budgets);
                if fingerprint == state.fingerprint() || handed_lately(self.run, fingerprint) {
                    return None;
                }
                let (expanding, known) = EXPANDING.get();
                let known = match expanding == state.fingerprint() {
                    true => known,
                    false => Deliveries::default(),
                };
                let lazy = Lazy::after(packed.clone(), step, known);
                Some(ModelState::packed(lazy, parts, budgets))
            }
            Err(_) => {
                self.pruned.store(true, Ordering::Relaxed);
                None
            }
        }
    }
}

/// What a checker thread knows of delivering each message in flight (of the first 32) of a
/// packed state: bit `i` of `quiet` where delivering message `i` changes nothing, of `loud`
/// where it does something remembered. Both are facts of the state, whoever learned them.
/// Half words, as every state the checker queues carries its parent's.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Deliveries {
    pub(crate) quiet: u32,
    pub(crate) loud: u32,
}

thread_local! {
    /// What writes and deliveries did, by effect key ([`Tables::effect_key`]), per checker
    /// thread: the keys name the model, so models share it.
    static MEMO: RefCell<Memo> = RefCell::default();

    /// The state this thread expands, by fingerprint, and what is known of its deliveries
    /// ([`SeamModel::deliveries`]), which its successors carry on.
    static EXPANDING: Cell<(u64, Deliveries)> = const {
        Cell::new((0, Deliveries { quiet: 0, loud: 0 }))
    };
}

/// What steps did, by effect key.
#[derive(Default)]
struct Memo {
    steps: HashMap<u64, Known, KeyBuild>,
}

/// What a step did, as the memo tells it.
#[derive(Clone)]
enum Known {
    /// A delivery of a message that stays, which changes nothing.
    Quiet,
    Effect(Remembered),
}

/// An effect as the table keeps it, with the coins its handler flipped at hand.
#[derive(Clone)]
struct Remembered {
    effect: Arc<Effect>,
    flips: u32,
}

/// Steps kept at most; the table starts again past it.
const MEMO_MAX: usize = 1 << 18;

fn with_memo<R>(f: impl FnOnce(&Memo) -> R) -> R {
    MEMO.with(|memo| f(&memo.borrow()))
}

impl Memo {
    fn insert(&mut self, key: u64, known: Known) {
        if self.steps.len() >= MEMO_MAX {
            self.steps.clear();
        }
        self.steps.insert(key, known);
    }

    fn get(&self, key: u64) -> Option<Known> {
        self.steps.get(&key).cloned()
    }

    /// Whether the step known by `key` changes nothing, if known.
    fn is_quiet(&self, key: u64) -> Option<bool> {
        self.steps
            .get(&key)
            .map(|known| matches!(known, Known::Quiet))
    }
}

/// What every checker thread of a model has learned, so that a thread (and each run of an
/// iterative deepening, whose threads are new) asks it before running a handler another
/// thread already ran. Looked at only where a thread's own table has nothing.
#[derive(Default)]
pub(crate) struct SharedMemo(Mutex<Memo>);

impl SharedMemo {
    fn lock(&self) -> std::sync::MutexGuard<'_, Memo> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<C: CheckedCrdt, P: CheckedProtocol<C>> SeamModel<C, P> {
    /// `f` of this thread's memo, where it knows `key`, after learning it from the other
    /// threads' if need be; `None` where no thread knows it (`f` answers `None` for a key
    /// its memo lacks).
    fn with_known<R>(&self, key: u64, f: impl Fn(&Memo) -> Option<R>) -> Option<R> {
        if let Some(known) = with_memo(&f) {
            return Some(known);
        }
        let learned = self.memo.lock().get(key)?;
        MEMO.with(|memo| memo.borrow_mut().insert(key, learned));
        with_memo(&f)
    }

    /// Remembers what the step known by `key` did, for this thread and the others; `stays`
    /// where the message it delivered stays in flight.
    pub(crate) fn remember_effect(&self, key: u64, effect: Effect, stays: bool) {
        let known = match stays && effect.changes_nothing() {
            true => Known::Quiet,
            false => Known::Effect(Remembered {
                flips: effect.step.flips,
                effect: Arc::new(effect),
            }),
        };
        self.memo.lock().insert(key, known.clone());
        MEMO.with(|memo| memo.borrow_mut().insert(key, known));
    }
}
