//! Delta sync: every `interval`, each node asks its peers for the changes since what it already
//! has, named either by a position in the peer's change log (pruned below the slowest peer's
//! position, with a snapshot when a requester is below the pruned part) or by a version vector
//! (the highest contiguous update sequence number seen from each origin). The answer is a delta
//! state: what [`converge_crdt::DeltaCrdt::delta_since`] returns for the version the answering
//! replica had when its log reached the first entry the requester lacks, merged at the requester
//! with [`Ctx::merge_delta`]. The entries from there on are the updates the delta covers. A
//! joiner's first request asks for a snapshot, unless `snapshot-on-join = false`, in which case
//! it starts from its peers' current positions: it never held what their deltas build on, so
//! every delta it receives is refused and it stays behind.
//!
//! The change log holds every update the node learned (its writes, and what deltas and
//! snapshots brought), each with the replica's version when the log reached it, so that the
//! log names exactly what a delta since that version covers.

use std::collections::BTreeMap;
use std::sync::Arc;

use converge_crdt::OpCrdt;

use super::{
    advance_vector, advance_vector_all, message_bytes, message_memory_bytes, Message, Timer,
};
use crate::outcome::NodeId;
use crate::protocol::{Ctx, Delta, Protocol, Restart, Update};
use crate::scenario::DeltaPosition;

/// `delta-sync`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeltaSync;

/// A place in a node's change log. A node that restarts with its state lost starts a new log, in
/// a new epoch (its incarnation): a position from an earlier epoch says nothing about the new log,
/// and reading it as one would skip the new log's first entries (or slice past its end).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LogPosition {
    pub epoch: u32,
    pub position: u64,
}

/// A node's delta-sync bookkeeping.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DeltaNode {
    /// Updates learned here, in order: the change log. `log[i]` is at position `log_base + i`.
    pub log: Vec<Update>,
    /// `versions[i]`: the replica's delta version when the log reached `log[i]` (before it
    /// learned it), so that a delta since it covers `log[i..]`.
    pub versions: Vec<u64>,
    /// The replica's delta version after the last entry logged. A write is handled after it has
    /// applied, so its entry takes this one, which is at most the version before it.
    pub version_end: u64,
    pub log_base: u64,
    /// The epoch of the current log.
    pub log_epoch: u32,
    /// The position reached in each peer's log.
    pub positions_in_peer: BTreeMap<NodeId, LogPosition>,
    /// The position each peer has reached in this node's log (from its requests).
    pub peer_positions: BTreeMap<NodeId, u64>,
    /// Version-vector mode: per origin, how many of its updates were delivered here without a gap.
    pub vector: Vec<u32>,
    /// This node joined or restarted and its next poll asks for a snapshot.
    pub wants_snapshot: bool,
}

impl DeltaNode {
    fn log_end(&self) -> u64 {
        self.log_base + self.log.len() as u64
    }

    /// Records updates learned here, in the order learned.
    fn learned<C: OpCrdt>(&mut self, updates: &[Update], ctx: &Ctx<'_, C, DeltaSync>) {
        for update in updates {
            self.log.push(*update);
            self.versions.push(self.version_end);
            advance_vector(&mut self.vector, ctx.update_id(*update).origin, ctx);
        }
        self.version_end = version(ctx);
    }

    /// A delta of this node's replica covering `log[from..]`, or none when that is empty.
    fn delta_from<C: OpCrdt>(
        &self,
        from: usize,
        ctx: &mut Ctx<'_, C, DeltaSync>,
    ) -> Option<Delta<C>> {
        let covers = self.log.get(from..).filter(|c| !c.is_empty())?;
        ctx.delta_since(self.versions[from], covers)
    }

    fn poll<C: OpCrdt>(&mut self, ctx: &mut Ctx<'_, C, DeltaSync>) {
        let vector = (!self.vector.is_empty()).then(|| Arc::<[u32]>::from(self.vector.as_slice()));
        // A joiner asks every peer it polls this round for a snapshot; if those requests are
        // lost it still catches up from position zero (or a pruned log's snapshot fallback) on
        // later rounds.
        let snapshot = std::mem::take(&mut self.wants_snapshot);
        for to in ctx.push_targets(None) {
            let position = self.positions_in_peer.get(&to).copied().unwrap_or_default();
            let request = Message::DeltaRequest {
                position,
                vector: vector.clone(),
                snapshot,
            };
            ctx.send(to, request);
        }
    }

    /// The reply to `peer`'s request: what it lacks, by its position or its vector, or a
    /// snapshot.
    fn reply<C: OpCrdt>(
        &mut self,
        peer: NodeId,
        request: (LogPosition, Option<&[u32]>, bool),
        ctx: &mut Ctx<'_, C, DeltaSync>,
    ) {
        let (position, vector, snapshot) = request;
        let log_end = self.log_end();
        // A position in an earlier epoch's log: the requester holds nothing of this log yet.
        let position = if position.epoch == self.log_epoch {
            position.position
        } else {
            0
        };
        assert!(
            position <= log_end,
            "a requester is at {position} in a log of {log_end} entries"
        );
        let (from, snapshot, next_position): (Option<usize>, bool, u64) = match vector {
            // A snapshot holds everything the log could: the requester continues from the end.
            _ if snapshot => {
                if vector.is_none() {
                    self.peer_positions.insert(peer, log_end);
                }
                (None, true, log_end)
            }
            // The delta starts at the first entry the requester lacks: it holds every entry
            // before it, which is everything this replica held at that entry's version.
            Some(vector) => {
                let first_lacking = self.log.iter().position(|u| {
                    let id = ctx.update_id(*u);
                    vector
                        .get(id.origin as usize)
                        .is_none_or(|have| *have < id.seq)
                });
                (first_lacking, false, 0)
            }
            None => self.by_position(peer, position, ctx),
        };
        let delta = from.and_then(|from| self.delta_from(from, ctx));
        let snapshot = snapshot.then(|| ctx.snapshot());
        let reply = Message::DeltaReply {
            delta,
            next_position: LogPosition {
                epoch: self.log_epoch,
                position: next_position,
            },
            snapshot,
        };
        ctx.send(peer, reply);
    }

    /// Log-position mode: prunes below the slowest peer, then answers from `position`.
    fn by_position<C: OpCrdt>(
        &mut self,
        peer: NodeId,
        position: u64,
        ctx: &Ctx<'_, C, DeltaSync>,
    ) -> (Option<usize>, bool, u64) {
        let log_end = self.log_end();
        self.peer_positions.insert(peer, position);
        // Prune below the slowest peer: every peer this node serves has asked at least once.
        let serves = match ctx.server() {
            Some(server) if ctx.id() == server => ctx.replicas() as usize,
            Some(_) => 1,
            None => ctx.replicas() as usize - 1,
        };
        if self.peer_positions.len() >= serves {
            let slowest = self.peer_positions.values().copied().min().unwrap_or(0);
            if slowest > self.log_base {
                let pruned = (slowest - self.log_base) as usize;
                self.log.drain(..pruned);
                self.versions.drain(..pruned);
                self.log_base = slowest;
            }
        }
        if position < self.log_base {
            (None, true, log_end)
        } else {
            (Some((position - self.log_base) as usize), false, log_end)
        }
    }

    /// A joiner or a restarted node: a snapshot at its next poll, or its peers' current
    /// positions.
    fn catch_up<C: OpCrdt>(&mut self, ctx: &mut Ctx<'_, C, DeltaSync>) {
        if ctx.options().snapshot_on_join {
            self.wants_snapshot = true;
            return;
        }
        for peer in ctx.push_targets(None) {
            let theirs = ctx.peek(peer);
            let end = LogPosition {
                epoch: theirs.log_epoch,
                position: theirs.log_end(),
            };
            self.positions_in_peer.insert(peer, end);
        }
    }
}

impl<C: OpCrdt> Protocol<C> for DeltaSync {
    type Message = Message<C>;
    type Node = DeltaNode;
    type Timer = Timer;

    fn name(&self) -> String {
        "delta-sync".into()
    }

    fn init(&self, ctx: &Ctx<'_, C, Self>) -> DeltaNode {
        let vector = match ctx.options().delta_position {
            DeltaPosition::VersionVector => vec![0; ctx.replicas() as usize],
            DeltaPosition::LogPosition => Vec::new(),
        };
        DeltaNode {
            vector,
            version_end: version(ctx),
            log_epoch: ctx.incarnation(),
            ..DeltaNode::default()
        }
    }

    fn on_start(&self, _node: &mut DeltaNode, ctx: &mut Ctx<'_, C, Self>) {
        let offset = ctx.random_below(ctx.options().interval.us.max(1));
        ctx.set_timer(offset, Timer::Poll);
    }

    fn on_write(&self, node: &mut DeltaNode, update: Update, ctx: &mut Ctx<'_, C, Self>) {
        node.learned(&[update], ctx);
    }

    fn on_message(
        &self,
        node: &mut DeltaNode,
        from: NodeId,
        message: &Message<C>,
        ctx: &mut Ctx<'_, C, Self>,
    ) {
        match message {
            Message::DeltaRequest {
                position,
                vector,
                snapshot,
            } => {
                node.reply(from, (*position, vector.as_deref(), *snapshot), ctx);
            }
            Message::DeltaReply {
                delta,
                next_position,
                snapshot,
            } => {
                if let Some(state) = snapshot {
                    let new = ctx.lacking(state.delivered());
                    ctx.merge(state);
                    node.learned(&new, ctx);
                    advance_vector_all(&mut node.vector, ctx);
                }
                if let Some(delta) = delta {
                    let new: Vec<Update> = delta.covers().filter(|u| !ctx.holds(*u)).collect();
                    if ctx.merge_delta(delta).is_err() {
                        // This node lacks what the delta builds on (it started from a position
                        // without the state before it): it stays where it was, and asks for a
                        // snapshot where snapshots are on.
                        node.wants_snapshot = ctx.options().snapshot_on_join;
                        return;
                    }
                    node.learned(&new, ctx);
                }
                if ctx.options().delta_position == DeltaPosition::LogPosition {
                    node.positions_in_peer.insert(from, *next_position);
                }
            }
            _ => {}
        }
    }

    fn on_timer(&self, node: &mut DeltaNode, timer: Timer, ctx: &mut Ctx<'_, C, Self>) {
        if let Timer::Poll = timer {
            ctx.set_timer(ctx.options().interval.us, Timer::Poll);
            if ctx.is_up() {
                node.poll(ctx);
            }
        }
    }

    fn on_join(&self, node: &mut DeltaNode, ctx: &mut Ctx<'_, C, Self>) {
        node.catch_up(ctx);
    }

    fn on_restart(&self, node: &mut DeltaNode, _restart: Restart, ctx: &mut Ctx<'_, C, Self>) {
        node.catch_up(ctx);
    }

    fn message_bytes(&self, message: &Message<C>, ctx: &Ctx<'_, C, Self>) -> u64 {
        message_bytes(message, ctx)
    }

    fn message_memory_bytes(&self, message: &Message<C>) -> u64 {
        message_memory_bytes(message)
    }

    fn ships_deltas(&self) -> bool {
        true
    }
}

/// The replica's delta version. A delta-sync run starts only over a type with deltas
/// (`run_protocol` refuses the others, naming the type).
fn version<C: OpCrdt>(ctx: &Ctx<'_, C, DeltaSync>) -> u64 {
    ctx.version()
        .expect("delta sync runs only over types with deltas")
}
