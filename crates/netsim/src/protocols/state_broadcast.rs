//! State broadcast: on each local change, the whole state to every peer (through the relay
//! server, which passes it on to every other client), with optional periodic anti-entropy
//! (`[protocol] anti-entropy`) and a snapshot for joiners; over a connection that dropped and
//! came back, both ends send their states again.

use converge_crdt::OpCrdt;

use super::send_state_on_connect;
use super::{message_bytes, message_memory_bytes, on_round_or_retry, on_state_or_request};
use super::{start_rounds, CatchUp, Message, Timer};
use crate::outcome::NodeId;
use crate::protocol::{Ctx, Protocol, Restart, Update};

/// `state-broadcast`.
#[derive(Clone, Copy, Debug, Default)]
pub struct StateBroadcast;

impl<C: OpCrdt> Protocol<C> for StateBroadcast {
    type Message = Message<C>;
    type Node = CatchUp;
    type Timer = Timer;

    fn name(&self) -> String {
        "state-broadcast".into()
    }

    fn refers_to_updates(&self) -> bool {
        false
    }

    fn init(&self, _ctx: &Ctx<'_, C, Self>) -> CatchUp {
        CatchUp::default()
    }

    fn on_start(&self, _node: &mut CatchUp, ctx: &mut Ctx<'_, C, Self>) {
        if let Some(period) = ctx.options().anti_entropy {
            start_rounds(period.us, ctx);
        }
    }

    fn on_write(&self, _node: &mut CatchUp, _update: Update, ctx: &mut Ctx<'_, C, Self>) {
        let targets = ctx.push_targets(None);
        if !targets.is_empty() {
            let state = ctx.snapshot();
            ctx.send_all(targets, Message::State(state));
        }
    }

    fn on_message(
        &self,
        node: &mut CatchUp,
        from: NodeId,
        message: &Message<C>,
        ctx: &mut Ctx<'_, C, Self>,
    ) {
        on_state_or_request(node, from, message, ctx);
    }

    fn on_timer(&self, node: &mut CatchUp, timer: Timer, ctx: &mut Ctx<'_, C, Self>) {
        on_round_or_retry(node, timer, ctx);
    }

    fn on_join(&self, node: &mut CatchUp, ctx: &mut Ctx<'_, C, Self>) {
        node.start(ctx);
    }

    fn on_restart(&self, node: &mut CatchUp, _restart: Restart, ctx: &mut Ctx<'_, C, Self>) {
        node.start(ctx);
    }

    /// Over a connection that came back, each end sends its whole state to the other, as a
    /// WebSocket client that sends its state when the socket opens does (and the server, which
    /// sends a snapshot to a client that connects, unless `snapshot-on-join = false`).
    fn on_connect(&self, _node: &mut CatchUp, peer: NodeId, ctx: &mut Ctx<'_, C, Self>) {
        send_state_on_connect(peer, ctx);
    }

    fn message_bytes(&self, message: &Message<C>, ctx: &Ctx<'_, C, Self>) -> u64 {
        message_bytes(message, ctx)
    }

    fn message_memory_bytes(&self, message: &Message<C>) -> u64 {
        message_memory_bytes(message)
    }
}
