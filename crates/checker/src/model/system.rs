//! The stateright [`Model`] over the protocol seam: a state is a netsim [`System`] (the real
//! replicas, the real protocol states, the messages in flight, the pending timers) and the drop
//! budget left, and every transition calls the protocol's own handlers through
//! [`converge_netsim::explore`]. The checker carries no protocol of its own and no copy of a
//! merge rule: a bug it finds is in the code that runs.

use std::cell::RefCell;
use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use converge_crdt::{OpCrdt, ReplicaId, WorkloadIntent};
use converge_netsim::explore::{
    Change, Effect, Ending, ExploreSpec, Explorer, Flight, Handled, HashParts, Packed, System,
    WordHasher,
};
use converge_netsim::outcome::NodeId;
use converge_netsim::protocol::Protocol;
use serde::{Deserialize, Serialize};
use stateright::{Model, Property};

use super::packed::{Deliveries, PackedShape, Shape, SharedMemo};
use super::symmetry::Reduction;

/// The property names, in the order the report prefers them when several fail at once.
pub(crate) const STRONG_CONVERGENCE: &str = "strong convergence";
pub(crate) const QUIESCENT_CONVERGED: &str = "quiescent implies converged";
pub(crate) const NO_PANIC: &str = "no panic";
pub(crate) const KNOWN_NODES: &str = "sends only to nodes that exist";
pub(crate) const CONFLICT_OCCURS: &str = "a conflict occurs";
pub(crate) const NO_SYNC_LOOP: &str = "no sync loop";
pub(crate) const EXPLORE: &str = "explore everything";

/// Where a system's fair, lossless continuation goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Continuation {
    /// Some replica learns something (or the probe ran out of steps).
    Changes,
    /// Nothing in flight and no timer pending: the system has gone quiet.
    Silent,
    /// It comes back to a state it was in after `steps` steps, `deliveries` of them messages
    /// between `nodes`, and goes round for ever with no replica learning anything.
    /// `timer_driven` when a timer fires on the way round (a periodic round, which is how
    /// anti-entropy is meant to behave), false when messages alone answer each other.
    Loops {
        deliveries: u32,
        steps: u32,
        nodes: Vec<u32>,
        timer_driven: bool,
    },
}

/// How many steps the quiescence probe takes at most (see [`SeamModel::quiescent`]).
const PROBE_STEPS_MAX: usize = 256;

/// A CRDT the model checker can explore: its states and ops hash (equal states, equal hashes)
/// and cross threads.
pub trait CheckedCrdt:
    OpCrdt<Op: Hash + Send + Sync, Intent: Hash + Send + Sync> + Hash + Send + Sync + 'static
{
}

impl<C> CheckedCrdt for C where
    C: OpCrdt<Op: Hash + Send + Sync, Intent: Hash + Send + Sync> + Hash + Send + Sync + 'static
{
}

/// A protocol the model checker can explore: its node states, messages and timers hash, print
/// and cross threads.
pub trait CheckedProtocol<C: OpCrdt>:
    Protocol<
        C,
        Node: Clone + Hash + Debug + Send + Sync,
        Message: Hash + Debug + Send + Sync,
        Timer: Clone + Hash + Debug + Send + Sync,
    > + Send
    + Sync
    + 'static
{
}

impl<C: OpCrdt, P> CheckedProtocol<C> for P where
    P: Protocol<
            C,
            Node: Clone + Hash + Debug + Send + Sync,
            Message: Hash + Debug + Send + Sync,
            Timer: Clone + Hash + Debug + Send + Sync,
        > + Send
        + Sync
        + 'static
{
}

/// One step of the model. Messages are named by their place in the system's canonical order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ModelAction {
    /// Replica `replica` issues its next write, the `choice`-th intent its workload offers.
    Write { replica: u32, choice: u32 },
    /// The message at `index` in flight arrives; bit `i` of `coins` is the `i`-th coin its
    /// handling flips (the random tie-break).
    Deliver { index: u32, coins: u32 },
    /// The message at `index` in flight is lost (lossy networks, while the drop budget lasts).
    Drop { index: u32 },
    /// The next timer fires.
    Fire,
    /// The connection between nodes `a` and `b` (`a < b`) drops: what is in flight on it is lost
    /// and both ends are told (networks of connections, while the connection-drop budget lasts).
    DropConnection { a: u32, b: u32 },
    /// The dropped connection between `a` and `b` comes back, and both ends are told.
    Reconnect { a: u32, b: u32 },
}

/// What a path may still lose: single messages (lossy networks) and connections (networks of
/// connections).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Budgets {
    pub(crate) drops_left: u32,
    pub(crate) connection_drops_left: u32,
}

impl Budgets {
    /// The budgets after one more message is lost, if one may be.
    pub(crate) fn after_a_drop(self) -> Option<Budgets> {
        Some(Budgets {
            drops_left: self.drops_left.checked_sub(1)?,
            ..self
        })
    }

    /// Mixes the budgets into a state's hash, which `hasher` started from `drops_left`: the
    /// connection budget only where some is left, so that models without connections hash
    /// every state exactly as they always did.
    pub(crate) fn hash_connections(&self, hasher: &mut WordHasher) {
        if self.connection_drops_left != 0 {
            hasher.write_u64(u64::from(self.connection_drops_left));
        }
    }
}

/// What the replicas write: for replica `r`, its `k`-th write offers `choices(r, k)`.
pub(crate) type Workload<I> = Arc<dyn Fn(ReplicaId, u32) -> Vec<I> + Send + Sync>;

/// How many intents write `k` of replica `r` offers, at `r * writes_per_replica + k`: every
/// state's actions ask, and the workload makes the intents to answer.
pub(crate) fn choice_counts<I>(
    workload: &(dyn Fn(ReplicaId, u32) -> Vec<I> + Send + Sync),
    spec: &ExploreSpec,
) -> Arc<[u32]> {
    let writes = 0..spec.writes_per_replica;
    (0..spec.replicas)
        .flat_map(|r| writes.clone().map(move |k| (r, k)))
        .map(|(r, k)| workload(r, k).len() as u32)
        .collect()
}

/// What the checker is asked to do with the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The real properties.
    Verify,
    /// One property that always holds, so that stateright never stops early: for counting the
    /// whole state space.
    Explore,
}

/// A state of the model: the system, the drop budgets left, and their fingerprint, computed
/// once.
///
/// Where the protocol's handlers read only their own node and symmetry is off, the system is
/// kept packed ([`Packed`]): a few words naming replicas and messages kept once in the
/// explorer's tables. Most steps are then made from what the same step did before, without
/// unpacking anything ([`SeamModel::packed_next_state`]); the system is unpacked only when a
/// handler must run or a property reads it.
pub struct ModelState<C: OpCrdt, P: Protocol<C>> {
    body: Body<C, P>,
    pub(crate) drops_left: u32,
    pub(crate) connection_drops_left: u32,
    /// What the system means (see [`System`]'s `Hash`).
    fingerprint: u64,
}

/// A state's system, made or packed.
pub(crate) enum Body<C: OpCrdt, P: Protocol<C>> {
    Made {
        system: Arc<System<C, P>>,
        /// What the checker's visited set knows the state by: under symmetry reduction the
        /// key of its orbit under renaming replicas (`symmetry.rs`), otherwise its
        /// fingerprint. Packed states, never reduced, are known by their fingerprint: the
        /// word is not kept in them, as every state the checker queues is moved about.
        key: u64,
    },
    Packed {
        packed: Lazy,
        /// The system's hash in parts, from which its successors' follow.
        parts: HashParts,
        /// The system unpacked, once something asked for it.
        made: OnceLock<Arc<System<C, P>>>,
    },
}

/// A packed system, or the change that makes it from its parent's: made when the state is
/// first expanded, so that a successor the checker has seen (most of them) is hashed and
/// dropped without being made.
#[derive(Clone)]
pub(crate) struct Lazy {
    ready: OnceLock<Packed>,
    /// The parent, the change, and what was known of the parent's deliveries.
    from: Option<(Packed, Step, Deliveries)>,
}

/// A change without a handler ([`Change`]), its effect shared with the table that remembers it.
#[derive(Clone)]
pub(crate) struct Step {
    pub(crate) node: NodeId,
    /// The message that goes, or [`Step::KEPT`]: a word, as the state holding it is moved
    /// around a great deal.
    pub(crate) removed: u32,
    pub(crate) effect: Option<Arc<Effect>>,
}

impl Step {
    /// No message goes.
    pub(crate) const KEPT: u32 = u32::MAX;

    pub(crate) fn change(&self) -> Change<'_> {
        Change {
            node: self.node,
            removed: (self.removed != Self::KEPT).then_some(self.removed as usize),
            effect: self.effect.as_deref(),
        }
    }
}

impl Lazy {
    pub(crate) fn ready(packed: Packed) -> Self {
        Lazy {
            ready: OnceLock::from(packed),
            from: None,
        }
    }

    pub(crate) fn after(parent: Packed, step: Step, known: Deliveries) -> Self {
        Lazy {
            ready: OnceLock::new(),
            from: Some((parent, step, known)),
        }
    }

    /// The packed system, made now if only its change was known.
    fn get<C: CheckedCrdt, P: CheckedProtocol<C>>(
        &self,
        explorer: &Explorer<C, P>,
        parts: HashParts,
    ) -> &Packed {
        self.ready.get_or_init(|| {
            let (parent, step, _) = self.from.as_ref().expect("a change where nothing is ready");
            let tables = explorer.tables();
            let packed = tables
                .make(explorer.spec(), parent, &step.change())
                .expect("a change foreseen within the bounds");
            debug_assert_eq!(
                tables.parts(explorer.spec(), &packed),
                parts,
                "a change makes the system foreseen"
            );
            packed
        })
    }
}

impl<C: OpCrdt, P: Protocol<C>> Clone for Body<C, P> {
    fn clone(&self) -> Self {
        match self {
            Body::Made { system, key } => Body::Made {
                system: Arc::clone(system),
                key: *key,
            },
            Body::Packed {
                packed,
                parts,
                made,
            } => Body::Packed {
                packed: packed.clone(),
                parts: *parts,
                made: made.clone(),
            },
        }
    }
}

/// A fingerprint from a system's hash in parts and the budgets left: what [`Hash`] of the
/// system gives, the budgets around it.
pub(crate) fn fingerprint_from(parts: HashParts, budgets: Budgets) -> u64 {
    let mut hasher = WordHasher(u64::from(budgets.drops_left));
    parts.write(&mut hasher);
    budgets.hash_connections(&mut hasher);
    hasher.finish()
}

impl<C: CheckedCrdt, P: CheckedProtocol<C>> ModelState<C, P> {
    /// A state known by its own fingerprint.
    fn new(system: System<C, P>, budgets: Budgets) -> Self {
        let fingerprint = fingerprint_from(system.hash_parts(), budgets);
        ModelState {
            body: Body::Made {
                system: Arc::new(system),
                key: fingerprint,
            },
            fingerprint,
            drops_left: budgets.drops_left,
            connection_drops_left: budgets.connection_drops_left,
        }
    }

    /// A packed state, its system's hash in `parts`.
    pub(crate) fn packed(packed: Lazy, parts: HashParts, budgets: Budgets) -> Self {
        let fingerprint = fingerprint_from(parts, budgets);
        ModelState {
            body: Body::Packed {
                packed,
                parts,
                made: OnceLock::new(),
            },
            fingerprint,
            drops_left: budgets.drops_left,
            connection_drops_left: budgets.connection_drops_left,
        }
    }

    /// The packed system and its hash in parts, where the state is packed.
    pub(crate) fn packed_in(&self, explorer: &Explorer<C, P>) -> Option<(&Packed, HashParts)> {
        match &self.body {
            Body::Packed { packed, parts, .. } => Some((packed.get(explorer, *parts), *parts)),
            Body::Made { .. } => None,
        }
    }

    pub(crate) fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// What its parent's deliveries tell of delivering the messages of this packed state
    /// (`packed`), where the delivery is the same ([`converge_netsim::explore::Tables::carried`]).
    pub(crate) fn carried(&self, explorer: &Explorer<C, P>, packed: &Packed) -> Deliveries {
        let Body::Packed {
            packed:
                Lazy {
                    from: Some((parent, _, known)),
                    ..
                },
            ..
        } = &self.body
        else {
            return Deliveries::default();
        };
        if known.quiet | known.loud == 0 {
            return Deliveries::default();
        }
        let masks = [known.quiet, known.loud].map(u64::from);
        let [quiet, loud] = explorer.tables().carried(parent, packed, masks);
        // Bits past the first 32 are dropped: those messages are asked about again.
        Deliveries {
            quiet: quiet as u32,
            loud: loud as u32,
        }
    }

    /// The state's system, unpacked now if it was packed.
    pub(crate) fn system(&self, explorer: &Explorer<C, P>) -> &Arc<System<C, P>> {
        match &self.body {
            Body::Made { system, .. } => system,
            Body::Packed {
                packed,
                parts,
                made,
            } => made.get_or_init(|| {
                let packed = packed.get(explorer, *parts);
                let system = explorer.tables().unpack(explorer.spec(), packed);
                debug_assert_eq!(
                    fingerprint_from(system.hash_parts(), self.budgets()),
                    self.fingerprint,
                    "a packed system unpacks into the system it was packed from"
                );
                Arc::new(system)
            }),
        }
    }

    /// What the state may still lose.
    pub(crate) fn budgets(&self) -> Budgets {
        Budgets {
            drops_left: self.drops_left,
            connection_drops_left: self.connection_drops_left,
        }
    }
}

impl<C: OpCrdt, P: Protocol<C>> Clone for ModelState<C, P> {
    fn clone(&self) -> Self {
        ModelState {
            body: self.body.clone(),
            drops_left: self.drops_left,
            connection_drops_left: self.connection_drops_left,
            fingerprint: self.fingerprint,
        }
    }
}

impl<C: OpCrdt, P: Protocol<C>> ModelState<C, P> {
    /// What the checker's visited set knows the state by (see [`Body::Made`]).
    pub(crate) fn key(&self) -> u64 {
        match &self.body {
            Body::Made { key, .. } => *key,
            Body::Packed { .. } => self.fingerprint,
        }
    }
}

impl<C: OpCrdt, P: Protocol<C>> Hash for ModelState<C, P> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.key());
    }
}

/// Two states are the same state when their keys are, which is what the checker's visited set
/// decides anyway.
impl<C: OpCrdt, P: Protocol<C>> PartialEq for ModelState<C, P> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl<C: OpCrdt, P: Protocol<C>> Debug for ModelState<C, P>
where
    System<C, P>: Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let made = match &self.body {
            Body::Made { system, .. } => Some(system),
            Body::Packed { made, .. } => made.get(),
        };
        match made {
            Some(system) => write!(f, "{system:?}")?,
            None => write!(f, "(packed)")?,
        }
        write!(
            f,
            " drops left {}, connection drops left {}",
            self.drops_left, self.connection_drops_left
        )
    }
}

/// The stateright model: the explorer, the workload, the drop budget and the coins to explore.
pub(crate) struct SeamModel<C: CheckedCrdt, P: CheckedProtocol<C>> {
    pub(crate) explorer: Arc<Explorer<C, P>>,
    pub(crate) workload: Workload<C::Intent>,
    /// How many intents each write offers ([`choice_counts`]).
    pub(crate) choices: Arc<[u32]>,
    pub(crate) drops: u32,
    /// How many times a path may drop a connection (0 unless the links are connections).
    pub(crate) connection_drops: u32,
    /// Coin patterns explored per delivery: `1 << coin_bits` (0 where no policy flips coins).
    pub(crate) coin_bits: u32,
    pub(crate) mode: Mode,
    pub(crate) deadline: Option<Deadline>,
    /// Set when a step was not taken because it would have gone past the in-flight or timer
    /// bound: the exploration is then bounded by them.
    pub(crate) pruned: Arc<AtomicBool>,
    /// A message in a few words, for counterexamples.
    pub(crate) describe: Describe<C, P>,
    /// A replica's view in a few words, for counterexamples.
    pub(crate) view: Arc<dyn Fn(&C) -> String + Send + Sync>,
    /// Whether the protocol's handlers read only their own node and the update records (the
    /// built-in broadcasts and anti-entropy over a mesh), which lets repeats be skipped.
    pub(crate) local_handlers: bool,
    /// Tells this model's remembered repeats from another's on the same thread.
    pub(crate) identity: u64,
    /// Symmetry reduction, where it is sound for the configuration (`symmetry.rs`).
    pub(crate) symmetry: Option<Arc<Reduction<C, P>>>,
    /// What the model's checker threads learned steps do (`packed.rs`).
    pub(crate) memo: Arc<SharedMemo>,
    /// Tells one checker run's recently handed states from another's ([`recently_handed`]):
    /// a fresh word for every run ([`SeamModel::with_deadline`]).
    pub(crate) run: u64,
}

/// A fresh [`SeamModel::identity`].
pub(crate) fn next_identity() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    mix_identity(NEXT.fetch_add(1, Ordering::Relaxed))
}

fn mix_identity(n: u64) -> u64 {
    n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// How a counterexample names a message of the system it is in.
pub(crate) type Describe<C, P> =
    Arc<dyn Fn(&System<C, P>, &<P as Protocol<C>>::Message) -> String + Send + Sync>;

impl<C: CheckedCrdt, P: CheckedProtocol<C>> Clone for SeamModel<C, P> {
    fn clone(&self) -> Self {
        SeamModel {
            explorer: Arc::clone(&self.explorer),
            workload: Arc::clone(&self.workload),
            choices: Arc::clone(&self.choices),
            drops: self.drops,
            connection_drops: self.connection_drops,
            coin_bits: self.coin_bits,
            mode: self.mode,
            deadline: self.deadline.clone(),
            pruned: Arc::clone(&self.pruned),
            describe: Arc::clone(&self.describe),
            view: Arc::clone(&self.view),
            local_handlers: self.local_handlers,
            identity: self.identity,
            symmetry: self.symmetry.clone(),
            memo: Arc::clone(&self.memo),
            run: self.run,
        }
    }
}

/// A wall-clock limit on a run, enforced through `within_boundary`.
///
/// Stateright's own timeout closes its job market, but a checker thread looks at the market only
/// when its own queue of states runs dry; with one thread that is the end of the search, so a
/// single-threaded run ignored its timeout and explored everything. Past the deadline every new
/// state is outside the boundary: the threads drain what they hold and stop, and the run, which
/// lasted its whole budget, is reported inconclusive.
#[derive(Clone, Debug)]
pub(crate) struct Deadline {
    pub(crate) at: Instant,
    /// Set once the deadline has passed, for every thread of the run.
    pub(crate) passed: Arc<AtomicBool>,
}

/// `within_boundary` reads the clock once per this many calls on each thread.
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

impl<C: CheckedCrdt, P: CheckedProtocol<C>> SeamModel<C, P> {
    pub(crate) fn with_deadline(&self, at: Instant) -> Self {
        SeamModel {
            deadline: Some(Deadline {
                at,
                passed: Arc::new(AtomicBool::new(false)),
            }),
            run: next_identity(),
            ..self.clone()
        }
    }

    fn replicas(&self) -> u32 {
        self.explorer.spec().replicas
    }

    fn writes_per_replica(&self) -> u32 {
        self.explorer.spec().writes_per_replica
    }

    /// The intents replica `replica` may write next, if it has writes left.
    pub(crate) fn write_choices(&self, system: &impl Shape, replica: ReplicaId) -> Vec<C::Intent> {
        let done = system.issued(replica);
        if done >= self.writes_per_replica() {
            return Vec::new();
        }
        (self.workload)(replica, done)
    }

    /// A successor, or `None` where the step is not taken: a coin pattern with more coins than
    /// the step flipped (another pattern already covers it), or a step past a bound.
    fn successor(
        &self,
        system: System<C, P>,
        budgets: Budgets,
        flips: u32,
        coins: u32,
    ) -> Option<ModelState<C, P>> {
        if u64::from(coins) >> flips.min(32) != 0 {
            return None;
        }
        if let Some(Ending::Bound(bound)) = system.ending() {
            if *bound != "send_to_unknown_node" {
                self.pruned.store(true, Ordering::Relaxed);
                return None;
            }
        }
        Some(self.state(system, budgets))
    }

    /// Whether states are kept packed: where the protocol's handlers read only their own node,
    /// so that what a step did says what it does again, and symmetry reduction is off (it
    /// makes a representative of every state anyway).
    pub(crate) fn packs(&self) -> bool {
        self.local_handlers && self.symmetry.is_none()
    }

    /// A state, packed where the model packs, keyed by its orbit where symmetry reduction
    /// applies.
    fn state(&self, system: System<C, P>, budgets: Budgets) -> ModelState<C, P> {
        if self.packs() {
            let packed = Lazy::ready(self.explorer.tables().pack(&system));
            return ModelState::packed(packed, system.hash_parts(), budgets);
        }
        let mut state = ModelState::new(system, budgets);
        if let Some(symmetry) = &self.symmetry {
            let orbit = symmetry.key(state.system(&self.explorer), budgets);
            if let Body::Made { key, .. } = &mut state.body {
                *key = orbit;
            }
        }
        state
    }

    /// The state's system, unpacked now if it was packed.
    pub(crate) fn system_of<'a>(&self, state: &'a ModelState<C, P>) -> &'a System<C, P> {
        state.system(&self.explorer)
    }

    /// Replica `replica` writes its `choice`-th intent, the handler run; where it did nothing
    /// but change its node and send, what it did is remembered under `remember`.
    pub(crate) fn write_made(
        &self,
        state: &ModelState<C, P>,
        replica: ReplicaId,
        choice: u32,
        remember: Option<u64>,
    ) -> Option<ModelState<C, P>> {
        let explorer = &*self.explorer;
        let system = state.system(explorer);
        let intent = self
            .write_choices(&**system, replica)
            .get(choice as usize)?
            .clone();
        let next = match remember {
            Some(key) => {
                let (next, handled) = system.write_traced(explorer, replica, intent);
                self.remember(state, key, handled.as_ref(), replica, &next);
                next
            }
            None => system.write(explorer, replica, intent),
        };
        self.successor(next, state.budgets(), 0, 0)
    }

    /// Remembers under `key` what a step from packed `state` did at `node`, where its handler
    /// did nothing but change that node and send (`handled`); `next` is what it made.
    fn remember(
        &self,
        state: &ModelState<C, P>,
        key: u64,
        handled: Option<&Handled<C, P>>,
        node: NodeId,
        next: &System<C, P>,
    ) {
        let explorer = &*self.explorer;
        if let (Some(handled), Some((packed, _))) = (handled, state.packed_in(explorer)) {
            let effect = explorer.tables().effect(packed, handled, node, next);
            self.remember_effect(key, effect, explorer.spec().flight == Flight::Set);
        }
    }

    /// Message `index` arrives with `coins`, the handler run; where it did nothing but change
    /// its node and send, what it did is remembered under `remember`. A delivery that leads
    /// back to `state` (a self-loop) adds nothing to explore.
    pub(crate) fn deliver_made(
        &self,
        state: &ModelState<C, P>,
        index: u32,
        coins: u32,
        remember: Option<u64>,
    ) -> Option<ModelState<C, P>> {
        let explorer = &*self.explorer;
        let system = state.system(explorer);
        let (next, effect) = match remember {
            Some(key) => {
                let to = system.in_flight()[index as usize].to;
                let (next, effect, handled) =
                    system.deliver_traced(explorer, index as usize, coins.into());
                self.remember(state, key, handled.as_ref(), to, &next);
                (next, effect)
            }
            None => system.deliver(explorer, index as usize, u64::from(coins)),
        };
        let next = self.successor(next, state.budgets(), effect.flips, coins)?;
        (next.fingerprint() != state.fingerprint()).then_some(next)
    }

    /// The state `action` makes of `state`, or `None` where the step is not taken.
    fn take(&self, state: &ModelState<C, P>, action: ModelAction) -> Option<ModelState<C, P>> {
        if let Some(at) = state.packed_in(&self.explorer) {
            if let Some(next) = self.packed_next_state(state, at, action) {
                return next;
            }
        }
        let explorer = &*self.explorer;
        let system = state.system(explorer);
        match action {
            ModelAction::Write { .. } | ModelAction::Deliver { .. } => {
                self.run_step(state, action, None)
            }
            ModelAction::Drop { index } => {
                let budgets = state.budgets().after_a_drop()?;
                let next = system.drop_message(index as usize);
                self.successor(next, budgets, 0, 0)
            }
            ModelAction::Fire => {
                let (next, effect) = system.fire(explorer, 0)?;
                self.successor(next, state.budgets(), effect.flips, 0)
            }
            ModelAction::DropConnection { a, b } => {
                let budgets = Budgets {
                    connection_drops_left: state.connection_drops_left.checked_sub(1)?,
                    ..state.budgets()
                };
                if system.is_disconnected(a, b) {
                    return None;
                }
                let (next, effect) = system.drop_connection(explorer, a, b);
                self.successor(next, budgets, effect.flips, 0)
            }
            ModelAction::Reconnect { a, b } => {
                if !system.is_disconnected(a, b) {
                    return None;
                }
                let (next, effect) = system.reconnect(explorer, a, b);
                self.successor(next, state.budgets(), effect.flips, 0)
            }
        }
    }

    /// Writes (by replica, then choice), deliveries (in the canonical message order, then coin
    /// patterns), drops, connection drops and reconnects (by connection), then the next timer:
    /// a fixed order, as stateright replays paths by action index.
    ///
    /// Deliveries of the messages whose bits `quiet` sets are left out: they change nothing
    /// ([`SeamModel::deliveries`]).
    fn actions_of(
        &self,
        system: &impl Shape,
        state: &ModelState<C, P>,
        quiet: u64,
        actions: &mut Vec<ModelAction>,
    ) {
        if system.ended() {
            return;
        }
        let wpr = self.writes_per_replica();
        for replica in 0..self.replicas() {
            let done = system.issued(replica);
            let choices = match done < wpr {
                true => self.choices[(replica * wpr + done) as usize],
                false => 0,
            };
            actions.extend((0..choices).map(|choice| ModelAction::Write { replica, choice }));
        }
        let deliverable = || {
            (0..system.in_flight())
                .filter(|&index| self.deliverable(system, index))
                .map(|index| index as u32)
        };
        let changes = |index: &u32| quiet.checked_shr(*index).is_none_or(|bits| bits & 1 == 0);
        for index in deliverable().filter(changes) {
            let patterns = 0..1u32 << self.coin_bits;
            actions.extend(patterns.map(|coins| ModelAction::Deliver { index, coins }));
        }
        if state.drops_left > 0 {
            actions.extend(deliverable().map(|index| ModelAction::Drop { index }));
        }
        if state.connection_drops_left > 0 {
            for (a, b) in self.explorer.connections() {
                if !system.is_disconnected(a, b) {
                    actions.push(ModelAction::DropConnection { a, b });
                }
            }
        }
        actions.extend(
            system
                .connections_down()
                .into_iter()
                .map(|(a, b)| ModelAction::Reconnect { a, b }),
        );
        if system.timers_pending() > 0 {
            actions.push(ModelAction::Fire);
        }
    }

    /// Whether the message at `index` may arrive next: on queues only the head of each link;
    /// elsewhere any message, identical copies counting as one choice.
    fn deliverable(&self, system: &impl Shape, index: usize) -> bool {
        let Some(previous) = index.checked_sub(1).map(|p| system.link(p)) else {
            return true;
        };
        let message = system.link(index);
        match self.explorer.spec().flight {
            Flight::Queues => (previous.0, previous.1) != (message.0, message.1),
            Flight::Bag | Flight::Set => previous != message,
        }
    }

    /// All writes issued, and the system's fair, lossless continuation (every message delivered
    /// in order, timers firing when nothing is in flight) teaches no replica anything: it falls
    /// silent, or comes back to a system it was in before. Such a system never converges unless
    /// it already has, so a quiescent system that has not converged is a real failure. A
    /// continuation that runs past [`PROBE_STEPS_MAX`] steps is taken as not quiescent, which
    /// can miss a failure but never invents one.
    pub(crate) fn quiescent(&self, state: &ModelState<C, P>) -> bool {
        self.continuation(state) != Continuation::Changes
    }

    /// Where the fair, lossless continuation of `state` goes (see [`SeamModel::quiescent`]).
    pub(crate) fn continuation(&self, state: &ModelState<C, P>) -> Continuation {
        let system = state.system(&self.explorer);
        if (0..self.replicas()).any(|r| system.issued(r) < self.writes_per_replica()) {
            return Continuation::Changes;
        }
        if system.connections_down().next().is_some() {
            // A dropped connection comes back (every `connection-drop` fault ends, and the
            // model may take the reconnect), and liveness is judged only once it has, as the
            // simulator judges it: a path that reconnects shows what happens then.
            return Continuation::Changes;
        }
        let explorer = &*self.explorer;
        let mut current = System::clone(system);
        let mut seen = vec![state.fingerprint];
        // The index in `seen` of the last state a timer fired from.
        let mut last_fired_from = None;
        let mut deliveries = 0;
        let mut talking = std::collections::BTreeSet::new();
        for _ in 0..PROBE_STEPS_MAX {
            let (next, effect) = if let Some(head) = current.in_flight().first() {
                deliveries += 1;
                talking.extend([head.from, head.to]);
                current.consume(explorer, 0, 0)
            } else {
                last_fired_from = Some(seen.len() - 1);
                match current.fire(explorer, 0) {
                    Some(step) => step,
                    None => return Continuation::Silent,
                }
            };
            if effect.learned || next.ending().is_some() {
                return Continuation::Changes;
            }
            let fingerprint = fingerprint_from(next.hash_parts(), Budgets::default());
            if let Some(start) = seen.iter().position(|seen| *seen == fingerprint) {
                return Continuation::Loops {
                    deliveries,
                    steps: seen.len() as u32,
                    nodes: talking.into_iter().collect(),
                    timer_driven: last_fired_from.is_some_and(|from| from >= start),
                };
            }
            seen.push(fingerprint);
            current = next;
        }
        Continuation::Changes
    }

    /// Messages answer each other for ever with no timer driving them, once every write is
    /// issued and every connection is up: the fair continuation comes back to where it was
    /// without a timer firing on the way round. Whether the replicas agree or not, such a
    /// system never goes quiet. Looked for only where the model drops connections (see
    /// [`SeamModel::watches_sync_loops`]).
    pub(crate) fn sync_loop(&self, state: &ModelState<C, P>) -> bool {
        matches!(
            self.continuation(state),
            Continuation::Loops {
                timer_driven: false,
                ..
            }
        )
    }

    /// Whether the model looks for sync loops among converged systems too: where it drops
    /// connections, whose reconnect handshakes are where protocols answer each other for ever.
    /// The probe costs a walk from every converged system, which models without connections
    /// are spared (there a loop among unconverged replicas still fails `quiescent implies
    /// converged`).
    pub(crate) fn watches_sync_loops(&self) -> bool {
        self.connection_drops > 0
    }

    /// Every replica holds the same updates and shows the same view.
    pub(crate) fn converged(&self, system: &System<C, P>) -> bool {
        let replicas = &system.nodes()[..self.replicas() as usize];
        replicas
            .iter()
            .skip(1)
            .all(|r| r.delivered == replicas[0].delivered && same_view(&r.crdt, &replicas[0].crdt))
    }

    /// Two replicas that hold the same updates show the same view.
    fn strongly_convergent(&self, system: &System<C, P>) -> bool {
        let replicas = &system.nodes()[..self.replicas() as usize];
        for (i, a) in replicas.iter().enumerate() {
            for b in &replicas[i + 1..] {
                if a.delivered == b.delivered && !same_view(&a.crdt, &b.crdt) {
                    return false;
                }
            }
        }
        true
    }

    /// Two replicas wrote to one key with equal stamp times: exactly where tie-breaks and biases
    /// decide.
    fn conflict(&self, system: &System<C, P>) -> bool {
        let records: Vec<_> = system.records().collect();
        records.iter().enumerate().any(|(i, a)| {
            records[i + 1..].iter().any(|b| {
                a.id.origin != b.id.origin
                    && WorkloadIntent::key(&a.intent) == WorkloadIntent::key(&b.intent)
                    && a.stamp.time == b.stamp.time
            })
        })
    }
}

/// Hashes a key that is already a well-mixed word as itself: the tables below are looked up
/// on every delivery, and hashing their keys again was a few percent of a run.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = word;
    }
}

pub(crate) type KeyBuild = std::hash::BuildHasherDefault<KeyHasher>;

thread_local! {
    /// Per checker thread, the keys of the states it handed the checker lately, by a few of
    /// their bits (a later key takes the slot of an earlier one), each mixed with its run.
    static HANDED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Slots in [`HANDED`]: 256 KiB, which stay in a core's cache (half as many measured the same
/// on the benchmark, twice as many slower).
const HANDED_SLOTS: usize = 1 << 15;

/// The tag of `key` in run `run` in [`HANDED`], never 0 (an empty slot), and its slot.
fn handed_tag(run: u64, key: u64) -> (u64, usize) {
    let tag = mix_identity(key ^ run) | 1;
    (tag, (tag >> 32) as usize % HANDED_SLOTS)
}

/// Whether this thread handed the checker the state known by `key` in run `run` lately
/// ([`recently_handed`]), asked without noting anything. The checker holds such a state, so a
/// successor that is one need not be made at all. States are noted only in `within_boundary`,
/// which stateright asks on its checker threads (and, of the initial state, which no path
/// comes back to, on the thread that starts the run); a thread that rebuilds a path by taking
/// its steps again (the thread that asks for the discoveries, or [`super::replay`]) has noted
/// no other state of this run, so every step it takes is taken.
pub(crate) fn handed_lately(run: u64, key: u64) -> bool {
    let (tag, slot) = handed_tag(run, key);
    HANDED.with_borrow(|handed| handed.get(slot) == Some(&tag))
}

/// Whether this thread handed the checker the state known by `key` in run `run` lately, and
/// now notes that it did. Most successors are states the checker has seen, and most of those
/// were made moments before on the same thread (the other order of two deliveries): a small
/// table finds them without the checker's visited set, which is shared, large and slow to
/// reach. A slot names one key exactly, so an answer of yes is never wrong: the checker holds
/// that state. Only the count of states evaluated, revisits included, sees the difference.
pub(crate) fn recently_handed(run: u64, key: u64) -> bool {
    let (tag, slot) = handed_tag(run, key);
    HANDED.with_borrow_mut(|handed| {
        if handed.is_empty() {
            handed.resize(HANDED_SLOTS, 0);
        }
        std::mem::replace(&mut handed[slot], tag) == tag
    })
}

/// Whether two replicas show the same view; equal states do without building the views.
fn same_view<C: OpCrdt>(a: &C, b: &C) -> bool {
    a == b || a.view() == b.view()
}

impl<C: CheckedCrdt, P: CheckedProtocol<C>> Model for SeamModel<C, P> {
    type State = ModelState<C, P>;
    type Action = ModelAction;

    fn init_states(&self) -> Vec<Self::State> {
        let budgets = Budgets {
            drops_left: self.drops,
            connection_drops_left: self.connection_drops,
        };
        vec![self.state(self.explorer.start(), budgets)]
    }

    fn actions(&self, state: &Self::State, actions: &mut Vec<ModelAction>) {
        match state.packed_in(&self.explorer) {
            Some((packed, _)) => {
                let tables = self.explorer.tables();
                let quiet = u64::from(self.deliveries(state, packed).quiet);
                self.actions_of(&PackedShape { tables, packed }, state, quiet, actions);
            }
            None => self.actions_of(&**state.system(&self.explorer), state, 0, actions),
        }
    }

    fn next_state(&self, state: &Self::State, action: ModelAction) -> Option<Self::State> {
        self.take(state, action)
    }

    /// Past the deadline nothing is; nor is a state this thread handed the checker a moment
    /// ago ([`recently_handed`]), which the checker's visited set holds already. The checker
    /// asks this only of the successors it explores, not of the states it replays to rebuild
    /// a path.
    fn within_boundary(&self, state: &Self::State) -> bool {
        self.deadline.as_ref().is_none_or(|d| !d.passed())
            && !recently_handed(self.run, state.key())
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut properties = match self.mode {
            Mode::Verify => vec![
                Property::always(STRONG_CONVERGENCE, |model: &Self, state: &Self::State| {
                    model.strongly_convergent(model.system_of(state))
                }),
                Property::always(QUIESCENT_CONVERGED, |model: &Self, state: &Self::State| {
                    // The probe costs steps; a converged system needs none.
                    model.converged(model.system_of(state)) || !model.quiescent(state)
                }),
                Property::always(NO_PANIC, |model: &Self, state: &Self::State| {
                    !matches!(model.system_of(state).ending(), Some(Ending::Panicked(_)))
                }),
                Property::always(KNOWN_NODES, |model: &Self, state: &Self::State| {
                    model.system_of(state).ending() != Some(&Ending::Bound("send_to_unknown_node"))
                }),
                Property::sometimes(CONFLICT_OCCURS, |model: &Self, state: &Self::State| {
                    model.conflict(model.system_of(state))
                }),
            ],
            Mode::Explore => vec![Property::always(EXPLORE, |_: &Self, _: &Self::State| true)],
        };
        if self.mode == Mode::Verify && self.watches_sync_loops() {
            properties.push(Property::always(
                NO_SYNC_LOOP,
                |model: &Self, state: &Self::State| !model.sync_loop(state),
            ));
        }
        properties
    }
}

#[cfg(test)]
mod tests {
    use converge_crdt::LwwGrid;
    use converge_netsim::protocols::StateBroadcast;

    use super::ModelState;

    /// The checker moves every state it queues, several times: past 128 bytes a move is a
    /// call to copy memory, which cost the bench's configuration a tenth of its speed.
    #[test]
    fn a_model_state_fits_in_two_cache_lines() {
        let size = size_of::<ModelState<LwwGrid, StateBroadcast>>();
        assert!(size <= 128, "a state takes {size} bytes");
    }
}
