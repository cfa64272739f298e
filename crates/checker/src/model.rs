//! Exhaustive model checking of small configurations with stateright, over the protocol seam.
//!
//! For 2-4 replicas issuing 1-3 writes each to an LWW grid, an LWW dictionary or an RGA list,
//! under one of netsim's built-in protocols, the checker explores every interleaving of writes,
//! deliveries, coin flips (under the random tie-break), drops, duplications and timers, and checks
//! on every state:
//!
//! - `strong convergence` (always): two replicas that have delivered the same set of updates see
//!   the same thing;
//! - `quiescent implies converged` (always): once no write is left and the system's fair,
//!   lossless continuation would teach no replica anything (it falls silent or comes back to a
//!   state it was in), every replica holds the same updates and sees the same thing;
//! - `no panic` and `sends only to nodes that exist` (always);
//! - `a conflict occurs` (sometimes): two replicas wrote to one key with equal stamp times. A run
//!   that never witnesses it is [`Verdict::Vacuous`], not a pass.
//!
//! `eventually` is never used: stateright 0.31 checks it only at terminal states, without fairness,
//! so it misses violations on cycles (see `STATERIGHT.md`).
//!
//! # The model
//!
//! A state is a netsim [`System`]: the real replicas, the real protocol states, the messages in
//! flight and the pending timers, plus the drop budget left. Every transition calls the
//! protocol's own handlers through [`converge_netsim::explore`], the same `Net` and `Ctx` a run
//! uses, so the checker carries no protocol of its own and no copy of a merge rule: what it finds
//! is in the code that runs (`system.rs`). Writes are stamped by a Lamport clock, so two replicas
//! that write before hearing from each other issue *equal* times: that is where tie-break bugs
//! live. Write `k` of every replica goes to key `k % keys` and puts its own value (by default) or
//! any value in `1..=n` (or, in the dictionary, a remove).
//!
//! Networks: `reliable` and `lossy` keep one queue per link; `reordering` delivers in any order;
//! `duplicating` and `lossy-duplicating` keep a set, so a delivered message stays in flight and
//! can be delivered again, in any order. Lossy kinds may drop up to `drops` messages. Timers fire
//! in the order a run fires them, with any number of deliveries and writes before each; a step
//! that would put more messages in flight than the model holds (in all, or on one link: one
//! anti-entropy exchange per link at a time) is not taken, and the report says so
//! ([`CheckReport::bound_note`]).
//!
//! # Running
//!
//! The full run is a depth-first search on [`CheckConfig::threads`] threads (default 1); more
//! threads change neither the verdict nor the unique-state count of a complete run. Symmetry
//! reduction applies where replicas are interchangeable (not under the `peer-id` tie-break, not
//! under anti-entropy, never for a user's own types; the report says why not): a state is known
//! by a canonical key of its orbit under renaming replicas (`model/symmetry.rs`), in the
//! depth-first run and the shortest-counterexample search alike. A run that hits its timeout,
//! state bound or depth bound is
//! [`Verdict::Inconclusive`], never a pass. After a failing run the shortest counterexample is
//! found by iterative deepening on one thread, breadth-first: a depth-bounded *depth-first*
//! search marks a state visited when it first meets it at the bound, and then never expands it
//! when it meets it again on a shorter path, so it can miss the shortest counterexample;
//! breadth-first order meets every state first on a shortest path.

mod packed;
mod replay;
mod symmetry;
mod system;
mod user;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use converge_crdt::{
    Bias, LwwDict, LwwDictConfig, LwwGrid, LwwGridConfig, ReplicaId, Rga, Stamp, StateCrdt,
    TieBreak, UpdateId, WorkloadIntent,
};
use converge_netsim::explore::{ExploreSpec, Explorer, Flight, System};
use converge_netsim::protocols::{
    AntiEntropy, Message, OpBroadcast, OpStream, StateBroadcast, StreamMessage,
};
use converge_netsim::{Reconnect, SimDuration, TimedOp};
use serde::{Deserialize, Serialize};
use stateright::{Checker, HasDiscoveries, Model, Path};

pub use replay::{config_name, ReplayError, ANTI_ENTROPY_INTERVAL_US, REPLAY_SETTLE_US, STEP_US};
use symmetry::Renamed;
pub use system::{CheckedCrdt, CheckedProtocol, ModelAction};
use system::{
    Continuation, Describe, Mode, ModelState, SeamModel, Workload, CONFLICT_OCCURS, KNOWN_NODES,
    NO_PANIC, NO_SYNC_LOOP, QUIESCENT_CONVERGED, STRONG_CONVERGENCE,
};
pub use user::ModelCheck;

/// The most writes one replica can issue in a check.
const MAX_WRITES: u32 = 3;

/// The most connection drops one path may take: each multiplies the state space by the
/// connections and the points in the path where one may drop.
pub const CONNECTION_DROPS_MAX: u32 = 3;

/// The data type under check, with its policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ModelCrdt {
    /// A `1 x keys` LWW grid.
    Grid { tie_break: TieBreak },
    /// An LWW-element dictionary over `keys` keys; writes are adds or removes.
    Dict { bias: Bias, tie_break: TieBreak },
    /// The RGA list; writes are inserts at position `key % (len + 1)` or deletes at `key % len`
    /// ([`converge_crdt::ListIntent::of`]).
    Rga,
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
    /// Ops streamed over connections, resuming on a reconnect as `on_reconnect` says; meant for
    /// [`NetworkKind::Connections`].
    OpStream,
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
    /// Connections, as TCP or WebSockets give: each link delivers in order, loses nothing one
    /// by one and never duplicates; up to `connection-drops` times a connection drops, losing
    /// what is in flight on it both ways, and comes back later, both ends told each time.
    Connections,
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
    /// Reduce where it is sound: the built-in types and protocols, not under the peer-id
    /// tie-break nor anti-entropy (`model/symmetry.rs`).
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
    /// Op stream only: what a node does when a dropped connection comes back. Default:
    /// handshake (correct).
    pub on_reconnect: Reconnect,
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
    /// How many times a path may drop a connection on a network of connections, 0..=3
    /// (ignored elsewhere); default 1.
    pub connection_drops: u32,
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
            on_reconnect: Reconnect::default(),
            replicas: 3,
            writes_per_replica: 1,
            keys: 2,
            values: ValueChoice::default(),
            network: NetworkKind::default(),
            drops: 1,
            connection_drops: 1,
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
    #[error("connection_drops must be at most {max}, got {got}", max = CONNECTION_DROPS_MAX)]
    ConnectionDrops { got: u32 },
    #[error("threads must be between 1 and 64, got {0}")]
    Threads(u32),
    #[error("timeout_ms must be positive")]
    Timeout,
    #[error("max_depth must be positive when given")]
    MaxDepth,
    #[error("max_states must be positive when given")]
    MaxStates,
    #[error(
        "{type_name} takes intents of its own, which the default workload (keys and values) \
         cannot stand for: give the writes each replica may make with ModelCheck::writes"
    )]
    OwnIntents { type_name: &'static str },
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

/// One step of a counterexample.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum CounterexampleAction {
    /// A key/value write (`value: None` is a remove), or a type's own intent in its serde form.
    Write {
        replica: ReplicaId,
        key: u32,
        value: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        intent: Option<serde_json::Value>,
        stamp: Stamp,
        update: UpdateId,
    },
    Deliver {
        from: u32,
        to: u32,
        message: String,
    },
    /// A delivery under the random tie-break; `coins` are the flips its handling asked for, in
    /// order (true: the incoming write wins).
    DeliverWithCoin {
        from: u32,
        to: u32,
        message: String,
        coins: Vec<bool>,
    },
    Drop {
        from: u32,
        to: u32,
        message: String,
    },
    /// A timer of `node` fired at virtual time `at_us` (an anti-entropy round, a retry).
    Timer {
        node: u32,
        at_us: u64,
    },
    /// The connection between nodes `a` and `b` dropped, losing `lost` (the messages that were
    /// in flight on it, each as `from -> to: message`); both ends were told.
    ConnectionDrop {
        a: u32,
        b: u32,
        lost: Vec<String>,
    },
    /// The connection between `a` and `b` came back; both ends were told.
    Reconnect {
        a: u32,
        b: u32,
    },
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
    /// What each replica sees at the end, and the updates it lacks, e.g. `r0: [1, -] (lacks
    /// r1#1)`.
    pub final_views: Vec<String>,
    /// Whether iterative deepening confirmed that no shorter path exists. False only when the
    /// deepening ran out of time and the full run's (longer) path is shown instead.
    pub minimal: bool,
    /// The model's own steps, from which [`Counterexample::to_scenario`] replays the path.
    pub path: Vec<ModelAction>,
    /// For `quiescent implies converged`: how the replicas stay apart, a stall (nothing in
    /// flight, no timer pending) or a sync loop (messages keep flowing, nobody learns).
    #[serde(default)]
    pub liveness: Option<String>,
}

/// The result of [`check`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    pub config: CheckConfig,
    pub verdict: Verdict,
    /// Distinct states (representatives, with symmetry) the full run generated.
    pub unique_states: u64,
    /// States the full run handed the checker's visited set, revisits included but for those
    /// a checker thread had handed it a moment before and kept back (so on more than one thread
    /// the count varies a little from run to run; `unique_states` does not).
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
    /// Which bound limited the exploration, if one did: steps that would have put more
    /// messages in flight, or set more timers, than the model holds were not taken.
    pub bound_note: Option<String>,
    /// For a user's CRDT or protocol ([`ModelCheck`]): the type, the protocol and the topology
    /// checked (`config.crdt` and `config.protocol` then describe nothing).
    pub subject: Option<String>,
    pub counterexample: Option<Counterexample>,
}

/// The size of a configuration's state space with and without symmetry reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSpace {
    pub with_symmetry: u64,
    pub without_symmetry: u64,
    /// False for configurations where symmetry is unsound (peer-id, anti-entropy): both counts
    /// are then the unreduced count.
    pub symmetry_applied: bool,
    /// False if either run hit a bound, so the counts are lower bounds.
    pub complete: bool,
    /// States evaluated (revisits included, as [`CheckReport::states`] counts them) by the run
    /// with symmetry reduction.
    pub states_with_symmetry: u64,
    /// States evaluated (revisits included, as [`CheckReport::states`] counts them) by the run
    /// without symmetry reduction.
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

/// Why symmetry reduction is not sound for a built-in configuration, or `None` where it is
/// (`model/symmetry.rs` argues when it is).
fn symmetry_note(config: &CheckConfig) -> Option<&'static str> {
    let tie_break = match config.crdt {
        ModelCrdt::Grid { tie_break } | ModelCrdt::Dict { tie_break, .. } => tie_break,
        ModelCrdt::Rga => return Some(symmetry::LIST_NOTE),
    };
    if config.protocol == ModelProtocol::OpStream {
        return Some(symmetry::OP_STREAM_NOTE);
    }
    symmetry::unsound_because(
        tie_break == TieBreak::PeerId,
        config.protocol == ModelProtocol::AntiEntropy,
        config.replicas,
    )
}

fn validate(config: &CheckConfig) -> Result<(), CheckError> {
    if !(2..=4).contains(&config.replicas) {
        return Err(CheckError::Replicas(config.replicas));
    }
    if !(1..=MAX_WRITES).contains(&config.writes_per_replica) {
        return Err(CheckError::Writes {
            got: config.writes_per_replica,
        });
    }
    if !(1..=4).contains(&config.keys) {
        return Err(CheckError::Keys(config.keys));
    }
    if let ValueChoice::AnyOf(n) = config.values {
        if !(1..=3).contains(&n) {
            return Err(CheckError::Values(n));
        }
    }
    if config.drops > 3 {
        return Err(CheckError::Drops(config.drops));
    }
    if config.connection_drops > CONNECTION_DROPS_MAX {
        return Err(CheckError::ConnectionDrops {
            got: config.connection_drops,
        });
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
    Ok(())
}

/// Something to do with the model of a configuration, whatever its CRDT and protocol types.
pub(crate) trait Job {
    type Output;
    fn run<C: CheckedCrdt, P: CheckedProtocol<C>>(self, model: SeamModel<C, P>) -> Self::Output;
}

/// Builds the model of a built-in configuration (the crate's grid, dictionary or list under one
/// of netsim's built-in protocols) and hands it to `job`.
fn with_model<J: Job>(config: &CheckConfig, mode: Mode, job: J) -> Result<J::Output, CheckError> {
    validate(config)?;
    Ok(match config.crdt {
        ModelCrdt::Grid { tie_break } => {
            let grid = LwwGridConfig {
                rows: 1,
                cols: config.keys,
                tie_break,
            };
            let make = move |_| LwwGrid::new(grid);
            with_protocol(config, mode, tie_break, make, grid_view, job)
        }
        ModelCrdt::Dict { bias, tie_break } => {
            let dict = LwwDictConfig { bias, tie_break };
            let make = move |_| LwwDict::new(dict);
            with_protocol(config, mode, tie_break, make, dict_view, job)
        }
        // No tie-break: concurrent inserts are ordered by their ids.
        ModelCrdt::Rga => with_protocol(
            config,
            mode,
            TieBreak::PeerId,
            |_| Rga::new(),
            list_view,
            job,
        ),
    })
}

fn with_protocol<C: CheckedCrdt + Renamed, J: Job>(
    config: &CheckConfig,
    mode: Mode,
    tie_break: TieBreak,
    make: impl Fn(ReplicaId) -> C + Send + Sync + 'static,
    view: fn(&C) -> String,
    job: J,
) -> J::Output {
    let parts = BuiltinParts {
        config,
        mode,
        tie_break,
        view,
    };
    match config.protocol {
        ModelProtocol::StateBroadcast => job.run(parts.model(StateBroadcast, make)),
        ModelProtocol::OpBroadcast => job.run(parts.model(OpBroadcast, make)),
        ModelProtocol::AntiEntropy => job.run(parts.model(AntiEntropy, make)),
        ModelProtocol::OpStream => job.run(parts.op_stream_model(make)),
    }
}

struct BuiltinParts<'a, C> {
    config: &'a CheckConfig,
    mode: Mode,
    tie_break: TieBreak,
    view: fn(&C) -> String,
}

impl<C: CheckedCrdt + Renamed> BuiltinParts<'_, C> {
    fn model<P: CheckedProtocol<C, Message = Message<C>>>(
        self,
        protocol: P,
        make: impl Fn(ReplicaId) -> C + Send + Sync + 'static,
    ) -> SeamModel<C, P> {
        let config = *self.config;
        // Anti-entropy sends a state on every round whether or not the last one arrived; one
        // exchange per link at a time, as real anti-entropy runs them, keeps the queues from
        // filling with stale copies. The broadcasts send at most one message per write.
        let link_max = match config.protocol {
            ModelProtocol::AntiEntropy => 1,
            ModelProtocol::StateBroadcast
            | ModelProtocol::OpBroadcast
            | ModelProtocol::OpStream => config.writes_per_replica as usize,
        };
        let spec = ExploreSpec {
            flight: flight_of(config.network),
            link_max,
            ..ExploreSpec::new(
                config.replicas,
                replay::protocol_spec(&config),
                config.writes_per_replica,
            )
        };
        let removes = matches!(config.crdt, ModelCrdt::Dict { .. } | ModelCrdt::Rga);
        let identity = system::next_identity();
        let symmetry =
            (config.symmetry == Symmetry::On && symmetry_note(&config).is_none()).then(|| {
                Arc::new(symmetry::Reduction::builtin(symmetry::Shape {
                    replicas: config.replicas,
                    own_values: config.values == ValueChoice::Own,
                    keys: config.keys,
                    stride: config.writes_per_replica,
                    flight: spec.flight,
                    identity,
                }))
            });
        SeamModel {
            // The built-in broadcasts and anti-entropy, over the mesh, read only their own node
            // and the update records when a message arrives.
            local_handlers: true,
            identity,
            symmetry,
            ..self.seam_model(spec, protocol, make, removes, Arc::new(builtin_message))
        }
    }

    /// The parts every built-in protocol's model shares: the workload of the configuration,
    /// its drops and coins, handlers that may read other nodes, no symmetry.
    fn seam_model<P: CheckedProtocol<C>>(
        self,
        spec: ExploreSpec,
        protocol: P,
        make: impl Fn(ReplicaId) -> C + Send + Sync + 'static,
        removes: bool,
        describe: Describe<C, P>,
    ) -> SeamModel<C, P> {
        let config = *self.config;
        let lossy = matches!(
            config.network,
            NetworkKind::Lossy | NetworkKind::LossyDuplicating
        );
        let workload: Workload<C::Intent> =
            Arc::new(move |replica, k| intents(&config, replica, k, removes));
        SeamModel {
            explorer: Arc::new(Explorer::new(spec, protocol, make)),
            choices: system::choice_counts(&*workload, &spec),
            workload,
            drops: if lossy { config.drops } else { 0 },
            connection_drops: connection_drops_of(&config),
            coin_bits: if self.tie_break == TieBreak::Random {
                config.keys
            } else {
                0
            },
            mode: self.mode,
            deadline: None,
            pruned: Arc::new(AtomicBool::new(false)),
            describe,
            view: Arc::new(self.view),
            local_handlers: false,
            identity: system::next_identity(),
            symmetry: None,
            memo: Default::default(),
            run: 0,
        }
    }
}

impl<C: CheckedCrdt + Renamed> BuiltinParts<'_, C> {
    /// Op stream, never reduced by symmetry (see [`symmetry::OP_STREAM_NOTE`]); its messages
    /// are printed as they are. Beyond its ops, each stream exchanges acknowledgements and
    /// hellos, so a link holds up to four messages.
    fn op_stream_model(
        self,
        make: impl Fn(ReplicaId) -> C + Send + Sync + 'static,
    ) -> SeamModel<C, OpStream> {
        let config = *self.config;
        let spec = ExploreSpec {
            flight: flight_of(config.network),
            ..ExploreSpec::new(
                config.replicas,
                replay::protocol_spec(&config),
                config.writes_per_replica,
            )
        };
        // Op stream reads whether its connections are up, which its own node does not show:
        // its handlers are not local (the shared parts' default).
        self.seam_model(spec, OpStream, make, false, Arc::new(stream_message))
    }
}

fn flight_of(network: NetworkKind) -> Flight {
    match network {
        NetworkKind::Reliable | NetworkKind::Lossy | NetworkKind::Connections => Flight::Queues,
        NetworkKind::Reordering => Flight::Bag,
        NetworkKind::Duplicating | NetworkKind::LossyDuplicating => Flight::Set,
    }
}

/// The connection-drop budget of a configuration: none unless its links are connections.
fn connection_drops_of(config: &CheckConfig) -> u32 {
    if config.network == NetworkKind::Connections {
        config.connection_drops
    } else {
        0
    }
}

/// What write `k` of `replica` may be: key `k % keys`, its own value (its id + 1) or any value
/// in `1..=n`, and a remove as well where `removes` (the dictionary). Every replica runs the same
/// program.
fn intents<I: WorkloadIntent>(
    config: &CheckConfig,
    replica: ReplicaId,
    k: u32,
    removes: bool,
) -> Vec<I> {
    let key = k % config.keys;
    let values = match config.values {
        ValueChoice::Own => replica + 1..=replica + 1,
        ValueChoice::AnyOf(n) => 1..=n,
    };
    let puts = values.map(|value| Some(u64::from(value)));
    let removes = removes.then_some(None);
    puts.chain(removes)
        .filter_map(|value| I::from_key_value(key, value))
        .collect()
}

fn grid_view(grid: &LwwGrid) -> String {
    let cells: Vec<String> = grid
        .view()
        .cells
        .iter()
        .map(|v| v.map_or_else(|| "-".to_string(), |v| v.to_string()))
        .collect();
    format!("[{}]", cells.join(", "))
}

fn dict_view(dict: &LwwDict) -> String {
    let entries: Vec<String> = dict
        .view()
        .iter()
        .map(|(key, value)| format!("{key}: {value}"))
        .collect();
    format!("{{{}}}", entries.join(", "))
}

fn list_view(list: &Rga) -> String {
    let values: Vec<String> = list.values().map(|v| v.to_string()).collect();
    format!("[{}]", values.join(", "))
}

/// A built-in protocol's message in a few words: a state by the updates it holds, ops by
/// their writes.
fn builtin_message<C: CheckedCrdt, P: CheckedProtocol<C>>(
    system: &System<C, P>,
    message: &Message<C>,
) -> String {
    match message {
        Message::State(snapshot) => {
            let names: Vec<String> = snapshot
                .delivered()
                .iter()
                .map(|u| update_name(system, u))
                .collect();
            format!("state {{{}}}", names.join(", "))
        }
        Message::Ops(ops) => {
            let ops: Vec<String> = ops
                .iter()
                .map(|u| match system.record(u.index()) {
                    Some(record) => format!(
                        "op {} {} @({}, r{})",
                        UpdateName(record.id),
                        intent_text(&record.intent),
                        record.stamp.time,
                        record.stamp.replica
                    ),
                    None => format!("op #{}", u.index()),
                })
                .collect();
            ops.join("; ")
        }
        other => format!("{other:?}"),
    }
}

/// An op-stream message in a few words: the ops by their writes, positions as numbers.
fn stream_message<C: CheckedCrdt>(system: &System<C, OpStream>, message: &StreamMessage) -> String {
    match message {
        StreamMessage::Ops { epoch, end, ops } => {
            let names: Vec<String> = ops.iter().map(|u| update_name(system, u.index())).collect();
            format!("ops {} (log of epoch {epoch} to {end})", names.join(", "))
        }
        StreamMessage::Ack { epoch, end } => format!("ack (log of epoch {epoch} to {end})"),
        StreamMessage::Hello { epoch, have } => {
            format!("hello (have your log of epoch {epoch} to {have})")
        }
    }
}

fn update_name<C: CheckedCrdt, P: CheckedProtocol<C>>(
    system: &System<C, P>,
    update: u32,
) -> String {
    system
        .record(update)
        .map_or_else(|| format!("#{update}"), |r| UpdateName(r.id).to_string())
}

fn intent_text<I: WorkloadIntent>(intent: &I) -> String {
    match intent.as_key_value() {
        Some((key, Some(value))) => format!("put key {key} = {value}"),
        Some((key, None)) => format!("remove key {key}"),
        None => format!("{intent:?}"),
    }
}

/// What one stateright run saw.
struct RunOutcome<S> {
    unique_states: u64,
    states: u64,
    /// Stateright's depth counts the initial state as 1.
    max_depth: u64,
    elapsed: Duration,
    /// Discoveries by property name, as paths.
    discoveries: Vec<(&'static str, Path<S, ModelAction>)>,
    /// Why the run is incomplete, if it is.
    bound_hit: Option<String>,
    timed_out: bool,
}

struct RunOptions {
    threads: usize,
    breadth_first: bool,
    /// Stateright's target depth: states at this depth are generated but not evaluated.
    target_depth: Option<usize>,
    max_states: Option<u64>,
    timeout: Duration,
    stop_at_first_failure: bool,
}

type Outcome<C, P> = RunOutcome<ModelState<C, P>>;

fn run<C: CheckedCrdt, P: CheckedProtocol<C>>(
    model: &SeamModel<C, P>,
    options: &RunOptions,
) -> Outcome<C, P> {
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
    if options.breadth_first {
        outcome_of(builder.spawn_bfs().join(), started, options)
    } else {
        outcome_of(builder.spawn_dfs().join(), started, options)
    }
}

fn outcome_of<M: Model<Action = ModelAction, State: Clone + PartialEq>>(
    checker: impl Checker<M>,
    started: Instant,
    options: &RunOptions,
) -> RunOutcome<M::State> {
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
    [
        STRONG_CONVERGENCE,
        QUIESCENT_CONVERGED,
        NO_PANIC,
        KNOWN_NODES,
        NO_SYNC_LOOP,
        CONFLICT_OCCURS,
    ]
    .iter()
    .position(|p| *p == name)
    .unwrap_or(usize::MAX)
}

fn is_failure(name: &str) -> bool {
    property_rank(name) < property_rank(CONFLICT_OCCURS)
}

/// Checks one configuration exhaustively. See the module docs.
pub fn check(config: &CheckConfig) -> Result<CheckReport, CheckError> {
    struct Check<'a>(&'a CheckConfig);
    impl Job for Check<'_> {
        type Output = CheckReport;
        fn run<C: CheckedCrdt, P: CheckedProtocol<C>>(self, model: SeamModel<C, P>) -> CheckReport {
            check_model(self.0, &model)
        }
    }
    with_model(config, Mode::Verify, Check(config))
}

fn check_model<C: CheckedCrdt, P: CheckedProtocol<C>>(
    config: &CheckConfig,
    model: &SeamModel<C, P>,
) -> CheckReport {
    let timeout = Duration::from_millis(config.timeout_ms);
    let full = run(
        model,
        &RunOptions {
            threads: config.threads as usize,
            breadth_first: false,
            // A path of `n` actions ends in a state at stateright depth `n + 1`; states at the
            // target depth are not evaluated, so the target is one past the deepest state to
            // evaluate.
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
            let counterexample = shortest_counterexample(model, timeout)
                .unwrap_or_else(|| describe(model, name, &path, false));
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
    CheckReport {
        config: *config,
        verdict,
        unique_states: full.unique_states,
        states: full.states,
        states_per_sec: full.states as f64 / full.elapsed.as_secs_f64().max(1e-9),
        max_depth: full.max_depth.saturating_sub(1),
        elapsed_ms: full.elapsed.as_millis() as u64,
        symmetry: if model.symmetry.is_some() {
            Symmetry::On
        } else {
            Symmetry::Off
        },
        symmetry_note: (config.symmetry == Symmetry::On && model.symmetry.is_none())
            .then(|| symmetry_note(config).unwrap_or_default().to_string()),
        bound_note: bound_note(model),
        subject: None,
        counterexample,
    }
}

fn bound_note<C: CheckedCrdt, P: CheckedProtocol<C>>(model: &SeamModel<C, P>) -> Option<String> {
    let spec = model.explorer.spec();
    model.pruned.load(Ordering::Relaxed).then(|| {
        format!(
            "bounded: steps that would have put more than {} messages in flight ({} on one \
             link), or more than {} timers pending, were not taken",
            spec.in_flight_max, spec.link_max, spec.timers_max
        )
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
fn shortest_counterexample<C: CheckedCrdt, P: CheckedProtocol<C>>(
    model: &SeamModel<C, P>,
    timeout: Duration,
) -> Option<Counterexample> {
    let deadline = Instant::now() + timeout;
    type Found<C, P> = Option<(&'static str, Path<ModelState<C, P>, ModelAction>)>;
    let bounded = |depth: Option<usize>| -> Option<Found<C, P>> {
        let remaining = deadline.checked_duration_since(Instant::now())?;
        let outcome = run(
            model,
            &RunOptions {
                threads: 1,
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

/// Counts the state space, exploring everything (no property can stop the run early), once
/// with symmetry reduction where it is sound for the configuration and once without. Where it
/// is not (`peer-id`, anti-entropy), or where `config.symmetry` is off, the space is explored
/// once, both counts are the unreduced one and `symmetry_applied` is false.
pub fn unique_states_with_and_without_symmetry(
    config: &CheckConfig,
) -> Result<StateSpace, CheckError> {
    /// What one complete exploration counted.
    #[derive(Clone, Copy)]
    struct Counted {
        unique_states: u64,
        states: u64,
        elapsed_ms: u64,
        complete: bool,
    }
    struct Space<'a>(&'a CheckConfig);
    impl Job for Space<'_> {
        type Output = Counted;
        fn run<C: CheckedCrdt, P: CheckedProtocol<C>>(self, model: SeamModel<C, P>) -> Counted {
            let config = self.0;
            let outcome = run(
                &model,
                &RunOptions {
                    threads: config.threads as usize,
                    breadth_first: false,
                    target_depth: config.max_depth.map(|d| d as usize + 2),
                    max_states: config.max_states,
                    timeout: Duration::from_millis(config.timeout_ms),
                    stop_at_first_failure: false,
                },
            );
            Counted {
                unique_states: outcome.unique_states,
                states: outcome.states,
                elapsed_ms: outcome.elapsed.as_millis() as u64,
                complete: outcome.bound_hit.is_none(),
            }
        }
    }
    let with_symmetry = |symmetry| CheckConfig {
        symmetry,
        ..*config
    };
    let unreduced = with_symmetry(Symmetry::Off);
    let without = with_model(&unreduced, Mode::Explore, Space(&unreduced))?;
    let applied = config.symmetry == Symmetry::On && symmetry_note(config).is_none();
    let with = if applied {
        let reduced = with_symmetry(Symmetry::On);
        with_model(&reduced, Mode::Explore, Space(&reduced))?
    } else {
        without
    };
    Ok(StateSpace {
        with_symmetry: with.unique_states,
        without_symmetry: without.unique_states,
        symmetry_applied: applied,
        complete: with.complete && without.complete,
        states_with_symmetry: with.states,
        states_without_symmetry: without.states,
        elapsed_ms_with_symmetry: with.elapsed_ms,
        elapsed_ms_without_symmetry: without.elapsed_ms,
    })
}

struct UpdateName(UpdateId);

impl fmt::Display for UpdateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}#{}", self.0.origin, self.0.seq)
    }
}

/// Turns a path into structured actions and readable lines.
fn describe<C: CheckedCrdt, P: CheckedProtocol<C>>(
    model: &SeamModel<C, P>,
    property: &str,
    path: &Path<ModelState<C, P>, ModelAction>,
    minimal: bool,
) -> Counterexample {
    let mut actions = Vec::new();
    let mut steps = Vec::new();
    let mut taken = Vec::new();
    let pairs = path.clone().into_vec();
    for (i, (before, action)) in pairs.iter().enumerate() {
        let Some(action) = action else { continue };
        let after = pairs.get(i + 1).map_or(path.last_state(), |(s, _)| s);
        let (structured, line) = describe_action(
            model,
            model.system_of(before),
            model.system_of(after),
            action,
        );
        actions.push(structured);
        steps.push(line);
        taken.push(*action);
    }
    let last = model.system_of(path.last_state());
    let replicas = model.explorer.spec().replicas as usize;
    let final_views = last.nodes()[..replicas]
        .iter()
        .map(|r| {
            let lacks: Vec<String> = last
                .records()
                .filter(|u| !r.delivered.contains(u.index))
                .map(|u| UpdateName(u.id).to_string())
                .collect();
            let lacking = if lacks.is_empty() {
                String::new()
            } else {
                format!(" (lacks {})", lacks.join(", "))
            };
            format!("r{}: {}{lacking}", r.id, (model.view)(&r.crdt))
        })
        .collect();
    let liveness = [QUIESCENT_CONVERGED, NO_SYNC_LOOP]
        .contains(&property)
        .then(|| liveness(model, path.last_state()));
    Counterexample {
        property: property.to_string(),
        depth: actions.len(),
        actions,
        steps,
        final_views,
        minimal,
        path: taken,
        liveness,
    }
}

/// How a quiescent state that failed a liveness property stays that way, in words: a stall
/// or a sync loop among replicas that differ, or a sync loop with no timer behind it.
fn liveness<C: CheckedCrdt, P: CheckedProtocol<C>>(
    model: &SeamModel<C, P>,
    last: &ModelState<C, P>,
) -> String {
    match model.continuation(last) {
        Continuation::Silent => "stalled: nothing is in flight and no timer is pending, yet the \
                                 replicas differ"
            .to_string(),
        Continuation::Loops {
            deliveries,
            steps,
            nodes,
            timer_driven,
        } => {
            let nodes: Vec<String> = nodes.iter().map(|n| node_name(model, *n)).collect();
            let unprompted = if timer_driven {
                ""
            } else {
                ", each answering the last with no timer behind it"
            };
            format!(
                "sync loop: with no write left and nothing lost, {} keep exchanging messages\
                 {unprompted} ({deliveries} deliveries in {steps} steps, then the system repeats \
                 itself) and no replica learns anything",
                if nodes.is_empty() {
                    "the timers".to_string()
                } else {
                    nodes.join(", ")
                }
            )
        }
        Continuation::Changes => "not quiescent".to_string(),
    }
}

/// A node as a counterexample names it: `r0`, `r1`, ..., and `server` for the relay server.
fn node_name<C: CheckedCrdt, P: CheckedProtocol<C>>(model: &SeamModel<C, P>, node: u32) -> String {
    if node < model.explorer.spec().replicas {
        format!("r{node}")
    } else {
        "server".to_string()
    }
}

/// One action of a path, from `before` to `after`, as a structured step and a readable line.
fn describe_action<C: CheckedCrdt, P: CheckedProtocol<C>>(
    model: &SeamModel<C, P>,
    before: &System<C, P>,
    after: &System<C, P>,
    action: &ModelAction,
) -> (CounterexampleAction, String) {
    let explorer = &*model.explorer;
    match *action {
        ModelAction::Write { replica, .. } => {
            let index = replica * explorer.spec().writes_per_replica + before.issued(replica);
            let record = after.record(index).expect("a write issues its update");
            let written = TimedOp::of_intent(SimDuration::ZERO, replica, &record.intent);
            let what = match (&written.intent, written.value) {
                (Some(_), _) => format!("writes {:?}", record.intent),
                (None, Some(v)) => format!("puts key {} = {v}", written.key),
                (None, None) => format!("removes key {}", written.key),
            };
            (
                CounterexampleAction::Write {
                    replica,
                    key: written.key,
                    value: written.value,
                    intent: written.intent,
                    stamp: record.stamp,
                    update: record.id,
                },
                format!(
                    "r{replica} {what} at time {} (update {})",
                    record.stamp.time,
                    UpdateName(record.id)
                ),
            )
        }
        ModelAction::Deliver { index, coins } => {
            let flying = &before.in_flight()[index as usize];
            let (from, to) = (flying.from, flying.to);
            let message = (model.describe)(before, &flying.message);
            let (_, effect) = before.deliver(explorer, index as usize, u64::from(coins));
            let ends = format!("{} -> {}", node_name(model, from), node_name(model, to));
            if model.coin_bits == 0 || effect.flips == 0 {
                let line = format!("deliver {ends}: {message}");
                return (CounterexampleAction::Deliver { from, to, message }, line);
            }
            let coins: Vec<bool> = (0..effect.flips.min(32))
                .map(|i| coins >> i & 1 == 1)
                .collect();
            let sides: Vec<&str> = coins
                .iter()
                .map(|c| if *c { "incoming wins" } else { "local stays" })
                .collect();
            let line = format!("deliver {ends}: {message}, coin: {}", sides.join(", "));
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
        ModelAction::Drop { index } => {
            let flying = &before.in_flight()[index as usize];
            let (from, to) = (flying.from, flying.to);
            let message = (model.describe)(before, &flying.message);
            let line = format!(
                "drop {} -> {}: {message}",
                node_name(model, from),
                node_name(model, to)
            );
            (CounterexampleAction::Drop { from, to, message }, line)
        }
        ModelAction::Fire => {
            let (node, at_us) = before.next_timer().expect("a timer was pending");
            (
                CounterexampleAction::Timer { node, at_us },
                format!("{}'s timer fires at {at_us} us", node_name(model, node)),
            )
        }
        ModelAction::DropConnection { a, b } => describe_connection_drop(model, before, a, b),
        ModelAction::Reconnect { a, b } => (
            CounterexampleAction::Reconnect { a, b },
            format!(
                "the connection {} <-> {} comes back; both ends are told",
                node_name(model, a),
                node_name(model, b)
            ),
        ),
    }
}

/// A connection drop in words, with the messages it loses.
fn describe_connection_drop<C: CheckedCrdt, P: CheckedProtocol<C>>(
    model: &SeamModel<C, P>,
    before: &System<C, P>,
    a: u32,
    b: u32,
) -> (CounterexampleAction, String) {
    let lost: Vec<String> = before
        .in_flight()
        .iter()
        .filter(|m| (m.from.min(m.to), m.from.max(m.to)) == (a, b))
        .map(|m| {
            format!(
                "{} -> {}: {}",
                node_name(model, m.from),
                node_name(model, m.to),
                (model.describe)(before, &m.message)
            )
        })
        .collect();
    let losing = if lost.is_empty() {
        "nothing was in flight on it".to_string()
    } else {
        format!("losing {}", lost.join("; "))
    };
    let line = format!(
        "the connection {} <-> {} drops, {losing}; both ends are told",
        node_name(model, a),
        node_name(model, b)
    );
    (CounterexampleAction::ConnectionDrop { a, b, lost }, line)
}

/// The property names, for callers that match on [`Verdict::Fail`].
pub fn property_names() -> BTreeSet<&'static str> {
    [
        STRONG_CONVERGENCE,
        QUIESCENT_CONVERGED,
        NO_PANIC,
        KNOWN_NODES,
        NO_SYNC_LOOP,
        CONFLICT_OCCURS,
    ]
    .into_iter()
    .collect()
}
