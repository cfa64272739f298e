//! Stepping a protocol one event at a time, as a model checker explores it.
//!
//! The simulator runs a protocol against a seeded network; a model checker instead chooses every
//! step itself (which message arrives next, which is lost, when a replica writes, which way a
//! coin lands) and explores all the choices. This module gives it what it needs, over the same
//! [`Protocol`] trait and the same [`Ctx`] a run uses, so that what is checked exhaustively is
//! exactly the code that runs: the built-in protocols and a user's own alike.
//!
//! An [`Explorer`] holds what is fixed (the protocol, the replicas' factory, the `[protocol]`
//! options and the topology) and makes the first [`System`]; each step ([`System::write`],
//! [`System::deliver`], [`System::drop_message`], [`System::fire`],
//! [`System::drop_connection`], [`System::reconnect`]) returns a new `System`. A system hashes
//! as what it *means*: the replicas, their clocks, delivered sets and protocol states, the
//! messages in flight (by content), the pending timers (by their delay from now) and the
//! connections that are down. What only tells paths apart (the message numbers a scripted replay needs, the absolute
//! time, the position of the protocol's random stream) is kept but not hashed, so two paths to
//! the same situation meet.
//!
//! # Time
//!
//! Writes and deliveries take no time; only firing a timer moves the clock, to that timer's
//! deadline. Timers fire in the order a run would fire them (earliest deadline, then the one set
//! first), and any number of writes and deliveries may happen before the next one: the network
//! may be as slow or as fast as it likes, the timers keep their schedule. A protocol that reads
//! [`Ctx::now_us`] between timers sees the time of the last timer.
//!
//! # Connections
//!
//! A connection is the pair of links between two nodes that may talk (any two in a mesh, a
//! client and the server in a relay). [`System::drop_connection`] drops one as netsim's
//! `connection-drop` fault does: what is in flight on it, both ways, is lost, and both ends are
//! told ([`Protocol::on_disconnect`], the lower node first); while it is down a send on it is
//! lost at once (still numbered, as the simulator numbers it), and [`Ctx::is_connected`] says
//! so; [`System::reconnect`] brings it back and tells both ends ([`Protocol::on_connect`]).
//! Whether the links are in order is the model checker's choice of [`Flight`]: queues deliver
//! each link in the order it was sent.
//!
//! # What the protocol draws
//!
//! The protocol's own random draws ([`Ctx::random_below`], random peers) come from its stream
//! exactly as in a scripted run (rooted at zero), so a path replays in the simulator; they are
//! not explored as choices.
//!
//! # Packed systems
//!
//! A model checker holds millions of systems made of a few thousand replicas and messages:
//! [`Tables`] keeps each once and a [`Packed`] system names them by index, unpacking into the
//! very system it was packed from. Where a handler reads only its own node, what a step did
//! ([`Effect`]) makes the same step again on packed systems without running it (`packed.rs`).

use std::any::Any;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use converge_crdt::{Clock, ClockKind, OpCrdt, ReplicaId, Stamp, UpdateId, WorkloadIntent};

use crate::outcome::{mix64, NodeId, Replica, Status, UpdateRecord, UpdateSet};
use crate::protocol::{Ctx, Others, Protocol, Update};
use crate::scenario::ProtocolSpec;
use crate::sim::{panic_message, CoinSource, Coins, Command, Net};
use crate::streams::Stream;
use crate::topology::{self, Topology};

mod packed;
pub use packed::{Change, Effect, Packed, PastBound, Tables};

/// How the network holds messages in flight.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Flight {
    /// One queue per link: a link delivers in the order it was sent on.
    #[default]
    Queues,
    /// Any order, each copy delivered once.
    Bag,
    /// Any order, and a delivered message stays in flight (it may come again); two copies of one
    /// message are one.
    Set,
}

/// What is fixed while a model checker explores: the system's shape and its bounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExploreSpec {
    /// Replicas, nodes `0..replicas` (the relay server, when the topology has one, comes after).
    pub replicas: u32,
    /// The `[protocol]` options and topology the protocol reads ([`Ctx::options`]).
    pub protocol: ProtocolSpec,
    /// How writes are stamped. Default: Lamport.
    pub clock: ClockKind,
    /// The most writes any replica issues: update `k` of replica `r` is update
    /// `r * writes_per_replica + k`, whatever order the writes happen in, so that two paths that
    /// issue the same writes in different orders reach equal systems.
    pub writes_per_replica: u32,
    /// How the network holds messages.
    pub flight: Flight,
    /// The most messages in flight at once; a step that would exceed it ends the system at bound
    /// `in_flight_max`. Default 12.
    pub in_flight_max: usize,
    /// The most pending timers; beyond it, bound `timers_max`. Default 12.
    pub timers_max: usize,
    /// The most messages in flight on one link at once; beyond it, bound `link_max`. Default 4.
    pub link_max: usize,
}

impl ExploreSpec {
    /// `replicas` replicas over a mesh under `protocol`'s options, with the default bounds.
    pub fn new(replicas: u32, protocol: ProtocolSpec, writes_per_replica: u32) -> Self {
        ExploreSpec {
            replicas,
            protocol,
            clock: ClockKind::Lamport,
            writes_per_replica,
            flight: Flight::Queues,
            in_flight_max: 12,
            timers_max: 12,
            link_max: 4,
        }
    }
}

/// Why a system stopped: a bound it reached, or a panic in the CRDT or the protocol.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Ending {
    Bound(&'static str),
    Panicked(String),
}

/// What is fixed while exploring: the protocol, the replicas' factory and the spec.
pub struct Explorer<C: OpCrdt, P: Protocol<C>> {
    spec: ExploreSpec,
    protocol: P,
    make: Box<dyn Fn(ReplicaId) -> C + Send + Sync>,
    topology: &'static dyn Topology,
    server: Option<NodeId>,
    /// What packed systems of this explorer name ([`Packed`]).
    tables: Tables<C, P>,
}

/// One message in flight.
pub struct InFlight<M> {
    pub from: NodeId,
    pub to: NodeId,
    pub message: Arc<M>,
    /// Its number in send order, as the simulator numbers messages (scripted fates name them).
    pub number: u64,
    /// When it was sent, in virtual time.
    pub sent_us: u64,
    /// The hash of its content: what the system's hash and canonical order use.
    digest: u64,
}

impl<M> Clone for InFlight<M> {
    fn clone(&self) -> Self {
        InFlight {
            message: Arc::clone(&self.message),
            ..*self
        }
    }
}

/// A handler's commands, in the order issued.
type Outbox<C, P> = Vec<Command<<P as Protocol<C>>::Message, <P as Protocol<C>>::Timer>>;

/// One pending timer.
#[derive(Clone)]
struct PendingTimer<T> {
    node: NodeId,
    at_us: u64,
    /// Set order, which breaks ties between equal deadlines as the simulator's queue does.
    id: u64,
    timer: T,
}

/// The whole system at one moment: replicas, protocol states, messages and timers.
///
/// A step changes at most one replica, yet every successor was a copy of the whole system, each
/// replica's buffers allocated anew and freed again (allocation was a third of the checker's
/// time). So the replicas, and the protocol's stream, are shared between a system and its
/// successors (`Arc`) and copied only when a step changes them: a handler works on the
/// replicas copied into spare buffers of its thread ([`System::lend`]), and only the replica
/// it touched, if it touched one, becomes a new shared copy ([`System::take_back`]).
pub struct System<C: OpCrdt, P: Protocol<C>> {
    now_us: u64,
    nodes: Vec<Arc<Replica<C>>>,
    states: Vec<P::Node>,
    /// Each node's clock and hash, in one vector: a successor copies it once.
    meta: Vec<NodeMeta>,
    records: Arc<Vec<UpdateRecord<C>>>,
    /// Updates issued per replica, shared until a write changes it.
    issued: Arc<Vec<u32>>,
    in_flight: Vec<InFlight<P::Message>>,
    timers: Vec<PendingTimer<P::Timer>>,
    next_timer: u64,
    next_message: u64,
    /// The protocol's stream, shared until a handler draws from it.
    stream: Arc<Stream>,
    ending: Option<Ending>,
    /// [`ExploreSpec::writes_per_replica`]: update `k` of replica `r` is `r * stride + k`.
    stride: u32,
    /// Shared: no step restarts a node.
    incarnations: Arc<Vec<u32>>,
    /// The connections that are down, as (lower node, higher node), each held by one drop: the
    /// same map the simulator keeps, lent to the [`Net`] so that [`Ctx::is_connected`] reads it.
    /// Empty unless the model drops connections, and an empty map allocates nothing.
    connections_down: BTreeMap<(NodeId, NodeId), u32>,
    /// The hash of the issued updates' records, kept up to date as writes happen.
    records_digest: u64,
    /// [`ExploreSpec::flight`]: whether the order of a link's messages is part of the hash.
    flight: Flight,
}

/// A node's clock and hash.
#[derive(Clone, Copy)]
struct NodeMeta {
    clock: Clock,
    /// The node's hash (replica, delivered set, protocol state, clock), kept up to date as
    /// handlers run: a step changes one node, so the system's hash costs a word per node.
    digest: u64,
}

impl<C: OpCrdt, P: Protocol<C>> Clone for System<C, P>
where
    P::Node: Clone,
    P::Timer: Clone,
{
    fn clone(&self) -> Self {
        System {
            now_us: self.now_us,
            nodes: self.nodes.clone(),
            states: self.states.clone(),
            meta: self.meta.clone(),
            records: Arc::clone(&self.records),
            issued: Arc::clone(&self.issued),
            in_flight: self.in_flight.clone(),
            timers: self.timers.clone(),
            next_timer: self.next_timer,
            next_message: self.next_message,
            stream: Arc::clone(&self.stream),
            ending: self.ending.clone(),
            stride: self.stride,
            incarnations: Arc::clone(&self.incarnations),
            connections_down: self.connections_down.clone(),
            records_digest: self.records_digest,
            flight: self.flight,
        }
    }
}

/// What one step did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepEffect {
    /// Whether the node handling it learned updates it did not hold.
    pub learned: bool,
    /// Coins the step flipped (tie-breaks of the random policy).
    pub flips: u32,
    /// Commands the handler issued (sends and timers).
    pub commands: u32,
}

/// What a write or a delivery did where its handler did nothing but change its own node and
/// send: no timer, no draw from the protocol's stream, no panic, every connection up. A model
/// checker whose protocol's handlers read only their own node knows from this, without running
/// the handler again, what the same step does to the same node ([`Tables::effect`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalStep {
    /// The receiver's hash after the handler ([`System::node_digest`]).
    pub node_digest: u64,
    /// The handler's sends, as (receiver, content hash), in the order issued.
    pub sends: Vec<(NodeId, u64)>,
    pub effect: StepEffect,
}

/// A system's hash in three words, each a step changes alone: the rest (records, issued
/// writes, timers, connections down, ending) hashed in order, the sum of the nodes' digests,
/// and the sum of one mixed word per message in flight. A successor's hash then follows
/// from its parent's parts and what the step changed ([`Tables::foresee`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashParts {
    rest: u64,
    nodes: u64,
    messages: u64,
}

impl HashParts {
    /// Writes the three words into `state`: what a system's [`Hash`] writes.
    pub fn write<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.rest);
        state.write_u64(self.nodes);
        state.write_u64(self.messages);
    }
}

/// One message's word in [`HashParts::messages`]: its link, content and, on queues, its place
/// in its link's queue, mixed so that sums of different messages do not meet.
fn message_word(from: NodeId, to: NodeId, digest: u64, rank: usize) -> u64 {
    let link = u64::from(from) << 32 | u64::from(to);
    mix64(digest ^ link.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (rank as u64).rotate_right(8))
}

/// [`HashParts::rest`]: the records, the writes issued, the timers (their deadlines counted
/// from now, in firing order), the connections down and the ending, hashed in order.
fn rest_word<T: Hash>(
    records_digest: u64,
    issued: &[u32],
    timers: &[PendingTimer<T>],
    now_us: u64,
    connections_down: &BTreeMap<(NodeId, NodeId), u32>,
    ending: &Option<Ending>,
) -> u64 {
    let mut rest = WordHasher(0);
    rest.write_u64(records_digest);
    issued.hash(&mut rest);
    for timer in timers {
        (
            timer.node,
            timer.at_us - now_us.min(timer.at_us),
            &timer.timer,
        )
            .hash(&mut rest);
    }
    for pair in connections_down.keys() {
        pair.hash(&mut rest);
    }
    ending.hash(&mut rest);
    rest.finish()
}

/// [`HashParts::messages`] of the messages in flight, given as (sender, receiver, content
/// hash) in the canonical order: on queues each counts its place in its link's queue (a link's
/// messages stand together).
fn messages_word(flight: Flight, links: impl Iterator<Item = (NodeId, NodeId, u64)>) -> u64 {
    let mut sum = 0u64;
    let mut previous = None;
    let mut rank = 0;
    for (from, to, digest) in links {
        if flight == Flight::Queues {
            rank = if previous == Some((from, to)) {
                rank + 1
            } else {
                0
            };
            previous = Some((from, to));
        }
        sum = sum.wrapping_add(message_word(from, to, digest, rank));
    }
    sum
}

/// What a traced handler did: its sends as (receiver, content hash) and the messages, and
/// whether it did nothing else ([`LocalStep`]).
struct Trace<M> {
    local: bool,
    sends: Vec<(NodeId, u64)>,
    messages: Vec<Arc<M>>,
}

impl<M> Trace<M> {
    /// A trace of a handler run on `system`.
    fn new<C: OpCrdt, P: Protocol<C, Message = M>>(system: &System<C, P>) -> Self {
        Trace {
            local: system.connections_down.is_empty(),
            sends: Vec::new(),
            messages: Vec::new(),
        }
    }

    /// What the traced handler did at `node`, where it did nothing but change that node and
    /// send, and left `next` without an ending.
    fn handled<C: OpCrdt, P: Protocol<C, Message = M>>(
        self,
        next: &System<C, P>,
        node: NodeId,
        effect: StepEffect,
    ) -> Option<Handled<C, P>>
    where
        P::Node: Clone,
    {
        let node = node as usize;
        (self.local && next.ending.is_none()).then(|| Handled {
            step: LocalStep {
                node_digest: next.meta[node].digest,
                sends: self.sends,
                effect,
            },
            replica: Arc::clone(&next.nodes[node]),
            state: next.states[node].clone(),
            clock: next.meta[node].clock,
            messages: self.messages,
        })
    }
}

/// A step's [`LocalStep`] with what it made: the node's replica, protocol state and clock, and
/// the messages it sent. Enough to make the same step again on a system whose node is the same
/// node in the same state, without running the handler ([`Tables::effect`]).
pub struct Handled<C: OpCrdt, P: Protocol<C>> {
    pub step: LocalStep,
    replica: Arc<Replica<C>>,
    state: P::Node,
    clock: Clock,
    messages: Vec<Arc<P::Message>>,
}

impl<C: OpCrdt<Op: Hash, Intent: Hash> + Hash + 'static, P: Protocol<C>> Explorer<C, P>
where
    P::Node: Clone + Hash,
    P::Timer: Clone + Hash,
    P::Message: Hash,
{
    pub fn new(
        spec: ExploreSpec,
        protocol: P,
        make: impl Fn(ReplicaId) -> C + Send + Sync + 'static,
    ) -> Self {
        let topology = topology::of(spec.protocol.topology);
        let server = (topology.servers() > 0).then_some(spec.replicas);
        let nodes = spec.replicas + topology.servers();
        Explorer {
            spec,
            protocol,
            make: Box::new(make),
            topology,
            server,
            tables: Tables::new(nodes as usize),
        }
    }

    pub fn spec(&self) -> &ExploreSpec {
        &self.spec
    }

    /// The tables [`Packed`] systems of this explorer name.
    pub fn tables(&self) -> &Tables<C, P> {
        &self.tables
    }

    pub fn protocol(&self) -> &P {
        &self.protocol
    }

    fn node_count(&self) -> u32 {
        self.spec.replicas + self.topology.servers()
    }

    /// The connections a model may drop, as (lower node, higher node) in increasing order: in a
    /// relay each client's connection to the server, elsewhere every two nodes (the connections
    /// a `connection-drop` fault may name).
    pub fn connections(&self) -> Vec<(NodeId, NodeId)> {
        let nodes = self.node_count();
        (0..nodes)
            .flat_map(|a| (a + 1..nodes).map(move |b| (a, b)))
            .filter(|&(_, b)| self.server.is_none_or(|server| b == server))
            .collect()
    }

    /// The system at time zero: every node's protocol state from [`Protocol::init`], and every
    /// node started ([`Protocol::on_start`]), as a run starts.
    pub fn start(&self) -> System<C, P> {
        let nodes = self.node_count();
        let mut system = System {
            now_us: 0,
            nodes: (0..nodes)
                .map(|id| {
                    Arc::new(Replica {
                        id,
                        status: Status::Up,
                        crdt: (self.make)(id),
                        delivered: UpdateSet::default(),
                    })
                })
                .collect(),
            states: Vec::with_capacity(nodes as usize),
            meta: vec![
                NodeMeta {
                    clock: Clock::new(self.spec.clock, Default::default()),
                    digest: 0,
                };
                nodes as usize
            ],
            records: Arc::new(Vec::new()),
            issued: Arc::new(vec![0; self.spec.replicas as usize]),
            in_flight: Vec::new(),
            timers: Vec::new(),
            next_timer: 0,
            next_message: 0,
            // As in a scripted run, whose streams are rooted at zero.
            stream: Arc::new(Stream::new(0, "protocol")),
            ending: None,
            stride: self.spec.writes_per_replica,
            incarnations: Arc::new(vec![0; nodes as usize]),
            connections_down: BTreeMap::new(),
            records_digest: 0,
            flight: self.spec.flight,
        };
        let mut net = system.lend(self, 0);
        let mut states = Vec::with_capacity(nodes as usize);
        for node in 0..nodes {
            let ctx = Ctx::detached(&mut net, &self.protocol, node);
            states.push(self.protocol.init(&ctx));
        }
        system.take_back(net, None);
        system.states = states;
        for node in 0..nodes {
            system.meta[node as usize].digest = system.digest_node(node);
        }
        for node in 0..nodes {
            system.handle(self, node, 0, None, |p, state, ctx| p.on_start(state, ctx));
        }
        system
    }
}

impl<C: OpCrdt<Op: Hash, Intent: Hash> + Hash + 'static, P: Protocol<C>> System<C, P>
where
    P::Node: Clone + Hash,
    P::Timer: Clone + Hash,
    P::Message: Hash,
{
    /// Replica `replica` writes `intent` (its next write), stamped by its clock, and the
    /// protocol hears of it ([`Protocol::on_write`]).
    pub fn write(&self, explorer: &Explorer<C, P>, replica: ReplicaId, intent: C::Intent) -> Self {
        self.write_with(explorer, replica, intent, None)
    }

    /// As [`System::write`], and what the handler did where it did nothing but change its own
    /// node and send ([`Handled`]).
    pub fn write_traced(
        &self,
        explorer: &Explorer<C, P>,
        replica: ReplicaId,
        intent: C::Intent,
    ) -> (Self, Option<Handled<C, P>>) {
        let mut trace = Trace::new(self);
        let next = self.write_with(explorer, replica, intent, Some(&mut trace));
        let handled = trace.handled(&next, replica, StepEffect::default());
        (next, handled)
    }

    fn write_with(
        &self,
        explorer: &Explorer<C, P>,
        replica: ReplicaId,
        intent: C::Intent,
        trace: Option<&mut Trace<P::Message>>,
    ) -> Self {
        let mut next = self.clone();
        let seq = next.issued[replica as usize];
        assert!(
            seq < explorer.spec.writes_per_replica,
            "replica {replica} has issued all its writes"
        );
        Arc::make_mut(&mut next.issued)[replica as usize] += 1;
        let index = replica * explorer.spec.writes_per_replica + seq;
        // `prepare`, `apply` and the handler are the user's code: a panic in any of them ends
        // the system instead of the exploration.
        next.guarded(|system| {
            system.record_write(replica, seq, index, intent);
            let mut net = system.lend(explorer, 0);
            net.apply(replica, index);
            system.take_back(net, Some(replica));
            system.handle_traced(explorer, replica, 0, None, trace, |p, state, ctx| {
                p.on_write(state, Update(index), ctx)
            });
        });
        next
    }

    /// Stamps and prepares write `seq` of `replica` as update `index`, and records it.
    fn record_write(&mut self, replica: ReplicaId, seq: u32, index: u32, intent: C::Intent) {
        let node = &self.nodes[replica as usize];
        let key_time = node.crdt.key_time(WorkloadIntent::key(&intent));
        let time = self.meta[replica as usize]
            .clock
            .tick(self.now_us, key_time);
        let stamp = Stamp { time, replica };
        let record = UpdateRecord {
            index,
            id: UpdateId {
                origin: replica,
                seq: seq + 1,
            },
            at_us: self.now_us,
            op: node.crdt.prepare(&intent, stamp),
            intent,
            stamp,
            stale_against_time: key_time.filter(|seen| *seen >= time),
            concurrent: false,
        };
        let records = Arc::make_mut(&mut self.records);
        // Updates not issued yet hold a copy of this one as a placeholder: no handle to them
        // exists, so nothing reads it.
        while records.len() <= index as usize {
            let mut filler = record.clone();
            filler.index = records.len() as u32;
            records.push(filler);
        }
        records[index as usize] = record;
        self.records_digest = self.digest_records();
    }

    /// Message `index` of [`System::in_flight`] arrives, with coins for the tie-breaks it asks
    /// for taken from the bits of `coins`, lowest first. Under [`Flight::Set`] it stays in flight.
    pub fn deliver(
        &self,
        explorer: &Explorer<C, P>,
        index: usize,
        coins: u64,
    ) -> (Self, StepEffect) {
        self.arrive(explorer, index, coins, explorer.spec.flight == Flight::Set)
    }

    /// Message `index` arrives and leaves the network, whatever the network keeps: one fair
    /// delivery, as a probe of where the system goes without loss takes it.
    pub fn consume(
        &self,
        explorer: &Explorer<C, P>,
        index: usize,
        coins: u64,
    ) -> (Self, StepEffect) {
        self.arrive(explorer, index, coins, false)
    }

    /// As [`System::deliver`], and what the handler did where it did nothing but change its own
    /// node and send ([`LocalStep`]).
    pub fn deliver_traced(
        &self,
        explorer: &Explorer<C, P>,
        index: usize,
        coins: u64,
    ) -> (Self, StepEffect, Option<Handled<C, P>>) {
        let stays = explorer.spec.flight == Flight::Set;
        let mut trace = Trace::new(self);
        let (next, effect) = self.arrive_traced(explorer, index, coins, stays, Some(&mut trace));
        let handled = trace.handled(&next, self.in_flight[index].to, effect);
        (next, effect, handled)
    }

    fn arrive(
        &self,
        explorer: &Explorer<C, P>,
        index: usize,
        coins: u64,
        stays: bool,
    ) -> (Self, StepEffect) {
        self.arrive_traced(explorer, index, coins, stays, None)
    }

    fn arrive_traced(
        &self,
        explorer: &Explorer<C, P>,
        index: usize,
        coins: u64,
        stays: bool,
        trace: Option<&mut Trace<P::Message>>,
    ) -> (Self, StepEffect) {
        let mut next = self.clone();
        let flying = if stays {
            next.in_flight[index].clone()
        } else {
            next.in_flight.remove(index)
        };
        let mut effect = StepEffect::default();
        next.guarded(|system| {
            let message = &flying.message;
            effect = system.handle_traced(
                explorer,
                flying.to,
                coins,
                Some(message),
                trace,
                |p, state, ctx| p.on_message(state, flying.from, message, ctx),
            );
        });
        (next, effect)
    }

    /// Message `index` of [`System::in_flight`] is lost.
    pub fn drop_message(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.in_flight.remove(index);
        next
    }

    /// The connection between `a` and `b` drops, as a `connection-drop` fault drops it in the
    /// simulator: what is in flight on it, both ways, is lost, and both ends that are up are
    /// told, `a` first ([`Protocol::on_disconnect`]); until [`System::reconnect`] a send on it
    /// is lost at once. Dropping a connection that is already down changes nothing but tells
    /// the ends again, which the model checker never asks for.
    pub fn drop_connection(
        &self,
        explorer: &Explorer<C, P>,
        a: NodeId,
        b: NodeId,
    ) -> (Self, StepEffect) {
        let mut next = self.clone();
        let pair = (a.min(b), a.max(b));
        *next.connections_down.entry(pair).or_default() += 1;
        next.in_flight
            .retain(|m| (m.from.min(m.to), m.from.max(m.to)) != pair);
        let effect = next.tell_ends(explorer, a, b, false);
        (next, effect)
    }

    /// The connection between `a` and `b` is back (it was down): both ends that are up are
    /// told, `a` first ([`Protocol::on_connect`]), as the simulator tells them at a
    /// `connection-drop` fault's reconnect.
    pub fn reconnect(&self, explorer: &Explorer<C, P>, a: NodeId, b: NodeId) -> (Self, StepEffect) {
        let mut next = self.clone();
        next.connections_down.remove(&(a.min(b), a.max(b)));
        let effect = next.tell_ends(explorer, a, b, true);
        (next, effect)
    }

    /// Calls both ends' connection handler, in the simulator's order; the effects add up.
    fn tell_ends(
        &mut self,
        explorer: &Explorer<C, P>,
        a: NodeId,
        b: NodeId,
        connected: bool,
    ) -> StepEffect {
        let mut total = StepEffect::default();
        for (node, peer) in [(a, b), (b, a)] {
            if self.nodes[node as usize].status != Status::Up {
                continue;
            }
            let mut effect = StepEffect::default();
            self.guarded(|system| {
                effect = system.handle(explorer, node, 0, None, |p, state, ctx| {
                    if connected {
                        p.on_connect(state, peer, ctx)
                    } else {
                        p.on_disconnect(state, peer, ctx)
                    }
                });
            });
            total.learned |= effect.learned;
            total.flips += effect.flips;
            total.commands += effect.commands;
            if matches!(self.ending, Some(Ending::Panicked(_))) {
                // The system ended in the first handler; the simulator would not call the second.
                break;
            }
        }
        total
    }

    /// The next timer fires (the one [`System::next_timer`] names), moving the clock to its
    /// deadline; `None` when no timer is pending.
    pub fn fire(&self, explorer: &Explorer<C, P>, coins: u64) -> Option<(Self, StepEffect)> {
        let head = self.next_timer_index()?;
        let mut next = self.clone();
        let timer = next.timers.remove(head);
        next.now_us = next.now_us.max(timer.at_us);
        let mut effect = StepEffect::default();
        next.guarded(|system| {
            effect = system.handle(explorer, timer.node, coins, None, |p, state, ctx| {
                p.on_timer(state, timer.timer, ctx)
            });
        });
        Some((next, effect))
    }

    /// Timers are kept in firing order, so the next is the first.
    fn next_timer_index(&self) -> Option<usize> {
        (!self.timers.is_empty()).then_some(0)
    }

    fn digest_node(&self, node: NodeId) -> u64 {
        let mut hasher = WordHasher(u64::from(node));
        let replica = &self.nodes[node as usize];
        replica.status.hash(&mut hasher);
        replica.crdt.hash(&mut hasher);
        replica.delivered.hash(&mut hasher);
        self.states[node as usize].hash(&mut hasher);
        self.meta[node as usize].clock.last.hash(&mut hasher);
        self.incarnations[node as usize].hash(&mut hasher);
        hasher.finish()
    }

    fn digest_records(&self) -> u64 {
        let mut hasher = WordHasher(0);
        for record in self.records() {
            (&record.intent, record.stamp, &record.op).hash(&mut hasher);
        }
        hasher.finish()
    }

    /// The node and deadline of the timer that fires next.
    pub fn next_timer(&self) -> Option<(NodeId, u64)> {
        self.next_timer_index()
            .map(|i| (self.timers[i].node, self.timers[i].at_us))
    }

    /// The pending timers as `(id, node, deadline)`: ids count in set order, as the simulator
    /// sets them.
    pub fn timers(&self) -> impl Iterator<Item = (u64, NodeId, u64)> + '_ {
        self.timers.iter().map(|t| (t.id, t.node, t.at_us))
    }

    /// The id of the timer that fires next.
    pub fn next_timer_id(&self) -> Option<u64> {
        self.next_timer_index().map(|i| self.timers[i].id)
    }

    /// Messages sent so far: the next message's number.
    pub fn messages_sent(&self) -> u64 {
        self.next_message
    }

    /// Runs `step`, turning a panic in the CRDT or the protocol into the system's ending.
    fn guarded(&mut self, step: impl FnOnce(&mut Self)) {
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| step(self)));
        if let Err(payload) = ran {
            self.ending = Some(Ending::Panicked(panic_message(payload.as_ref())));
        }
    }

    /// Lends the system's clocks and records, and copies of its replicas and stream, to a
    /// [`Net`] for one handler. The copies are written over spare buffers this thread kept
    /// from the last handler ([`Clone::clone_from`]), so that a step allocates nothing for the
    /// replicas it does not change.
    fn lend(&mut self, explorer: &Explorer<C, P>, coins: u64) -> Net<C, P> {
        let spec = &explorer.spec;
        let by_origin = if explorer.protocol.refers_to_updates() {
            self.issued
                .iter()
                .enumerate()
                .map(|(origin, issued)| {
                    let base = origin as u32 * spec.writes_per_replica;
                    (base..base + issued).collect()
                })
                .collect()
        } else {
            Vec::new()
        };
        let spare = self.copy_into_spare();
        Net {
            now_us: self.now_us,
            replicas: spec.replicas,
            server: explorer.server,
            spec: spec.protocol,
            topology: explorer.topology,
            nodes: spare.nodes,
            clocks: spare.clocks,
            incarnations: spare.incarnations,
            updates: Arc::clone(&self.records),
            by_origin,
            coins: Coins::new(CoinSource::Bits { bits: coins }),
            protocol_stream: Stream::clone(&self.stream),
            outbox: Vec::new(),
            next_timer: self.next_timer,
            cancelled_timers: BTreeSet::new(),
            coverage: Default::default(),
            snapshots: Vec::new(),
            snapshot_cursor: 0,
            spare_messages: Vec::new(),
            changed: false,
            touched: false,
            connections_down: std::mem::take(&mut self.connections_down),
        }
    }

    /// Takes back what [`System::lend`] lent: the replica of `node` becomes a new shared copy
    /// if the handler touched it (a handler changes no other replica: [`Ctx::apply`] and the
    /// merges act on its own node), the stream if the handler drew from it. Returns the
    /// handler's commands and cancelled timers.
    fn take_back(&mut self, net: Net<C, P>, node: Option<NodeId>) -> (Outbox<C, P>, BTreeSet<u64>) {
        if let Some(node) = node.filter(|_| net.touched) {
            self.nodes[node as usize] = Arc::new(net.nodes[node as usize].clone());
        }
        if net.protocol_stream.position() != self.stream.position() {
            self.stream = Arc::new(net.protocol_stream);
        }
        for (meta, clock) in self.meta.iter_mut().zip(&net.clocks) {
            meta.clock = *clock;
        }
        if net.incarnations != *self.incarnations {
            self.incarnations = Arc::new(net.incarnations.clone());
        }
        keep_spare(Spare {
            nodes: net.nodes,
            clocks: net.clocks,
            incarnations: net.incarnations,
        });
        self.connections_down = net.connections_down;
        self.records = net.updates;
        self.next_timer = net.next_timer;
        (net.outbox, net.cancelled_timers)
    }

    /// Calls one handler for `node` and carries out its commands.
    fn handle(
        &mut self,
        explorer: &Explorer<C, P>,
        node: NodeId,
        coins: u64,
        received: Option<&Arc<P::Message>>,
        handler: impl FnOnce(&P, &mut P::Node, &mut Ctx<'_, C, P>),
    ) -> StepEffect {
        self.handle_traced(explorer, node, coins, received, None, handler)
    }

    /// As [`System::handle`], and notes in `trace`, if given, the sends and whether the handler
    /// did anything but change its node and send.
    fn handle_traced(
        &mut self,
        explorer: &Explorer<C, P>,
        node: NodeId,
        coins: u64,
        received: Option<&Arc<P::Message>>,
        trace: Option<&mut Trace<P::Message>>,
        handler: impl FnOnce(&P, &mut P::Node, &mut Ctx<'_, C, P>),
    ) -> StepEffect {
        let mut net = self.lend(explorer, coins);
        let mut states = std::mem::take(&mut self.states);
        let (before, rest) = states.split_at_mut(node as usize);
        let (state, after) = rest
            .split_first_mut()
            .expect("every node has a protocol state");
        let mut ctx = Ctx {
            net: &mut net,
            protocol: &explorer.protocol,
            node,
            others: Others { before, after },
            received,
        };
        handler(&explorer.protocol, state, &mut ctx);
        self.states = states;
        let effect = StepEffect {
            learned: net.changed,
            flips: net.coins.flips(),
            commands: net.outbox.len() as u32 + net.cancelled_timers.len() as u32,
        };
        let mut trace = trace;
        if let Some(trace) = trace.as_deref_mut() {
            let stream_kept = net.protocol_stream.position() == self.stream.position();
            trace.local &= stream_kept
                && net.cancelled_timers.is_empty()
                && net.next_timer == self.next_timer
                && net.incarnations == *self.incarnations;
        }
        let (outbox, cancelled) = self.take_back(net, Some(node));
        self.meta[node as usize].digest = self.digest_node(node);
        self.flush(explorer, node, outbox, &cancelled, trace);
        effect
    }

    fn flush(
        &mut self,
        explorer: &Explorer<C, P>,
        node: NodeId,
        outbox: Outbox<C, P>,
        cancelled: &BTreeSet<u64>,
        mut trace: Option<&mut Trace<P::Message>>,
    ) {
        let spec = &explorer.spec;
        for command in outbox {
            match command {
                Command::Send { to, message, .. } => {
                    if to >= explorer.node_count() {
                        self.end(Ending::Bound("send_to_unknown_node"));
                        continue;
                    }
                    if self.is_disconnected(node, to) {
                        // Lost at once, as the simulator loses a send on a dropped connection
                        // (numbered all the same).
                        self.next_message += 1;
                        continue;
                    }
                    let digest = digest_of(&*message);
                    if let Some(trace) = trace.as_deref_mut() {
                        trace.sends.push((to, digest));
                        trace.messages.push(Arc::clone(&message));
                    }
                    self.send_copy(spec.flight, node, to, message, digest);
                }
                Command::Timer { at_us, id, timer } => {
                    if let Some(trace) = trace.as_deref_mut() {
                        trace.local = false;
                    }
                    self.timers.push(PendingTimer {
                        node,
                        at_us,
                        id: id.0,
                        timer,
                    });
                }
            }
        }
        if !cancelled.is_empty() {
            self.timers.retain(|t| !cancelled.contains(&t.id));
        }
        self.settle(spec);
    }

    /// Puts a message `from` sends into the network, numbered; a set holds one copy of it.
    fn send_copy(
        &mut self,
        flight: Flight,
        from: NodeId,
        to: NodeId,
        message: Arc<P::Message>,
        digest: u64,
    ) {
        let copy = InFlight {
            from,
            to,
            message,
            number: self.next_message,
            sent_us: self.now_us,
            digest,
        };
        self.next_message += 1;
        let present = flight == Flight::Set && self.in_flight.iter().any(|m| m.same_as(&copy));
        if !present {
            self.in_flight.push(copy);
        }
    }

    /// After a handler's commands: the timers in firing order, the bounds, the messages in the
    /// canonical order.
    fn settle(&mut self, spec: &ExploreSpec) {
        self.timers.sort_by_key(|t| (t.at_us, t.id));
        if self.in_flight.len() > spec.in_flight_max {
            self.end(Ending::Bound("in_flight_max"));
        }
        if self.timers.len() > spec.timers_max {
            self.end(Ending::Bound("timers_max"));
        }
        self.canonicalize(spec.flight);
        let crowded = self
            .in_flight
            .chunk_by(|a, b| (a.from, a.to) == (b.from, b.to))
            .any(|link| link.len() > spec.link_max);
        if crowded {
            self.end(Ending::Bound("link_max"));
        }
    }

    fn end(&mut self, ending: Ending) {
        self.ending.get_or_insert(ending);
    }

    /// Puts the messages in flight in an order that depends only on what is in flight: by link,
    /// keeping each link's order where links are queues, and by content where order does not
    /// matter.
    fn canonicalize(&mut self, flight: Flight) {
        match flight {
            Flight::Queues => self.in_flight.sort_by_key(|m| (m.from, m.to)),
            Flight::Bag | Flight::Set => self.in_flight.sort_by_key(|m| (m.from, m.to, m.digest)),
        }
    }
}

/// What a system holds, for properties and counterexamples.
impl<C: OpCrdt, P: Protocol<C>> System<C, P> {
    /// Every node's replica, shared with the systems that did not change it.
    pub fn nodes(&self) -> &[Arc<Replica<C>>] {
        &self.nodes
    }

    pub fn protocol_states(&self) -> &[P::Node] {
        &self.states
    }

    pub fn in_flight(&self) -> &[InFlight<P::Message>] {
        &self.in_flight
    }

    pub fn timers_pending(&self) -> usize {
        self.timers.len()
    }

    /// Virtual time: the deadline of the last timer that fired.
    pub fn now_us(&self) -> u64 {
        self.now_us
    }

    /// How many writes `replica` has issued.
    pub fn issued(&self, replica: ReplicaId) -> u32 {
        self.issued[replica as usize]
    }

    /// The record of update `update` (issued ones only).
    pub fn record(&self, update: u32) -> Option<&UpdateRecord<C>> {
        let (origin, seq) = (update / self.stride, update % self.stride);
        (seq < *self.issued.get(origin as usize)?).then(|| &self.records[update as usize])
    }

    /// The issued updates' records, in update order.
    pub fn records(&self) -> impl Iterator<Item = &UpdateRecord<C>> {
        (0..self.records.len() as u32).filter_map(|u| self.record(u))
    }

    /// A word that changes whenever what a handler of `node` could read of the system does:
    /// the node's own replica and protocol state, and the update records. For protocols whose
    /// handlers read nothing else, the same message with the same coins does the same thing
    /// whenever this word is the same.
    pub fn local_digest(&self, node: NodeId) -> u64 {
        mix64(self.meta[node as usize].digest ^ self.records_digest.rotate_left(17))
    }

    /// The content hash of message `index` in flight.
    pub fn message_digest(&self, index: usize) -> u64 {
        self.in_flight[index].digest
    }

    /// The hash of node `node` (its replica, delivered set, protocol state, clock and
    /// incarnation, and its place): equal words, equal nodes in the same place.
    pub fn node_digest(&self, node: NodeId) -> u64 {
        self.meta[node as usize].digest
    }

    /// The hash of the issued updates' records.
    pub fn records_digest(&self) -> u64 {
        self.records_digest
    }

    /// The last time node `node`'s clock issued or saw.
    pub fn clock_time(&self, node: NodeId) -> u64 {
        self.meta[node as usize].clock.last
    }

    /// How many times node `node` restarted.
    pub fn incarnation(&self, node: NodeId) -> u32 {
        self.incarnations[node as usize]
    }

    /// Why the system stopped, if it did.
    pub fn ending(&self) -> Option<&Ending> {
        self.ending.as_ref()
    }

    /// Whether the connection between `a` and `b` is down ([`System::drop_connection`]).
    pub fn is_disconnected(&self, a: NodeId, b: NodeId) -> bool {
        !self.connections_down.is_empty()
            && self.connections_down.contains_key(&(a.min(b), a.max(b)))
    }

    /// The connections that are down, as (lower node, higher node) in increasing order.
    pub fn connections_down(&self) -> impl Iterator<Item = (NodeId, NodeId)> + '_ {
        self.connections_down.keys().copied()
    }
}

/// What a handler's [`Net`] owns for the time of one handler and the thread keeps between
/// handlers, so that lending a system allocates nothing: copies of the replicas, the clocks
/// and the incarnations.
struct Spare<C> {
    nodes: Vec<Replica<C>>,
    clocks: Vec<Clock>,
    incarnations: Vec<u32>,
}

thread_local! {
    /// This thread's spares, one per CRDT type it explores (see [`System::lend`]); each holds
    /// `None` while a handler has it.
    static SPARES: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

impl<C: OpCrdt<Op: Hash> + Hash + 'static, P: Protocol<C>> System<C, P> {
    /// The system's replicas, clocks and incarnations copied into this thread's spares of their
    /// type (new ones the first time).
    fn copy_into_spare(&self) -> Spare<C> {
        let mut spare = SPARES
            .with(|spares| {
                spares.borrow_mut().iter_mut().find_map(|spare| {
                    spare
                        .downcast_mut::<Option<Spare<C>>>()
                        .and_then(Option::take)
                })
            })
            .unwrap_or_else(|| Spare {
                nodes: Vec::new(),
                clocks: Vec::new(),
                incarnations: Vec::new(),
            });
        spare.nodes.truncate(self.nodes.len());
        for (index, node) in self.nodes.iter().enumerate() {
            match spare.nodes.get_mut(index) {
                Some(copy) => copy.clone_from(node),
                None => spare.nodes.push(Replica::clone(node)),
            }
        }
        spare.clocks.clear();
        spare.clocks.extend(self.meta.iter().map(|meta| meta.clock));
        spare.incarnations.clone_from(&self.incarnations);
        spare
    }
}

/// Keeps `spare` as this thread's spare of its type.
fn keep_spare<C: OpCrdt + 'static>(spare: Spare<C>) {
    SPARES.with(|spares| {
        let mut spares = spares.borrow_mut();
        let slot = spares
            .iter_mut()
            .find_map(|kept| kept.downcast_mut::<Option<Spare<C>>>());
        match slot {
            Some(slot) => *slot = Some(spare),
            None => spares.push(Box::new(Some(spare))),
        }
    });
}

impl<M> InFlight<M> {
    /// Whether both are copies of one message: same link, same content.
    pub fn same_as(&self, other: &InFlight<M>) -> bool {
        (self.from, self.to, self.digest) == (other.from, other.to, other.digest)
    }
}

/// A fixed, version-stable hash of a message's content.
fn digest_of<M: Hash>(message: &M) -> u64 {
    let mut hasher = WordHasher(0);
    message.hash(&mut hasher);
    hasher.finish()
}

/// Folds words with [`mix64`]: stable across runs and machines, unlike the standard hasher's
/// random keys.
pub struct WordHasher(pub u64);

impl Hasher for WordHasher {
    fn finish(&self) -> u64 {
        mix64(self.0)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.write_u64(u64::from_le_bytes(word.try_into().expect("eight bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    /// One multiply and rotate per word (as rustc's hasher folds words), and the full mix at the
    /// end: fingerprints of a few million states, not an adversary, are what it must tell apart.
    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(26) ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_u32(&mut self, word: u32) {
        self.write_u64(u64::from(word));
    }

    fn write_u8(&mut self, word: u8) {
        self.write_u64(u64::from(word));
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }
}

impl<C, P> Hash for System<C, P>
where
    C: OpCrdt + Hash,
    C::Op: Hash,
    P: Protocol<C>,
    P::Node: Hash,
    P::Timer: Hash,
{
    /// What the system means, not how it got there: see the module docs.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.hash_parts().write(state);
    }
}

impl<C, P> System<C, P>
where
    C: OpCrdt,
    P: Protocol<C>,
    P::Timer: Hash,
{
    /// The system's hash ([`Hash`]) in parts that a step changes one at a time.
    pub fn hash_parts(&self) -> HashParts {
        let rest = rest_word(
            self.records_digest,
            &self.issued,
            &self.timers,
            self.now_us,
            &self.connections_down,
            &self.ending,
        );
        let nodes = self.meta.iter().map(|meta| meta.digest);
        let links = self.in_flight.iter().map(|m| (m.from, m.to, m.digest));
        HashParts {
            rest,
            nodes: nodes.fold(0, u64::wrapping_add),
            messages: messages_word(self.flight, links),
        }
    }
}

impl<C, P> fmt::Debug for System<C, P>
where
    C: OpCrdt,
    P: Protocol<C>,
    P::Message: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let views: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("n{}: {:?}", n.id, n.crdt.view()))
            .collect();
        let flying: Vec<String> = self
            .in_flight
            .iter()
            .map(|m| format!("n{}->n{} {:?}", m.from, m.to, m.message))
            .collect();
        f.debug_struct("System")
            .field("now_us", &self.now_us)
            .field("views", &views)
            .field("in_flight", &flying)
            .field("timers", &self.timers.len())
            .field("ending", &self.ending)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use converge_crdt::{Intent, LwwGrid, LwwGridConfig};

    use super::*;
    use crate::protocols::StateBroadcast;

    fn explorer() -> Explorer<LwwGrid, StateBroadcast> {
        let spec = ExploreSpec {
            flight: Flight::Bag,
            ..ExploreSpec::new(2, ProtocolSpec::default(), 1)
        };
        Explorer::new(spec, StateBroadcast, |_| {
            LwwGrid::new(LwwGridConfig::default())
        })
    }

    fn fingerprint(system: &System<LwwGrid, StateBroadcast>) -> u64 {
        let mut hasher = WordHasher(0);
        system.hash(&mut hasher);
        hasher.finish()
    }

    #[test]
    fn writes_in_either_order_reach_one_system() {
        let explorer = explorer();
        let start = explorer.start();
        let put = |key| Intent::Put { key, value: 7 };
        let one_then_two = start
            .write(&explorer, 0, put(0))
            .write(&explorer, 1, put(1));
        let two_then_one = start
            .write(&explorer, 1, put(1))
            .write(&explorer, 0, put(0));
        assert_eq!(fingerprint(&one_then_two), fingerprint(&two_then_one));
        // The message numbers tell the paths apart, as a replay needs, without being hashed.
        assert_eq!(one_then_two.in_flight()[0].number, 0);
        assert_eq!(two_then_one.in_flight()[0].number, 1);
    }

    #[test]
    fn a_delivery_changes_only_its_receiver_and_the_network() {
        let explorer = explorer();
        let written = explorer
            .start()
            .write(&explorer, 0, Intent::Put { key: 0, value: 1 });
        assert_eq!(written.in_flight().len(), 1);
        let (delivered, effect) = written.deliver(&explorer, 0, 0);
        assert!(effect.learned);
        assert!(delivered.in_flight().is_empty());
        assert_eq!(
            delivered.nodes()[1].delivered,
            delivered.nodes()[0].delivered
        );
        assert_ne!(fingerprint(&written), fingerprint(&delivered));
    }

    /// Writes down what each node was told of its connections, and sends one message to its
    /// peer whenever it hears the connection is back.
    struct Told;

    impl<C: OpCrdt> Protocol<C> for Told {
        type Message = u8;
        type Node = Vec<(NodeId, bool)>;
        type Timer = ();

        fn init(&self, _ctx: &Ctx<'_, C, Self>) -> Self::Node {
            Vec::new()
        }

        fn on_write(&self, _node: &mut Self::Node, _update: Update, ctx: &mut Ctx<'_, C, Self>) {
            ctx.send(1 - ctx.id(), 0);
        }

        fn on_message(&self, _: &mut Self::Node, _: NodeId, _: &u8, _: &mut Ctx<'_, C, Self>) {}

        fn on_disconnect(&self, told: &mut Self::Node, peer: NodeId, ctx: &mut Ctx<'_, C, Self>) {
            assert!(!ctx.is_connected(peer));
            told.push((peer, false));
            // Lost at once: the connection is down.
            ctx.send(peer, 1);
        }

        fn on_connect(&self, told: &mut Self::Node, peer: NodeId, ctx: &mut Ctx<'_, C, Self>) {
            assert!(ctx.is_connected(peer));
            told.push((peer, true));
            ctx.send(peer, 2);
        }
    }

    #[test]
    fn a_connection_drop_loses_both_ways_and_tells_both_ends_and_the_reconnect_too() {
        let spec = ExploreSpec::new(2, ProtocolSpec::default(), 1);
        let explorer = Explorer::new(spec, Told, |_| LwwGrid::new(LwwGridConfig::default()));
        assert_eq!(explorer.connections(), vec![(0, 1)]);
        let put = |key| Intent::Put { key, value: 7 };
        let written = explorer
            .start()
            .write(&explorer, 0, put(0))
            .write(&explorer, 1, put(1));
        assert_eq!(written.in_flight().len(), 2);
        let fingerprint_of = |system: &System<LwwGrid, Told>| {
            let mut hasher = WordHasher(0);
            system.hash(&mut hasher);
            hasher.finish()
        };
        let (dropped, _) = written.drop_connection(&explorer, 0, 1);
        assert!(dropped.in_flight().is_empty(), "{dropped:?}");
        assert!(dropped.is_disconnected(1, 0));
        assert_eq!(dropped.connections_down().collect::<Vec<_>>(), vec![(0, 1)]);
        assert_eq!(dropped.protocol_states()[0], vec![(1, false)]);
        assert_eq!(dropped.protocol_states()[1], vec![(0, false)]);
        // The sends of both disconnect handlers were numbered and lost.
        assert_eq!(dropped.messages_sent(), 4);
        let (back, _) = dropped.reconnect(&explorer, 0, 1);
        assert!(!back.is_disconnected(0, 1));
        assert_eq!(
            back.in_flight().len(),
            2,
            "each end's hello on reconnecting"
        );
        assert_eq!(
            back.in_flight()[0].number,
            4,
            "numbered as netsim numbers them"
        );
        assert_ne!(fingerprint_of(&dropped), fingerprint_of(&back));
        // A system with a connection down is not the same system with it up.
        let (after_hellos, _) = back.consume(&explorer, 0, 0);
        let (after_hellos, _) = after_hellos.consume(&explorer, 0, 0);
        assert!(after_hellos.in_flight().is_empty());
        let (down_again, _) = after_hellos.drop_connection(&explorer, 0, 1);
        assert_ne!(fingerprint_of(&after_hellos), fingerprint_of(&down_again));
    }

    /// A protocol whose message handler panics, as a user's may.
    struct Panics;

    impl<C: OpCrdt> Protocol<C> for Panics {
        type Message = u8;
        type Node = ();
        type Timer = ();

        fn init(&self, _ctx: &Ctx<'_, C, Self>) {}

        fn on_write(&self, _node: &mut (), _update: Update, ctx: &mut Ctx<'_, C, Self>) {
            ctx.send(1, 0);
        }

        fn on_message(&self, _node: &mut (), _from: NodeId, _m: &u8, _ctx: &mut Ctx<'_, C, Self>) {
            panic!("the handler gave up");
        }
    }

    #[test]
    fn a_panic_in_a_handler_ends_the_system_with_its_message() {
        let spec = ExploreSpec::new(2, ProtocolSpec::default(), 1);
        let explorer = Explorer::new(spec, Panics, |_| LwwGrid::new(LwwGridConfig::default()));
        let written = explorer
            .start()
            .write(&explorer, 0, Intent::Put { key: 0, value: 1 });
        let (ended, _) = written.deliver(&explorer, 0, 0);
        assert_eq!(
            ended.ending(),
            Some(&Ending::Panicked("the handler gave up".into()))
        );
    }
}
