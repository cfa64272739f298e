//! Exhaustive model checking of small configurations with stateright.
//!
//! For 2-4 replicas issuing 1-3 writes each to an LWW grid or an LWW dictionary, the checker explores
//! every interleaving of writes, deliveries, coin flips (under the random tie-break), drops and
//! duplications, and checks on every state:
//!
//! - `strong convergence` (always): two replicas that have delivered the same set of updates see
//!   the same thing;
//! - `quiescent implies converged` (always): once no write is left and no message in flight (nor,
//!   with anti-entropy, any exchange) would change any replica, every replica sees the same thing;
//! - `a conflict occurs` (sometimes): two replicas hold different writes to one key with equal
//!   stamp times. A run that never witnesses it is [`Verdict::Vacuous`], not a pass.
//!
//! `eventually` is never used: stateright 0.31 checks it only at terminal states, without fairness,
//! so it misses violations on cycles (see `STATERIGHT.md`). Convergence is stated as the `always`
//! property on quiescent states instead.
//!
//! # The model
//!
//! A state holds every replica's data as one slot per key (stamp and value; the real CRDT is
//! rebuilt from it for each transition), its Lamport clock, its write count and, as ghost state, the
//! set of update ids it has delivered; the messages in flight in a canonical order; and the drop
//! budget, all packed into a few machine words (`state.rs`) so that copying, comparing and
//! fingerprinting a state costs little. Writes are stamped by a Lamport clock (the replica's
//! greatest seen time plus one), so two replicas that write before hearing from each other issue
//! *equal* times: that is where tie-break bugs live. Write `k` of every replica goes to key
//! `k % keys` and puts its own value (by default) or any value in `1..=n` (or, in the dictionary,
//! a remove): every replica runs the same program, which keeps the state space small and the
//! replicas interchangeable.
//!
//! Networks: `reliable` and `lossy` keep one FIFO queue per link; `reordering` delivers in any
//! order; `duplicating` and `lossy-duplicating` keep a set, so a delivered message stays in flight and
//! can be delivered again, in any order. Lossy kinds may drop up to `drops` messages.
//!
//! Protocols: `state-broadcast` sends the whole state to every peer after each local write;
//! `op-broadcast` sends the op to every peer once; `anti-entropy` never pushes, but any replica may
//! at any time send its whole current state to any peer (one copy of a given exchange in flight at
//! a time). Under anti-entropy, "quiescent" also requires that no exchange would change anything,
//! so the property reads "every fixpoint is converged".
//!
//! # Running
//!
//! The full run is a depth-first search on [`CheckConfig::threads`] threads (default 1) with
//! symmetry reduction where it is sound (not under the `peer-id` tie-break, which orders replicas;
//! see [`CheckReport::symmetry_note`]). Stateright's depth-first search is the one mode where both
//! threads and symmetry work (`STATERIGHT.md`), and more threads change neither the verdict nor the
//! unique-state count of a complete run: the visited set holds fingerprints of canonical
//! representatives, whichever thread gets there first.
//! A run that hits its timeout, state bound or depth bound is [`Verdict::Inconclusive`], never a
//! pass. After a failing run the shortest counterexample is found by iterative deepening: runs
//! bounded to 0, 1, 2, ... actions until one fails. Those runs use breadth-first search on one
//! thread: a depth-bounded *depth-first* search marks a state visited when it first meets it at the
//! bound, and then never expands it when it meets it again on a shorter path, so it can miss the
//! shortest counterexample; breadth-first order meets every state first on a shortest path.

mod machine;
mod replay;
mod state;

use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, Instant};

use converge_crdt::{Bias, ReplicaId, Stamp, TieBreak, UpdateId};
use serde::{Deserialize, Serialize};
use stateright::{Checker, HasDiscoveries, Model, Path};

pub use machine::ModelAction;
use machine::{
    ConvergeModel, Mode, ModelSpec, CONFLICT_OCCURS, QUIESCENT_CONVERGED, STRONG_CONVERGENCE,
};
pub use replay::{config_name, ReplayError, ANTI_ENTROPY_INTERVAL_US, REPLAY_SETTLE_US, STEP_US};
use state::{Message, ModelState, Payload, MAX_WRITES};

/// The data type under check, with its policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ModelCrdt {
    /// A `1 x keys` LWW grid.
    Grid { tie_break: TieBreak },
    /// An LWW-element dictionary over `keys` keys; writes are adds or removes.
    Dict { bias: Bias, tie_break: TieBreak },
}

impl Default for ModelCrdt {
    fn default() -> Self {
        ModelCrdt::Grid {
            tie_break: TieBreak::PeerId,
        }
    }
}

/// How replicas tell each other about writes. See the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelProtocol {
    #[default]
    StateBroadcast,
    OpBroadcast,
    AntiEntropy,
}

/// What the network may do to messages. See the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkKind {
    /// Per-link FIFO, nothing lost or duplicated.
    #[default]
    Reliable,
    /// Per-link FIFO, up to `drops` messages lost.
    Lossy,
    /// Any order, any number of copies.
    Duplicating,
    /// Any order, any number of copies, up to `drops` messages lost for good.
    LossyDuplicating,
    /// Any order, each message delivered once.
    Reordering,
}

/// Which values writes put.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ValueChoice {
    /// Replica `r` always puts `r + 1`, so equal-time writes of different replicas always differ in
    /// value (every tie is visible) and no write branches on its value.
    #[default]
    Own,
    /// Every write puts any value in `1..=n` (n in 1..=3), explored as a nondeterministic choice.
    AnyOf(u32),
}

/// Whether to reduce by renaming interchangeable replicas.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Symmetry {
    /// Reduce where it is sound (not under the peer-id tie-break).
    #[default]
    On,
    Off,
}

/// One exhaustive check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct CheckConfig {
    /// Default: the grid with the peer-id tie-break.
    pub crdt: ModelCrdt,
    /// Default: state broadcast.
    pub protocol: ModelProtocol,
    /// 2..=4; default 3.
    pub replicas: u32,
    /// 1..=3; default 1.
    pub writes_per_replica: u32,
    /// Grid cells or dictionary keys, 1..=4; write `k` of a replica goes to key `k % keys`.
    /// Default 2.
    pub keys: u32,
    /// Which values writes put. Default: each replica its own.
    pub values: ValueChoice,
    /// Default: reliable.
    pub network: NetworkKind,
    /// The drop budget on lossy networks, 0..=3 (ignored elsewhere); default 1.
    pub drops: u32,
    /// Default: on (where sound).
    pub symmetry: Symmetry,
    /// The most actions on any explored path; `None` (the default) explores everything. A run that
    /// reaches the bound is inconclusive.
    pub max_depth: Option<u32>,
    /// Stop after about this many states; `None` (the default) means no bound. A run that reaches
    /// it is inconclusive.
    pub max_states: Option<u64>,
    /// Wall-clock limit for the full run, and again for finding the shortest counterexample;
    /// default 60 000. A run that reaches it is inconclusive.
    pub timeout_ms: u64,
    /// Checker threads for the full depth-first run and for
    /// [`unique_states_with_and_without_symmetry`], 1..=64; default 1. Sound for any number: see
    /// the module docs. The search for the shortest counterexample always runs breadth-first on
    /// one thread, because only a single-threaded breadth-first order meets every state first on
    /// a shortest path.
    pub threads: u32,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            crdt: ModelCrdt::default(),
            protocol: ModelProtocol::default(),
            replicas: 3,
            writes_per_replica: 1,
            keys: 2,
            values: ValueChoice::default(),
            network: NetworkKind::default(),
            drops: 1,
            symmetry: Symmetry::default(),
            max_depth: None,
            max_states: None,
            timeout_ms: 60_000,
            threads: 1,
        }
    }
}

/// A configuration the checker refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("replicas must be between 2 and 4, got {0}")]
    Replicas(u32),
    #[error("writes_per_replica must be between 1 and {max}, got {got}", max = MAX_WRITES)]
    Writes { got: u32 },
    #[error("keys must be between 1 and 4, got {0}")]
    Keys(u32),
    #[error("any-of values must be between 1 and 3, got {0}")]
    Values(u32),
    #[error("drops must be at most 3, got {0}")]
    Drops(u32),
    #[error("threads must be between 1 and 64, got {0}")]
    Threads(u32),
    #[error("timeout_ms must be positive")]
    Timeout,
    #[error("max_depth must be positive when given")]
    MaxDepth,
    #[error("max_states must be positive when given")]
    MaxStates,
}

/// What the check concluded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "verdict")]
pub enum Verdict {
    /// Every reachable state satisfies both `always` properties, and a conflict was witnessed.
    Pass,
    /// A reachable state violates `property`; see the counterexample.
    Fail { property: String },
    /// The run stopped at a bound before exploring everything, without finding a violation.
    Inconclusive { reason: String },
    /// Everything was explored without a violation, but no conflict ever happened, so the pass says
    /// nothing about tie-breaks.
    Vacuous,
}

/// A message, as a counterexample names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum MessageSummary {
    /// A whole state, named by the updates it contains.
    State { updates: Vec<UpdateId> },
    /// One op. `value: None` is a remove.
    Op {
        update: UpdateId,
        key: u32,
        value: Option<u64>,
        stamp: Stamp,
    },
}

/// One step of a counterexample.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum CounterexampleAction {
    /// `value: None` is a remove.
    Write {
        replica: ReplicaId,
        key: u32,
        value: Option<u64>,
        stamp: Stamp,
        update: UpdateId,
    },
    Deliver {
        from: ReplicaId,
        to: ReplicaId,
        message: MessageSummary,
    },
    /// A delivery under the random tie-break; `coins` are the flips the merge asked for, in order
    /// (true: the incoming write wins).
    DeliverWithCoin {
        from: ReplicaId,
        to: ReplicaId,
        message: MessageSummary,
        coins: Vec<bool>,
    },
    Drop {
        from: ReplicaId,
        to: ReplicaId,
        message: MessageSummary,
    },
    /// Anti-entropy: `from` sends its whole current state to `to`.
    Sync { from: ReplicaId, to: ReplicaId },
}

/// A shortest path to a violation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counterexample {
    pub property: String,
    /// The number of actions.
    pub depth: usize,
    pub actions: Vec<CounterexampleAction>,
    /// The same actions, one readable line each.
    pub steps: Vec<String>,
    /// What each replica sees at the end, e.g. `r0: [1, -]`.
    pub final_views: Vec<String>,
    /// Whether iterative deepening confirmed that no shorter path exists. False only when the
    /// deepening ran out of time and the full run's (longer) path is shown instead.
    pub minimal: bool,
}

/// The result of [`check`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    pub config: CheckConfig,
    pub verdict: Verdict,
    /// Distinct states (representatives, with symmetry) the full run generated.
    pub unique_states: u64,
    /// States the full run evaluated, revisits included.
    pub states: u64,
    pub states_per_sec: f64,
    /// The most actions on any path the full run explored.
    pub max_depth: u64,
    /// The full run only, without the search for the shortest counterexample.
    pub elapsed_ms: u64,
    /// Whether symmetry reduction was applied.
    pub symmetry: Symmetry,
    /// Why symmetry was not applied although asked for, if so.
    pub symmetry_note: Option<String>,
    pub counterexample: Option<Counterexample>,
}

/// The size of a configuration's state space with and without symmetry reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSpace {
    pub with_symmetry: u64,
    pub without_symmetry: u64,
    /// False for configurations where symmetry is unsound (peer-id): both counts are then the
    /// unreduced count.
    pub symmetry_applied: bool,
    /// False if either run hit a bound, so the counts are lower bounds.
    pub complete: bool,
    /// States evaluated (revisits included) by the run with symmetry reduction.
    pub states_with_symmetry: u64,
    /// States evaluated (revisits included) by the run without symmetry reduction.
    pub states_without_symmetry: u64,
    /// Wall time of the run with symmetry reduction.
    pub elapsed_ms_with_symmetry: u64,
    /// Wall time of the run without symmetry reduction.
    pub elapsed_ms_without_symmetry: u64,
}

impl StateSpace {
    /// Unique states without symmetry reduction over unique states with it.
    pub fn reduction(&self) -> f64 {
        self.without_symmetry as f64 / self.with_symmetry.max(1) as f64
    }

    /// States per second of the run without symmetry reduction: the raw throughput of the model.
    pub fn states_per_sec_without_symmetry(&self) -> f64 {
        per_sec(
            self.states_without_symmetry,
            self.elapsed_ms_without_symmetry,
        )
    }

    /// States per second of the run with symmetry reduction.
    pub fn states_per_sec_with_symmetry(&self) -> f64 {
        per_sec(self.states_with_symmetry, self.elapsed_ms_with_symmetry)
    }
}

fn per_sec(states: u64, elapsed_ms: u64) -> f64 {
    states as f64 * 1e3 / (elapsed_ms as f64).max(1e-3)
}

const PEER_ID_NOTE: &str = "symmetry not applied: the peer-id tie-break lets the greater replica \
                            id win equal-time writes, so renaming replicas changes which write wins";

fn validate(config: &CheckConfig) -> Result<ModelSpec, CheckError> {
    if !(2..=4).contains(&config.replicas) {
        return Err(CheckError::Replicas(config.replicas));
    }
    if !(1..=u32::from(MAX_WRITES)).contains(&config.writes_per_replica) {
        return Err(CheckError::Writes {
            got: config.writes_per_replica,
        });
    }
    if !(1..=4).contains(&config.keys) {
        return Err(CheckError::Keys(config.keys));
    }
    let values = match config.values {
        ValueChoice::Own => 0,
        ValueChoice::AnyOf(n) if (1..=3).contains(&n) => n as u8,
        ValueChoice::AnyOf(n) => return Err(CheckError::Values(n)),
    };
    if config.drops > 3 {
        return Err(CheckError::Drops(config.drops));
    }
    if !(1..=64).contains(&config.threads) {
        return Err(CheckError::Threads(config.threads));
    }
    if config.timeout_ms == 0 {
        return Err(CheckError::Timeout);
    }
    if config.max_depth == Some(0) {
        return Err(CheckError::MaxDepth);
    }
    if config.max_states == Some(0) {
        return Err(CheckError::MaxStates);
    }
    // Every bound above keeps the values within u8; the casts cannot truncate.
    Ok(ModelSpec {
        crdt: config.crdt,
        protocol: config.protocol,
        network: config.network,
        replicas: config.replicas as u8,
        writes_per_replica: config.writes_per_replica as u8,
        keys: config.keys as u8,
        values,
        drops: config.drops as u8,
    })
}

/// What one stateright run saw.
struct RunOutcome {
    unique_states: u64,
    states: u64,
    /// Stateright's depth counts the initial state as 1.
    max_depth: u64,
    elapsed: Duration,
    /// Discoveries by property name, as paths.
    discoveries: Vec<(&'static str, Path<ModelState, ModelAction>)>,
    /// Why the run is incomplete, if it is.
    bound_hit: Option<String>,
    timed_out: bool,
}

struct RunOptions {
    threads: usize,
    symmetry: bool,
    breadth_first: bool,
    /// Stateright's target depth: states at this depth are generated but not evaluated.
    target_depth: Option<usize>,
    max_states: Option<u64>,
    timeout: Duration,
    stop_at_first_failure: bool,
}

fn run(model: ConvergeModel, options: &RunOptions) -> RunOutcome {
    let started = Instant::now();
    let mut builder = model
        .with_deadline(started + options.timeout)
        .checker()
        .threads(options.threads)
        .timeout(options.timeout);
    if options.stop_at_first_failure {
        builder = builder.finish_when(HasDiscoveries::AnyFailures);
    }
    if let Some(depth) = options.target_depth {
        builder = builder.target_max_depth(depth);
    }
    if let Some(states) = options.max_states {
        builder = builder.target_state_count(usize::try_from(states).unwrap_or(usize::MAX));
    }
    if options.symmetry && !options.breadth_first {
        builder = builder.symmetry();
    }
    if options.breadth_first {
        outcome_of(builder.spawn_bfs().join(), started, options)
    } else {
        outcome_of(builder.spawn_dfs().join(), started, options)
    }
}

fn outcome_of(
    checker: impl Checker<ConvergeModel>,
    started: Instant,
    options: &RunOptions,
) -> RunOutcome {
    let elapsed = started.elapsed();
    let states = checker.state_count() as u64;
    let max_depth = checker.max_depth() as u64;
    let mut bound_hit = None;
    let timed_out = elapsed >= options.timeout;
    // Stateright reports a timed-out run as done (STATERIGHT.md item 4), so a run is taken to have
    // timed out whenever it lasted its whole budget.
    if timed_out {
        bound_hit = Some(format!(
            "timed out after {} ms",
            options.timeout.as_millis()
        ));
    } else if let Some(depth) = options.target_depth.filter(|d| max_depth >= *d as u64) {
        bound_hit = Some(format!(
            "reached the depth bound of {} actions",
            depth.saturating_sub(2)
        ));
    } else if let Some(bound) = options.max_states.filter(|b| states >= *b) {
        bound_hit = Some(format!("reached the state bound of {bound} states"));
    }
    let mut discoveries: Vec<_> = checker.discoveries().into_iter().collect();
    discoveries.sort_by_key(|(name, _)| property_rank(name));
    RunOutcome {
        unique_states: checker.unique_state_count() as u64,
        states,
        max_depth,
        elapsed,
        discoveries,
        bound_hit,
        timed_out,
    }
}

/// The order in which failures are preferred when several are found at once.
fn property_rank(name: &str) -> usize {
    [STRONG_CONVERGENCE, QUIESCENT_CONVERGED, CONFLICT_OCCURS]
        .iter()
        .position(|p| *p == name)
        .unwrap_or(usize::MAX)
}

fn is_failure(name: &str) -> bool {
    name == STRONG_CONVERGENCE || name == QUIESCENT_CONVERGED
}

/// Checks one configuration exhaustively. See the module docs.
pub fn check(config: &CheckConfig) -> Result<CheckReport, CheckError> {
    let spec = validate(config)?;
    let symmetry_sound = spec.symmetry_is_sound();
    let symmetry = config.symmetry == Symmetry::On && symmetry_sound;
    let symmetry_note =
        (config.symmetry == Symmetry::On && !symmetry_sound).then(|| PEER_ID_NOTE.to_string());
    let timeout = Duration::from_millis(config.timeout_ms);
    let model = ConvergeModel::new(spec, Mode::Verify);
    let full = run(
        model.clone(),
        &RunOptions {
            threads: config.threads as usize,
            symmetry,
            breadth_first: false,
            // A path of `n` actions ends in a state at stateright depth `n + 1`; states at the target
            // depth are not evaluated, so the target is one past the deepest state to evaluate.
            target_depth: config.max_depth.map(|d| d as usize + 2),
            max_states: config.max_states,
            timeout,
            stop_at_first_failure: true,
        },
    );

    let failure = full
        .discoveries
        .iter()
        .find(|(name, _)| is_failure(name))
        .map(|(name, path)| (*name, path.clone()));
    let witnessed = full
        .discoveries
        .iter()
        .any(|(name, _)| *name == CONFLICT_OCCURS);

    let (verdict, counterexample) = match failure {
        Some((name, path)) => {
            let counterexample = shortest_counterexample(&model, timeout)
                .unwrap_or_else(|| describe(&model, name, &path, false));
            (
                Verdict::Fail {
                    property: counterexample.property.clone(),
                },
                Some(counterexample),
            )
        }
        None => match &full.bound_hit {
            Some(reason) => (
                Verdict::Inconclusive {
                    reason: reason.clone(),
                },
                None,
            ),
            None if !witnessed => (Verdict::Vacuous, None),
            None => (Verdict::Pass, None),
        },
    };

    let elapsed_ms = full.elapsed.as_millis() as u64;
    Ok(CheckReport {
        config: *config,
        verdict,
        unique_states: full.unique_states,
        states: full.states,
        states_per_sec: full.states as f64 / full.elapsed.as_secs_f64().max(1e-9),
        max_depth: full.max_depth.saturating_sub(1),
        elapsed_ms,
        symmetry: if symmetry {
            Symmetry::On
        } else {
            Symmetry::Off
        },
        symmetry_note,
        counterexample,
    })
}

/// The shortest counterexample, or `None` if the time budget runs out first.
///
/// Every run here is breadth-first on one thread (so every state is first met on a shortest path)
/// and stops at the first failure. A bounded run with `target_max_depth(k + 2)` evaluates exactly
/// the states reachable in at most `k` actions, so it finds a failure if and only if one exists
/// within `k` actions. Deepening upwards (k = 0, 1, 2, ...) would run once per length; this search
/// tightens downwards instead, with the same answer in about two runs: `upper` is the length of a
/// known counterexample (first from one unbounded breadth-first run); each bounded run at
/// `upper - 1` either finds a shorter one (its length becomes the new `upper`) or proves `upper`
/// minimal.
fn shortest_counterexample(model: &ConvergeModel, timeout: Duration) -> Option<Counterexample> {
    let deadline = Instant::now() + timeout;
    let bounded =
        |depth: Option<usize>| -> Option<Option<(&'static str, Path<ModelState, ModelAction>)>> {
            let remaining = deadline.checked_duration_since(Instant::now())?;
            let outcome = run(
                model.clone(),
                &RunOptions {
                    threads: 1,
                    symmetry: false,
                    breadth_first: true,
                    target_depth: depth.map(|k| k + 2),
                    max_states: None,
                    timeout: remaining,
                    stop_at_first_failure: true,
                },
            );
            let found = outcome
                .discoveries
                .into_iter()
                .find(|(name, _)| is_failure(name));
            if found.is_none() && outcome.timed_out {
                return None;
            }
            Some(found)
        };
    // An unbounded breadth-first run first: its counterexample is at most a level or so longer
    // than the shortest, and usually far shorter than the depth-first one.
    let (mut best_name, mut best_path) = bounded(None)??;
    let mut best_len = best_path.clone().into_actions().len();
    while best_len > 0 {
        match bounded(Some(best_len - 1))? {
            Some((name, path)) => {
                best_len = path.clone().into_actions().len();
                best_name = name;
                best_path = path;
            }
            None => break,
        }
    }
    Some(describe(model, best_name, &best_path, true))
}

/// Counts the state space with and without symmetry reduction, exploring everything (no property
/// can stop the run early). For configurations where symmetry is unsound both counts are the
/// unreduced one and `symmetry_applied` is false.
pub fn unique_states_with_and_without_symmetry(
    config: &CheckConfig,
) -> Result<StateSpace, CheckError> {
    let spec = validate(config)?;
    let options = |symmetry| RunOptions {
        threads: config.threads as usize,
        symmetry,
        breadth_first: false,
        target_depth: config.max_depth.map(|d| d as usize + 2),
        max_states: config.max_states,
        timeout: Duration::from_millis(config.timeout_ms),
        stop_at_first_failure: false,
    };
    let model = ConvergeModel::new(spec, Mode::Explore);
    let without = run(model.clone(), &options(false));
    let applied = spec.symmetry_is_sound();
    let with = if applied {
        run(model, &options(true))
    } else {
        // Nothing to reduce: report the same count rather than a reduction that would be wrong.
        RunOutcome {
            unique_states: without.unique_states,
            states: without.states,
            max_depth: without.max_depth,
            elapsed: without.elapsed,
            discoveries: Vec::new(),
            bound_hit: without.bound_hit.clone(),
            timed_out: without.timed_out,
        }
    };
    Ok(StateSpace {
        with_symmetry: with.unique_states,
        without_symmetry: without.unique_states,
        symmetry_applied: applied,
        complete: with.bound_hit.is_none() && without.bound_hit.is_none(),
        states_with_symmetry: with.states,
        states_without_symmetry: without.states,
        elapsed_ms_with_symmetry: with.elapsed.as_millis() as u64,
        elapsed_ms_without_symmetry: without.elapsed.as_millis() as u64,
    })
}

fn update_id(bit: u8) -> UpdateId {
    UpdateId {
        origin: u32::from(bit / MAX_WRITES),
        seq: u32::from(bit % MAX_WRITES) + 1,
    }
}

fn summarize(payload: &Payload) -> MessageSummary {
    match payload {
        Payload::State { updates, .. } => MessageSummary::State {
            updates: (0..16u8)
                .filter(|bit| updates & (1 << bit) != 0)
                .map(update_id)
                .collect(),
        },
        Payload::Op {
            update,
            key,
            value,
            stamp,
        } => MessageSummary::Op {
            update: update_id(*update),
            key: u32::from(*key),
            value: (*value != 0).then_some(u64::from(*value)),
            stamp: Stamp::new(u64::from(stamp.time), u32::from(stamp.replica)),
        },
    }
}

struct UpdateName(UpdateId);

impl fmt::Display for UpdateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}#{}", self.0.origin, self.0.seq)
    }
}

impl fmt::Display for MessageSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageSummary::State { updates } => {
                let names: Vec<String> =
                    updates.iter().map(|u| UpdateName(*u).to_string()).collect();
                write!(f, "state {{{}}}", names.join(", "))
            }
            MessageSummary::Op {
                update,
                key,
                value,
                stamp,
            } => {
                let what = match value {
                    Some(v) => format!("put key {key} = {v}"),
                    None => format!("remove key {key}"),
                };
                write!(
                    f,
                    "op {} {what} @({}, r{})",
                    UpdateName(*update),
                    stamp.time,
                    stamp.replica
                )
            }
        }
    }
}

fn view_line(model: &ConvergeModel, replica: usize, state: &ModelState) -> String {
    let cells: Vec<String> = model
        .view(state.replica(replica).slots())
        .iter()
        .map(|v| v.map_or_else(|| "-".to_string(), |v| v.to_string()))
        .collect();
    format!("r{replica}: [{}]", cells.join(", "))
}

/// Turns a path into structured actions and readable lines.
fn describe(
    model: &ConvergeModel,
    property: &str,
    path: &Path<ModelState, ModelAction>,
    minimal: bool,
) -> Counterexample {
    let mut actions = Vec::new();
    let mut steps = Vec::new();
    let pairs = path.clone().into_vec();
    for (before, action) in &pairs {
        let Some(action) = action else { continue };
        let (structured, line) = describe_action(model, before, action);
        actions.push(structured);
        steps.push(line);
    }
    let last = path.last_state();
    let final_views = (0..last.replicas().len())
        .map(|r| view_line(model, r, last))
        .collect();
    Counterexample {
        property: property.to_string(),
        depth: actions.len(),
        actions,
        steps,
        final_views,
        minimal,
    }
}

/// One action of a path, taken from state `before`, as a structured step and a readable line.
fn describe_action(
    model: &ConvergeModel,
    before: &ModelState,
    action: &ModelAction,
) -> (CounterexampleAction, String) {
    let message_ends = |m: &Message| (u32::from(m.from()), u32::from(m.to()));
    match action {
        ModelAction::Write { replica, value } => {
            let r = before.replica(usize::from(*replica));
            let key = u32::from(r.writes_done() % model.spec.keys);
            let stamp = Stamp::new(u64::from(r.clock()) + 1, u32::from(*replica));
            let update = update_id(replica * MAX_WRITES + r.writes_done());
            let value = (*value != 0).then_some(u64::from(*value));
            let what = match value {
                Some(v) => format!("puts key {key} = {v}"),
                None => format!("removes key {key}"),
            };
            (
                CounterexampleAction::Write {
                    replica: u32::from(*replica),
                    key,
                    value,
                    stamp,
                    update,
                },
                format!(
                    "r{replica} {what} at time {} (update {})",
                    stamp.time,
                    UpdateName(update)
                ),
            )
        }
        ModelAction::Deliver(m) => {
            let (from, to) = message_ends(m);
            let message = summarize(&m.payload());
            let line = format!("deliver r{from} -> r{to}: {message}");
            (CounterexampleAction::Deliver { from, to, message }, line)
        }
        ModelAction::DeliverWithCoin {
            message: m,
            coins,
            flips,
        } => {
            let (from, to) = message_ends(m);
            let message = summarize(&m.payload());
            let coins: Vec<bool> = (0..*flips).map(|i| coins & (1 << i) != 0).collect();
            let sides: Vec<&str> = coins
                .iter()
                .map(|c| if *c { "incoming wins" } else { "local stays" })
                .collect();
            let line = format!(
                "deliver r{from} -> r{to}: {message}, coin: {}",
                sides.join(", ")
            );
            (
                CounterexampleAction::DeliverWithCoin {
                    from,
                    to,
                    message,
                    coins,
                },
                line,
            )
        }
        ModelAction::Drop(m) => {
            let (from, to) = message_ends(m);
            let message = summarize(&m.payload());
            let line = format!("drop r{from} -> r{to}: {message}");
            (CounterexampleAction::Drop { from, to, message }, line)
        }
        ModelAction::Sync { from, to } => (
            CounterexampleAction::Sync {
                from: u32::from(*from),
                to: u32::from(*to),
            },
            format!("anti-entropy: r{from} sends its state to r{to}"),
        ),
    }
}

/// The property names, for callers that match on [`Verdict::Fail`].
pub fn property_names() -> BTreeSet<&'static str> {
    [STRONG_CONVERGENCE, QUIESCENT_CONVERGED, CONFLICT_OCCURS]
        .into_iter()
        .collect()
}
