//! The simulator proper: the event queue, the nodes and the run loop. Its submodules add the rest
//! of the simulator's behaviour to the same [`Sim`] value: [`network`] (links, latency samplers,
//! drops and duplicates), [`faults`] (partitions, crashes, joins, swarm draws) and [`trace`]
//! (events, the observer and the trace hash). What nodes send and do on delivery is the
//! protocol's ([`crate::protocol`]): `Sim` knows no protocol by name.
//!
//! One [`Sim`] value holds a whole run. Actions wait in a queue ordered by `(virtual time,
//! sequence number)`, so two actions at the same microsecond run in the order they were scheduled,
//! on every machine. Each handled action emits zero or more trace events; each event is hashed into
//! the trace hash and shown to the observer together with the replicas it touched.
//!
//! The run's state is split in two: [`Net`] is what a protocol handler may reach through its
//! [`Ctx`] (the replicas, their clocks, the update records, the topology, the command outbox),
//! and `Sim` the rest (the queue, the links and faults, the trace). A handler's sends and timers
//! wait in the outbox until the event that called it is in the trace.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use converge_crdt::clock::Skew;
use converge_crdt::{Clock, ClockKind, Coin, OpCrdt, ReplicaId, Stamp, UpdateId, WorkloadIntent};

use crate::outcome::{
    Coverage, End, EventKind, MessageStats, NodeId, Observer, Outcome, Replica, Status, TraceEvent,
    UpdateRecord, UpdateSet, INTERRUPT_CHECK_EVENTS,
};
use crate::protocol::{
    Ctx, Delta, MissingBase, Others, Protocol, Restart, Snapshot, SnapshotCopy, TimerId, Update,
};
use crate::replicas::{IntentDraw, Replicas};
use crate::scenario::{Fate, FaultSpec, ProtocolSpec, Scenario, TimedOp};
use crate::streams::Stream;
use crate::time::SimDuration;
use crate::topology::{self, Candidates, NodesView, Targets, Topology};
use crate::validation::ScenarioError;

mod faults;
mod network;
mod queue;
mod trace;

use faults::{draw_fault, Breaker, Cut};
use network::{LinkParameters, LinkTable};
use queue::EventQueue;
use trace::HASH_SEED;

/// The stop reason recorded when the observer asked the run to stop; it ends as
/// [`End::Interrupted`] rather than as a bound.
const INTERRUPTED: &str = "interrupted";

/// State copies kept for reuse at most (see [`Net::snapshot`]): about what is in flight at once
/// in a small run; beyond it copies are freed as usual.
const SNAPSHOTS_KEPT_MAX: usize = 64;

/// Delivered messages kept for their allocations. A few absorb the spread between last
/// deliveries and sends; each holds its old content until reused, so keeping many would keep
/// state copies from being reused instead.
const SPARE_MESSAGES_MAX: usize = 4;

/// Runs one scenario with one seed under the scenario's built-in protocol. `make` builds each
/// node's empty CRDT (the relay server's too, with id = `replicas`); the observer sees every
/// event after it is applied.
pub fn run<C: OpCrdt>(
    scenario: &Scenario,
    seed: u64,
    make: &dyn Replicas<C>,
    observer: &mut dyn Observer<C>,
) -> Result<Outcome<C>, ScenarioError> {
    crate::protocols::run_builtin(scenario, seed, make, observer)
}

/// Runs one scenario with one seed under `protocol`, a user's own or a built-in one; the
/// scenario's `[protocol]` table gives the topology and the options `protocol` reads
/// ([`Ctx::options`]).
pub fn run_protocol<C: OpCrdt, P: Protocol<C>>(
    scenario: &Scenario,
    seed: u64,
    protocol: &P,
    make: &dyn Replicas<C>,
    observer: &mut dyn Observer<C>,
) -> Result<Outcome<C>, ScenarioError> {
    scenario.validate()?;
    if protocol.ships_deltas() && C::deltas().is_none() {
        return Err(ScenarioError {
            path: "protocol.kind".into(),
            message: format!(
                "{} ships deltas, and {} has none: implement converge_crdt::DeltaCrdt for it and \
                 return Some(Deltas::of()) from StateCrdt::deltas, or choose a protocol that ships \
                 whole states or ops",
                protocol.name(),
                std::any::type_name::<C>()
            ),
        });
    }
    if protocol.ships_ops() && !C::OPS_TRAVEL {
        return Err(ScenarioError {
            path: "protocol.kind".into(),
            message: format!(
                "{} applies ops away from their origin, and {} is state-only: choose a protocol \
                 that ships whole states (state-broadcast, anti-entropy)",
                protocol.name(),
                std::any::type_name::<C>()
            ),
        });
    }
    let explicit_intents = read_intents(scenario, make)?;
    let mut sim = Sim::new(scenario, seed, protocol, make, observer);
    sim.explicit_intents = explicit_intents;
    // A panic in a user's CRDT or protocol ends this run with a verdict instead of the whole
    // sweep. It is caught once around the run rather than per action, which costs the loop
    // nothing; what the panic interrupted is left as it was, and only reported.
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        sim.schedule_start();
        sim.run_loop();
    }));
    if let Err(payload) = ran {
        sim.panicked = Some(panic_message(payload.as_ref()));
    }
    Ok(sim.into_outcome())
}

/// The intents of the scenario's explicit writes as `C`'s intents (`None` where the generator
/// draws one), having refused what `C`'s intents cannot stand for: key/value writes, generated or
/// listed, for a type whose intents are its own and no generator.
fn read_intents<C: OpCrdt>(
    scenario: &Scenario,
    make: &dyn Replicas<C>,
) -> Result<Vec<Option<C::Intent>>, ScenarioError> {
    let own = || {
        format!(
            "{} takes intents of its own ({})",
            std::any::type_name::<C>(),
            std::any::type_name::<C::Intent>()
        )
    };
    let key_value = C::Intent::has_key_value_form();
    if scenario.workload.rate > 0.0 && !key_value && !make.draws_intents() {
        return Err(ScenarioError {
            path: "workload.rate".into(),
            message: format!(
                "{}: a generated workload needs their generator (Verify::intents, or \
                 Replicas::draw_intent); or list the writes in [[workload.ops]] with \
                 `intent = {{ ... }}` and set rate = 0",
                own()
            ),
        });
    }
    let read = |(i, op): (usize, &TimedOp)| match (&op.intent, &op.drawn) {
        (Some(value), _) => serde_json::from_value(value.clone())
            .map(Some)
            .map_err(|error| ScenarioError {
                path: format!("workload.ops[{i}].intent"),
                message: format!("not an intent of {}: {error}", std::any::type_name::<C>()),
            }),
        (None, Some(_)) if make.draws_intents() => Ok(None),
        (None, _) => C::Intent::from_key_value(op.key, op.value)
            .map(Some)
            .ok_or_else(|| ScenarioError {
                path: format!("workload.ops[{i}]"),
                message: format!(
                    "{}: write `intent = {{ ... }}` (its serde form) instead of a key and a value",
                    own()
                ),
            }),
    };
    scenario.workload.ops.iter().enumerate().map(read).collect()
}

/// The text a panic was raised with.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_string()
    }
}

enum Action<M, T> {
    GenerateWrite {
        replica: ReplicaId,
    },
    ExplicitWrite {
        op: usize,
    },
    Deliver {
        message: u64,
        from: NodeId,
        to: NodeId,
        payload: Arc<M>,
        copy: bool,
    },
    FaultStart {
        fault: u32,
    },
    FaultEnd {
        fault: u32,
    },
    Timer {
        node: NodeId,
        id: u64,
        timer: T,
    },
    SettleStart,
}

/// What a handler asked for, carried out in order once the event that called it is traced.
pub(crate) enum Command<M, T> {
    Send {
        to: NodeId,
        message: Arc<M>,
        bytes: u64,
    },
    Timer {
        at_us: u64,
        id: TimerId,
        timer: T,
    },
}

/// Where tie-break coins come from: the seeded stream, or the script's list.
#[allow(clippy::large_enum_variant)] // One value per run: boxing the stream would buy nothing.
pub(crate) enum CoinSource {
    Stream(Stream),
    Script {
        flips: Vec<bool>,
        next: usize,
    },
    /// The bits of one word, lowest first, then false: a model checker's chosen flips.
    Bits {
        bits: u64,
    },
}

/// The run's coin, which also keeps a trail of the flips since the last trace event, so that the
/// trace hash covers every coin a tie-break flipped: two runs that break a tie differently never
/// share a hash.
pub(crate) struct Coins {
    source: CoinSource,
    trail: u64,
    flips: u32,
}

impl Coins {
    pub(crate) fn new(source: CoinSource) -> Self {
        Coins {
            source,
            trail: 0,
            flips: 0,
        }
    }

    /// Coins flipped since the last [`Coins::take_trail`].
    pub(crate) fn flips(&self) -> u32 {
        self.flips
    }

    /// The flips since the last call, as one word (with their count), if there were any.
    pub(crate) fn take_trail(&mut self) -> Option<u64> {
        if self.flips == 0 {
            return None;
        }
        let word = self.trail ^ u64::from(self.flips) << 56;
        self.trail = 0;
        self.flips = 0;
        Some(word)
    }
}

impl Coin for Coins {
    fn flip(&mut self) -> bool {
        let flip = match &mut self.source {
            CoinSource::Stream(stream) => stream.next_u64() & 1 == 1,
            CoinSource::Script { flips, next } => {
                let flip = flips.get(*next).copied().unwrap_or(false);
                *next += 1;
                flip
            }
            CoinSource::Bits { bits } => self.flips < 64 && *bits >> self.flips & 1 == 1,
        };
        // The flips are folded in order into one word; their count goes in with it.
        self.trail = self.trail.rotate_left(1) ^ u64::from(flip);
        self.flips = self.flips.saturating_add(1);
        flip
    }
}

/// What a protocol handler reaches through its [`Ctx`]: the nodes with their replicas, clocks and
/// delivered sets, the update records, the topology, and the outbox of commands.
pub(crate) struct Net<C: OpCrdt, P: Protocol<C>> {
    pub(crate) now_us: u64,
    pub(crate) replicas: u32,
    pub(crate) server: Option<NodeId>,
    pub(crate) spec: ProtocolSpec,
    pub(crate) topology: &'static dyn Topology,
    pub(crate) nodes: Vec<Replica<C>>,
    pub(crate) clocks: Vec<Clock>,
    /// Restarts per node.
    pub(crate) incarnations: Vec<u32>,
    /// The update records kept (all of them where the protocol refers to updates, otherwise the
    /// first `bounds.update_records_kept_max`); the record of update `i` is at position `i`,
    /// except that a write beyond the kept ones puts its record last while the write is handled.
    pub(crate) updates: Arc<Vec<UpdateRecord<C>>>,
    /// Each origin's update indices, where the protocol refers to updates.
    pub(crate) by_origin: Vec<Vec<u32>>,
    pub(crate) coins: Coins,
    pub(crate) protocol_stream: Stream,
    pub(crate) outbox: Vec<Command<P::Message, P::Timer>>,
    pub(crate) next_timer: u64,
    pub(crate) cancelled_timers: BTreeSet<u64>,
    pub(crate) coverage: Coverage,
    /// State copies handed out, reused once nothing else refers to one (see `snapshot`).
    pub(crate) snapshots: Vec<Arc<SnapshotCopy<C>>>,
    pub(crate) snapshot_cursor: usize,
    /// Delivered messages nothing else held any more, at most [`SPARE_MESSAGES_MAX`]: sends
    /// reuse their allocations (see [`Net::share`]).
    pub(crate) spare_messages: Vec<Arc<P::Message>>,
    /// Whether the handler running now changed its node's replica (learned an update).
    pub(crate) changed: bool,
    /// Whether the handler running now handed its replica an op or a state at all, learned or
    /// not: a duplicate applied again may still move a view, so the oracles look at the replica.
    pub(crate) touched: bool,
    /// The connections that are down, as (lower node, higher node), with how many
    /// `connection-drop` faults hold each down.
    pub(crate) connections_down: BTreeMap<(NodeId, NodeId), u32>,
}

struct Sim<'a, C: OpCrdt, P: Protocol<C>> {
    net: Net<C, P>,
    protocol: &'a P,
    /// Each node's protocol state.
    states: Vec<P::Node>,
    scenario: &'a Scenario,
    make: &'a dyn Replicas<C>,
    observer: &'a mut dyn Observer<C>,
    seed: u64,
    queue: EventQueue<Action<P::Message, P::Timer>>,
    end_us: u64,
    settling: bool,
    network: Stream,
    workload: Stream,
    /// The intents of the scenario's explicit writes (`workload.ops`), read before the run;
    /// `None` for a write whose intent is drawn ([`TimedOp::drawn`]).
    explicit_intents: Vec<Option<C::Intent>>,
    /// See [`Outcome::intent_seeds`].
    intent_seeds: Vec<(u32, u64)>,
    /// Whether writes draw their intents from the user's generator ([`Replicas::draws_intents`],
    /// asked once).
    draws_intents: bool,
    fates: Option<BTreeMap<u64, Fate>>,
    scripted_latency: SimDuration,
    drop: f64,
    duplicate: f64,
    faults: Vec<FaultSpec>,
    cuts: Vec<(u32, Cut)>,
    /// Per active cut: which sides wrote, and how many writes it saw.
    cut_writes: BTreeMap<u32, (u64, u64)>,
    updates_issued: u32,
    /// Updates issued per origin: an update's sequence number is its origin's count.
    issued_by_origin: Vec<u32>,
    /// Per conflict key (`StateCrdt::conflict_key`), the latest update index of each origin.
    latest_by_key: BTreeMap<u32, BTreeMap<ReplicaId, u32>>,
    next_message: u64,
    in_flight: u64,
    /// The memory charged to messages in flight (see `Bounds::in_flight_bytes_max`).
    in_flight_bytes: u64,
    timers_pending: u64,
    links: LinkParameters,
    last_on_link: LinkTable,
    /// Per link, the time its latest message is due, where some link delivers in order: a
    /// message on an in-order link is never due before the one sent ahead of it.
    due_on_link: Option<LinkTable>,
    /// Per connection (lower node, higher node) that dropped, the number of the first message
    /// sent after its latest drop: a message with a lower number still in flight was on the
    /// connection when it dropped, and is lost.
    lost_below: BTreeMap<(NodeId, NodeId), u64>,
    /// Whether the run has connections at all (in-order links or connection drops), so that a
    /// run without any pays one test per message for them.
    connections: bool,
    /// Connections that cuts and down nodes broke, each with what broke it (see
    /// [`faults::Breaker`]), to restore when that ends.
    broken: Vec<(Breaker, (NodeId, NodeId))>,
    /// Connections broken while commands were carried out, whose ends are told after them.
    untold: Vec<(NodeId, NodeId)>,
    messages: MessageStats,
    events: u64,
    trace_hash: u64,
    trace: Vec<TraceEvent>,
    trace_truncated: bool,
    bound: Option<&'static str>,
    /// What a panic during the run said.
    panicked: Option<String>,
}

/// Room for the update records a run will likely keep, reserved up front: the planned updates
/// and a margin for the Poisson spread of generated writes, at most the records kept. (Growing
/// the records by doubling copied each one about once more, a seventieth of a run.)
fn records_reserved(scenario: &Scenario, keeps_every_record: bool) -> usize {
    let planned = scenario.planned_updates();
    let likely = planned.saturating_add(planned / 8).saturating_add(16);
    // A write beyond the kept records holds its own while it is handled.
    let kept = if keeps_every_record {
        u64::MAX
    } else {
        scenario.bounds.update_records_kept_max.saturating_add(1)
    };
    usize::try_from(likely.min(kept)).unwrap_or(usize::MAX)
}

/// The faults in force and the default links' drop and duplicate probabilities: the scenario's,
/// and in swarm mode those drawn from the seed. They come from their own stream: drawing them
/// never shifts the network's delays or the workload.
fn faults_in_force(scenario: &Scenario, root: u64) -> (Vec<FaultSpec>, f64, f64) {
    let mut faults = scenario.faults.clone();
    let mut drop = scenario.network.drop;
    let mut duplicate = scenario.network.duplicate;
    if let (Some(swarm), None) = (&scenario.swarm, &scenario.script) {
        let mut faults_stream = Stream::new(root, "faults");
        drop = faults_stream.unit() * swarm.drop_max;
        duplicate = faults_stream.unit() * swarm.duplicate_max;
        for _ in 0..swarm.faults {
            faults.push(draw_fault(&mut faults_stream, scenario));
        }
    }
    // A reconnect left to `network.reconnect-after` is written down, so that reports and shrunk
    // scenarios show when it happened.
    for fault in &mut faults {
        let end = fault.end(scenario.network.reconnect_after);
        if let FaultSpec::ConnectionDrop { reconnect, .. } = fault {
            *reconnect = end;
        }
    }
    (faults, drop, duplicate)
}

fn clocks_of(scenario: &Scenario, node_count: u32) -> Vec<Clock> {
    let mut skews = vec![Skew::default(); node_count as usize];
    for fault in &scenario.faults {
        if let FaultSpec::ClockSkew {
            replica,
            offset_us,
            drift_ppm,
        } = *fault
        {
            skews[replica as usize] = Skew {
                offset_us,
                drift_ppm,
            };
        }
    }
    skews
        .iter()
        .map(|skew| Clock::new(scenario.clock, *skew))
        .collect()
}

impl<'a, C: OpCrdt, P: Protocol<C>> Sim<'a, C, P> {
    fn new(
        scenario: &'a Scenario,
        seed: u64,
        protocol: &'a P,
        make: &'a dyn Replicas<C>,
        observer: &'a mut dyn Observer<C>,
    ) -> Self {
        // A scripted run takes nothing from the seed: every stream is rooted at zero.
        let root = if scenario.script.is_some() { 0 } else { seed };
        let replicas = scenario.replicas;
        let topology = topology::of(scenario.protocol.topology);
        let node_count = replicas + topology.servers();
        let server = (topology.servers() > 0).then_some(replicas);
        // Swarm faults are drawn before anything else so that a drawn late join starts its replica
        // waiting, exactly as a listed one does.
        let (faults, drop, duplicate) = faults_in_force(scenario, root);
        let late: BTreeSet<ReplicaId> = faults
            .iter()
            .filter_map(|f| match f {
                FaultSpec::Join { replica, .. } => Some(*replica),
                _ => None,
            })
            .collect();
        let nodes = (0..node_count)
            .map(|id| Replica {
                id,
                status: if late.contains(&id) {
                    Status::Waiting
                } else {
                    Status::Up
                },
                crdt: make.make(id, 0),
                delivered: UpdateSet::default(),
            })
            .collect();
        let coins = Coins::new(match &scenario.script {
            Some(script) => CoinSource::Script {
                flips: script.coins.clone(),
                next: 0,
            },
            None => CoinSource::Stream(Stream::new(root, "tie-breaks")),
        });
        let keeps_every_record = protocol.refers_to_updates();
        let connections = scenario.network.links_in_order()
            || faults
                .iter()
                .any(|f| matches!(f, FaultSpec::ConnectionDrop { .. }));
        let mut net = Net {
            now_us: 0,
            replicas,
            server,
            spec: scenario.protocol,
            topology,
            nodes,
            clocks: clocks_of(scenario, node_count),
            incarnations: vec![0; node_count as usize],
            updates: Arc::new(Vec::with_capacity(records_reserved(
                scenario,
                keeps_every_record,
            ))),
            by_origin: vec![Vec::new(); replicas as usize],
            coins,
            protocol_stream: Stream::new(root, "protocol"),
            outbox: Vec::new(),
            next_timer: 0,
            cancelled_timers: BTreeSet::new(),
            coverage: Coverage::default(),
            snapshots: Vec::new(),
            snapshot_cursor: 0,
            spare_messages: Vec::new(),
            changed: false,
            touched: false,
            connections_down: BTreeMap::new(),
        };
        let states = (0..node_count)
            .map(|node| protocol.init(&Ctx::detached(&mut net, protocol, node)))
            .collect();
        Sim {
            net,
            protocol,
            states,
            scenario,
            make,
            observer,
            seed,
            queue: EventQueue::new(),
            end_us: scenario.duration.us.saturating_add(scenario.settle.us),
            settling: false,
            network: Stream::new(root, "network"),
            workload: Stream::new(root, "workload"),
            explicit_intents: Vec::new(),
            intent_seeds: Vec::new(),
            draws_intents: make.draws_intents(),
            fates: scenario.script.as_ref().map(|s| {
                s.fates
                    .iter()
                    .map(|f| (f.message, f.fate.clone()))
                    .collect()
            }),
            scripted_latency: scenario
                .script
                .as_ref()
                .map(|s| s.latency)
                .unwrap_or_default(),
            drop,
            duplicate,
            faults,
            cuts: Vec::new(),
            cut_writes: BTreeMap::new(),
            updates_issued: 0,
            issued_by_origin: vec![0; replicas as usize],
            latest_by_key: BTreeMap::new(),
            next_message: 0,
            in_flight: 0,
            in_flight_bytes: 0,
            timers_pending: 0,
            links: LinkParameters::default(),
            last_on_link: LinkTable::new(node_count),
            due_on_link: scenario
                .network
                .links_in_order()
                .then(|| LinkTable::new(node_count)),
            lost_below: BTreeMap::new(),
            connections,
            broken: Vec::new(),
            untold: Vec::new(),
            messages: MessageStats::default(),
            events: 0,
            trace_hash: HASH_SEED,
            trace: Vec::new(),
            trace_truncated: false,
            bound: None,
            panicked: None,
        }
    }

    fn schedule(&mut self, at_us: u64, action: Action<P::Message, P::Timer>) {
        self.queue.push(at_us, action);
    }

    fn schedule_start(&mut self) {
        let scenario = self.scenario;
        let scripted = scenario.script.is_some();
        let stop_us = self.writes_stop_us();
        if !scripted && scenario.workload.rate > 0.0 {
            let writers: Vec<ReplicaId> = scenario
                .workload
                .writers
                .clone()
                .unwrap_or_else(|| (0..self.net.replicas).collect());
            for replica in writers {
                let gap = self.write_gap_us();
                if gap < stop_us {
                    self.schedule(gap, Action::GenerateWrite { replica });
                }
            }
        }
        for (op, timed) in scenario.workload.ops.iter().enumerate() {
            if timed.at <= scenario.duration {
                self.schedule(timed.at.us, Action::ExplicitWrite { op });
            }
        }
        self.schedule_faults();
        for node in 0..self.states.len() as NodeId {
            self.handle_with(node, None, |protocol, state, ctx| {
                protocol.on_start(state, ctx)
            });
            self.flush(node);
        }
        self.schedule(scenario.duration.us, Action::SettleStart);
    }

    fn schedule_faults(&mut self) {
        let duration = self.scenario.duration;
        for (index, fault) in self.faults.clone().iter().enumerate() {
            let index = index as u32;
            let (start, end) = match fault {
                FaultSpec::Partition { at, heal, .. }
                | FaultSpec::Isolate { at, heal, .. }
                | FaultSpec::Bridge { at, heal, .. } => (Some(*at), *heal),
                FaultSpec::Crash { at, restart, .. } => (Some(*at), *restart),
                FaultSpec::Join { at, .. } | FaultSpec::Leave { at, .. } => (Some(*at), None),
                FaultSpec::ServerOutage { at, until } => (Some(*at), Some(*until)),
                FaultSpec::ConnectionDrop { at, .. } => {
                    (Some(*at), fault.end(self.scenario.network.reconnect_after))
                }
                FaultSpec::ClockSkew { .. } => (None, None),
            };
            if let Some(start) = start.filter(|s| *s <= duration) {
                self.schedule(start.us, Action::FaultStart { fault: index });
                if let Some(end) = end.filter(|e| *e >= start) {
                    self.schedule(end.us, Action::FaultEnd { fault: index });
                }
            }
        }
    }

    fn writes_stop_us(&self) -> u64 {
        let scenario = self.scenario;
        scenario
            .workload
            .stop
            .unwrap_or(scenario.duration)
            .us
            .min(scenario.duration.us)
    }

    fn write_gap_us(&mut self) -> u64 {
        let mean_us = 1e6 / self.scenario.workload.rate;
        (self.workload.exponential(mean_us).round() as u64).max(1)
    }

    fn run_loop(&mut self) {
        let bounds = &self.scenario.bounds;
        // Timers that do nothing are actions without events: a protocol that sets them without
        // end is stopped by this bound, not by `events_max`.
        let actions_max = bounds.events_max.saturating_mul(2).saturating_add(1 << 20);
        let mut actions: u64 = 0;
        while let Some((at_us, action)) = self.queue.pop() {
            // Asking the observer costs a virtual call, so it is asked once per batch of actions.
            actions += 1;
            if actions % INTERRUPT_CHECK_EVENTS == 0 && self.observer.interrupted() {
                self.bound = Some(INTERRUPTED);
                break;
            }
            if at_us > self.end_us {
                break;
            }
            if self.events >= bounds.events_max {
                self.bound = Some("events_max");
                break;
            }
            if actions > actions_max {
                self.bound = Some("actions_max");
                break;
            }
            self.net.now_us = at_us;
            self.handle(action);
            if self.bound.is_some() {
                break;
            }
        }
        if self.bound.is_none() {
            self.net.now_us = self.end_us;
        }
    }

    // ----- actions -----

    fn handle(&mut self, action: Action<P::Message, P::Timer>) {
        match action {
            Action::GenerateWrite { replica } => {
                let drawn = self.generated_intent(replica);
                let next = self.net.now_us.saturating_add(self.write_gap_us());
                if next < self.writes_stop_us() {
                    self.schedule(next, Action::GenerateWrite { replica });
                }
                if let Some((intent, seed)) = drawn {
                    self.write(replica, intent, seed);
                }
            }
            Action::ExplicitWrite { op } => {
                let timed = &self.scenario.workload.ops[op];
                let intent = match (&self.explicit_intents[op], &timed.drawn) {
                    (Some(intent), _) => Some(intent.clone()),
                    (None, Some(drawn)) => self.make.draw_intent(
                        &self.net.nodes[timed.replica as usize].crdt,
                        &IntentDraw {
                            seed: drawn.seed,
                            simplified: &drawn.simplified,
                        },
                    ),
                    (None, None) => {
                        unreachable!("an explicit write's intent is read before the run")
                    }
                };
                if let Some(intent) = intent {
                    self.write(timed.replica, intent, timed.drawn.as_ref().map(|d| d.seed));
                }
            }
            Action::Deliver {
                message,
                from,
                to,
                payload,
                copy,
            } => {
                self.in_flight -= 1;
                self.in_flight_bytes -= self.protocol.message_memory_bytes(&payload);
                self.deliver(message, from, to, &payload, copy);
                if Arc::strong_count(&payload) == 1
                    && self.net.spare_messages.len() < SPARE_MESSAGES_MAX
                {
                    self.net.spare_messages.push(payload);
                }
            }
            Action::FaultStart { fault } => self.fault_start(fault),
            Action::FaultEnd { fault } => self.fault_end(fault),
            Action::Timer { node, id, timer } => {
                self.timers_pending -= 1;
                if !self.net.cancelled_timers.is_empty() && self.net.cancelled_timers.remove(&id) {
                    return;
                }
                self.fire(node, timer);
            }
            Action::SettleStart => {
                self.settling = true;
                self.close_cut_counts();
                self.emit(EventKind::SettleStart, &[]);
            }
        }
    }

    /// Calls one handler of the protocol for `node`, with the message being handled if any.
    fn handle_with(
        &mut self,
        node: NodeId,
        received: Option<&Arc<P::Message>>,
        handler: impl FnOnce(&P, &mut P::Node, &mut Ctx<'_, C, P>),
    ) {
        let (before, rest) = self.states.split_at_mut(node as usize);
        let (state, after) = rest
            .split_first_mut()
            .expect("every node has a protocol state");
        let mut ctx = Ctx {
            net: &mut self.net,
            protocol: self.protocol,
            node,
            others: Others { before, after },
            received,
        };
        handler(self.protocol, state, &mut ctx);
    }

    /// Carries out the commands `node`'s handler issued, in order.
    fn flush(&mut self, node: NodeId) {
        if self.net.outbox.is_empty() {
            return;
        }
        let mut outbox = std::mem::take(&mut self.net.outbox);
        for command in outbox.drain(..) {
            if self.bound.is_some() {
                break;
            }
            match command {
                Command::Send { to, message, bytes } => {
                    if to as usize >= self.net.nodes.len() {
                        self.bound = Some("send_to_unknown_node");
                        break;
                    }
                    self.send(node, to, message, bytes);
                }
                Command::Timer { at_us, id, timer } => {
                    if self.timers_pending >= self.scenario.bounds.in_flight_max {
                        self.bound = Some("timers_max");
                        break;
                    }
                    self.timers_pending += 1;
                    self.schedule(
                        at_us,
                        Action::Timer {
                            node,
                            id: id.0,
                            timer,
                        },
                    );
                }
            }
        }
        outbox.clear();
        self.net.outbox = outbox;
        if !self.untold.is_empty() {
            self.tell_untold();
        }
    }

    /// A timer fired: the handler runs, and the timer is an event of the trace when the handler
    /// sent anything or handed its replica an op or a state (a timer that only sets itself again
    /// is not); the replica is touched then even if it learned nothing, since a duplicate may
    /// still have moved a view that is not idempotent.
    fn fire(&mut self, node: NodeId, timer: P::Timer) {
        self.net.touched = false;
        self.handle_with(node, None, |protocol, state, ctx| {
            protocol.on_timer(state, timer, ctx)
        });
        // Every change is a touch: `merge` and `apply` set both.
        let handed = self.net.touched;
        let sends = self
            .net
            .outbox
            .iter()
            .any(|c| matches!(c, Command::Send { .. }));
        if handed || sends {
            let touched: &[NodeId] = if handed { &[node] } else { &[] };
            self.emit(EventKind::Timer { node }, touched);
        }
        self.flush(node);
    }

    /// The next generated write's intent at `replica`, with its seed where a generator drew it:
    /// the scenario's key/value workload, or the user's generator.
    fn generated_intent(&mut self, replica: ReplicaId) -> Option<(C::Intent, Option<u64>)> {
        if self.draws_intents {
            let seed = self.workload.next_u64();
            let draw = IntentDraw {
                seed,
                simplified: &[],
            };
            let state = &self.net.nodes[replica as usize].crdt;
            return self
                .make
                .draw_intent(state, &draw)
                .map(|intent| (intent, Some(seed)));
        }
        let workload = &self.scenario.workload;
        let key = self.workload.below(u64::from(workload.keys)) as u32;
        let value = if self.workload.chance(workload.remove_ratio) {
            None
        } else {
            Some(1 + self.workload.below(workload.values))
        };
        // Validation refused a generated workload for a type without key/value intents.
        C::Intent::from_key_value(key, value).map(|intent| (intent, None))
    }

    fn write(&mut self, replica: ReplicaId, intent: C::Intent, seed: Option<u64>) {
        if self.net.nodes[replica as usize].status != Status::Up {
            return;
        }
        if u64::from(self.updates_issued) >= self.scenario.bounds.updates_max {
            self.bound = Some("updates_max");
            return;
        }
        if let Some(seed) = seed {
            self.intent_seeds.push((self.updates_issued, seed));
        }
        let key = WorkloadIntent::key(&intent);
        let now_us = self.net.now_us;
        let node = &self.net.nodes[replica as usize];
        let key_time = node.crdt.key_time(key);
        let time = self.net.clocks[replica as usize].tick(now_us, key_time);
        let stamp = Stamp { time, replica };
        let op = node.crdt.prepare(&intent, stamp);
        let stale_against_time = key_time.filter(|seen| *seen >= time);
        let latest = self.latest_by_key.entry(C::conflict_key(key)).or_default();
        let concurrent = latest
            .iter()
            .any(|(origin, index)| *origin != replica && !node.delivered.contains(*index));
        let index = self.updates_issued;
        self.updates_issued += 1;
        latest.insert(replica, index);
        self.issued_by_origin[replica as usize] += 1;
        let seq = self.issued_by_origin[replica as usize];
        let keeps_every_record = self.protocol.refers_to_updates();
        if keeps_every_record {
            self.net.by_origin[replica as usize].push(index);
        }
        self.net.coverage.concurrent_writes_same_key += u64::from(concurrent);
        for (fault, cut) in &self.cuts {
            let side = cut.side_of(replica).min(63);
            let entry = self.cut_writes.entry(*fault).or_default();
            entry.0 |= 1 << side;
            entry.1 += 1;
        }
        let id = UpdateId {
            origin: replica,
            seq,
        };
        // Only a model checker's world shares the records; a run holds them alone.
        Arc::make_mut(&mut self.net.updates).push(UpdateRecord {
            index,
            id,
            at_us: now_us,
            intent,
            stamp,
            op,
            stale_against_time,
            concurrent,
        });
        self.net.apply(replica, index);
        self.handle_with(replica, None, |protocol, state, ctx| {
            protocol.on_write(state, Update(index), ctx)
        });
        self.emit(
            EventKind::Write {
                replica,
                update: id,
                key,
            },
            &[replica],
        );
        self.flush(replica);
        if !keeps_every_record
            && self.net.updates.len() as u64 > self.scenario.bounds.update_records_kept_max
        {
            // The observer has seen the record, and nothing refers to it again.
            Arc::make_mut(&mut self.net.updates).pop();
        }
    }

    fn deliver(
        &mut self,
        message: u64,
        from: NodeId,
        to: NodeId,
        payload: &Arc<P::Message>,
        copy: bool,
    ) {
        if self.net.nodes[to as usize].status != Status::Up {
            if self.connections
                && !self.net.is_disconnected(from, to)
                && self.link_in_order(from, to)
            {
                // A connection whose other end is down drops; it is back once the node is up.
                self.break_by(Breaker::Down(to), from, to);
                self.drop_message(from, to, message, crate::outcome::DropCause::Disconnected);
                self.tell_untold();
                return;
            }
            self.drop_message(from, to, message, crate::outcome::DropCause::Down);
            return;
        }
        if self.connections && self.lost_in_connection_drop(from, to, message) {
            self.drop_message(from, to, message, crate::outcome::DropCause::Disconnected);
            return;
        }
        self.messages.delivered += 1;
        if copy {
            self.net.coverage.duplicate_deliveries += 1;
        }
        if self.last_on_link.deliver_is_reordered(from, to, message) {
            self.net.coverage.reordered_deliveries += 1;
        }
        self.net.changed = false;
        self.handle_with(to, Some(payload), |protocol, state, ctx| {
            protocol.on_message(state, from, payload, ctx)
        });
        let changed = self.net.changed;
        self.emit(
            EventKind::Deliver {
                from,
                to,
                message,
                changed,
            },
            &[to],
        );
        self.flush(to);
    }

    /// A node restarted: a volatile restart rebuilds its replica, clock and protocol state first.
    fn restart(&mut self, replica: ReplicaId, durable: bool) {
        let node = replica as usize;
        self.net.incarnations[node] += 1;
        if !durable {
            let fresh = self.make.make(replica, self.net.incarnations[node]);
            let state = &mut self.net.nodes[node];
            state.crdt = fresh;
            state.delivered = UpdateSet::default();
            let skew = self.net.clocks[node].skew;
            self.net.clocks[node] = Clock::new(self.scenario.clock, skew);
            let protocol = self.protocol;
            let rebuilt = protocol.init(&Ctx::detached(&mut self.net, protocol, replica));
            self.states[node] = rebuilt;
        }
        self.net.nodes[node].status = Status::Up;
        self.net.coverage.restarts += 1;
        let restart = Restart {
            durable,
            incarnation: self.net.incarnations[node],
        };
        self.handle_with(replica, None, |protocol, state, ctx| {
            protocol.on_restart(state, restart, ctx)
        });
        self.emit(EventKind::Restart { replica }, &[replica]);
        self.flush(replica);
        self.restore_broken_by(Breaker::Down(replica));
    }

    fn into_outcome(mut self) -> Outcome<C> {
        self.close_cut_counts();
        let end = match (self.panicked.take(), self.bound) {
            (Some(message), _) => End::Panicked {
                message,
                after_events: self.events,
            },
            (None, Some(INTERRUPTED)) => End::Interrupted,
            (None, Some(bound)) => End::BoundReached {
                bound: bound.to_string(),
            },
            (None, None) => End::Completed,
        };
        let net = self.net;
        let mut nodes = net.nodes;
        let server = net.server.map(|s| nodes[s as usize].crdt.clone());
        nodes.truncate(net.replicas as usize);
        Outcome {
            seed: self.seed,
            trace_hash: self.trace_hash,
            events: self.events,
            end,
            end_us: net.now_us,
            settle_start_us: self.scenario.duration.us,
            replicas: nodes,
            server,
            updates: Arc::try_unwrap(net.updates).unwrap_or_else(|shared| (*shared).clone()),
            updates_issued: u64::from(self.updates_issued),
            messages: self.messages,
            coverage: net.coverage,
            trace: self.trace,
            trace_truncated: self.trace_truncated,
            faults: self.faults,
            network_drop: self.drop,
            network_duplicate: self.duplicate,
            in_flight_at_end: self.in_flight,
            intent_seeds: self.intent_seeds,
        }
    }
}

impl<C: OpCrdt, P: Protocol<C>> Net<C, P> {
    /// What the topology may look at, lent to `look`.
    fn with_view<R>(&self, look: impl FnOnce(&NodesView<'_>) -> R) -> R {
        let nodes = &self.nodes;
        let statuses = |node: NodeId| nodes[node as usize].status;
        look(&NodesView {
            replicas: self.replicas,
            server: self.server,
            statuses: &statuses,
        })
    }

    pub(crate) fn push_targets(&mut self, node: NodeId, except: Option<NodeId>) -> Targets {
        let topology = self.topology;
        let targets = self.with_view(|view| topology.push_targets(view, node, except));
        match targets {
            Some(targets) => targets,
            None => Targets::listed(
                self.random_peers(node)
                    .into_iter()
                    .filter(|p| Some(*p) != except)
                    .collect(),
            ),
        }
    }

    /// `fanout` distinct random peers (anti-entropy rounds and gossip); through the server in a
    /// relay.
    pub(crate) fn random_peers(&mut self, node: NodeId) -> Vec<NodeId> {
        let topology = self.topology;
        let candidates = self.with_view(|view| topology.random_candidates(view, node));
        let mut pool: Vec<NodeId> = match candidates {
            Candidates::Only(peer) => return vec![peer],
            Candidates::OtherReplicas => (0..self.replicas).filter(|r| *r != node).collect(),
        };
        let fanout = (self.spec.fanout as usize).min(pool.len());
        let mut chosen = Vec::with_capacity(fanout);
        for _ in 0..fanout {
            let pick = self.protocol_stream.below(pool.len() as u64) as usize;
            chosen.push(pool.swap_remove(pick));
        }
        chosen
    }

    /// Whether a `connection-drop` fault holds the connection between `a` and `b` down.
    pub(crate) fn is_disconnected(&self, a: NodeId, b: NodeId) -> bool {
        !self.connections_down.is_empty()
            && self.connections_down.contains_key(&(a.min(b), a.max(b)))
    }

    pub(crate) fn forwards(&self, node: NodeId, learned: bool) -> bool {
        self.with_view(|view| self.topology.forwards(view, node, learned))
    }

    /// `message` shared for its copies, in the allocation of a delivered message that nothing
    /// holds any more when there is one: a broadcast per write otherwise allocated one and freed
    /// one at its last delivery, 1% of a judged run.
    pub(crate) fn share(&mut self, message: P::Message) -> Arc<P::Message> {
        match self.spare_messages.pop() {
            Some(mut spare) => match Arc::get_mut(&mut spare) {
                Some(slot) => {
                    *slot = message;
                    spare
                }
                None => Arc::new(message),
            },
            None => Arc::new(message),
        }
    }

    /// A copy of `node`'s state and delivered set, written over a copy nothing refers to any
    /// more when there is one (allocating a state and a set per broadcast and freeing them at the
    /// last delivery was a tenth of a run). The copies handed out are looked at from the oldest:
    /// it is the likeliest to have been delivered everywhere.
    pub(crate) fn snapshot(&mut self, node: NodeId) -> Snapshot<C> {
        let replica = &self.nodes[node as usize];
        let kept = self.snapshots.len();
        for _ in 0..kept {
            let at = self.snapshot_cursor;
            self.snapshot_cursor = (at + 1) % kept;
            if let Some(copy) = Arc::get_mut(&mut self.snapshots[at]) {
                copy.state.clone_from(&replica.crdt);
                copy.delivered.clone_from(&replica.delivered);
                return Snapshot(Arc::clone(&self.snapshots[at]));
            }
        }
        let copy = Arc::new(SnapshotCopy {
            state: replica.crdt.clone(),
            delivered: replica.delivered.clone(),
        });
        if kept < SNAPSHOTS_KEPT_MAX {
            self.snapshots.push(Arc::clone(&copy));
        }
        Snapshot(copy)
    }

    /// Merges a received state; returns whether the node learned updates it did not have.
    pub(crate) fn merge(&mut self, node: NodeId, snapshot: &Snapshot<C>) -> bool {
        let copy = &*snapshot.0;
        self.merge_state(node, &copy.state, &copy.delivered)
    }

    /// Merges `state`, which holds the updates `delivered`, into `node`'s replica (a snapshot's
    /// or a delta's); returns whether the node learned updates it did not have.
    fn merge_state(&mut self, node: NodeId, state: &C, delivered: &UpdateSet) -> bool {
        let replica = &mut self.nodes[node as usize];
        replica.crdt.merge(state, &mut self.coins);
        let clock = &mut self.clocks[node as usize];
        // Only clocks that listen need the received state's greatest time, which costs a scan.
        if matches!(clock.kind, ClockKind::Lamport | ClockKind::Hybrid) {
            clock.observe(state.time_max());
        }
        let before = replica.delivered.len();
        replica.delivered.union_with(delivered);
        let learned = replica.delivered.len() > before;
        self.changed |= learned;
        self.touched = true;
        learned
    }

    /// Merges a received delta where the node holds what it builds on (see [`Delta`]); returns
    /// whether the node learned updates it did not have.
    pub(crate) fn merge_delta(
        &mut self,
        node: NodeId,
        delta: &Delta<C>,
    ) -> Result<bool, MissingBase> {
        let copy = &*delta.0;
        let replica = &mut self.nodes[node as usize];
        // The sender's updates the receiver lacks must all be covered by the delta: then merging
        // it gives the receiver what the sender held, by the delta contract.
        let lacking = copy
            .delivered
            .difference(&replica.delivered)
            .filter(|index| copy.covers.binary_search(index).is_err())
            .count() as u32;
        if lacking > 0 {
            return Err(MissingBase { lacking });
        }
        Ok(self.merge_state(node, &copy.state, &copy.delivered))
    }

    /// Hands one update's op to a node's replica, a duplicate too (see [`Ctx::apply`]); returns
    /// whether the update was new there.
    pub(crate) fn apply(&mut self, node: NodeId, index: u32) -> bool {
        let replica = &mut self.nodes[node as usize];
        // The writer applies its own update while the record is last, perhaps beyond the kept
        // ones; every other update applied here has its record at its index.
        let update = &self.updates[(index as usize).min(self.updates.len() - 1)];
        debug_assert_eq!(update.index, index);
        if !C::OPS_TRAVEL && update.id.origin != node {
            panic!(
                "{} is state-only: its updates reach other replicas inside states, and the \
                 protocol applied update {} at node {node}, away from its origin {}; run it under \
                 a protocol that ships whole states (state-broadcast, anti-entropy)",
                std::any::type_name::<C>(),
                index,
                update.id.origin
            );
        }
        replica.crdt.apply(&update.op, &mut self.coins);
        self.touched = true;
        // The delivered set is ghost state the oracles compare: a duplicate adds nothing to it,
        // and the clock saw the stamp the first time.
        if !replica.delivered.insert(index) {
            return false;
        }
        self.clocks[node as usize].observe(update.stamp.time);
        self.changed = true;
        true
    }
}

impl<'a, C: OpCrdt, P: Protocol<C>> Ctx<'a, C, P> {
    /// A context with no other nodes to peek at, for [`Protocol::init`].
    pub(crate) fn detached(net: &'a mut Net<C, P>, protocol: &'a P, node: NodeId) -> Self {
        Ctx {
            net,
            protocol,
            node,
            others: Others {
                before: &[],
                after: &[],
            },
            received: None,
        }
    }
}
