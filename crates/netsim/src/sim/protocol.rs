//! What each replication protocol sends, and what a node does with what it receives: state
//! broadcast and its relay fan-out, anti-entropy payloads, op broadcast, reliable causal broadcast
//! (acks, retransmission with backoff, the causal delivery buffer) and delta sync (log positions
//! with pruning and snapshot fallback, or version vectors).

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use converge_crdt::OpCrdt;

use super::{Action, Sim, BACKOFF_DOUBLINGS_MAX, HEADER_BYTES};
use crate::outcome::{DropCause, EventKind, NodeId, Status, UpdateSet};
use crate::scenario::{DeltaPosition, ProtocolKind, Topology};

/// What travels in a message. States and op lists are shared between copies (duplicates, relay
/// fan-out) instead of cloned.
pub(super) enum Payload<C> {
    State {
        state: C,
        delivered: UpdateSet,
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
        position: LogPosition,
        vector: Option<Rc<[u32]>>,
        /// A joiner's first request: answer with a snapshot of the whole state.
        snapshot: bool,
    },
    DeltaReply {
        ops: Rc<[u32]>,
        next_position: LogPosition,
        snapshot: Option<(C, UpdateSet)>,
    },
}

/// A place in a node's delta-sync log. A node that restarts with its state lost starts a new log,
/// in a new epoch: a position from an earlier epoch says nothing about the new log, and reading it
/// as one would skip the new log's first entries (or slice past its end).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct LogPosition {
    pub(super) epoch: u32,
    pub(super) position: u64,
}

impl<C> Payload<C> {
    /// The memory a copy of this payload in flight is charged against
    /// `Bounds::in_flight_bytes_max`: a fixed cost per message, plus what grows with the run, the
    /// delivered-update sets that travel with states (one bit per update issued) and the lists of
    /// update indices. A state's own size is bounded by the scenario caps instead.
    pub(super) fn memory_bytes(&self) -> u64 {
        const MESSAGE_BYTES: u64 = 64;
        MESSAGE_BYTES
            + match self {
                Payload::State { delivered, .. } => delivered.memory_bytes(),
                Payload::Ops(ops) => 4 * ops.len() as u64,
                Payload::DeltaRequest { vector, .. } => {
                    vector.as_ref().map_or(0, |v| 4 * v.len() as u64)
                }
                Payload::DeltaReply { ops, snapshot, .. } => {
                    4 * ops.len() as u64 + snapshot.as_ref().map_or(0, |(_, d)| d.memory_bytes())
                }
                Payload::Reliable { .. } | Payload::Ack { .. } | Payload::SnapshotRequest => 0,
            }
    }
}

/// State payloads kept for reuse at most (see `Sim::recycle`): about what is in flight at once
/// in a small run; beyond it payloads are freed as usual.
pub(super) const SPARE_STATES_MAX: usize = 64;

/// The nodes a message goes to. Every other replica, the common case, is counted off without
/// allocating: a list per write was a twentieth of a run.
pub(super) enum Targets {
    /// The nodes from `next` up to `end` but the `skip` ones (`NodeId::MAX` skips nothing: no
    /// node has that id).
    Others {
        next: NodeId,
        end: NodeId,
        skip: [NodeId; 2],
    },
    Listed(std::vec::IntoIter<NodeId>),
}

impl Iterator for Targets {
    type Item = NodeId;

    fn next(&mut self) -> Option<NodeId> {
        match self {
            Targets::Others { next, end, skip } => {
                while *next < *end {
                    let node = *next;
                    *next += 1;
                    if node != skip[0] && node != skip[1] {
                        return Some(node);
                    }
                }
                None
            }
            Targets::Listed(list) => list.next(),
        }
    }
}

impl Targets {
    pub(super) fn is_empty(&self) -> bool {
        match self {
            Targets::Others { next, end, skip } => (*next..*end).all(|node| skip.contains(&node)),
            Targets::Listed(list) => list.len() == 0,
        }
    }
}

/// Per-node protocol bookkeeping (the relay server has one too).
#[derive(Default)]
pub(super) struct Protocol {
    /// Updates applied here, in order: the delta-sync log. `log[i]` is at position `log_base + i`.
    pub(super) log: Vec<u32>,
    pub(super) log_base: u64,
    /// How many times this node restarted with its state lost: the epoch of its current log.
    pub(super) log_epoch: u32,
    /// The position reached in each peer's log.
    pub(super) positions_in_peer: BTreeMap<NodeId, LogPosition>,
    /// The position each peer has reached in this node's log (from its requests).
    pub(super) peer_positions: BTreeMap<NodeId, u64>,
    /// Per origin, how many of its updates were delivered here without a gap.
    pub(super) vector: Vec<u32>,
    /// Reliable causal: received updates waiting for their dependencies.
    pub(super) buffer: BTreeSet<u32>,
    /// Reliable causal: `(peer, update)` sent and not yet acknowledged.
    pub(super) outstanding: BTreeSet<(NodeId, u32)>,
    /// Delta sync: this node joined or restarted and its next poll asks for a snapshot.
    pub(super) wants_snapshot: bool,
    /// A joiner that asked for a snapshot and has not received a state since.
    pub(super) awaiting_snapshot: bool,
}

/// What a delta-sync request asks for.
pub(super) struct DeltaRequest<'a> {
    /// The requester's position in the answering node's log (log-position mode).
    pub(super) position: LogPosition,
    /// The requester's contiguous delivery vector (version-vector mode).
    pub(super) vector: Option<&'a [u32]>,
    /// Whether the requester wants a snapshot of the whole state (it just joined).
    pub(super) snapshot: bool,
}

impl<C: OpCrdt> Sim<'_, C> {
    /// A state message from `node`: a copy of its state and delivered set, written over a spare
    /// payload when there is one (see `recycle`), and its size on the wire.
    pub(super) fn state_payload(&mut self, node: NodeId) -> (Rc<Payload<C>>, u64) {
        let replica = &self.nodes[node as usize];
        let bytes = HEADER_BYTES + replica.crdt.size_bytes() as u64;
        if let Some(mut spare) = self.spare_states.pop() {
            if let Some(Payload::State { state, delivered }) = Rc::get_mut(&mut spare) {
                state.clone_from(&replica.crdt);
                delivered.clone_from(&replica.delivered);
                return (spare, bytes);
            }
            unreachable!("spare payloads are unshared states");
        }
        let payload = Payload::State {
            state: replica.crdt.clone(),
            delivered: replica.delivered.clone(),
        };
        (Rc::new(payload), bytes)
    }

    /// Keeps a state payload nothing else refers to any more for the next state message, so that
    /// its buffers are written over instead of freed and allocated again (allocating three blocks
    /// per broadcast and freeing them at the last delivery was a tenth of a run).
    pub(super) fn recycle(&mut self, payload: Rc<Payload<C>>) {
        if self.spare_states.len() < SPARE_STATES_MAX
            && Rc::strong_count(&payload) == 1
            && matches!(*payload, Payload::State { .. })
        {
            self.spare_states.push(payload);
        }
    }

    /// Where a node pushes news: the server (from a client), every connected client but `except`
    /// (from the server), every other replica (mesh), or `fanout` random replicas (gossip).
    pub(super) fn push_targets(&mut self, node: NodeId, except: Option<NodeId>) -> Targets {
        match (self.scenario.protocol.topology, self.server) {
            (Topology::Relay, Some(server)) if node == server => Targets::Listed(
                (0..self.replicas)
                    .filter(|c| Some(*c) != except && self.nodes[*c as usize].status == Status::Up)
                    .collect::<Vec<_>>()
                    .into_iter(),
            ),
            (Topology::Relay, Some(server)) => Targets::Others {
                next: server,
                end: server + 1,
                skip: [NodeId::MAX; 2],
            },
            (Topology::Gossip, _) => Targets::Listed(
                self.random_peers(node)
                    .into_iter()
                    .filter(|p| Some(*p) != except)
                    .collect::<Vec<_>>()
                    .into_iter(),
            ),
            _ => Targets::Others {
                next: 0,
                end: self.replicas,
                skip: [node, except.unwrap_or(NodeId::MAX)],
            },
        }
    }

    /// `fanout` distinct random peers (anti-entropy rounds and gossip); through the server in a relay.
    pub(super) fn random_peers(&mut self, node: NodeId) -> Vec<NodeId> {
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

    pub(super) fn poll_peers(&mut self, node: NodeId) -> Targets {
        match self.scenario.protocol.topology {
            Topology::Gossip => Targets::Listed(self.random_peers(node).into_iter()),
            _ => self.push_targets(node, None),
        }
    }

    pub(super) fn send_reliable(&mut self, from: NodeId, to: NodeId, update: u32) {
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

    pub(super) fn retransmit(&mut self, node: NodeId, to: NodeId, update: u32, attempt: u32) {
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

    pub(super) fn deliver(
        &mut self,
        message: u64,
        from: NodeId,
        to: NodeId,
        payload: &Rc<Payload<C>>,
        copy: bool,
    ) {
        if self.nodes[to as usize].status != Status::Up {
            self.drop_message(from, to, message, DropCause::Down);
            return;
        }
        self.messages.delivered += 1;
        if copy {
            self.coverage.duplicate_deliveries += 1;
        }
        if self.last_on_link.deliver_is_reordered(from, to, message) {
            self.coverage.reordered_deliveries += 1;
        }
        let mut followups: Vec<(NodeId, Rc<Payload<C>>, u64)> = Vec::new();
        let mut reliable_forwards: Vec<u32> = Vec::new();
        let is_server = Some(to) == self.server;
        let changed = match &**payload {
            Payload::State { state, delivered } => {
                let learned = self.merge_state(to, state, delivered);
                if learned && self.scenario.protocol.kind == ProtocolKind::ReliableCausal {
                    // A snapshot can fill the causal gap that buffered updates wait on; their acks
                    // went out on arrival, so nothing else would wake them.
                    reliable_forwards = self.deliver_causal(to);
                }
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
            Payload::DeltaRequest {
                position,
                vector,
                snapshot,
            } => {
                let request = DeltaRequest {
                    position: *position,
                    vector: vector.as_deref(),
                    snapshot: *snapshot,
                };
                let reply = self.delta_reply(to, from, request);
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
    pub(super) fn deliver_causal(&mut self, node: NodeId) -> Vec<u32> {
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

    pub(super) fn delta_reply(
        &mut self,
        node: NodeId,
        peer: NodeId,
        request: DeltaRequest<'_>,
    ) -> (NodeId, Rc<Payload<C>>, u64) {
        let DeltaRequest {
            position,
            vector,
            snapshot,
        } = request;
        let protocol = &mut self.protocols[node as usize];
        let log_end = protocol.log_base + protocol.log.len() as u64;
        // A position in an earlier epoch's log: the requester holds nothing of this log yet.
        let position = if position.epoch == protocol.log_epoch {
            position.position
        } else {
            0
        };
        assert!(
            position <= log_end,
            "a requester is at {position} in a log of {log_end} entries"
        );
        let (ops, snapshot, next_position): (Vec<u32>, bool, u64) = match vector {
            // A snapshot holds everything the log could: the requester continues from the end.
            _ if snapshot => {
                if vector.is_none() {
                    protocol.peer_positions.insert(peer, log_end);
                }
                (Vec::new(), true, log_end)
            }
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
            (replica.crdt.clone(), replica.delivered.clone())
        });
        let payload = Payload::DeltaReply {
            ops: Rc::from(ops.as_slice()),
            next_position: LogPosition {
                epoch: self.protocols[node as usize].log_epoch,
                position: next_position,
            },
            snapshot,
        };
        (peer, Rc::new(payload), bytes)
    }
}
