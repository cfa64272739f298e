//! The simulator proper: the event queue, the nodes, the protocols, the faults and the trace.
//!
//! One [`Sim`] value holds a whole run. Actions wait in a binary heap ordered by `(virtual time,
//! sequence number)`, so two actions at the same microsecond run in the order they were scheduled,
//! on every machine. Each handled action emits zero or more trace events; each event is hashed into
//! the trace hash and shown to the observer together with the replicas it touched.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::rc::Rc;

use converge_crdt::clock::Skew;
use converge_crdt::{Clock, Coin, Intent, OpCrdt, ReplicaId, Stamp, UpdateId};

use crate::outcome::{
    Coverage, DropCause, End, EventKind, MessageStats, NodeId, Observer, Outcome, Replica, Status,
    TraceEvent, UpdateRecord, UpdateSet, World,
};
use crate::scenario::{
    DeltaPosition, Direction, Durability, Fate, FaultSpec, Latency, ProtocolKind, Scenario,
    Topology,
};
use crate::streams::Stream;
use crate::time::SimDuration;
use crate::validation::ScenarioError;

/// Header bytes counted for every message on top of its payload.
const HEADER_BYTES: u64 = 16;
/// The retransmission backoff doubles at most this many times.
const BACKOFF_DOUBLINGS_MAX: u32 = 16;

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

/// What travels in a message. States and op lists are shared between copies (duplicates, relay
/// fan-out) instead of cloned.
enum Payload<C> {
    State {
        state: Rc<C>,
        delivered: Rc<UpdateSet>,
    },
    Ops(Rc<[u32]>),
    Reliable {
        update: u32,
    },
    Ack {
        update: u32,
    },
    SnapshotRequest,
    DeltaRequest {
        position: u64,
        vector: Option<Rc<[u32]>>,
    },
    DeltaReply {
        ops: Rc<[u32]>,
        next_position: u64,
        snapshot: Option<(Rc<C>, Rc<UpdateSet>)>,
    },
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
    SettleStart,
}

struct Queued<C> {
    at_us: u64,
    seq: u64,
    action: Action<C>,
}

impl<C> PartialEq for Queued<C> {
    fn eq(&self, other: &Self) -> bool {
        (self.at_us, self.seq) == (other.at_us, other.seq)
    }
}
impl<C> Eq for Queued<C> {}
impl<C> PartialOrd for Queued<C> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<C> Ord for Queued<C> {
    /// Reversed, so that the max-heap pops the earliest action first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_us, other.seq).cmp(&(self.at_us, self.seq))
    }
}

/// Per-node protocol bookkeeping (the relay server has one too).
#[derive(Default)]
struct Protocol {
    /// Updates applied here, in order: the delta-sync log. `log[i]` is at position `log_base + i`.
    log: Vec<u32>,
    log_base: u64,
    /// The position reached in each peer's log.
    positions_in_peer: BTreeMap<NodeId, u64>,
    /// The position each peer has reached in this node's log (from its requests).
    peer_positions: BTreeMap<NodeId, u64>,
    /// Per origin, how many of its updates were delivered here without a gap.
    vector: Vec<u32>,
    /// Reliable causal: received updates waiting for their dependencies.
    buffer: BTreeSet<u32>,
    /// Reliable causal: `(peer, update)` sent and not yet acknowledged.
    outstanding: BTreeSet<(NodeId, u32)>,
}

/// An active partition-like fault, as a rule over (from, to).
enum Cut {
    Groups {
        groups: Vec<Vec<NodeId>>,
        direction: Direction,
    },
    Isolate(NodeId),
    Bridge {
        groups: Vec<Vec<NodeId>>,
        bridge: NodeId,
    },
}

fn group_of(groups: &[Vec<NodeId>], node: NodeId) -> usize {
    groups
        .iter()
        .position(|g| g.contains(&node))
        .unwrap_or(groups.len())
}

impl Cut {
    fn blocks(&self, from: NodeId, to: NodeId) -> bool {
        match self {
            Cut::Groups {
                groups,
                direction: Direction::Both,
            } => group_of(groups, from) != group_of(groups, to),
            Cut::Groups {
                groups,
                direction: Direction::OneWay,
            } => group_of(groups, from) == 0 && group_of(groups, to) != 0,
            Cut::Isolate(node) => (from == *node) != (to == *node),
            Cut::Bridge { groups, bridge } => {
                from != *bridge && to != *bridge && group_of(groups, from) != group_of(groups, to)
            }
        }
    }

    fn side_of(&self, node: NodeId) -> usize {
        match self {
            Cut::Groups { groups, .. } | Cut::Bridge { groups, .. } => group_of(groups, node),
            Cut::Isolate(isolated) => usize::from(node == *isolated),
        }
    }
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
    queue: BinaryHeap<Queued<C>>,
    next_seq: u64,
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
    updates: Vec<UpdateRecord<C>>,
    by_origin: Vec<Vec<u32>>,
    deps: Vec<Rc<[u32]>>,
    /// Per key, the latest update index of each origin.
    latest_by_key: BTreeMap<u32, BTreeMap<ReplicaId, u32>>,
    next_message: u64,
    in_flight: u64,
    last_on_link: BTreeMap<(NodeId, NodeId), u64>,
    messages: MessageStats,
    coverage: Coverage,
    events: u64,
    trace_hash: u64,
    trace: Vec<TraceEvent>,
    trace_truncated: bool,
    bound: Option<&'static str>,
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
        let late: BTreeSet<ReplicaId> = scenario
            .faults
            .iter()
            .filter_map(|f| {
                if let FaultSpec::Join { replica, .. } = f {
                    Some(*replica)
                } else {
                    None
                }
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
        let mut sim = Sim {
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
            protocols: (0..node_count)
                .map(|_| Protocol {
                    vector: vec![0; replicas as usize],
                    ..Protocol::default()
                })
                .collect(),
            queue: BinaryHeap::new(),
            next_seq: 0,
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
            drop: scenario.network.drop,
            duplicate: scenario.network.duplicate,
            faults: scenario.faults.clone(),
            cuts: Vec::new(),
            cut_writes: BTreeMap::new(),
            updates: Vec::new(),
            by_origin: vec![Vec::new(); replicas as usize],
            deps: Vec::new(),
            latest_by_key: BTreeMap::new(),
            next_message: 0,
            in_flight: 0,
            last_on_link: BTreeMap::new(),
            messages: MessageStats::default(),
            coverage: Coverage::default(),
            events: 0,
            trace_hash: FNV_OFFSET,
            trace: Vec::new(),
            trace_truncated: false,
            bound: None,
        };
        if let Some(swarm) = &scenario.swarm {
            if scenario.script.is_none() {
                let mut faults_stream = Stream::new(root, "faults");
                sim.drop = faults_stream.unit() * swarm.drop_max;
                sim.duplicate = faults_stream.unit() * swarm.duplicate_max;
                for _ in 0..swarm.faults {
                    let fault = draw_fault(&mut faults_stream, scenario);
                    sim.faults.push(fault);
                }
            }
        }
        sim
    }

    fn schedule(&mut self, at_us: u64, action: Action<C>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push(Queued { at_us, seq, action });
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
        while let Some(Queued { at_us, action, .. }) = self.queue.pop() {
            if at_us > self.end_us {
                break;
            }
            if self.events >= bounds.events_max {
                self.bound = Some("events_max");
                break;
            }
            self.now_us = at_us;
            if let Action::Deliver { .. } = action {
                self.in_flight -= 1;
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

    // ----- trace -----

    fn emit(&mut self, kind: EventKind, touched: &[NodeId]) {
        let event = TraceEvent {
            index: self.events,
            at_us: self.now_us,
            kind,
        };
        self.events += 1;
        hash_event(&mut self.trace_hash, &event);
        let clients = self.replicas;
        let touched_clients: &[NodeId] = if touched.iter().all(|t| *t < clients) {
            touched
        } else {
            &[]
        };
        let world = World {
            now_us: self.now_us,
            replicas: &self.nodes[..clients as usize],
            updates: &self.updates,
            touched: touched_clients,
            settling: self.settling,
        };
        self.observer.on_event(&event, &world);
        if (self.trace.len() as u64) < self.scenario.bounds.trace_events_kept_max {
            self.trace.push(event);
        } else {
            self.trace_truncated = true;
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
            } => self.deliver(message, from, to, &payload, copy),
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
                    for to in self.poll_peers(node) {
                        let position = self.protocols[node as usize]
                            .positions_in_peer
                            .get(&to)
                            .copied()
                            .unwrap_or(0);
                        let payload = Rc::new(Payload::DeltaRequest {
                            position,
                            vector: vector.clone(),
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
        if self.updates.len() as u64 >= self.scenario.bounds.updates_max {
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
        let index = self.updates.len() as u32;
        latest.insert(replica, index);
        let seq = self.by_origin[replica as usize].len() as u32 + 1;
        self.by_origin[replica as usize].push(index);
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
    }

    /// Applies one update at a node if it is new there; returns whether it was.
    fn apply_update(&mut self, node: NodeId, index: u32) -> bool {
        let replica = &mut self.nodes[node as usize];
        if replica.delivered.contains(index) {
            return false;
        }
        let update = &self.updates[index as usize];
        replica.crdt.apply(&update.op, &mut self.coins);
        replica.delivered.insert(index);
        self.clocks[node as usize].observe(update.stamp.time);
        let origin = update.id.origin;
        let protocol = &mut self.protocols[node as usize];
        protocol.log.push(index);
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
        let replica = &mut self.nodes[node as usize];
        replica.crdt.merge(state, &mut self.coins);
        self.clocks[node as usize].observe(state.time_max());
        let before = replica.delivered.len();
        replica.delivered.union_with(delivered);
        let learned = replica.delivered.len() > before;
        if learned {
            let protocol = &mut self.protocols[node as usize];
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

    fn state_payload(&self, node: NodeId) -> (Rc<Payload<C>>, u64) {
        let replica = &self.nodes[node as usize];
        let bytes = HEADER_BYTES + replica.crdt.size_bytes() as u64;
        let payload = Payload::State {
            state: Rc::new(replica.crdt.clone()),
            delivered: Rc::new(replica.delivered.clone()),
        };
        (Rc::new(payload), bytes)
    }

    /// Where a node pushes news: the server (from a client), every connected client but `except`
    /// (from the server), every other replica (mesh), or `fanout` random replicas (gossip).
    fn push_targets(&mut self, node: NodeId, except: Option<NodeId>) -> Vec<NodeId> {
        match (self.scenario.protocol.topology, self.server) {
            (Topology::Relay, Some(server)) if node == server => (0..self.replicas)
                .filter(|c| Some(*c) != except && self.nodes[*c as usize].status == Status::Up)
                .collect(),
            (Topology::Relay, Some(server)) => vec![server],
            (Topology::Gossip, _) => self
                .random_peers(node)
                .into_iter()
                .filter(|p| Some(*p) != except)
                .collect(),
            _ => (0..self.replicas)
                .filter(|r| *r != node && Some(*r) != except)
                .collect(),
        }
    }

    /// `fanout` distinct random peers (anti-entropy rounds and gossip); through the server in a relay.
    fn random_peers(&mut self, node: NodeId) -> Vec<NodeId> {
        let candidates: Vec<NodeId> = match (self.scenario.protocol.topology, self.server) {
            (Topology::Relay, Some(server)) if node != server => return vec![server],
            _ => (0..self.replicas).filter(|r| *r != node).collect(),
        };
        let mut pool = candidates;
        let fanout = (self.scenario.protocol.fanout as usize).min(pool.len());
        let mut chosen = Vec::with_capacity(fanout);
        for _ in 0..fanout {
            let pick = self.protocol_stream.below(pool.len() as u64) as usize;
            chosen.push(pool.swap_remove(pick));
        }
        chosen
    }

    fn poll_peers(&mut self, node: NodeId) -> Vec<NodeId> {
        match self.scenario.protocol.topology {
            Topology::Gossip => self.random_peers(node),
            _ => self.push_targets(node, None),
        }
    }

    // ----- the network -----

    fn link(&self, from: NodeId, to: NodeId) -> (Latency, f64, f64) {
        let network = &self.scenario.network;
        let mut link = (network.latency, self.drop, self.duplicate);
        for spec in &network.links {
            if spec.from.is_none_or(|f| f == from) && spec.to.is_none_or(|t| t == to) {
                if let Some(latency) = spec.latency {
                    link.0 = latency;
                }
                if let Some(drop) = spec.drop {
                    link.1 = drop;
                }
                if let Some(duplicate) = spec.duplicate {
                    link.2 = duplicate;
                }
            }
        }
        link
    }

    fn latency_us(&mut self, latency: Latency) -> u64 {
        let network = &self.scenario.network;
        let drawn = match latency {
            Latency::Constant { value } => value.us as f64,
            Latency::Uniform { min, max } => {
                min.us as f64 + self.network.unit() * (max.us - min.us) as f64
            }
            Latency::Exponential { mean } => self.network.exponential(mean.us as f64),
            Latency::Normal { mean, stddev } => {
                mean.us as f64 + self.network.normal() * stddev.us as f64
            }
            Latency::Pareto { scale, shape } => {
                scale.us as f64 / (1.0 - self.network.unit()).powf(1.0 / shape)
            }
        };
        let clamped = drawn.clamp(network.latency_min.us as f64, network.latency_max.us as f64);
        clamped.round() as u64
    }

    fn send(&mut self, from: NodeId, to: NodeId, payload: Rc<Payload<C>>, bytes: u64) {
        let message = self.next_message;
        self.next_message += 1;
        self.messages.sent += 1;
        self.messages.bytes_sent += bytes;
        self.emit(
            EventKind::Send {
                from,
                to,
                message,
                bytes,
            },
            &[],
        );
        if self.cuts.iter().any(|(_, cut)| cut.blocks(from, to)) {
            self.messages.dropped += 1;
            self.emit(
                EventKind::Drop {
                    from,
                    to,
                    message,
                    cause: DropCause::Partition,
                },
                &[],
            );
            return;
        }
        let fate = match &self.fates {
            Some(fates) => fates.get(&message).cloned().unwrap_or(Fate::Deliver {
                after: self.scripted_latency,
            }),
            None => {
                let (latency, drop, duplicate) = self.link(from, to);
                if self.network.chance(drop) {
                    Fate::Drop
                } else {
                    let after = SimDuration::from_us(self.latency_us(latency));
                    if self.network.chance(duplicate) {
                        Fate::Duplicate {
                            after,
                            again: SimDuration::from_us(self.latency_us(latency)),
                        }
                    } else {
                        Fate::Deliver { after }
                    }
                }
            }
        };
        let deliveries: &[(SimDuration, bool)] = &match fate {
            Fate::Drop => {
                self.messages.dropped += 1;
                self.emit(
                    EventKind::Drop {
                        from,
                        to,
                        message,
                        cause: DropCause::Network,
                    },
                    &[],
                );
                return;
            }
            Fate::Deliver { after } => vec![(after, false)],
            Fate::Duplicate { after, again } => {
                self.messages.duplicated += 1;
                self.emit(EventKind::Duplicate { from, to, message }, &[]);
                vec![(after, false), (again, true)]
            }
        };
        for (after, copy) in deliveries {
            if self.in_flight >= self.scenario.bounds.in_flight_max {
                self.bound = Some("in_flight_max");
                return;
            }
            self.in_flight += 1;
            let action = Action::Deliver {
                message,
                from,
                to,
                payload: payload.clone(),
                copy: *copy,
            };
            self.schedule(self.now_us.saturating_add(after.us), action);
        }
    }

    fn send_reliable(&mut self, from: NodeId, to: NodeId, update: u32) {
        self.protocols[from as usize]
            .outstanding
            .insert((to, update));
        let bytes = HEADER_BYTES + C::op_size_bytes(&self.updates[update as usize].op) as u64;
        self.send(from, to, Rc::new(Payload::Reliable { update }), bytes);
        let timeout = self.scenario.protocol.retransmit_timeout.us;
        self.schedule(
            self.now_us + timeout,
            Action::Retransmit {
                node: from,
                to,
                update,
                attempt: 1,
            },
        );
    }

    fn retransmit(&mut self, node: NodeId, to: NodeId, update: u32, attempt: u32) {
        if !self.protocols[node as usize]
            .outstanding
            .contains(&(to, update))
        {
            return;
        }
        let timeout = self.scenario.protocol.retransmit_timeout.us;
        let backoff = timeout.saturating_mul(1 << attempt.min(BACKOFF_DOUBLINGS_MAX));
        if self.nodes[node as usize].status != Status::Up {
            // A down sender keeps its outbox and tries again once it is back.
            self.schedule(
                self.now_us + backoff,
                Action::Retransmit {
                    node,
                    to,
                    update,
                    attempt,
                },
            );
            return;
        }
        if attempt > self.scenario.protocol.retransmit_max {
            self.protocols[node as usize]
                .outstanding
                .remove(&(to, update));
            return;
        }
        self.emit(EventKind::Timer { node }, &[]);
        self.coverage.retransmissions += 1;
        let bytes = HEADER_BYTES + C::op_size_bytes(&self.updates[update as usize].op) as u64;
        self.send(node, to, Rc::new(Payload::Reliable { update }), bytes);
        self.schedule(
            self.now_us + backoff,
            Action::Retransmit {
                node,
                to,
                update,
                attempt: attempt + 1,
            },
        );
    }

    fn deliver(
        &mut self,
        message: u64,
        from: NodeId,
        to: NodeId,
        payload: &Rc<Payload<C>>,
        copy: bool,
    ) {
        if self.nodes[to as usize].status != Status::Up {
            self.messages.dropped += 1;
            self.emit(
                EventKind::Drop {
                    from,
                    to,
                    message,
                    cause: DropCause::Down,
                },
                &[],
            );
            return;
        }
        self.messages.delivered += 1;
        if copy {
            self.coverage.duplicate_deliveries += 1;
        }
        let last = self.last_on_link.entry((from, to)).or_insert(0);
        if message < *last {
            self.coverage.reordered_deliveries += 1;
        } else {
            *last = message;
        }
        let mut followups: Vec<(NodeId, Rc<Payload<C>>, u64)> = Vec::new();
        let mut reliable_forwards: Vec<u32> = Vec::new();
        let is_server = Some(to) == self.server;
        let changed = match &**payload {
            Payload::State { state, delivered } => {
                let learned = self.merge_state(to, state, delivered);
                if is_server {
                    let bytes = HEADER_BYTES + state.size_bytes() as u64;
                    for target in self.push_targets(to, Some(from)) {
                        followups.push((target, payload.clone(), bytes));
                    }
                } else if learned && self.scenario.protocol.topology == Topology::Gossip {
                    let (own, bytes) = self.state_payload(to);
                    for target in self.push_targets(to, Some(from)) {
                        followups.push((target, own.clone(), bytes));
                    }
                }
                learned
            }
            Payload::Ops(ops) => {
                let mut learned = false;
                for &index in ops.iter() {
                    learned |= self.apply_update(to, index);
                }
                let forward =
                    is_server || (learned && self.scenario.protocol.topology == Topology::Gossip);
                if forward {
                    let bytes = HEADER_BYTES
                        + ops
                            .iter()
                            .map(|i| C::op_size_bytes(&self.updates[*i as usize].op) as u64)
                            .sum::<u64>();
                    for target in self.push_targets(to, Some(from)) {
                        followups.push((target, payload.clone(), bytes));
                    }
                }
                learned
            }
            Payload::Reliable { update } => {
                followups.push((
                    from,
                    Rc::new(Payload::Ack { update: *update }),
                    HEADER_BYTES + 4,
                ));
                let known = self.nodes[to as usize].delivered.contains(*update);
                if !known {
                    self.protocols[to as usize].buffer.insert(*update);
                }
                reliable_forwards = self.deliver_causal(to);
                !reliable_forwards.is_empty()
            }
            Payload::Ack { update } => {
                self.protocols[to as usize]
                    .outstanding
                    .remove(&(from, *update));
                false
            }
            Payload::SnapshotRequest => {
                let (state, bytes) = self.state_payload(to);
                followups.push((from, state, bytes));
                false
            }
            Payload::DeltaRequest { position, vector } => {
                let reply = self.delta_reply(to, from, *position, vector.as_deref());
                followups.push(reply);
                false
            }
            Payload::DeltaReply {
                ops,
                next_position,
                snapshot,
            } => {
                let mut learned = false;
                if let Some((state, delivered)) = snapshot {
                    learned |= self.merge_state(to, state, delivered);
                }
                for &index in ops.iter() {
                    learned |= self.apply_update(to, index);
                }
                if self.scenario.protocol.delta_position == DeltaPosition::LogPosition {
                    self.protocols[to as usize]
                        .positions_in_peer
                        .insert(from, *next_position);
                }
                learned
            }
        };
        self.emit(
            EventKind::Deliver {
                from,
                to,
                message,
                changed,
            },
            &[to],
        );
        for (target, payload, bytes) in followups {
            self.send(to, target, payload, bytes);
        }
        for update in reliable_forwards {
            // Hop by hop: the server and gossiping replicas pass on what they delivered, reliably.
            let forward = is_server || self.scenario.protocol.topology == Topology::Gossip;
            if forward && self.updates[update as usize].id.origin != to {
                for target in self.push_targets(to, Some(from)) {
                    if target != self.updates[update as usize].id.origin {
                        self.send_reliable(to, target, update);
                    }
                }
            }
        }
    }

    /// Delivers every buffered update whose causal past has been delivered; returns them in order.
    fn deliver_causal(&mut self, node: NodeId) -> Vec<u32> {
        let mut delivered = Vec::new();
        loop {
            let protocol = &self.protocols[node as usize];
            let ready = protocol.buffer.iter().copied().find(|index| {
                let record = &self.updates[*index as usize];
                let origin = record.id.origin as usize;
                let deps = &self.deps[*index as usize];
                protocol.vector[origin] + 1 == record.id.seq
                    && deps
                        .iter()
                        .zip(&protocol.vector)
                        .enumerate()
                        .all(|(o, (need, have))| o == origin || have >= need)
            });
            let Some(index) = ready else { break };
            self.protocols[node as usize].buffer.remove(&index);
            if self.apply_update(node, index) {
                delivered.push(index);
            }
        }
        // Updates that arrived some other way (a snapshot) need no delivery.
        let replica = &self.nodes[node as usize];
        self.protocols[node as usize]
            .buffer
            .retain(|u| !replica.delivered.contains(*u));
        delivered
    }

    fn delta_reply(
        &mut self,
        node: NodeId,
        peer: NodeId,
        position: u64,
        vector: Option<&[u32]>,
    ) -> (NodeId, Rc<Payload<C>>, u64) {
        let protocol = &mut self.protocols[node as usize];
        let log_end = protocol.log_base + protocol.log.len() as u64;
        let (ops, snapshot, next_position): (Vec<u32>, bool, u64) = match vector {
            Some(vector) => {
                let lacking = protocol
                    .log
                    .iter()
                    .copied()
                    .filter(|u| {
                        let id = self.updates[*u as usize].id;
                        vector
                            .get(id.origin as usize)
                            .is_none_or(|have| *have < id.seq)
                    })
                    .collect();
                (lacking, false, 0)
            }
            None => {
                protocol.peer_positions.insert(peer, position);
                // Prune below the slowest peer: every peer this node serves has asked at least once.
                let serves = match self.server {
                    Some(server) if node == server => self.replicas as usize,
                    Some(_) => 1,
                    None => self.replicas as usize - 1,
                };
                if protocol.peer_positions.len() >= serves {
                    let slowest = protocol.peer_positions.values().copied().min().unwrap_or(0);
                    if slowest > protocol.log_base {
                        protocol.log.drain(..(slowest - protocol.log_base) as usize);
                        protocol.log_base = slowest;
                    }
                }
                if position < protocol.log_base {
                    (Vec::new(), true, log_end)
                } else {
                    (
                        protocol.log[(position - protocol.log_base) as usize..].to_vec(),
                        false,
                        log_end,
                    )
                }
            }
        };
        let mut bytes = HEADER_BYTES + 8;
        bytes += ops
            .iter()
            .map(|u| C::op_size_bytes(&self.updates[*u as usize].op) as u64)
            .sum::<u64>();
        let snapshot = snapshot.then(|| {
            let replica = &self.nodes[node as usize];
            bytes += replica.crdt.size_bytes() as u64;
            (
                Rc::new(replica.crdt.clone()),
                Rc::new(replica.delivered.clone()),
            )
        });
        let payload = Payload::DeltaReply {
            ops: Rc::from(ops.as_slice()),
            next_position,
            snapshot,
        };
        (peer, Rc::new(payload), bytes)
    }

    // ----- faults -----

    fn fault_start(&mut self, fault: u32) {
        let spec = self.faults[fault as usize].clone();
        match spec {
            FaultSpec::Partition {
                groups, direction, ..
            } => {
                self.cuts.push((fault, Cut::Groups { groups, direction }));
                self.emit(EventKind::FaultStart { fault }, &[]);
            }
            FaultSpec::Isolate { replica, .. } => {
                self.cuts.push((fault, Cut::Isolate(replica)));
                self.emit(EventKind::FaultStart { fault }, &[]);
            }
            FaultSpec::Bridge { groups, bridge, .. } => {
                self.cuts.push((fault, Cut::Bridge { groups, bridge }));
                self.emit(EventKind::FaultStart { fault }, &[]);
            }
            FaultSpec::Crash { replica, .. } => {
                if self.nodes[replica as usize].status == Status::Up {
                    self.nodes[replica as usize].status = Status::Crashed;
                    self.coverage.crashes += 1;
                    self.emit(EventKind::Crash { replica }, &[replica]);
                }
            }
            FaultSpec::Join { replica, .. } => {
                if self.nodes[replica as usize].status == Status::Waiting {
                    self.nodes[replica as usize].status = Status::Up;
                    self.coverage.late_joins += 1;
                    self.emit(EventKind::Join { replica }, &[replica]);
                    self.catch_up(replica);
                }
            }
            FaultSpec::Leave { replica, .. } => {
                self.nodes[replica as usize].status = Status::Left;
                self.emit(EventKind::Leave { replica }, &[replica]);
            }
            FaultSpec::ServerOutage { .. } => {
                if let Some(server) = self.server {
                    self.nodes[server as usize].status = Status::Crashed;
                    self.emit(EventKind::FaultStart { fault }, &[]);
                }
            }
            FaultSpec::ClockSkew { .. } => {}
        }
    }

    fn fault_end(&mut self, fault: u32) {
        let spec = self.faults[fault as usize].clone();
        match spec {
            FaultSpec::Partition { .. } | FaultSpec::Isolate { .. } | FaultSpec::Bridge { .. } => {
                self.cuts.retain(|(f, _)| *f != fault);
                self.close_cut_count(fault);
                self.emit(EventKind::FaultEnd { fault }, &[]);
            }
            FaultSpec::Crash { replica, state, .. } => {
                if self.nodes[replica as usize].status != Status::Crashed {
                    return;
                }
                if state == Durability::Volatile {
                    let node = &mut self.nodes[replica as usize];
                    node.crdt = (self.make)(replica);
                    node.delivered = UpdateSet::default();
                    let skew = self.clocks[replica as usize].skew;
                    self.clocks[replica as usize] = Clock::new(self.scenario.clock, skew);
                    self.protocols[replica as usize] = Protocol {
                        vector: vec![0; self.replicas as usize],
                        ..Protocol::default()
                    };
                }
                self.nodes[replica as usize].status = Status::Up;
                self.coverage.restarts += 1;
                self.emit(EventKind::Restart { replica }, &[replica]);
                self.catch_up(replica);
            }
            FaultSpec::ServerOutage { .. } => {
                if let Some(server) = self.server {
                    self.nodes[server as usize].status = Status::Up;
                    self.emit(EventKind::FaultEnd { fault }, &[]);
                }
            }
            _ => {}
        }
    }

    /// A joining or restarting replica asks for a snapshot, when the protocol offers one.
    fn catch_up(&mut self, replica: ReplicaId) {
        let protocol = self.scenario.protocol;
        if protocol.kind == ProtocolKind::DeltaSync {
            if !protocol.snapshot_on_join {
                // Without a snapshot the joiner starts from its peers' current positions: it sees
                // only what changes from now on.
                for peer in self.push_targets(replica, None) {
                    let peer_protocol = &self.protocols[peer as usize];
                    let end = peer_protocol.log_base + peer_protocol.log.len() as u64;
                    self.protocols[replica as usize]
                        .positions_in_peer
                        .insert(peer, end);
                }
            }
            return;
        }
        if !protocol.snapshot_on_join {
            return;
        }
        match self.server {
            Some(server) if self.nodes[server as usize].status == Status::Up => {
                let (payload, bytes) = self.state_payload(server);
                self.send(server, replica, payload, bytes);
            }
            Some(_) => {}
            None => {
                let peers = self.random_peers(replica);
                if let Some(peer) = peers.first() {
                    self.send(
                        replica,
                        *peer,
                        Rc::new(Payload::SnapshotRequest),
                        HEADER_BYTES,
                    );
                }
            }
        }
    }

    fn close_cut_count(&mut self, fault: u32) {
        if let Some((sides, writes)) = self.cut_writes.remove(&fault) {
            if sides.count_ones() >= 2 {
                self.coverage.writes_both_sides_of_partition += writes;
            }
        }
    }

    fn close_cut_counts(&mut self) {
        let open: Vec<u32> = self.cut_writes.keys().copied().collect();
        for fault in open {
            self.close_cut_count(fault);
        }
    }

    fn into_outcome(mut self) -> Outcome<C> {
        self.close_cut_counts();
        let end = match self.bound {
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
            messages: self.messages,
            coverage: self.coverage,
            trace: self.trace,
            trace_truncated: self.trace_truncated,
            faults: self.faults,
        }
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

/// One fault drawn for swarm mode.
fn draw_fault(stream: &mut Stream, scenario: &Scenario) -> FaultSpec {
    let duration_us = scenario.duration.us.max(1);
    let replicas = u64::from(scenario.replicas);
    let at = SimDuration::from_us(stream.below(duration_us));
    let end =
        SimDuration::from_us(at.us + 1 + stream.below(duration_us - at.us.min(duration_us - 1)));
    let replica = stream.below(replicas) as ReplicaId;
    let relay = scenario.protocol.topology == Topology::Relay;
    match stream.below(if relay { 5 } else { 4 }) {
        0 => {
            let group: Vec<ReplicaId> = (0..scenario.replicas)
                .filter(|_| stream.chance(0.5))
                .collect();
            FaultSpec::Partition {
                at,
                heal: Some(end),
                groups: vec![group],
                direction: Direction::Both,
            }
        }
        1 => FaultSpec::Isolate {
            at,
            heal: Some(end),
            replica,
        },
        2 => FaultSpec::Crash {
            at,
            replica,
            restart: Some(end),
            state: if stream.chance(0.5) {
                Durability::Volatile
            } else {
                Durability::Durable
            },
        },
        3 => FaultSpec::Isolate {
            at,
            heal: Some(end),
            replica,
        },
        _ => FaultSpec::ServerOutage { at, until: end },
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn hash_word(hash: &mut u64, word: u64) {
    for byte in word.to_le_bytes() {
        *hash ^= u64::from(byte);
        *hash = hash.wrapping_mul(FNV_PRIME);
    }
}

/// Hashes an event's canonical encoding: its index, time, a variant tag and each field, as
/// little-endian words. Changing this changes every pinned trace hash.
fn hash_event(hash: &mut u64, event: &TraceEvent) {
    hash_word(hash, event.index);
    hash_word(hash, event.at_us);
    let words: [u64; 5] = match event.kind {
        EventKind::Write {
            replica,
            update,
            key,
        } => [
            1,
            u64::from(replica),
            u64::from(update.origin),
            u64::from(update.seq),
            u64::from(key),
        ],
        EventKind::Send {
            from,
            to,
            message,
            bytes,
        } => [2, u64::from(from), u64::from(to), message, bytes],
        EventKind::Deliver {
            from,
            to,
            message,
            changed,
        } => [
            3,
            u64::from(from),
            u64::from(to),
            message,
            u64::from(changed),
        ],
        EventKind::Drop {
            from,
            to,
            message,
            cause,
        } => [4, u64::from(from), u64::from(to), message, cause as u64],
        EventKind::Duplicate { from, to, message } => {
            [5, u64::from(from), u64::from(to), message, 0]
        }
        EventKind::FaultStart { fault } => [6, u64::from(fault), 0, 0, 0],
        EventKind::FaultEnd { fault } => [7, u64::from(fault), 0, 0, 0],
        EventKind::Crash { replica } => [8, u64::from(replica), 0, 0, 0],
        EventKind::Restart { replica } => [9, u64::from(replica), 0, 0, 0],
        EventKind::Join { replica } => [10, u64::from(replica), 0, 0, 0],
        EventKind::Leave { replica } => [11, u64::from(replica), 0, 0, 0],
        EventKind::Timer { node } => [12, u64::from(node), 0, 0, 0],
        EventKind::SettleStart => [13, 0, 0, 0, 0],
    };
    for word in words {
        hash_word(hash, word);
    }
}
