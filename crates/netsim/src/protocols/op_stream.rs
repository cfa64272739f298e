//! Op stream: ops streamed over connections, as a replication client over TCP or a WebSocket
//! does. Every node keeps a log of the updates it learned, in the order learned, and streams it
//! to each connected peer (mesh: every other replica; relay: client and server) from where it
//! left off; the receiver applies what it lacks, appends it to its own log (so that the relay
//! server, and a mesh replica, pass it on), and acknowledges the position reached. Nothing is
//! retransmitted on a timer: like TCP it counts on in-order links that lose messages only when
//! the connection drops (`network.in-order = true`, no `drop`).
//!
//! What happens when a connection comes back is the point of the protocol, and
//! `protocol.on-reconnect` chooses it:
//! - `handshake` (correct): both ends say how far they got in the other's log (a hello), and
//!   each resumes streaming from there;
//! - `keep-position` (a real bug): the sender keeps its position across the reconnect, as if
//!   what was in flight when the connection dropped had arrived; the receiver never gets it and
//!   both go quiet (a stall);
//! - `echo-handshake` (a real bug): each end answers every hello with a hello of its own, "to
//!   make sure the other side knows", so the two hellos answer each other forever (a sync loop).
//!
//! A restarted or late-joining node says hello to its peers, which resume from what it holds.
//! A node that restarted empty starts a new log, in a new epoch (its incarnation): a position
//! in an earlier epoch's log says nothing about the new one, and a peer that resumed from it
//! would skip the new log's first entries.

use std::collections::BTreeMap;
use std::sync::Arc;

use converge_crdt::OpCrdt;

use crate::outcome::NodeId;
use crate::protocol::{Ctx, Protocol, Restart, Update, HEADER_BYTES, MESSAGE_MEMORY_BYTES};
use crate::scenario::Reconnect;

/// `op-stream`.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpStream;

/// What op-stream nodes send each other.
#[derive(Debug, Hash)]
pub enum StreamMessage {
    /// The sender's log of epoch `epoch` up to position `end`, from where the stream to this
    /// peer had reached, leaving out what this peer itself sent.
    Ops {
        epoch: u32,
        end: u64,
        ops: Arc<[Update]>,
    },
    /// The receiver of ops has the sender's log up to `end`.
    Ack { epoch: u32, end: u64 },
    /// Sent when a connection comes back, a node restarts or joins: "I have your log of epoch
    /// `epoch` up to `have`"; the peer resumes streaming from there.
    Hello { epoch: u32, have: u64 },
}

/// A node's op-stream bookkeeping.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct StreamNode {
    /// The updates learned here, in the order learned, with the node each came from (itself
    /// for its own writes).
    pub log: Vec<(Update, NodeId)>,
    /// Per peer, the position in this node's log streamed to it so far.
    pub sent: BTreeMap<NodeId, u64>,
    /// Per peer, the position in this node's log it acknowledged.
    pub acked: BTreeMap<NodeId, u64>,
    /// Per peer, the epoch of its log and the position reached in it.
    pub received: BTreeMap<NodeId, (u32, u64)>,
    /// The epoch of this node's log: the incarnation in which it last started empty.
    pub epoch: u32,
}

impl StreamNode {
    /// Streams what `peer` has not been sent yet, if the connection to it is up: in the steady
    /// stream without what came from `peer` itself, in a resynchronization everything (a peer
    /// that restarted empty lacks its own earlier writes too).
    fn stream_to<C: OpCrdt>(&mut self, peer: NodeId, resync: bool, ctx: &mut Ctx<'_, C, OpStream>) {
        let end = self.log.len() as u64;
        let sent = self.sent.entry(peer).or_default();
        if *sent >= end || !ctx.is_connected(peer) {
            return;
        }
        let ops: Vec<Update> = self.log[*sent as usize..]
            .iter()
            .filter(|(_, source)| resync || *source != peer)
            .map(|(update, _)| *update)
            .collect();
        *sent = end;
        if !ops.is_empty() {
            let epoch = self.epoch;
            ctx.send(
                peer,
                StreamMessage::Ops {
                    epoch,
                    end,
                    ops: ops.into(),
                },
            );
        }
    }

    fn stream_to_peers<C: OpCrdt>(&mut self, ctx: &mut Ctx<'_, C, OpStream>) {
        for peer in ctx.push_targets(None) {
            self.stream_to(peer, false, ctx);
        }
    }

    fn hello<C: OpCrdt>(&self, peer: NodeId, ctx: &mut Ctx<'_, C, OpStream>) {
        let (epoch, have) = self.received.get(&peer).copied().unwrap_or_default();
        ctx.send(peer, StreamMessage::Hello { epoch, have });
    }

    fn hello_peers<C: OpCrdt>(&self, ctx: &mut Ctx<'_, C, OpStream>) {
        for peer in ctx.push_targets(None) {
            self.hello(peer, ctx);
        }
    }
}

impl<C: OpCrdt> Protocol<C> for OpStream {
    type Message = StreamMessage;
    type Node = StreamNode;
    type Timer = ();

    fn ships_ops(&self) -> bool {
        true
    }

    fn name(&self) -> String {
        "op-stream".into()
    }

    fn init(&self, ctx: &Ctx<'_, C, Self>) -> StreamNode {
        StreamNode {
            epoch: ctx.incarnation(),
            ..StreamNode::default()
        }
    }

    fn on_write(&self, node: &mut StreamNode, update: Update, ctx: &mut Ctx<'_, C, Self>) {
        node.log.push((update, ctx.id()));
        node.stream_to_peers(ctx);
    }

    fn on_message(
        &self,
        node: &mut StreamNode,
        from: NodeId,
        message: &StreamMessage,
        ctx: &mut Ctx<'_, C, Self>,
    ) {
        match message {
            StreamMessage::Ops { epoch, end, ops } => {
                for update in ops.iter() {
                    // The stream's own deduplication: a resent op is not handed over again.
                    if !ctx.holds(*update) {
                        ctx.apply(*update);
                        node.log.push((*update, from));
                    }
                }
                let received = node.received.entry(from).or_default();
                *received = if received.0 == *epoch {
                    (*epoch, received.1.max(*end))
                } else {
                    (*epoch, *end)
                };
                let (epoch, end) = *received;
                ctx.send(from, StreamMessage::Ack { epoch, end });
                node.stream_to_peers(ctx);
            }
            StreamMessage::Ack { epoch, end } => {
                if *epoch == node.epoch {
                    let acked = node.acked.entry(from).or_default();
                    *acked = (*acked).max(*end);
                }
            }
            StreamMessage::Hello { epoch, have } => {
                if ctx.options().on_reconnect == Reconnect::EchoHandshake {
                    node.hello(from, ctx);
                }
                // A position in an earlier epoch's log: the peer holds nothing of this one.
                let have = if *epoch == node.epoch { *have } else { 0 };
                node.sent.insert(from, have);
                node.stream_to(from, true, ctx);
            }
        }
    }

    fn on_disconnect(&self, node: &mut StreamNode, peer: NodeId, ctx: &mut Ctx<'_, C, Self>) {
        if ctx.options().on_reconnect != Reconnect::KeepPosition {
            // What was not acknowledged may have been in flight: resume from the acknowledged
            // position unless the hello says better.
            let acked = node.acked.get(&peer).copied().unwrap_or_default();
            node.sent.insert(peer, acked);
        }
    }

    fn on_connect(&self, node: &mut StreamNode, peer: NodeId, ctx: &mut Ctx<'_, C, Self>) {
        if ctx.options().on_reconnect == Reconnect::KeepPosition {
            node.stream_to(peer, false, ctx);
        } else {
            node.hello(peer, ctx);
        }
    }

    fn on_join(&self, node: &mut StreamNode, ctx: &mut Ctx<'_, C, Self>) {
        node.hello_peers(ctx);
    }

    /// After a volatile restart the node's state is fresh from `init` (an empty log, nothing
    /// received), so its hello asks its peers for everything.
    fn on_restart(&self, node: &mut StreamNode, _restart: Restart, ctx: &mut Ctx<'_, C, Self>) {
        node.hello_peers(ctx);
    }

    fn message_bytes(&self, message: &StreamMessage, ctx: &Ctx<'_, C, Self>) -> u64 {
        HEADER_BYTES
            + match message {
                StreamMessage::Ops { ops, .. } => {
                    12 + ops.iter().map(|u| ctx.op_bytes(*u)).sum::<u64>()
                }
                StreamMessage::Ack { .. } | StreamMessage::Hello { .. } => 12,
            }
    }

    fn message_memory_bytes(&self, message: &StreamMessage) -> u64 {
        MESSAGE_MEMORY_BYTES
            + match message {
                StreamMessage::Ops { ops, .. } => 4 * ops.len() as u64,
                StreamMessage::Ack { .. } | StreamMessage::Hello { .. } => 0,
            }
    }
}
