//! The stateright [`Model`] over the protocol seam: a state is a netsim [`System`] (the real
//! replicas, the real protocol states, the messages in flight, the pending timers) and the drop
//! budget left, and every transition calls the protocol's own handlers through
//! [`converge_netsim::explore`]. The checker carries no protocol of its own and no copy of a
//! merge rule: a bug it finds is in the code that runs.

use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use converge_crdt::{OpCrdt, ReplicaId, WorkloadIntent};
use converge_netsim::explore::{
    Ending, Explorer, Flight, Foresight, Handled, HashParts, LocalStep, System, WordHasher,
};
use converge_netsim::protocol::Protocol;
use serde::{Deserialize, Serialize};
use stateright::{Model, Property};

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
/// Most successors are states the checker has seen (four in five on a duplicating network):
/// it hashes them and drops them. A delivery whose handler the model has seen do the same thing
/// to the same node before, and a drop, know their successor's fingerprint without making it
/// ([`System::hash_after_delivery`]), so such a state holds only its parent's system and the
/// step, and makes its own system when first asked for it: once per new state, never for a
/// revisit.
pub struct ModelState<C: OpCrdt, P: Protocol<C>> {
    body: Body<C, P>,
    /// The system's hash in parts, from which its successors' are foreseen: computed once,
    /// when the state is first expanded.
    parts: OnceLock<HashParts>,
    pub(crate) drops_left: u32,
    pub(crate) connection_drops_left: u32,
    /// What the system means (see [`System`]'s `Hash`).
    fingerprint: u64,
    /// What the checker's visited set knows the state by: under symmetry reduction the key of
    /// its orbit under renaming replicas (`symmetry.rs`), otherwise its fingerprint.
    key: u64,
}

/// A state's system, made or foreseen.
enum Body<C: OpCrdt, P: Protocol<C>> {
    Made(Arc<System<C, P>>),
    Foreseen {
        parent: Arc<System<C, P>>,
        step: Step,
        made: OnceLock<Arc<System<C, P>>>,
    },
}

/// A step whose successor is foreseen: made again, from the parent, when first asked for. A
/// delivery keeps the key of what its handler did ([`SeamModel::step_key`]).
#[derive(Clone, Copy, Debug)]
enum Step {
    Deliver { index: usize, coins: u64, key: u64 },
    Drop { index: usize },
}

impl<C: OpCrdt, P: Protocol<C>> Clone for Body<C, P>
where
    System<C, P>: Clone,
{
    fn clone(&self) -> Self {
        match self {
            Body::Made(system) => Body::Made(Arc::clone(system)),
            Body::Foreseen { parent, step, made } => Body::Foreseen {
                parent: Arc::clone(parent),
                step: *step,
                made: made.clone(),
            },
        }
    }
}

/// A system's fingerprint with the budgets left.
fn fingerprint_of<C: CheckedCrdt, P: CheckedProtocol<C>>(
    system: &System<C, P>,
    budgets: Budgets,
) -> u64 {
    let mut hasher = WordHasher(u64::from(budgets.drops_left));
    system.hash(&mut hasher);
    budgets.hash_connections(&mut hasher);
    hasher.finish()
}

impl<C: CheckedCrdt, P: CheckedProtocol<C>> ModelState<C, P> {
    /// A state known by its own fingerprint.
    fn new(system: System<C, P>, budgets: Budgets) -> Self {
        let fingerprint = fingerprint_of(&system, budgets);
        ModelState {
            body: Body::Made(Arc::new(system)),
            parts: OnceLock::new(),
            fingerprint,
            key: fingerprint,
            drops_left: budgets.drops_left,
            connection_drops_left: budgets.connection_drops_left,
        }
    }

    /// A state foreseen by its fingerprint: `step` from `parent` makes it.
    fn foreseen(
        parent: &Arc<System<C, P>>,
        step: Step,
        budgets: Budgets,
        fingerprint: u64,
    ) -> Self {
        ModelState {
            body: Body::Foreseen {
                parent: Arc::clone(parent),
                step,
                made: OnceLock::new(),
            },
            parts: OnceLock::new(),
            fingerprint,
            key: fingerprint,
            drops_left: budgets.drops_left,
            connection_drops_left: budgets.connection_drops_left,
        }
    }

    /// The state's system, made now if it was only foreseen.
    pub(crate) fn system(&self, explorer: &Explorer<C, P>) -> &Arc<System<C, P>> {
        match &self.body {
            Body::Made(system) => system,
            Body::Foreseen { parent, step, made } => made.get_or_init(|| {
                let system = match *step {
                    Step::Deliver { index, coins, key } => {
                        // What the handler did is at hand on the thread that foresaw the step;
                        // elsewhere the handler runs again.
                        let replayed = with_handled(|table: &mut Handled_<C, P>| {
                            let handled = table.get(&key)?;
                            Some(parent.deliver_as(explorer, index, handled))
                        });
                        replayed
                            .flatten()
                            .unwrap_or_else(|| parent.deliver(explorer, index, coins).0)
                    }
                    Step::Drop { index } => parent.drop_message(index),
                };
                debug_assert_eq!(
                    fingerprint_of(&system, self.budgets()),
                    self.fingerprint,
                    "a foreseen state is the state its step makes"
                );
                Arc::new(system)
            }),
        }
    }

    /// The system's hash in parts ([`System::hash_parts`]).
    fn parts(&self, explorer: &Explorer<C, P>) -> HashParts {
        *self
            .parts
            .get_or_init(|| self.system(explorer).hash_parts())
    }

    /// What the state may still lose.
    pub(crate) fn budgets(&self) -> Budgets {
        Budgets {
            drops_left: self.drops_left,
            connection_drops_left: self.connection_drops_left,
        }
    }
}

impl<C: OpCrdt, P: Protocol<C>> Clone for ModelState<C, P>
where
    System<C, P>: Clone,
{
    fn clone(&self) -> Self {
        ModelState {
            body: self.body.clone(),
            parts: self.parts.clone(),
            drops_left: self.drops_left,
            connection_drops_left: self.connection_drops_left,
            fingerprint: self.fingerprint,
            key: self.key,
        }
    }
}

impl<C: OpCrdt, P: Protocol<C>> Hash for ModelState<C, P> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.key);
    }
}

/// Two states are the same state when their keys are, which is what the checker's visited set
/// decides anyway.
impl<C: OpCrdt, P: Protocol<C>> PartialEq for ModelState<C, P> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl<C: OpCrdt, P: Protocol<C>> Debug for ModelState<C, P>
where
    System<C, P>: Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let made = match &self.body {
            Body::Made(system) => Some(system),
            Body::Foreseen { made, .. } => made.get(),
        };
        match made {
            Some(system) => write!(f, "{system:?}")?,
            None => write!(f, "(foreseen, not made yet)")?,
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
    pub(crate) fn write_choices(
        &self,
        system: &System<C, P>,
        replica: ReplicaId,
    ) -> Vec<C::Intent> {
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

    /// A state, keyed by its orbit where symmetry reduction applies.
    fn state(&self, system: System<C, P>, budgets: Budgets) -> ModelState<C, P> {
        let mut state = ModelState::new(system, budgets);
        if let Some(symmetry) = &self.symmetry {
            state.key = symmetry.key(state.system(&self.explorer), budgets);
        }
        state
    }

    /// Under [`Flight::Set`] a delivered message stays in flight, so delivering it again to a
    /// receiver that has not changed changes nothing: most deliveries a duplicating network
    /// offers are such repeats. Where the protocol's handlers read only their own node (and the
    /// update records), the receiver's local digest, the message and the coins decide it, and
    /// this key lets the model skip the step without running it. `None` where that is not so.
    fn repeat_key(&self, state: &ModelState<C, P>, index: u32, coins: u32) -> Option<u64> {
        if !self.local_handlers || self.explorer.spec().flight != Flight::Set {
            return None;
        }
        let system = state.system(&self.explorer);
        let to = system.in_flight()[index as usize].to;
        let mut hasher = WordHasher(self.identity);
        hasher.write_u64(system.local_digest(to));
        hasher.write_u64(system.message_digest(index as usize));
        hasher.write_u32(coins);
        Some(hasher.finish())
    }

    /// The state's system, made now if it was only foreseen.
    pub(crate) fn system_of<'a>(&self, state: &'a ModelState<C, P>) -> &'a System<C, P> {
        state.system(&self.explorer)
    }

    /// Where the protocol's handlers read only their own node (and the update records) and
    /// states are known by their fingerprints, the key under which what message `index` does
    /// to its receiver is remembered ([`LocalStep`]): the receiver's local digest, the
    /// message, its sender, the coins and the time. `None` where that is not so.
    fn step_key(&self, system: &System<C, P>, index: u32, coins: u32) -> Option<u64> {
        if !self.local_handlers || self.symmetry.is_some() {
            return None;
        }
        let message = &system.in_flight()[index as usize];
        let mut hasher = WordHasher(self.identity.rotate_left(1));
        hasher.write_u64(system.local_digest(message.to));
        hasher.write_u64(system.message_digest(index as usize));
        hasher.write_u32(message.from);
        hasher.write_u32(coins);
        hasher.write_u64(system.now_us());
        Some(hasher.finish())
    }

    /// Message `index` arrives, with `coins`: foreseen where the model has seen its handler do
    /// the same to the same node, made (and what it did remembered) otherwise.
    fn deliver(
        &self,
        state: &ModelState<C, P>,
        index: u32,
        coins: u32,
    ) -> Option<ModelState<C, P>> {
        // The set of repeats is small and looked up first: most deliveries a duplicating
        // network offers are repeats.
        let repeat = self.repeat_key(state, index, coins);
        if repeat.is_some_and(known_repeat) {
            return None;
        }
        let system = state.system(&self.explorer);
        let key = self.step_key(system, index, coins);
        if let Some(key) = key {
            let foreseen = with_handled(|table: &mut Handled_<C, P>| {
                let handled = table.get(&key)?;
                self.foresee(state, system, index, (coins, key, repeat), &handled.step)
            });
            if let Some(next) = foreseen.flatten() {
                return next;
            }
        }
        let explorer = &*self.explorer;
        let (next, effect) = match key {
            Some(key) => {
                let (next, effect, handled) =
                    system.deliver_traced(explorer, index as usize, coins.into());
                if let Some(handled) = handled {
                    remember_handled(key, handled);
                }
                (next, effect)
            }
            None => system.deliver(explorer, index as usize, u64::from(coins)),
        };
        let next = self.successor(next, state.budgets(), effect.flips, coins)?;
        self.unless_self_loop(state, next, repeat, effect.commands)
    }

    /// `next`, unless the delivery changed nothing and leads back to `state`: a self-loop,
    /// which adds nothing to explore. It is remembered only if the handler issued no command at
    /// all, because whether a send changes the system depends on what else is in flight, which
    /// the repeat key does not see.
    fn unless_self_loop(
        &self,
        state: &ModelState<C, P>,
        next: ModelState<C, P>,
        repeat: Option<u64>,
        commands: u32,
    ) -> Option<ModelState<C, P>> {
        if next.fingerprint != state.fingerprint {
            return Some(next);
        }
        if let Some(key) = repeat.filter(|_| commands == 0) {
            remember_repeat(key);
        }
        None
    }

    /// The successor of delivering message `index` with `coins` where its handler does what
    /// `step` says, foreseen without running it: `Some(None)` where the step is not taken (as
    /// [`SeamModel::successor`] decides), `None` where it cannot be foreseen.
    fn foresee(
        &self,
        state: &ModelState<C, P>,
        system: &Arc<System<C, P>>,
        index: u32,
        (coins, key, repeat): (u32, u64, Option<u64>),
        step: &LocalStep,
    ) -> Option<Option<ModelState<C, P>>> {
        if u64::from(coins) >> step.effect.flips.min(32) != 0 {
            return Some(None);
        }
        let budgets = state.budgets();
        let to = system.in_flight()[index as usize].to;
        let stays = self.explorer.spec().flight == Flight::Set;
        if stays && step.sends.is_empty() && step.node_digest == system.node_digest(to) {
            // The message stays and nothing changed: a self-loop, known without hashing.
            if let Some(repeat) = repeat {
                remember_repeat(repeat);
            }
            return Some(None);
        }
        let mut hasher = WordHasher(u64::from(budgets.drops_left));
        let parts = state.parts(&self.explorer);
        let at = (index as usize, step);
        match system.hash_after_delivery(&self.explorer, parts, at, &mut hasher) {
            Foresight::Unknown => return None,
            Foresight::Bound => {
                self.pruned.store(true, Ordering::Relaxed);
                return Some(None);
            }
            Foresight::Hashed => {}
        }
        budgets.hash_connections(&mut hasher);
        let step_made = Step::Deliver {
            index: index as usize,
            coins: coins.into(),
            key,
        };
        let next = ModelState::foreseen(system, step_made, budgets, hasher.finish());
        Some(self.unless_self_loop(state, next, repeat, step.effect.commands))
    }

    /// Whether the message at `index` may arrive next: on queues only the head of each link;
    /// elsewhere any message, identical copies counting as one choice.
    fn deliverable(&self, system: &System<C, P>, index: usize) -> bool {
        let flying = system.in_flight();
        let Some(previous) = index.checked_sub(1).map(|p| &flying[p]) else {
            return true;
        };
        let message = &flying[index];
        match self.explorer.spec().flight {
            Flight::Queues => (previous.from, previous.to) != (message.from, message.to),
            Flight::Bag | Flight::Set => !previous.same_as(message),
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
            let fingerprint = fingerprint_of(&next, Budgets::default());
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
struct KeyHasher(u64);

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

type KeyBuild = std::hash::BuildHasherDefault<KeyHasher>;

thread_local! {
    /// Deliveries known to change nothing (see [`SeamModel::repeat_key`]), per checker thread.
    static REPEATS: std::cell::RefCell<std::collections::HashSet<u64, KeyBuild>> =
        Default::default();
}

/// Entries kept at most; the set starts again past it.
const REPEATS_MAX: usize = 1 << 20;

fn known_repeat(key: u64) -> bool {
    REPEATS.with(|repeats| repeats.borrow().contains(&key))
}

fn remember_repeat(key: u64) {
    REPEATS.with(|repeats| {
        let mut repeats = repeats.borrow_mut();
        if repeats.len() >= REPEATS_MAX {
            repeats.clear();
        }
        repeats.insert(key);
    });
}

/// What deliveries did to their receivers, by [`SeamModel::step_key`].
type Handled_<C, P> = std::collections::HashMap<u64, Handled<C, P>, KeyBuild>;

thread_local! {
    /// Per checker thread, one table of [`Handled`] per type of system explored (models of one
    /// type share it: their keys differ by [`SeamModel::identity`]).
    static HANDLED: std::cell::RefCell<Vec<Box<dyn std::any::Any>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Steps kept at most per table; the table starts again past it.
const HANDLED_MAX: usize = 1 << 17;

/// Calls `f` with this thread's table of handled deliveries of systems of type `System<C, P>`.
/// `f` must not call it again.
fn with_handled<C: CheckedCrdt, P: CheckedProtocol<C>, R>(
    f: impl FnOnce(&mut Handled_<C, P>) -> R,
) -> Option<R> {
    HANDLED.with(|tables| {
        let mut tables = tables.borrow_mut();
        if !tables.iter().any(|table| table.is::<Handled_<C, P>>()) {
            tables.push(Box::new(Handled_::<C, P>::default()));
        }
        let table = tables
            .iter_mut()
            .find_map(|t| t.downcast_mut::<Handled_<C, P>>());
        table.map(f)
    })
}

fn remember_handled<C: CheckedCrdt, P: CheckedProtocol<C>>(key: u64, handled: Handled<C, P>) {
    with_handled(|table: &mut Handled_<C, P>| {
        if table.len() >= HANDLED_MAX {
            table.clear();
        }
        table.insert(key, handled);
    });
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

    /// Writes (by replica, then choice), deliveries (in the canonical message order, then coin
    /// patterns), drops, connection drops and reconnects (by connection), then the next timer:
    /// a fixed order, as stateright replays paths by action index.
    fn actions(&self, state: &Self::State, actions: &mut Vec<ModelAction>) {
        let system = state.system(&self.explorer);
        if system.ending().is_some() {
            return;
        }
        for replica in 0..self.replicas() {
            let choices = self.write_choices(system, replica).len() as u32;
            actions.extend((0..choices).map(|choice| ModelAction::Write { replica, choice }));
        }
        for index in 0..system.in_flight().len() {
            if self.deliverable(system, index) {
                actions.extend(
                    (0..1u32 << self.coin_bits).map(|coins| ModelAction::Deliver {
                        index: index as u32,
                        coins,
                    }),
                );
            }
        }
        if state.drops_left > 0 {
            for index in 0..system.in_flight().len() {
                if self.deliverable(system, index) {
                    actions.push(ModelAction::Drop {
                        index: index as u32,
                    });
                }
            }
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
                .map(|(a, b)| ModelAction::Reconnect { a, b }),
        );
        if system.timers_pending() > 0 {
            actions.push(ModelAction::Fire);
        }
    }

    fn next_state(&self, state: &Self::State, action: ModelAction) -> Option<Self::State> {
        let explorer = &*self.explorer;
        let system = state.system(explorer);
        match action {
            ModelAction::Write { replica, choice } => {
                let intent = self
                    .write_choices(system, replica)
                    .get(choice as usize)?
                    .clone();
                let next = system.write(explorer, replica, intent);
                self.successor(next, state.budgets(), 0, 0)
            }
            ModelAction::Deliver { index, coins } => self.deliver(state, index, coins),
            ModelAction::Drop { index } => {
                let budgets = Budgets {
                    drops_left: state.drops_left.checked_sub(1)?,
                    ..state.budgets()
                };
                if self.symmetry.is_none() {
                    // A drop runs no handler: its successor's fingerprint is known at once.
                    let mut hasher = WordHasher(u64::from(budgets.drops_left));
                    system.hash_after_drop(state.parts(explorer), index as usize, &mut hasher);
                    budgets.hash_connections(&mut hasher);
                    let step = Step::Drop {
                        index: index as usize,
                    };
                    return Some(ModelState::foreseen(system, step, budgets, hasher.finish()));
                }
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

    fn within_boundary(&self, _state: &Self::State) -> bool {
        self.deadline.as_ref().is_none_or(|d| !d.passed())
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
