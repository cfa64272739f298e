//! Position-based pull sync with a server that keeps an op log (story 8 of converge's design).
//!
//! Devices are the replicas; the relay topology's server (node `replicas`) keeps the log. A
//! device pushes each new op to the server at once, and on every sync tick pushes what the server
//! has not acknowledged yet and pulls everything since its position in the log. The server
//! appends each op it does not hold yet, acknowledges pushes with the log's length, and answers
//! pulls with the entries from the asked position on.
//!
//! The naive device takes the acknowledgement's log length as its new position, as if it had
//! read everything up to there: whatever another device pushed between this device's last pull
//! and its push is skipped for good. The fixed device moves its position only by the entries it
//! actually received.

use std::collections::BTreeSet;

use converge::crdt::OpCrdt;
use converge::netsim::protocol::{
    Ctx, NodeId, Protocol, Update, HEADER_BYTES, MESSAGE_MEMORY_BYTES,
};

/// How a device moves its position when the server acknowledges a push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnAck {
    /// Jump to the log's end (the bug).
    JumpToLogEnd,
    /// Leave the position alone; only pulled entries move it.
    KeepPosition,
}

/// The protocol; `sync_every_us` is the period of a device's push and pull.
#[derive(Clone, Copy, Debug)]
pub struct PullSync {
    pub on_ack: OnAck,
    pub sync_every_us: u64,
}

impl PullSync {
    pub fn naive() -> Self {
        PullSync {
            on_ack: OnAck::JumpToLogEnd,
            sync_every_us: 200_000,
        }
    }

    pub fn fixed() -> Self {
        PullSync {
            on_ack: OnAck::KeepPosition,
            ..Self::naive()
        }
    }
}

/// What travels between a device and the server. `Hash` lets the model checker fingerprint it.
#[derive(Clone, Debug, Hash)]
pub enum Message {
    /// Device to server: ops for the log.
    Push { ops: Vec<Update> },
    /// Server to device: these ops are in the log, which is now `log_len` long.
    PushAck { ops: Vec<Update>, log_len: usize },
    /// Device to server: everything from `since` on, please.
    Pull { since: usize },
    /// Server to device: the log's entries from `since` on.
    Entries { since: usize, entries: Vec<Update> },
}

/// A node's state: the server's log, or a device's position and unacknowledged ops.
#[derive(Clone, Debug, Hash)]
pub enum Node {
    Server {
        log: Vec<Update>,
    },
    Device {
        position: usize,
        unacknowledged: BTreeSet<Update>,
    },
}

/// The one timer: a device's sync tick.
#[derive(Clone, Copy, Debug, Hash)]
pub struct Tick;

impl<C: OpCrdt> Protocol<C> for PullSync {
    type Message = Message;
    type Node = Node;
    type Timer = Tick;

    fn name(&self) -> String {
        match self.on_ack {
            OnAck::JumpToLogEnd => "pull-sync (naive)".into(),
            OnAck::KeepPosition => "pull-sync".into(),
        }
    }

    fn init(&self, ctx: &Ctx<'_, C, Self>) -> Node {
        assert!(
            ctx.server().is_some(),
            "pull sync needs a server: run it over the relay topology"
        );
        if ctx.is_server() {
            Node::Server { log: Vec::new() }
        } else {
            Node::Device {
                position: 0,
                unacknowledged: BTreeSet::new(),
            }
        }
    }

    fn on_start(&self, node: &mut Node, ctx: &mut Ctx<'_, C, Self>) {
        if let Node::Device { .. } = node {
            let offset = ctx.random_below(self.sync_every_us);
            ctx.set_timer(offset, Tick);
        }
    }

    fn on_write(&self, node: &mut Node, update: Update, ctx: &mut Ctx<'_, C, Self>) {
        if let Node::Device { unacknowledged, .. } = node {
            unacknowledged.insert(update);
            let server = ctx.server().expect("checked at init");
            ctx.send(server, Message::Push { ops: vec![update] });
        }
    }

    fn on_timer(&self, node: &mut Node, _tick: Tick, ctx: &mut Ctx<'_, C, Self>) {
        ctx.set_timer(self.sync_every_us, Tick);
        let Node::Device {
            position,
            unacknowledged,
        } = node
        else {
            return;
        };
        if !ctx.is_up() {
            return;
        }
        let server = ctx.server().expect("checked at init");
        if !unacknowledged.is_empty() {
            let ops = unacknowledged.iter().copied().collect();
            ctx.send(server, Message::Push { ops });
        }
        ctx.send(server, Message::Pull { since: *position });
    }

    fn on_message(
        &self,
        node: &mut Node,
        from: NodeId,
        message: &Message,
        ctx: &mut Ctx<'_, C, Self>,
    ) {
        match (node, message) {
            (Node::Server { log }, Message::Push { ops }) => {
                for op in ops {
                    // The server's own replica holds what the log holds.
                    if ctx.apply(*op) {
                        log.push(*op);
                    }
                }
                let ack = Message::PushAck {
                    ops: ops.clone(),
                    log_len: log.len(),
                };
                ctx.send(from, ack);
            }
            (Node::Server { log }, Message::Pull { since }) => {
                let entries = log.get(*since..).unwrap_or_default().to_vec();
                ctx.send(
                    from,
                    Message::Entries {
                        since: *since,
                        entries,
                    },
                );
            }
            (
                Node::Device {
                    position,
                    unacknowledged,
                },
                Message::PushAck { ops, log_len },
            ) => {
                for op in ops {
                    unacknowledged.remove(op);
                }
                if self.on_ack == OnAck::JumpToLogEnd {
                    *position = (*position).max(*log_len);
                }
            }
            (Node::Device { position, .. }, Message::Entries { since, entries }) => {
                for op in entries {
                    ctx.apply(*op);
                }
                // Entries that start beyond the position would leave a gap: ignore them.
                if *since <= *position {
                    *position = (*position).max(since + entries.len());
                }
            }
            _ => {}
        }
    }

    fn message_bytes(&self, message: &Message, ctx: &Ctx<'_, C, Self>) -> u64 {
        let ops = |ops: &[Update]| ops.iter().map(|u| ctx.op_bytes(*u)).sum::<u64>();
        HEADER_BYTES
            + match message {
                Message::Push { ops: list } => ops(list),
                Message::PushAck { ops: list, .. } => 8 + 4 * list.len() as u64,
                Message::Pull { .. } => 8,
                Message::Entries { entries, .. } => 8 + ops(entries),
            }
    }

    fn message_memory_bytes(&self, message: &Message) -> u64 {
        let listed = match message {
            Message::Push { ops } | Message::PushAck { ops, .. } => ops.len(),
            Message::Entries { entries, .. } => entries.len(),
            Message::Pull { .. } => 0,
        };
        MESSAGE_MEMORY_BYTES + 4 * listed as u64
    }
}
