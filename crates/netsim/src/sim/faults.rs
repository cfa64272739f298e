//! Faults: partition-like cuts evaluated per message, crashes and restarts (durable or volatile),
//! late joins, permanent leaves, relay-server outages, and swarm mode's faults drawn from the
//! `faults` stream.

use std::rc::Rc;

use converge_crdt::{Clock, OpCrdt, ReplicaId};

use super::protocol::{LogPosition, Protocol};
use super::{fresh_protocol, Action, Payload, Sim, BACKOFF_DOUBLINGS_MAX, HEADER_BYTES};
use crate::outcome::{EventKind, NodeId, Status, UpdateSet};
use crate::scenario::{Direction, Durability, FaultSpec, ProtocolKind, Scenario, Topology};
use crate::streams::Stream;
use crate::time::SimDuration;

/// An active partition-like fault, as a rule over (from, to).
pub(super) enum Cut {
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

pub(super) fn group_of(groups: &[Vec<NodeId>], node: NodeId) -> usize {
    groups
        .iter()
        .position(|g| g.contains(&node))
        .unwrap_or(groups.len())
}

impl Cut {
    pub(super) fn blocks(&self, from: NodeId, to: NodeId) -> bool {
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

    pub(super) fn side_of(&self, node: NodeId) -> usize {
        match self {
            Cut::Groups { groups, .. } | Cut::Bridge { groups, .. } => group_of(groups, node),
            Cut::Isolate(isolated) => usize::from(node == *isolated),
        }
    }
}

impl<C: OpCrdt> Sim<'_, C> {
    pub(super) fn fault_start(&mut self, fault: u32) {
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

    pub(super) fn fault_end(&mut self, fault: u32) {
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
                    let epoch = self.protocols[replica as usize].log_epoch + 1;
                    self.protocols[replica as usize] = Protocol {
                        log_epoch: epoch,
                        ..fresh_protocol(self.scenario)
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
    pub(super) fn catch_up(&mut self, replica: ReplicaId) {
        let protocol = self.scenario.protocol;
        if protocol.kind == ProtocolKind::DeltaSync {
            if protocol.snapshot_on_join {
                self.protocols[replica as usize].wants_snapshot = true;
            } else {
                // Without a snapshot the joiner starts from its peers' current positions: it sees
                // only what changes from now on.
                for peer in self.push_targets(replica, None) {
                    let peer_protocol = &self.protocols[peer as usize];
                    let end = LogPosition {
                        epoch: peer_protocol.log_epoch,
                        position: peer_protocol.log_base + peer_protocol.log.len() as u64,
                    };
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
        self.protocols[replica as usize].awaiting_snapshot = true;
        self.request_snapshot(replica, 0);
    }

    /// Asks the relay server (or a random peer) for its state, and asks again with backoff until a
    /// state arrives: one lost snapshot must not leave a joiner behind for good.
    pub(super) fn request_snapshot(&mut self, replica: ReplicaId, attempt: u32) {
        let peer = match self.server {
            Some(server) => Some(server),
            None => self.random_peers(replica).first().copied(),
        };
        if let Some(peer) = peer {
            self.send(
                replica,
                peer,
                Rc::new(Payload::SnapshotRequest),
                HEADER_BYTES,
            );
        }
        let timeout_us = self.scenario.protocol.retransmit_timeout.us;
        let backoff_us = timeout_us.saturating_mul(1 << attempt.min(BACKOFF_DOUBLINGS_MAX));
        let next = Action::SnapshotRetry {
            node: replica,
            attempt: attempt + 1,
        };
        self.schedule(self.now_us.saturating_add(backoff_us), next);
    }

    pub(super) fn close_cut_count(&mut self, fault: u32) {
        if let Some((sides, writes)) = self.cut_writes.remove(&fault) {
            if sides.count_ones() >= 2 {
                self.coverage.writes_both_sides_of_partition += writes;
            }
        }
    }

    pub(super) fn close_cut_counts(&mut self) {
        let open: Vec<u32> = self.cut_writes.keys().copied().collect();
        for fault in open {
            self.close_cut_count(fault);
        }
    }
}

/// One fault drawn for swarm mode.
pub(super) fn draw_fault(stream: &mut Stream, scenario: &Scenario) -> FaultSpec {
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
        3 => FaultSpec::Join { at, replica },
        _ => FaultSpec::ServerOutage { at, until: end },
    }
}
