//! The network: per-link parameters (defaults, then overrides, later ones winning), latency
//! samplers built from uniform draws (inverse CDF for exponential and Pareto, Box-Muller for
//! normal), drops, duplicates, partitions and scripted fates. Reordering is not a separate knob: it
//! comes from jitter, when a later message draws a shorter latency.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use converge_crdt::OpCrdt;

use super::{Action, Sim};
use crate::outcome::{DropCause, EventKind, NodeId};
use crate::protocol::Protocol;
use crate::scenario::{Fate, Latency, SettleDrop};
use crate::time::SimDuration;

impl<C: OpCrdt, P: Protocol<C>> Sim<'_, C, P> {
    /// The latency, drop and duplicate probabilities of `from -> to`, and whether it delivers in
    /// order. Overrides are scanned once per link and the result kept, so that many overrides
    /// cost a lookup per message, not a scan (4,096 overrides made a run 20 times slower).
    pub(super) fn link(&mut self, from: NodeId, to: NodeId) -> (Latency, f64, f64) {
        let network = &self.scenario.network;
        if network.links.is_empty() {
            return (network.latency, self.drop, self.duplicate);
        }
        let (latency, drop, duplicate, _) = self.overridden_link(from, to);
        (latency, drop, duplicate)
    }

    /// A link with overrides, scanned once and then kept.
    fn overridden_link(&mut self, from: NodeId, to: NodeId) -> Link {
        if let Some(link) = self.links.get(&(from, to)) {
            return *link;
        }
        let link = self.link_from_overrides(from, to);
        self.links.insert((from, to), link);
        link
    }

    fn link_from_overrides(&self, from: NodeId, to: NodeId) -> Link {
        let network = &self.scenario.network;
        let mut link = (network.latency, self.drop, self.duplicate, network.in_order);
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
                if let Some(in_order) = spec.in_order {
                    link.3 = in_order;
                }
            }
        }
        link
    }

    pub(super) fn latency_us(&mut self, latency: Latency) -> u64 {
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
        round_half_up(clamped)
    }

    pub(super) fn send(&mut self, from: NodeId, to: NodeId, payload: Arc<P::Message>, bytes: u64) {
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
        if self.net.nodes[from as usize].status != crate::outcome::Status::Up {
            // A node that is down (a timer fired while it was) sends nothing.
            self.drop_message(from, to, message, DropCause::Down);
            return;
        }
        if self.connections && self.net.is_disconnected(from, to) {
            self.drop_message(from, to, message, DropCause::Disconnected);
            return;
        }
        if let Some(fault) = self.blocking_cut(from, to) {
            if self.connections && self.link_in_order(from, to) {
                // A connection across a cut drops, as TCP does when its peer stops answering;
                // it is back when the cut heals.
                self.break_by(super::Breaker::Cut(fault), from, to);
                self.drop_message(from, to, message, DropCause::Disconnected);
                return;
            }
            self.drop_message(from, to, message, DropCause::Partition);
            return;
        }
        let fate = match &self.fates {
            Some(fates) => fates.get(&message).cloned().unwrap_or(Fate::Deliver {
                after: self.scripted_latency,
            }),
            None => {
                let (latency, drop, duplicate) = self.link(from, to);
                let quiescent =
                    self.settling && self.scenario.network.settle_drop == SettleDrop::None;
                if !quiescent && self.network.chance(drop) {
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
        // The copies to deliver, each with its latency and whether it is the duplicate.
        let deliveries: ([(SimDuration, bool); 2], usize) = match fate {
            Fate::Drop => {
                self.drop_message(from, to, message, DropCause::Network);
                return;
            }
            Fate::Deliver { after } => ([(after, false), (after, false)], 1),
            Fate::Duplicate { after, again } => {
                self.messages.duplicated += 1;
                self.emit(EventKind::Duplicate { from, to, message }, &[]);
                ([(after, false), (again, true)], 2)
            }
        };
        let memory_bytes = self.protocol.message_memory_bytes(&payload);
        // `due_on_link` exists where some link is in order, and only there.
        let in_order = self.due_on_link.is_some() && self.link_in_order(from, to);
        for (after, copy) in &deliveries.0[..deliveries.1] {
            if self.in_flight >= self.scenario.bounds.in_flight_max {
                self.bound = Some("in_flight_max");
                return;
            }
            if self.in_flight_bytes + memory_bytes > self.scenario.bounds.in_flight_bytes_max {
                self.bound = Some("in_flight_bytes_max");
                return;
            }
            self.in_flight += 1;
            self.in_flight_bytes += memory_bytes;
            let mut due_us = self.net.now_us.saturating_add(after.us);
            if let (true, Some(due_on_link)) = (in_order, &mut self.due_on_link) {
                // Never before the message sent ahead of it on this link; at the same time,
                // the queue's sequence numbers keep the send order.
                let last_due_us = due_on_link.slot(from, to);
                due_us = due_us.max(*last_due_us);
                *last_due_us = due_us;
            }
            let action = Action::Deliver {
                message,
                from,
                to,
                payload: payload.clone(),
                copy: *copy,
            };
            self.schedule(due_us, action);
        }
    }

    /// The first active cut that blocks `from -> to`, by its fault number.
    fn blocking_cut(&self, from: NodeId, to: NodeId) -> Option<u32> {
        self.cuts
            .iter()
            .find(|(_, cut)| cut.blocks(from, to))
            .map(|(fault, _)| *fault)
    }

    /// Whether `from -> to` delivers in order: the network's default, or the overrides' (kept
    /// with the link's other parameters, see [`Sim::link`]).
    pub(super) fn link_in_order(&mut self, from: NodeId, to: NodeId) -> bool {
        if self.scenario.network.links.is_empty() {
            return self.scenario.network.in_order;
        }
        self.overridden_link(from, to).3
    }

    /// Whether `message`, in flight from `from` to `to`, was on its connection when the
    /// connection last dropped.
    pub(super) fn lost_in_connection_drop(&self, from: NodeId, to: NodeId, message: u64) -> bool {
        self.lost_below
            .get(&(from.min(to), from.max(to)))
            .is_some_and(|first_after| message < *first_after)
    }
}

/// `value.round() as u64` for a non-negative value below 2^52 (every clamped latency in µs), without
/// the call into libm that `f64::round` compiles to on baseline x86-64 (a few percent of a run).
/// The fraction is exact: subtracting the truncated value loses no bits in that range.
fn round_half_up(value: f64) -> u64 {
    let truncated = value as u64;
    if value - truncated as f64 >= 0.5 {
        truncated + 1
    } else {
        truncated
    }
}

/// Networks up to this many nodes keep per-link counters in a dense table (at most 2^20 entries,
/// 8 MiB); larger ones in a hash map, so that memory grows with the links used, not with the
/// square of the nodes. (An ordered map here was a third of a 1,000-replica run.)
const DENSE_LINK_NODES_MAX: u32 = 1_024;

/// Each link's parameters once looked up (see `Sim::link`); only looked up, never iterated.
pub(super) type LinkParameters = HashMap<(NodeId, NodeId), Link, BuildHasherDefault<LinkHasher>>;

/// A link's latency, drop and duplicate probabilities, and whether it delivers in order.
pub(super) type Link = (Latency, f64, f64, bool);

/// One counter per link: the greatest message number delivered so far on it (to count reordered
/// deliveries), or the time its latest message is due (to keep in-order links in order).
pub(super) enum LinkTable {
    Dense {
        nodes: u32,
        last: Vec<u64>,
    },
    /// Only looked up, never iterated, so its order cannot reach a trace.
    Sparse(HashMap<(NodeId, NodeId), u64, BuildHasherDefault<LinkHasher>>),
}

/// A fixed, fast hash for a pair of node ids (the standard one is keyed at random per process and
/// slower; neither property is wanted for a lookup table that is never iterated).
#[derive(Default)]
pub(super) struct LinkHasher(u64);

impl Hasher for LinkHasher {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }

    fn write_u32(&mut self, word: u32) {
        self.write_u64(u64::from(word));
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(32) ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        // The map takes bucket bits from the low end and tag bits from the high end: mix both.
        let x = self.0;
        (x ^ (x >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ (x >> 32)
    }
}

impl LinkTable {
    pub(super) fn new(nodes: u32) -> Self {
        if nodes <= DENSE_LINK_NODES_MAX {
            LinkTable::Dense {
                nodes,
                last: vec![0; nodes as usize * nodes as usize],
            }
        } else {
            LinkTable::Sparse(HashMap::default())
        }
    }

    /// The counter of link `from -> to`.
    pub(super) fn slot(&mut self, from: NodeId, to: NodeId) -> &mut u64 {
        match self {
            LinkTable::Dense { nodes, last } => &mut last[(from * *nodes + to) as usize],
            LinkTable::Sparse(map) => map.entry((from, to)).or_insert(0),
        }
    }

    /// Records a delivery of `message` on `from -> to`; returns whether a message sent later on
    /// the same link was delivered before it (the delivery overtook nothing otherwise).
    pub(super) fn deliver_is_reordered(&mut self, from: NodeId, to: NodeId, message: u64) -> bool {
        let last = self.slot(from, to);
        if message < *last {
            true
        } else {
            *last = message;
            false
        }
    }
}

impl<C: OpCrdt, P: Protocol<C>> Sim<'_, C, P> {
    /// Counts a lost message and records why it was lost.
    pub(super) fn drop_message(
        &mut self,
        from: NodeId,
        to: NodeId,
        message: u64,
        cause: DropCause,
    ) {
        self.messages.dropped += 1;
        self.emit(
            EventKind::Drop {
                from,
                to,
                message,
                cause,
            },
            &[],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::round_half_up;

    #[test]
    fn rounding_matches_the_standard_library() {
        let mut values = vec![
            0.0,
            0.49999999999999994,
            0.5,
            1.5,
            2.5,
            1e6 + 0.5,
            4.5e15 + 0.5,
        ];
        // A spread of fractions at several magnitudes, as drawn latencies produce them.
        for magnitude in [1.0, 1e3, 1e6, 1e9, 1e12] {
            for step in 0..1000 {
                values.push(magnitude * (1.0 + f64::from(step) / 997.0));
            }
        }
        for value in values {
            assert_eq!(round_half_up(value), value.round() as u64, "{value}");
        }
    }
}
