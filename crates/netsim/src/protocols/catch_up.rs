//! Snapshot on join, shared by the protocols that have no log to catch up from (state broadcast,
//! anti-entropy, op broadcast, reliable causal): a joining or restarting replica asks the relay
//! server (or a random peer) for its state, and asks again with backoff until a state arrives,
//! so that one lost snapshot does not leave a joiner behind for good.

use converge_crdt::OpCrdt;

use super::{backoff_us, Message, Timer};
use crate::outcome::NodeId;
use crate::protocol::{Ctx, Protocol};

/// A node's catch-up bookkeeping.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct CatchUp {
    /// Asked for a snapshot and has not received a state since.
    pub awaiting_snapshot: bool,
}

impl CatchUp {
    /// A replica joined or restarted: it asks for a snapshot when the scenario says so.
    pub(super) fn start<C: OpCrdt, P>(&mut self, ctx: &mut Ctx<'_, C, P>)
    where
        P: Protocol<C, Message = Message<C>, Timer = Timer>,
    {
        if ctx.options().snapshot_on_join {
            self.awaiting_snapshot = true;
            request(ctx, 0);
        }
    }

    /// A state arrived.
    pub(super) fn received_state(&mut self) {
        self.awaiting_snapshot = false;
    }

    /// The retry timer fired.
    pub(super) fn retry<C: OpCrdt, P>(&mut self, attempt: u32, ctx: &mut Ctx<'_, C, P>)
    where
        P: Protocol<C, Message = Message<C>, Timer = Timer>,
    {
        if self.awaiting_snapshot && ctx.is_up() && attempt <= ctx.options().retransmit_max {
            request(ctx, attempt);
        }
    }
}

fn request<C: OpCrdt, P>(ctx: &mut Ctx<'_, C, P>, attempt: u32)
where
    P: Protocol<C, Message = Message<C>, Timer = Timer>,
{
    let peer: Option<NodeId> = match ctx.server() {
        Some(server) => Some(server),
        None => ctx.random_peers().first().copied(),
    };
    if let Some(peer) = peer {
        ctx.send(peer, Message::SnapshotRequest);
    }
    let wait_us = backoff_us(ctx.options().retransmit_timeout.us, attempt);
    ctx.set_timer(
        wait_us,
        Timer::SnapshotRetry {
            attempt: attempt + 1,
        },
    );
}

/// Answers a snapshot request with this node's state.
pub(super) fn answer<C: OpCrdt, P>(from: NodeId, ctx: &mut Ctx<'_, C, P>)
where
    P: Protocol<C, Message = Message<C>, Timer = Timer>,
{
    let state = ctx.snapshot();
    ctx.send(from, Message::State(state));
}
