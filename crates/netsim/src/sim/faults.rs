//! Faults: partition-like cuts evaluated per message, crashes and restarts (durable or volatile),
//! late joins, permanent leaves, relay-server outages, and swarm mode's faults drawn from the
//! `faults` stream. What a node's protocol does about a crash, a restart or a join is the
//! protocol's own handler.

use converge_crdt::{OpCrdt, ReplicaId};

use super::Sim;
use crate::outcome::{EventKind, NodeId, Status};
use crate::protocol::Protocol;
use crate::scenario::{Direction, Durability, FaultSpec, Scenario, Topology};
use crate::streams::Stream;
use crate::time::SimDuration;

/// What broke a connection that no `connection-drop` fault dropped. A connection (an in-order
/// link) that a cut blocks or whose other end is down does not lose messages one by one, as a
/// lossy link does: it drops, as a TCP connection does when its peer stops answering, and it
/// comes back when the cut heals or the node is up again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Breaker {
    /// The cut (partition, isolation, bridge) of this fault.
    Cut(u32),
    /// This node was down (crashed, or the relay server in an outage).
    Down(NodeId),
}

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

impl<C: OpCrdt, P: Protocol<C>> Sim<'_, C, P> {
    pub(super) fn fault_start(&mut self, fault: u32) {
        let spec = self.faults[fault as usize].clone();
        match spec {
            FaultSpec::Partition {
                groups, direction, ..
            } => self.cut(fault, Cut::Groups { groups, direction }),
            FaultSpec::Isolate { replica, .. } => self.cut(fault, Cut::Isolate(replica)),
            FaultSpec::Bridge { groups, bridge, .. } => {
                self.cut(fault, Cut::Bridge { groups, bridge })
            }
            FaultSpec::Crash { replica, .. } => {
                if self.net.nodes[replica as usize].status == Status::Up {
                    self.net.nodes[replica as usize].status = Status::Crashed;
                    self.net.coverage.crashes += 1;
                    self.emit(EventKind::Crash { replica }, &[replica]);
                    self.handle_with(replica, None, |protocol, state, ctx| {
                        protocol.on_crash(state, ctx)
                    });
                    self.flush(replica);
                }
            }
            FaultSpec::Join { replica, .. } => {
                if self.net.nodes[replica as usize].status == Status::Waiting {
                    self.net.nodes[replica as usize].status = Status::Up;
                    self.net.coverage.late_joins += 1;
                    self.handle_with(replica, None, |protocol, state, ctx| {
                        protocol.on_join(state, ctx)
                    });
                    self.emit(EventKind::Join { replica }, &[replica]);
                    self.flush(replica);
                    // Connections to it that broke while it had not joined come up now.
                    self.restore_broken_by(Breaker::Down(replica));
                }
            }
            FaultSpec::Leave { replica, .. } => {
                self.handle_with(replica, None, |protocol, state, ctx| {
                    protocol.on_leave(state, ctx)
                });
                self.flush(replica);
                self.net.nodes[replica as usize].status = Status::Left;
                self.emit(EventKind::Leave { replica }, &[replica]);
            }
            FaultSpec::ServerOutage { .. } => {
                if let Some(server) = self.net.server {
                    self.net.nodes[server as usize].status = Status::Crashed;
                    self.emit(EventKind::FaultStart { fault }, &[]);
                }
            }
            FaultSpec::ConnectionDrop { nodes: [a, b], .. } => self.connection_drop(fault, a, b),
            FaultSpec::ClockSkew { .. } => {}
        }
    }

    /// The connection between `a` and `b` drops: what is in flight on it is lost when it would
    /// have arrived (every message numbered below the next one), what is sent on it until the
    /// reconnect is lost at once, and both ends are told.
    fn connection_drop(&mut self, fault: u32, a: NodeId, b: NodeId) {
        self.break_connection(a, b);
        self.emit(EventKind::FaultStart { fault }, &[]);
        self.tell_ends(a, b, false);
    }

    /// Marks the connection between `a` and `b` down (once more): what is in flight on it is
    /// lost when it would arrive, what is sent on it is lost at once.
    pub(super) fn break_connection(&mut self, a: NodeId, b: NodeId) {
        let pair = (a.min(b), a.max(b));
        *self.net.connections_down.entry(pair).or_default() += 1;
        self.lost_below.insert(pair, self.next_message);
        self.net.coverage.connection_drops += 1;
    }

    /// Both ends of a connection that dropped (`connected` false) or came back are told, those
    /// that are up.
    fn tell_ends(&mut self, a: NodeId, b: NodeId, connected: bool) {
        for (node, peer) in [(a, b), (b, a)] {
            if self.net.nodes[node as usize].status == Status::Up {
                self.handle_with(node, None, |protocol, state, ctx| {
                    if connected {
                        protocol.on_connect(state, peer, ctx)
                    } else {
                        protocol.on_disconnect(state, peer, ctx)
                    }
                });
                self.flush(node);
            }
        }
    }

    /// The fault ends; the connection between `a` and `b` is back unless something else still
    /// holds it down, and then both ends are told.
    fn reconnect(&mut self, fault: u32, a: NodeId, b: NodeId) {
        self.emit(EventKind::FaultEnd { fault }, &[]);
        if self.restore_connection(a, b) {
            self.tell_ends(a, b, true);
        }
    }

    /// Lifts one hold on the connection between `a` and `b`; returns whether it is up again.
    fn restore_connection(&mut self, a: NodeId, b: NodeId) -> bool {
        let pair = (a.min(b), a.max(b));
        let Some(holds) = self.net.connections_down.get_mut(&pair) else {
            return false;
        };
        *holds -= 1;
        if *holds > 0 {
            return false;
        }
        self.net.connections_down.remove(&pair);
        true
    }

    /// A connection a cut or a down node broke (kept in `Sim::broken` until that ends): it
    /// breaks now, and both ends are told once the commands being carried out are done.
    pub(super) fn break_by(&mut self, breaker: Breaker, a: NodeId, b: NodeId) {
        self.break_connection(a, b);
        self.broken.push((breaker, (a, b)));
        self.untold.push((a, b));
    }

    /// Tells the ends of the connections broken while commands were carried out.
    pub(super) fn tell_untold(&mut self) {
        while !self.untold.is_empty() {
            for (a, b) in std::mem::take(&mut self.untold) {
                self.tell_ends(a, b, false);
            }
        }
    }

    /// What `breaker` broke comes back: each connection it holds down is restored, and both ends
    /// are told.
    pub(super) fn restore_broken_by(&mut self, breaker: Breaker) {
        if self.broken.is_empty() {
            return;
        }
        let (restored, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.broken)
            .into_iter()
            .partition(|(by, _)| *by == breaker);
        self.broken = kept;
        for (_, (a, b)) in restored {
            if self.restore_connection(a, b) {
                self.tell_ends(a, b, true);
            }
        }
    }

    fn cut(&mut self, fault: u32, cut: Cut) {
        self.cuts.push((fault, cut));
        self.emit(EventKind::FaultStart { fault }, &[]);
    }

    pub(super) fn fault_end(&mut self, fault: u32) {
        let spec = self.faults[fault as usize].clone();
        match spec {
            FaultSpec::Partition { .. } | FaultSpec::Isolate { .. } | FaultSpec::Bridge { .. } => {
                self.cuts.retain(|(f, _)| *f != fault);
                self.close_cut_count(fault);
                self.emit(EventKind::FaultEnd { fault }, &[]);
                self.restore_broken_by(Breaker::Cut(fault));
            }
            FaultSpec::Crash { replica, state, .. }
                if self.net.nodes[replica as usize].status == Status::Crashed =>
            {
                self.restart(replica, state == Durability::Durable);
            }
            FaultSpec::ServerOutage { .. } => {
                if let Some(server) = self.net.server {
                    self.net.nodes[server as usize].status = Status::Up;
                    self.emit(EventKind::FaultEnd { fault }, &[]);
                    self.restore_broken_by(Breaker::Down(server));
                }
            }
            FaultSpec::ConnectionDrop { nodes: [a, b], .. } => self.reconnect(fault, a, b),
            _ => {}
        }
    }

    pub(super) fn close_cut_count(&mut self, fault: u32) {
        if let Some((sides, writes)) = self.cut_writes.remove(&fault) {
            if sides.count_ones() >= 2 {
                self.net.coverage.writes_both_sides_of_partition += writes;
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
    // Connection drops are drawn only where links are connections (in order), so that the
    // draws of every other swarm scenario stay what they were.
    let kinds = if relay { 5 } else { 4 } + u64::from(scenario.network.links_in_order());
    match stream.below(kinds) {
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
        4 if relay => FaultSpec::ServerOutage { at, until: end },
        _ => draw_connection_drop(stream, scenario, at, end, replica),
    }
}

/// A connection drop for swarm mode: in a relay, between `replica` and the server; otherwise
/// between `replica` and another replica drawn (a lone replica has no connection, and drops out
/// instead).
fn draw_connection_drop(
    stream: &mut Stream,
    scenario: &Scenario,
    at: SimDuration,
    end: SimDuration,
    replica: ReplicaId,
) -> FaultSpec {
    let peer = if scenario.protocol.topology == Topology::Relay {
        scenario.replicas
    } else if scenario.replicas > 1 {
        let other = stream.below(u64::from(scenario.replicas) - 1) as ReplicaId;
        other + u32::from(other >= replica)
    } else {
        return FaultSpec::Isolate {
            at,
            heal: Some(end),
            replica,
        };
    };
    FaultSpec::ConnectionDrop {
        at,
        nodes: [replica, peer],
        reconnect: Some(end),
    }
}
