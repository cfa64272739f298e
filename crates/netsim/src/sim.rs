//! The simulator proper: the event queue, the nodes and the run loop. Its submodules add the rest
//! of the simulator's behaviour to the same [`Sim`] value: [`network`] (links, latency samplers,
//! drops and duplicates), [`faults`] (partitions, crashes, joins, swarm draws), [`protocol`] (what
//! each replication protocol sends and does on delivery) and [`trace`] (events, the observer and the
//! trace hash).
//!
//! One [`Sim`] value holds a whole run. Actions wait in a binary heap ordered by `(virtual time,
//! sequence number)`, so two actions at the same microsecond run in the order they were scheduled,
//! on every machine. Each handled action emits zero or more trace events; each event is hashed into
//! the trace hash and shown to the observer together with the replicas it touched.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use converge_crdt::clock::Skew;
use converge_crdt::{Clock, ClockKind, Coin, Intent, OpCrdt, ReplicaId, Stamp, UpdateId};

use crate::outcome::{
    Coverage, End, EventKind, MessageStats, NodeId, Observer, Outcome, Replica, Status, TraceEvent,
    UpdateRecord, UpdateSet, INTERRUPT_CHECK_EVENTS,
};
use crate::scenario::{DeltaPosition, Fate, FaultSpec, ProtocolKind, Scenario, Topology};
use crate::streams::Stream;
use crate::time::SimDuration;
use crate::validation::ScenarioError;

mod faults;
mod network;
mod protocol;
mod queue;
mod trace;

use faults::{draw_fault, Cut};
use network::LinkTable;
use protocol::{Payload, Protocol};
use queue::EventQueue;
use trace::HASH_SEED;

/// Header bytes counted for every message on top of its payload.
pub(super) const HEADER_BYTES: u64 = 16;
/// The retransmission backoff doubles at most this many times (to 8 timeouts, 1.6 s by default):
/// an uncapped backoff after a few losses in a row waited past the settle period, and a replica
/// that would have caught up was judged not converged (zoo sweep, seed 2859).
pub(super) const BACKOFF_DOUBLINGS_MAX: u32 = 3;
/// The stop reason recorded when the observer asked the run to stop; it ends as
/// [`End::Interrupted`] rather than as a bound.
const INTERRUPTED: &str = "interrupted";

/// Runs one scenario with one seed. `make` builds each node's empty CRDT (the relay server's too,
/// with id = `replicas`); the observer sees every event after it is applied.
pub fn run<C: OpCrdt>(
    scenario: &Scenario,
    seed: u64,
    make: &dyn Fn(ReplicaId) -> C,
    observer: &mut dyn Observer<C>,
) -> Result<Outcome<C>, ScenarioError> {
    scenario.validate()?;
    let mut sim = Sim::new(scenario, seed, make, observer);
    sim.schedule_start();
    sim.run_loop();
    Ok(sim.into_outcome())
}

enum Action<C> {
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
        payload: Rc<Payload<C>>,
        copy: bool,
    },
    FaultStart {
        fault: u32,
    },
    FaultEnd {
        fault: u32,
    },
    AntiEntropy {
        node: NodeId,
    },
    Poll {
        node: NodeId,
    },
    Retransmit {
        node: NodeId,
        to: NodeId,
        update: u32,
        attempt: u32,
    },
    /// A joiner that asked for a snapshot asks again unless a state has arrived.
    SnapshotRetry {
        node: NodeId,
        attempt: u32,
    },
    SettleStart,
}

/// Where tie-break coins come from: the seeded stream, or the script's list.
#[allow(clippy::large_enum_variant)] // One value per run: boxing the stream would buy nothing.
enum Coins {
    Stream(Stream),
    Script { flips: Vec<bool>, next: usize },
}

impl Coin for Coins {
    fn flip(&mut self) -> bool {
        match self {
            Coins::Stream(stream) => stream.next_u64() & 1 == 1,
            Coins::Script { flips, next } => {
                let flip = flips.get(*next).copied().unwrap_or(false);
                *next += 1;
                flip
            }
        }
    }
}

struct Sim<'a, C: OpCrdt> {
    scenario: &'a Scenario,
    make: &'a dyn Fn(ReplicaId) -> C,
    observer: &'a mut dyn Observer<C>,
    seed: u64,
    replicas: u32,
    server: Option<NodeId>,
    nodes: Vec<Replica<C>>,
    clocks: Vec<Clock>,
    protocols: Vec<Protocol>,
    queue: EventQueue<Action<C>>,
    now_us: u64,
    end_us: u64,
    settling: bool,
    network: Stream,
    workload: Stream,
    protocol_stream: Stream,
    coins: Coins,
    fates: Option<BTreeMap<u64, Fate>>,
    scripted_latency: SimDuration,
    drop: f64,
    duplicate: f64,
    faults: Vec<FaultSpec>,
    cuts: Vec<(u32, Cut)>,
    /// Per active cut: which sides wrote, and how many writes it saw.
    cut_writes: BTreeMap<u32, (u64, u64)>,
    /// The update records kept (all of them where `keeps_every_record`, otherwise the first
    /// `bounds.update_records_kept_max`); the record of update `i` is at position `i`, except
    /// that a write beyond the kept ones puts its record last while the write is handled.
    updates: Vec<UpdateRecord<C>>,
    updates_issued: u32,
    /// Updates issued per origin: an update's sequence number is its origin's count.
    issued_by_origin: Vec<u32>,
    /// Each origin's update indices, where `keeps_every_record` (version vectors read them).
    by_origin: Vec<Vec<u32>>,
    deps: Vec<Rc<[u32]>>,
    /// Per key, the latest update index of each origin.
    latest_by_key: BTreeMap<u32, BTreeMap<ReplicaId, u32>>,
    next_message: u64,
    in_flight: u64,
    /// The memory charged to messages in flight (see `Bounds::in_flight_bytes_max`).
    in_flight_bytes: u64,
    last_on_link: LinkTable,
    /// State payloads no message refers to any more, kept for reuse (see `recycle`).
    spare_states: Vec<Rc<Payload<C>>>,
    messages: MessageStats,
    coverage: Coverage,
    events: u64,
    trace_hash: u64,
    trace: Vec<TraceEvent>,
    trace_truncated: bool,
    bound: Option<&'static str>,
}

/// Room for the update records a run will likely keep, reserved up front: the planned updates
/// and a margin for the Poisson spread of generated writes, at most the records kept. (Growing
/// the records by doubling copied each one about once more, a seventieth of a run.)
fn records_reserved(scenario: &Scenario) -> usize {
    let planned = scenario.planned_updates();
    let likely = planned.saturating_add(planned / 8).saturating_add(16);
    // A write beyond the kept records holds its own while it is handled.
    let kept = if keeps_every_record(scenario.protocol.kind) {
        u64::MAX
    } else {
        scenario.bounds.update_records_kept_max.saturating_add(1)
    };
    usize::try_from(likely.min(kept)).unwrap_or(usize::MAX)
}

/// Whether the protocol's messages, logs or vectors refer to updates, so that a run keeps every
/// update record (and each origin's list of updates): all but those that send whole states.
fn keeps_every_record(kind: ProtocolKind) -> bool {
    !matches!(
        kind,
        ProtocolKind::StateBroadcast | ProtocolKind::AntiEntropy
    )
}

impl<'a, C: OpCrdt> Sim<'a, C> {
    fn new(
        scenario: &'a Scenario,
        seed: u64,
        make: &'a dyn Fn(ReplicaId) -> C,
        observer: &'a mut dyn Observer<C>,
    ) -> Self {
        // A scripted run takes nothing from the seed: every stream is rooted at zero.
        let root = if scenario.script.is_some() { 0 } else { seed };
        let replicas = scenario.replicas;
        let server = (scenario.protocol.topology == Topology::Relay).then_some(replicas);
        let node_count = replicas + u32::from(server.is_some());
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
        // Swarm faults are drawn before anything else so that a drawn late join starts its replica
        // waiting, exactly as a listed one does. They come from their own stream: drawing them
        // never shifts the network's delays or the workload.
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
                crdt: make(id),
                delivered: UpdateSet::default(),
            })
            .collect();
        let coins = match &scenario.script {
            Some(script) => Coins::Script {
                flips: script.coins.clone(),
                next: 0,
            },
            None => Coins::Stream(Stream::new(root, "tie-breaks")),
        };
        Sim {
            scenario,
            make,
            observer,
            seed,
            replicas,
            server,
            nodes,
            clocks: skews
                .iter()
                .map(|skew| Clock::new(scenario.clock, *skew))
                .collect(),
            protocols: (0..node_count).map(|_| fresh_protocol(scenario)).collect(),
            queue: EventQueue::new(),
            now_us: 0,
            end_us: scenario.duration.us.saturating_add(scenario.settle.us),
            settling: false,
            network: Stream::new(root, "network"),
            workload: Stream::new(root, "workload"),
            protocol_stream: Stream::new(root, "protocol"),
            coins,
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
            updates: Vec::with_capacity(records_reserved(scenario)),
            updates_issued: 0,
            issued_by_origin: vec![0; replicas as usize],
            by_origin: vec![Vec::new(); replicas as usize],
            deps: Vec::new(),
            latest_by_key: BTreeMap::new(),
            next_message: 0,
            in_flight: 0,
            in_flight_bytes: 0,
            last_on_link: LinkTable::new(node_count),
            spare_states: Vec::new(),
            messages: MessageStats::default(),
            coverage: Coverage::default(),
            events: 0,
            trace_hash: HASH_SEED,
            trace: Vec::new(),
            trace_truncated: false,
            bound: None,
        }
    }

    fn schedule(&mut self, at_us: u64, action: Action<C>) {
        self.queue.push(at_us, action);
    }

    fn schedule_start(&mut self) {
        let scenario = self.scenario;
        let scripted = scenario.script.is_some();
        let stop_us = scenario
            .workload
            .stop
            .unwrap_or(scenario.duration)
            .us
            .min(scenario.duration.us);
        if !scripted && scenario.workload.rate > 0.0 {
            let writers: Vec<ReplicaId> = scenario
                .workload
                .writers
                .clone()
                .unwrap_or_else(|| (0..self.replicas).collect());
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
        for (index, fault) in self.faults.clone().iter().enumerate() {
            let index = index as u32;
            let (start, end) = match fault {
                FaultSpec::Partition { at, heal, .. }
                | FaultSpec::Isolate { at, heal, .. }
                | FaultSpec::Bridge { at, heal, .. } => (Some(*at), *heal),
                FaultSpec::Crash { at, restart, .. } => (Some(*at), *restart),
                FaultSpec::Join { at, .. } | FaultSpec::Leave { at, .. } => (Some(*at), None),
                FaultSpec::ServerOutage { at, until } => (Some(*at), Some(*until)),
                FaultSpec::ClockSkew { .. } => (None, None),
            };
            if let Some(start) = start.filter(|s| *s <= scenario.duration) {
                self.schedule(start.us, Action::FaultStart { fault: index });
                if let Some(end) = end.filter(|e| *e >= start) {
                    self.schedule(end.us, Action::FaultEnd { fault: index });
                }
            }
        }
        let protocol = scenario.protocol;
        let anti_entropy = match protocol.kind {
            ProtocolKind::AntiEntropy => Some(protocol.anti_entropy.unwrap_or(protocol.interval)),
            ProtocolKind::StateBroadcast | ProtocolKind::OpBroadcast => protocol.anti_entropy,
            _ => None,
        };
        let node_count = self.nodes.len() as u32;
        if let Some(interval) = anti_entropy {
            for node in 0..node_count {
                let offset = self.protocol_stream.below(interval.us.max(1));
                self.schedule(offset, Action::AntiEntropy { node });
            }
        }
        if protocol.kind == ProtocolKind::DeltaSync {
            for node in 0..node_count {
                let offset = self.protocol_stream.below(protocol.interval.us.max(1));
                self.schedule(offset, Action::Poll { node });
            }
        }
        self.schedule(scenario.duration.us, Action::SettleStart);
    }

    fn write_gap_us(&mut self) -> u64 {
        let mean_us = 1e6 / self.scenario.workload.rate;
        (self.workload.exponential(mean_us).round() as u64).max(1)
    }

    fn run_loop(&mut self) {
        let bounds = &self.scenario.bounds;
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
            self.now_us = at_us;
            if let Action::Deliver { payload, .. } = &action {
                self.in_flight -= 1;
                self.in_flight_bytes -= payload.memory_bytes();
            }
            self.handle(action);
            if self.bound.is_some() {
                break;
            }
        }
        if self.bound.is_none() {
            self.now_us = self.end_us;
        }
    }

    // ----- actions -----

    fn handle(&mut self, action: Action<C>) {
        match action {
            Action::GenerateWrite { replica } => {
                let workload = &self.scenario.workload;
                let key = self.workload.below(u64::from(workload.keys)) as u32;
                let intent = if self.workload.chance(workload.remove_ratio) {
                    Intent::Remove { key }
                } else {
                    Intent::Put {
                        key,
                        value: 1 + self.workload.below(workload.values),
                    }
                };
                let stop_us = workload
                    .stop
                    .unwrap_or(self.scenario.duration)
                    .us
                    .min(self.scenario.duration.us);
                let next = self.now_us.saturating_add(self.write_gap_us());
                if next < stop_us {
                    self.schedule(next, Action::GenerateWrite { replica });
                }
                self.write(replica, intent);
            }
            Action::ExplicitWrite { op } => {
                let timed = &self.scenario.workload.ops[op];
                let intent = match timed.value {
                    Some(value) => Intent::Put {
                        key: timed.key,
                        value,
                    },
                    None => Intent::Remove { key: timed.key },
                };
                self.write(timed.replica, intent);
            }
            Action::Deliver {
                message,
                from,
                to,
                payload,
                copy,
            } => {
                self.deliver(message, from, to, &payload, copy);
                self.recycle(payload);
            }
            Action::FaultStart { fault } => self.fault_start(fault),
            Action::FaultEnd { fault } => self.fault_end(fault),
            Action::AntiEntropy { node } => {
                let interval = self
                    .scenario
                    .protocol
                    .anti_entropy
                    .unwrap_or(self.scenario.protocol.interval);
                self.schedule(self.now_us + interval.us, Action::AntiEntropy { node });
                if self.nodes[node as usize].status == Status::Up {
                    self.emit(EventKind::Timer { node }, &[]);
                    let targets = self.random_peers(node);
                    if !targets.is_empty() {
                        let (payload, bytes) = self.state_payload(node);
                        for to in targets {
                            self.send(node, to, payload.clone(), bytes);
                        }
                        self.recycle(payload);
                    }
                }
            }
            Action::Poll { node } => {
                self.schedule(
                    self.now_us + self.scenario.protocol.interval.us,
                    Action::Poll { node },
                );
                if self.nodes[node as usize].status == Status::Up {
                    self.emit(EventKind::Timer { node }, &[]);
                    let vector = (self.scenario.protocol.delta_position
                        == DeltaPosition::VersionVector)
                        .then(|| Rc::from(self.protocols[node as usize].vector.as_slice()));
                    // A joiner asks every peer it polls this round for a snapshot; if those
                    // requests are lost it still catches up from position zero (or a pruned log's
                    // snapshot fallback) on later rounds.
                    let snapshot =
                        std::mem::take(&mut self.protocols[node as usize].wants_snapshot);
                    for to in self.poll_peers(node) {
                        let position = self.protocols[node as usize]
                            .positions_in_peer
                            .get(&to)
                            .copied()
                            .unwrap_or_default();
                        let payload = Rc::new(Payload::DeltaRequest {
                            position,
                            vector: vector.clone(),
                            snapshot,
                        });
                        let bytes = HEADER_BYTES
                            + 8
                            + vector
                                .as_ref()
                                .map_or(0, |v: &Rc<[u32]>| 4 * v.len() as u64);
                        self.send(node, to, payload, bytes);
                    }
                }
            }
            Action::Retransmit {
                node,
                to,
                update,
                attempt,
            } => self.retransmit(node, to, update, attempt),
            Action::SnapshotRetry { node, attempt } => {
                let waiting = self.protocols[node as usize].awaiting_snapshot;
                let up = self.nodes[node as usize].status == Status::Up;
                if waiting && up && attempt <= self.scenario.protocol.retransmit_max {
                    self.emit(EventKind::Timer { node }, &[]);
                    self.request_snapshot(node, attempt);
                }
            }
            Action::SettleStart => {
                self.settling = true;
                self.close_cut_counts();
                self.emit(EventKind::SettleStart, &[]);
            }
        }
    }

    fn write(&mut self, replica: ReplicaId, intent: Intent) {
        if self.nodes[replica as usize].status != Status::Up {
            return;
        }
        if u64::from(self.updates_issued) >= self.scenario.bounds.updates_max {
            self.bound = Some("updates_max");
            return;
        }
        let key = intent.key();
        let node = &self.nodes[replica as usize];
        let key_time = node.crdt.key_time(key);
        let time = self.clocks[replica as usize].tick(self.now_us, key_time);
        let stamp = Stamp { time, replica };
        let op = node.crdt.prepare(&intent, stamp);
        let stale_against_time = key_time.filter(|seen| *seen >= time);
        let latest = self.latest_by_key.entry(key).or_default();
        let concurrent = latest
            .iter()
            .any(|(origin, index)| *origin != replica && !node.delivered.contains(*index));
        let index = self.updates_issued;
        self.updates_issued += 1;
        latest.insert(replica, index);
        self.issued_by_origin[replica as usize] += 1;
        let seq = self.issued_by_origin[replica as usize];
        let keeps_every_record = keeps_every_record(self.scenario.protocol.kind);
        if keeps_every_record {
            self.by_origin[replica as usize].push(index);
        }
        if self.scenario.protocol.kind == ProtocolKind::ReliableCausal {
            self.deps
                .push(Rc::from(self.protocols[replica as usize].vector.as_slice()));
        }
        self.coverage.concurrent_writes_same_key += u64::from(concurrent);
        for (fault, cut) in &self.cuts {
            let side = cut.side_of(replica).min(63);
            let entry = self.cut_writes.entry(*fault).or_default();
            entry.0 |= 1 << side;
            entry.1 += 1;
        }
        self.updates.push(UpdateRecord {
            index,
            id: UpdateId {
                origin: replica,
                seq,
            },
            at_us: self.now_us,
            intent,
            stamp,
            op,
            stale_against_time,
            concurrent,
        });
        self.apply_update(replica, index);
        self.emit(
            EventKind::Write {
                replica,
                update: UpdateId {
                    origin: replica,
                    seq,
                },
                key,
            },
            &[replica],
        );
        match self.scenario.protocol.kind {
            ProtocolKind::StateBroadcast => {
                let targets = self.push_targets(replica, None);
                if !targets.is_empty() {
                    let (payload, bytes) = self.state_payload(replica);
                    for to in targets {
                        self.send(replica, to, payload.clone(), bytes);
                    }
                    self.recycle(payload);
                }
            }
            ProtocolKind::OpBroadcast => {
                let bytes =
                    HEADER_BYTES + C::op_size_bytes(&self.updates[index as usize].op) as u64;
                let payload = Rc::new(Payload::Ops(Rc::from([index].as_slice())));
                for to in self.push_targets(replica, None) {
                    self.send(replica, to, payload.clone(), bytes);
                }
            }
            ProtocolKind::ReliableCausal => {
                for to in self.push_targets(replica, None) {
                    self.send_reliable(replica, to, index);
                }
            }
            ProtocolKind::AntiEntropy | ProtocolKind::DeltaSync => {}
        }
        if !keeps_every_record
            && self.updates.len() as u64 > self.scenario.bounds.update_records_kept_max
        {
            // The observer has seen the record, and nothing refers to it again.
            self.updates.pop();
        }
    }

    /// Applies one update at a node if it is new there; returns whether it was.
    fn apply_update(&mut self, node: NodeId, index: u32) -> bool {
        let replica = &mut self.nodes[node as usize];
        if replica.delivered.contains(index) {
            return false;
        }
        // The writer applies its own update while the record is last, perhaps beyond the kept
        // ones; every other update applied here has its record at its index.
        let update = &self.updates[(index as usize).min(self.updates.len() - 1)];
        debug_assert_eq!(update.index, index);
        replica.crdt.apply(&update.op, &mut self.coins);
        replica.delivered.insert(index);
        self.clocks[node as usize].observe(update.stamp.time);
        let origin = update.id.origin;
        let protocol = &mut self.protocols[node as usize];
        if self.scenario.protocol.kind == ProtocolKind::DeltaSync {
            protocol.log.push(index);
        }
        advance_vector(
            &mut protocol.vector,
            &self.by_origin,
            &replica.delivered,
            origin,
        );
        true
    }

    /// Merges a received state; returns whether the node learned updates it did not have.
    fn merge_state(&mut self, node: NodeId, state: &C, delivered: &UpdateSet) -> bool {
        self.protocols[node as usize].awaiting_snapshot = false;
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
        let protocol = &mut self.protocols[node as usize];
        if learned && !protocol.vector.is_empty() {
            for origin in 0..self.replicas {
                advance_vector(
                    &mut protocol.vector,
                    &self.by_origin,
                    &replica.delivered,
                    origin,
                );
            }
        }
        learned
    }

    fn into_outcome(mut self) -> Outcome<C> {
        self.close_cut_counts();
        let end = match self.bound {
            Some(INTERRUPTED) => End::Interrupted,
            Some(bound) => End::BoundReached {
                bound: bound.to_string(),
            },
            None => End::Completed,
        };
        let server = self.server.map(|s| self.nodes[s as usize].crdt.clone());
        self.nodes.truncate(self.replicas as usize);
        Outcome {
            seed: self.seed,
            trace_hash: self.trace_hash,
            events: self.events,
            end,
            end_us: self.now_us,
            settle_start_us: self.scenario.duration.us,
            replicas: self.nodes,
            server,
            updates: self.updates,
            updates_issued: u64::from(self.updates_issued),
            messages: self.messages,
            coverage: self.coverage,
            trace: self.trace,
            trace_truncated: self.trace_truncated,
            faults: self.faults,
            network_drop: self.drop,
            network_duplicate: self.duplicate,
        }
    }
}

/// A node's protocol bookkeeping before it has seen anything. The delivery vector (one entry per
/// origin) is kept only by the protocols that read it, so that runs with many replicas do not pay
/// replicas squared counters for nothing.
fn fresh_protocol(scenario: &Scenario) -> Protocol {
    let protocol = scenario.protocol;
    let needs_vector = protocol.kind == ProtocolKind::ReliableCausal
        || (protocol.kind == ProtocolKind::DeltaSync
            && protocol.delta_position == DeltaPosition::VersionVector);
    Protocol {
        vector: if needs_vector {
            vec![0; scenario.replicas as usize]
        } else {
            Vec::new()
        },
        ..Protocol::default()
    }
}

/// Moves `origin`'s entry of a contiguous-delivery vector past every update now delivered.
fn advance_vector(
    vector: &mut [u32],
    by_origin: &[Vec<u32>],
    delivered: &UpdateSet,
    origin: ReplicaId,
) {
    let Some(count) = vector.get_mut(origin as usize) else {
        return;
    };
    let issued = &by_origin[origin as usize];
    while let Some(index) = issued.get(*count as usize) {
        if !delivered.contains(*index) {
            break;
        }
        *count += 1;
    }
}
