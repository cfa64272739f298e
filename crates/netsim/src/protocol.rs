//! The protocol seam: how a sync protocol, built in or a user's own, runs inside the simulator.
//!
//! A protocol is actor-shaped, like stateright's `Actor`: it owns no I/O. The simulator calls its
//! handlers (a node starts, a replica wrote, a message arrived, a timer fired, a node crashed,
//! restarted, joined or left) with the node's own protocol state and a [`Ctx`], and the handlers
//! act only through the context: send to a node or to the topology's peers, set and cancel
//! timers, merge a received state into the node's replica, apply a received update. The network
//! (latency, loss, duplicates, partitions), the faults, the event queue and the trace stay the
//! simulator's, so a user's protocol gets every fault, scenario file, oracle and shrink that the
//! built-in ones get. The six built-in protocols (`crate::protocols`) are written against this
//! same trait.
//!
//! ```
//! use converge_crdt::OpCrdt;
//! use converge_netsim::protocol::{Ctx, NodeId, Protocol, Update};
//!
//! /// Every write goes once to every peer: fire and forget.
//! struct Flood;
//!
//! impl<C: OpCrdt> Protocol<C> for Flood {
//!     type Message = Update;
//!     type Node = ();
//!     type Timer = ();
//!
//!     fn init(&self, _ctx: &Ctx<'_, C, Self>) {}
//!
//!     fn on_write(&self, _node: &mut (), update: Update, ctx: &mut Ctx<'_, C, Self>) {
//!         let peers = ctx.push_targets(None);
//!         ctx.send_all(peers, update);
//!     }
//!
//!     fn on_message(&self, _node: &mut (), _from: NodeId, update: &Update, ctx: &mut Ctx<'_, C, Self>) {
//!         ctx.apply(*update);
//!     }
//! }
//! ```
//!
//! **What the oracles see.** The simulator cannot read a user's messages, so it learns which
//! updates a replica holds from the commands: [`Ctx::apply`] delivers one [`Update`] (a handle to
//! an update issued in this run, which messages carry), [`Ctx::merge`] merges a [`Snapshot`],
//! a copy of a node's state taken with [`Ctx::snapshot`] that carries the updates it holds, and
//! [`Ctx::merge_delta`] merges a [`Delta`], what [`converge_crdt::DeltaCrdt::delta_since`]
//! returned at the sender ([`Ctx::delta_since`]). A protocol has no other way to change a
//! replica, so the delivered sets the oracles compare are exact: a protocol that stalls leaves
//! replicas lacking updates (not converged, naming who lacks what), and replicas that hold the
//! same updates with different views have diverged.
//!
//! **Deliveries as on a real network.** A delivered set is a set: an update delivered twice is
//! in it once. The replica is not: [`Ctx::apply`] hands the op to [`converge_crdt::OpCrdt::apply`]
//! every time it is called, a duplicate included, because a protocol that does not deduplicate
//! (fire and forget, a relay) hands its application every copy the network delivers. A type
//! whose `apply` is not idempotent is then caught at the duplicate (the replica's view moves
//! while its delivered set does not). A protocol that deduplicates does it in its own code, as
//! reliable causal broadcast does by its delivery vectors, and never calls `apply` for what it
//! already delivered.
//!
//! **Order.** Commands a handler issues take effect in the order issued, after the handler
//! returns and after the event that called it is in the trace (a delivery, a write, a timer), so
//! a handler sees its own merges and applies at once but its sends leave when it is done.
//!
//! **Timers and faults.** A timer fires at its time whether or not its node is up, and
//! [`Ctx::is_up`] tells the handler which: a down node usually just sets its timer again, and
//! anything it sends is lost (cause `down`). A volatile restart rebuilds the node's protocol
//! state with [`Protocol::init`] (timers set before the crash still fire: tell them apart by
//! [`Ctx::incarnation`] if it matters); a durable one keeps it. New kinds of event come as new
//! handlers with a default body, so adding one never breaks a protocol written before it.
//!
//! **Connections.** Links may be declared in order (`network.in-order`: per-link FIFO, as TCP
//! and WebSockets are), and a `connection-drop` fault loses everything in flight on one
//! connection and whatever is sent on it until it is back; both ends get
//! [`Protocol::on_disconnect`], then [`Protocol::on_connect`] at the reconnect, and
//! [`Ctx::is_connected`] tells a handler which connections are up.

use std::sync::Arc;

use converge_crdt::{OpCrdt, ReplicaId, UpdateId};

pub use crate::outcome::NodeId;
use crate::outcome::{Observer, Outcome, Status, UpdateRecord, UpdateSet};
use crate::replicas::Replicas;
use crate::scenario::{ProtocolSpec, Scenario};
use crate::sim::{Command, Net};
pub use crate::topology::Targets;
use crate::validation::ScenarioError;

/// Header bytes counted for every message on top of its payload, by the built-in protocols and
/// by the default [`Protocol::message_bytes`].
pub const HEADER_BYTES: u64 = 16;

/// The memory a message in flight is charged at least (see `Bounds::in_flight_bytes_max`).
pub const MESSAGE_MEMORY_BYTES: u64 = 64;

/// A sync protocol: per-node state, a message type, a timer type, and handlers that act through
/// a [`Ctx`]. Every handler but [`Protocol::init`] and [`Protocol::on_message`] has a default
/// that does nothing.
pub trait Protocol<C: OpCrdt>: Sized {
    /// What travels between nodes. Copies of one message (duplicates, one message sent to many
    /// peers) share it, so it needs no `Clone`.
    type Message;
    /// What each node keeps (the relay server, when the topology has one, is a node too).
    type Node;
    /// What a timer carries back to its node when it fires.
    type Timer;

    /// The protocol's name in reports and counterexamples.
    fn name(&self) -> String {
        let path = std::any::type_name::<Self>();
        let name = path.split('<').next().unwrap_or(path);
        name.rsplit("::").next().unwrap_or(name).to_string()
    }

    /// Whether messages, logs or timers hold [`Update`] handles. Only a protocol that ships
    /// whole states may say no; the run then keeps only the first
    /// `bounds.update-records-kept-max` update records, so a long run holds bounded memory.
    fn refers_to_updates(&self) -> bool {
        true
    }

    /// A node's protocol state at the start, and again after a restart that lost the node's
    /// state. It may read the context, not act on it.
    fn init(&self, ctx: &Ctx<'_, C, Self>) -> Self::Node;

    /// At time zero, for every node (late joiners too, before they join): set the first timers.
    fn on_start(&self, _node: &mut Self::Node, _ctx: &mut Ctx<'_, C, Self>) {}

    /// The node's replica issued `update` and has already applied it.
    fn on_write(&self, _node: &mut Self::Node, _update: Update, _ctx: &mut Ctx<'_, C, Self>) {}

    /// `message` from `from` arrived at this node (which is up).
    fn on_message(
        &self,
        node: &mut Self::Node,
        from: NodeId,
        message: &Self::Message,
        ctx: &mut Ctx<'_, C, Self>,
    );

    /// A timer set with [`Ctx::set_timer`] fired (also while the node is down: see
    /// [`Ctx::is_up`]).
    fn on_timer(&self, _node: &mut Self::Node, _timer: Self::Timer, _ctx: &mut Ctx<'_, C, Self>) {}

    /// A late joiner joined.
    fn on_join(&self, _node: &mut Self::Node, _ctx: &mut Ctx<'_, C, Self>) {}

    /// The node crashed; it is down already, so anything it sends is lost.
    fn on_crash(&self, _node: &mut Self::Node, _ctx: &mut Ctx<'_, C, Self>) {}

    /// The node restarted: with its state kept, or with replica and protocol state rebuilt (the
    /// node's state is then fresh from [`Protocol::init`]).
    fn on_restart(&self, _node: &mut Self::Node, _restart: Restart, _ctx: &mut Ctx<'_, C, Self>) {}

    /// The node is about to leave for good; what it sends now still goes out.
    fn on_leave(&self, _node: &mut Self::Node, _ctx: &mut Ctx<'_, C, Self>) {}

    /// The connection to `peer` dropped (a `connection-drop` fault): whatever was in flight on
    /// it in either direction is lost, and so is anything sent to `peer` until
    /// [`Protocol::on_connect`]. A protocol that keeps "what the peer has" per connection resets
    /// it here or on the reconnect; one that keeps believing its unacknowledged sends arrived
    /// stalls.
    fn on_disconnect(&self, _node: &mut Self::Node, _peer: NodeId, _ctx: &mut Ctx<'_, C, Self>) {}

    /// The connection to `peer` is back after a drop; both ends are told, each with its own
    /// call. A real client resynchronizes here (a handshake, a resend from the last
    /// acknowledged position).
    fn on_connect(&self, _node: &mut Self::Node, _peer: NodeId, _ctx: &mut Ctx<'_, C, Self>) {}

    /// The size of `message` on the wire, counted in the run's bytes sent. The default counts a
    /// header only; [`Ctx::op_bytes`] and [`Snapshot::size_bytes`] give the parts' sizes.
    fn message_bytes(&self, _message: &Self::Message, _ctx: &Ctx<'_, C, Self>) -> u64 {
        HEADER_BYTES
    }

    /// The memory a copy of `message` in flight is charged against
    /// `bounds.in-flight-bytes-max`, so that a protocol that floods the network ends the run at
    /// a named bound instead of exhausting memory. Count what grows with the run (lists of
    /// updates, states); the default charges a fixed cost plus the message's own size.
    fn message_memory_bytes(&self, _message: &Self::Message) -> u64 {
        MESSAGE_MEMORY_BYTES + std::mem::size_of::<Self::Message>() as u64
    }

    /// Whether the protocol ships deltas ([`Ctx::delta_since`]). A run of a protocol that says
    /// yes over a type without deltas ([`converge_crdt::StateCrdt::deltas`] is `None`) refuses to
    /// start, with an error that names the type, instead of failing at its first delta.
    fn ships_deltas(&self) -> bool {
        false
    }

    /// Whether the protocol applies updates away from their origin ([`Ctx::apply`] of a
    /// received op). A run of a protocol that says yes over a state-only type
    /// ([`converge_crdt::StateOnly`]) refuses to start, naming both; a protocol that applies one
    /// without saying so ends the run as a panic that says so.
    fn ships_ops(&self) -> bool {
        false
    }
}

/// How a node came back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Restart {
    /// Whether the replica's state and the protocol state survived the crash.
    pub durable: bool,
    /// How many times this node has restarted, this time included.
    pub incarnation: u32,
}

/// An update issued in this run, as messages carry it: a handle (its place in issue order), from
/// which [`Ctx::op`] reads the op and [`Ctx::update_id`] its id. [`Ctx::apply`] delivers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Update(pub(crate) u32);

impl Update {
    /// The update's place in issue order (its bit in every [`UpdateSet`]).
    pub fn index(self) -> u32 {
        self.0
    }
}

/// A timer set with [`Ctx::set_timer`], to cancel it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId(pub(crate) u64);

/// A copy of a node's replica state and of the updates it holds, as a state message carries it.
/// Cloning shares the copy.
pub struct Snapshot<C>(pub(crate) Arc<SnapshotCopy<C>>);

impl<C> Clone for Snapshot<C> {
    fn clone(&self) -> Self {
        Snapshot(Arc::clone(&self.0))
    }
}

impl<C: std::hash::Hash> std::hash::Hash for Snapshot<C> {
    /// The copied state and the updates it holds, as a model checker fingerprints a message.
    fn hash<H: std::hash::Hasher>(&self, hasher: &mut H) {
        self.0.state.hash(hasher);
        self.0.delivered.hash(hasher);
    }
}

impl<C: std::fmt::Debug> std::fmt::Debug for Snapshot<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("state", &self.0.state)
            .field("updates", &self.0.delivered.len())
            .finish()
    }
}

pub(crate) struct SnapshotCopy<C> {
    pub(crate) state: C,
    pub(crate) delivered: UpdateSet,
}

impl<C: OpCrdt> Snapshot<C> {
    /// The copied state.
    pub fn state(&self) -> &C {
        &self.0.state
    }

    /// The updates the copied state holds.
    pub fn delivered(&self) -> &UpdateSet {
        &self.0.delivered
    }

    /// The state's encoded size ([`converge_crdt::StateCrdt::size_bytes`]).
    pub fn size_bytes(&self) -> u64 {
        self.0.state.size_bytes() as u64
    }

    /// The memory a message holding the copy is charged beyond a fixed cost: the state's memory
    /// ([`converge_crdt::StateCrdt::memory_bytes`]) and its delivered set. Copies in flight are charged one by one even where they share a
    /// state, so that the bound errs on the safe side (three replicas of a 256x256 grid at a high
    /// write rate with 5 s of latency grew to 14.6 GB when only the sets were charged).
    pub fn memory_bytes(&self) -> u64 {
        self.0.state.memory_bytes() as u64 + self.0.delivered.memory_bytes()
    }
}

/// A delta as a message carries it: what [`converge_crdt::DeltaCrdt::delta_since`] returned at
/// the sender, with the updates the sender held and the updates the delta covers (those the
/// sender learned after the version it was taken since). Cloning shares the copy.
///
/// A delta is a state of its own, and merging it has the effect of merging the sender's whole
/// state only at a replica that already holds what the sender held at that version (the delta
/// contract). So [`Ctx::merge_delta`] takes it only where the receiver holds every update the
/// sender held except the covered ones; there the receiver then holds what the sender held,
/// exactly as after a snapshot, and the delivered sets stay exact.
pub struct Delta<C>(pub(crate) Arc<DeltaCopy<C>>);

pub(crate) struct DeltaCopy<C> {
    pub(crate) state: C,
    /// The updates the sender held when it took the delta.
    pub(crate) delivered: UpdateSet,
    /// The indices of the updates the delta covers, sorted.
    pub(crate) covers: Vec<u32>,
}

impl<C> Clone for Delta<C> {
    fn clone(&self) -> Self {
        Delta(Arc::clone(&self.0))
    }
}

impl<C: std::hash::Hash> std::hash::Hash for Delta<C> {
    fn hash<H: std::hash::Hasher>(&self, hasher: &mut H) {
        self.0.state.hash(hasher);
        self.0.delivered.hash(hasher);
        self.0.covers.hash(hasher);
    }
}

impl<C: std::fmt::Debug> std::fmt::Debug for Delta<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delta")
            .field("state", &self.0.state)
            .field("covers", &self.0.covers.len())
            .finish()
    }
}

impl<C: OpCrdt> Delta<C> {
    /// The delta state.
    pub fn state(&self) -> &C {
        &self.0.state
    }

    /// The updates the delta covers, in issue order.
    pub fn covers(&self) -> impl ExactSizeIterator<Item = Update> + '_ {
        self.0.covers.iter().map(|i| Update(*i))
    }

    /// The delta state's encoded size ([`converge_crdt::StateCrdt::size_bytes`]).
    pub fn size_bytes(&self) -> u64 {
        self.0.state.size_bytes() as u64
    }

    /// The memory a message holding the delta is charged beyond a fixed cost (see
    /// [`Snapshot::memory_bytes`]).
    pub fn memory_bytes(&self) -> u64 {
        self.0.state.memory_bytes() as u64
            + self.0.delivered.memory_bytes()
            + 4 * self.0.covers.len() as u64
    }
}

/// [`Ctx::merge_delta`] refused a delta: the receiver lacks updates the sender held before the
/// version the delta was taken since, so merging it would not give the receiver what the sender
/// held. Nothing changed; a protocol falls back to a whole state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MissingBase {
    /// How many such updates the receiver lacks.
    pub lacking: u32,
}

impl std::fmt::Display for MissingBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the receiver lacks {} update(s) the delta builds on",
            self.lacking
        )
    }
}

impl std::error::Error for MissingBase {}

/// Where two slices of the other nodes' protocol states sit around the node being handled.
pub(crate) struct Others<'a, N> {
    pub(crate) before: &'a [N],
    pub(crate) after: &'a [N],
}

/// What a handler may read and do: the node's replica, the run's updates, the topology, and the
/// commands (send, timers, merge, apply).
pub struct Ctx<'a, C: OpCrdt, P: Protocol<C>> {
    pub(crate) net: &'a mut Net<C, P>,
    pub(crate) protocol: &'a P,
    pub(crate) node: NodeId,
    pub(crate) others: Others<'a, P::Node>,
    /// The message being handled, so that it can be passed on without a copy.
    pub(crate) received: Option<&'a Arc<P::Message>>,
}

impl<C: OpCrdt, P: Protocol<C>> Ctx<'_, C, P> {
    // ----- reading -----

    /// This node.
    pub fn id(&self) -> NodeId {
        self.node
    }

    /// Virtual time, in microseconds.
    pub fn now_us(&self) -> u64 {
        self.net.now_us
    }

    /// Replicas in the run (nodes `0..replicas`).
    pub fn replicas(&self) -> u32 {
        self.net.replicas
    }

    /// All nodes: the replicas, then the relay server when the topology has one.
    pub fn nodes(&self) -> u32 {
        self.net.nodes.len() as u32
    }

    /// The relay server, when the topology has one.
    pub fn server(&self) -> Option<NodeId> {
        self.net.server
    }

    /// Whether this node is the relay server.
    pub fn is_server(&self) -> bool {
        self.net.server == Some(self.node)
    }

    /// Whether this node is up (not crashed, waiting to join, or gone).
    pub fn is_up(&self) -> bool {
        self.status_of(self.node) == Status::Up
    }

    /// Whether `node` is up, as the simulator knows it (a real protocol learns it from the
    /// network; the relay server uses it to skip clients that are not connected).
    pub fn status_of(&self, node: NodeId) -> Status {
        self.net.nodes[node as usize].status
    }

    /// Whether the connection from this node to `peer` is up: false between a
    /// `connection-drop` fault and its reconnect ([`Protocol::on_disconnect`],
    /// [`Protocol::on_connect`]). Links that no fault dropped are always connected.
    pub fn is_connected(&self, peer: NodeId) -> bool {
        !self.net.is_disconnected(self.node, peer)
    }

    /// How many times this node has restarted.
    pub fn incarnation(&self) -> u32 {
        self.net.incarnations[self.node as usize]
    }

    /// The scenario's `[protocol]` options (fanout, interval, retransmission, snapshot on join).
    pub fn options(&self) -> &ProtocolSpec {
        &self.net.spec
    }

    /// This node's replica state.
    pub fn state(&self) -> &C {
        &self.net.nodes[self.node as usize].crdt
    }

    /// The updates this node's replica holds.
    pub fn delivered(&self) -> &UpdateSet {
        &self.net.nodes[self.node as usize].delivered
    }

    /// Whether this node's replica holds `update`.
    pub fn holds(&self, update: Update) -> bool {
        self.delivered().contains(update.0)
    }

    /// The updates of `updates` (a snapshot's, say) this node's replica does not hold, in issue
    /// order.
    pub fn lacking(&self, updates: &UpdateSet) -> Vec<Update> {
        updates.difference(self.delivered()).map(Update).collect()
    }

    /// This node's replica's [`converge_crdt::DeltaCrdt::version`], if its type has deltas.
    pub fn version(&self) -> Option<u64> {
        C::deltas().map(|deltas| (deltas.version)(self.state()))
    }

    /// The op of `update`.
    pub fn op(&self, update: Update) -> &C::Op {
        &self.record(update).op
    }

    /// The id (origin and sequence number) of `update`.
    pub fn update_id(&self, update: Update) -> UpdateId {
        self.record(update).id
    }

    /// The encoded size of `update`'s op ([`OpCrdt::op_size_bytes`]).
    pub fn op_bytes(&self, update: Update) -> u64 {
        C::op_size_bytes(&self.record(update).op) as u64
    }

    /// `origin`'s updates in the order it issued them (the n-th has sequence number n + 1).
    pub fn updates_by(&self, origin: ReplicaId) -> impl ExactSizeIterator<Item = Update> + '_ {
        self.net.by_origin[origin as usize]
            .iter()
            .map(|i| Update(*i))
    }

    /// Another node's protocol state, as the simulator holds it. Real nodes cannot look at each
    /// other; this is for reproducing behaviour a real system gets through a side channel.
    pub fn peek(&self, node: NodeId) -> &P::Node {
        let before = self.others.before.len() as NodeId;
        assert_ne!(node, self.node, "a node peeks at another node, not itself");
        if node < before {
            &self.others.before[node as usize]
        } else {
            &self.others.after[(node - before - 1) as usize]
        }
    }

    fn record(&self, update: Update) -> &UpdateRecord<C> {
        let records = &self.net.updates;
        // The writer's own update is last while its write is handled, perhaps beyond the kept
        // records; every other update is at its index.
        let record = &records[(update.0 as usize).min(records.len() - 1)];
        assert_eq!(
            record.index, update.0,
            "update {} was not kept: a protocol that refers to updates must say so in \
             Protocol::refers_to_updates",
            update.0
        );
        record
    }

    // ----- the topology -----

    /// Where this node pushes news: the relay server (from a client), every connected client but
    /// `except` (from the server), every other replica (mesh), or `fanout` random replicas
    /// (gossip).
    pub fn push_targets(&mut self, except: Option<NodeId>) -> Targets {
        self.net.push_targets(self.node, except)
    }

    /// `fanout` distinct random peers (through the server in a relay), drawn from the run's
    /// `protocol` stream.
    pub fn random_peers(&mut self) -> Vec<NodeId> {
        self.net.random_peers(self.node)
    }

    /// Whether this node passes on what it receives to its own push targets: the relay server
    /// always, a gossiping replica when it learned something, a mesh replica never.
    pub fn forwards(&self, learned: bool) -> bool {
        self.net.forwards(self.node, learned)
    }

    /// A number drawn uniformly from `0..bound` from the run's `protocol` stream.
    pub fn random_below(&mut self, bound: u64) -> u64 {
        self.net.protocol_stream.below(bound)
    }

    // ----- commands -----

    /// Sends `message` to `to`.
    pub fn send(&mut self, to: NodeId, message: P::Message) {
        let bytes = self.protocol.message_bytes(&message, self);
        let message = self.net.share(message);
        self.net.outbox.push(Command::Send { to, message, bytes });
    }

    /// Sends one `message` to every node of `targets`; the copies share it.
    pub fn send_all(&mut self, targets: impl IntoIterator<Item = NodeId>, message: P::Message) {
        let bytes = self.protocol.message_bytes(&message, self);
        let message = self.net.share(message);
        for to in targets {
            self.net.outbox.push(Command::Send {
                to,
                message: Arc::clone(&message),
                bytes,
            });
        }
    }

    /// Passes the message being handled on to every node of `targets`, unchanged and unshared
    /// with nothing new (a relay's forward). Outside [`Protocol::on_message`] it sends nothing.
    pub fn forward(&mut self, targets: impl IntoIterator<Item = NodeId>) {
        let Some(received) = self.received else {
            return;
        };
        let bytes = self.protocol.message_bytes(received, self);
        for to in targets {
            self.net.outbox.push(Command::Send {
                to,
                message: Arc::clone(received),
                bytes,
            });
        }
    }

    /// Fires `timer` at this node `after_us` from now.
    pub fn set_timer(&mut self, after_us: u64, timer: P::Timer) -> TimerId {
        let id = TimerId(self.net.next_timer);
        self.net.next_timer += 1;
        let at_us = self.net.now_us.saturating_add(after_us);
        self.net.outbox.push(Command::Timer { at_us, id, timer });
        id
    }

    /// Cancels a timer that has not fired yet (nothing happens if it has).
    pub fn cancel_timer(&mut self, timer: TimerId) {
        self.net.cancelled_timers.insert(timer.0);
    }

    /// A copy of this node's state and the updates it holds, for a state message.
    pub fn snapshot(&mut self) -> Snapshot<C> {
        self.net.snapshot(self.node)
    }

    /// A copy of the part of this node's state under the keys in `ranges` (sorted, disjoint),
    /// carrying exactly the updates this node holds under those keys, for protocols that
    /// exchange key ranges (Merkle anti-entropy); `None` when the CRDT has no key ranges
    /// ([`converge_crdt::StateCrdt::restricted`]).
    ///
    /// Why the carried set is exact: this node's state is the join of the effects of the
    /// updates it holds (every replica changes only through merges and applies, which keep that
    /// true). In a type with key ranges every op changes only its key's entry
    /// ([`converge_crdt::OpCrdt::op_key`]) and the part under some keys is the join of the
    /// effects of exactly the held updates whose keys lie there
    /// ([`converge_crdt::StateCrdt::restricted`]). So the copy holds the effect of each update
    /// of its set and of no other, as a whole-state snapshot does, and merging it leaves the
    /// receiver's state the join of the effects of the updates its delivered set names.
    ///
    /// # Panics
    /// If the CRDT gives a part but no key for one of the ops this node holds: a type with key
    /// ranges must key every op.
    pub fn snapshot_keys(&self, ranges: &[std::ops::Range<u64>]) -> Option<Snapshot<C>> {
        let state = self.state().restricted(ranges)?;
        let mut delivered = UpdateSet::default();
        for index in self.delivered().iter() {
            let key = C::op_key(self.op(Update(index))).unwrap_or_else(|| {
                panic!(
                    "{} gives parts of its state under key ranges (StateCrdt::restricted) but \
                     no key for an op it holds (OpCrdt::op_key)",
                    std::any::type_name::<C>()
                )
            });
            // The ranges are sorted and disjoint: the last one starting at or before the key is
            // the only one that can hold it.
            let at = ranges.partition_point(|range| range.start <= key);
            if at > 0 && key < ranges[at - 1].end {
                delivered.insert(index);
            }
        }
        Some(Snapshot(Arc::new(SnapshotCopy { state, delivered })))
    }

    /// Merges a received state into this node's replica; returns whether it learned updates it
    /// did not hold.
    pub fn merge(&mut self, snapshot: &Snapshot<C>) -> bool {
        self.net.merge(self.node, snapshot)
    }

    /// Hands `update`'s op to this node's replica ([`OpCrdt::apply`]), as a real application
    /// does with every copy its network delivers: also when the replica holds the update already
    /// (a duplicate). Returns whether the update was new here. The replica's delivered set gains
    /// it the first time only (a set holds an update once), so a duplicate that moves the view of
    /// a type whose `apply` is not idempotent leaves replicas that delivered the same updates
    /// with different views: strong convergence fails at that delivery. The trace's `changed`
    /// flag of a delivery says the same as the return value, whether the node learned an update.
    /// A protocol that deduplicates checks [`Ctx::holds`] (or its own sequence numbers) first.
    pub fn apply(&mut self, update: Update) -> bool {
        self.net.apply(self.node, update.0)
    }

    /// What this node's replica changed after `version` ([`converge_crdt::DeltaCrdt::delta_since`]),
    /// for a delta message, with `covers`, the updates the replica learned after it was at
    /// `version` (a protocol names them from its own log). `None` when the type has no deltas.
    ///
    /// Naming an update the replica does not hold is a protocol bug and panics. Naming fewer
    /// than the replica learned since `version` is safe: the receiver must then already hold
    /// the ones left out, and [`Ctx::merge_delta`] refuses the delta where it does not.
    pub fn delta_since(&mut self, version: u64, covers: &[Update]) -> Option<Delta<C>> {
        let deltas = C::deltas()?;
        let replica = &self.net.nodes[self.node as usize];
        let mut covered: Vec<u32> = covers.iter().map(|u| u.0).collect();
        covered.sort_unstable();
        covered.dedup();
        if let Some(stranger) = covered.iter().find(|i| !replica.delivered.contains(**i)) {
            panic!(
                "node {} names update {stranger} in a delta, which its replica does not hold: a \
                 delta covers only updates its sender learned after the version it is taken since",
                self.node
            );
        }
        Some(Delta(Arc::new(DeltaCopy {
            state: (deltas.delta_since)(&replica.crdt, version),
            delivered: replica.delivered.clone(),
            covers: covered,
        })))
    }

    /// Merges a received delta into this node's replica, if the replica holds every update the
    /// sender held but those the delta covers; returns whether it learned updates it did not
    /// hold. Where the replica lacks more, merging would not give it what the sender held, so
    /// nothing changes and the result says how many it lacks ([`MissingBase`]).
    pub fn merge_delta(&mut self, delta: &Delta<C>) -> Result<bool, MissingBase> {
        self.net.merge_delta(self.node, delta)
    }

    /// Counts a retransmission in the run's coverage (the report shows how many were needed).
    pub fn count_retransmission(&mut self) {
        self.net.coverage.retransmissions += 1;
    }
}

/// The protocol a run is handed, as one object: the scenario's built-in protocol
/// ([`ScenarioProtocol`]) or a user's ([`UserProtocol`]). Judging, shrinking and `Verify` take
/// a `&dyn Runner`, so they work with any protocol without being generic over it.
pub trait Runner<C: OpCrdt> {
    /// Runs `scenario` with `seed` under this protocol (see [`crate::run_protocol`]).
    fn run(
        &self,
        scenario: &Scenario,
        seed: u64,
        make: &dyn Replicas<C>,
        observer: &mut dyn Observer<C>,
    ) -> Result<Outcome<C>, ScenarioError>;

    /// The protocol's name in reports.
    fn name(&self, scenario: &Scenario) -> String;

    /// Whether this is the scenario's own built-in protocol, which a scenario file alone
    /// reproduces (a user's protocol needs the user's code).
    fn is_builtin(&self) -> bool {
        false
    }
}

/// The built-in protocol the scenario's `[protocol] kind` names.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScenarioProtocol;

impl<C: OpCrdt> Runner<C> for ScenarioProtocol {
    fn run(
        &self,
        scenario: &Scenario,
        seed: u64,
        make: &dyn Replicas<C>,
        observer: &mut dyn Observer<C>,
    ) -> Result<Outcome<C>, ScenarioError> {
        crate::run(scenario, seed, make, observer)
    }

    fn name(&self, scenario: &Scenario) -> String {
        scenario.protocol.kind.name().to_string()
    }

    fn is_builtin(&self) -> bool {
        true
    }
}

/// A user's protocol, run over the scenario's topology with its `[protocol]` options.
#[derive(Clone, Copy, Debug, Default)]
pub struct UserProtocol<P>(pub P);

impl<C: OpCrdt, P: Protocol<C>> Runner<C> for UserProtocol<P> {
    fn run(
        &self,
        scenario: &Scenario,
        seed: u64,
        make: &dyn Replicas<C>,
        observer: &mut dyn Observer<C>,
    ) -> Result<Outcome<C>, ScenarioError> {
        crate::run_protocol(scenario, seed, &self.0, make, observer)
    }

    fn name(&self, _scenario: &Scenario) -> String {
        self.0.name()
    }
}
