//! Resend until acknowledged: every op goes to every peer at once, and every `resend_every_us`
//! each node sends again whatever a peer has not acknowledged. Receivers apply what they do not
//! hold (duplicates are harmless) and acknowledge every copy. Peers that left for good are given
//! up on.

use std::collections::BTreeSet;

use converge::crdt::OpCrdt;
use converge::netsim::protocol::{Ctx, NodeId, Protocol, Update, HEADER_BYTES};
use converge::netsim::Status;

/// The protocol; set `resend_every_us` to 0 for fire and forget (nothing is ever sent again).
#[derive(Clone, Copy, Debug)]
pub struct ResendUntilAcked {
    pub resend_every_us: u64,
}

impl Default for ResendUntilAcked {
    fn default() -> Self {
        ResendUntilAcked {
            resend_every_us: 150_000,
        }
    }
}

/// `Hash` lets the model checker fingerprint messages and timers.
#[derive(Clone, Copy, Debug, Hash)]
pub enum Message {
    Op(Update),
    Ack(Update),
}

/// `(peer, op)` pairs sent and not acknowledged yet.
pub type Unacknowledged = BTreeSet<(NodeId, Update)>;

#[derive(Clone, Copy, Debug, Hash)]
pub struct Resend;

impl<C: OpCrdt> Protocol<C> for ResendUntilAcked {
    type Message = Message;
    type Node = Unacknowledged;
    type Timer = Resend;

    fn init(&self, _ctx: &Ctx<'_, C, Self>) -> Unacknowledged {
        Unacknowledged::new()
    }

    fn on_start(&self, _node: &mut Unacknowledged, ctx: &mut Ctx<'_, C, Self>) {
        if self.resend_every_us > 0 {
            let offset = ctx.random_below(self.resend_every_us);
            ctx.set_timer(offset, Resend);
        }
    }

    fn on_write(&self, pending: &mut Unacknowledged, update: Update, ctx: &mut Ctx<'_, C, Self>) {
        let peers: Vec<NodeId> = ctx.push_targets(None).collect();
        for peer in &peers {
            pending.insert((*peer, update));
        }
        ctx.send_all(peers, Message::Op(update));
    }

    fn on_message(
        &self,
        pending: &mut Unacknowledged,
        from: NodeId,
        message: &Message,
        ctx: &mut Ctx<'_, C, Self>,
    ) {
        match *message {
            Message::Op(update) => {
                ctx.apply(update);
                ctx.send(from, Message::Ack(update));
            }
            Message::Ack(update) => {
                pending.remove(&(from, update));
            }
        }
    }

    fn on_timer(&self, pending: &mut Unacknowledged, _timer: Resend, ctx: &mut Ctx<'_, C, Self>) {
        ctx.set_timer(self.resend_every_us, Resend);
        if !ctx.is_up() {
            return;
        }
        pending.retain(|(peer, _)| ctx.status_of(*peer) != Status::Left);
        for (peer, update) in pending.iter() {
            ctx.count_retransmission();
            ctx.send(*peer, Message::Op(*update));
        }
    }

    fn message_bytes(&self, message: &Message, ctx: &Ctx<'_, C, Self>) -> u64 {
        HEADER_BYTES
            + match message {
                Message::Op(update) => ctx.op_bytes(*update),
                Message::Ack(_) => 4,
            }
    }
}
