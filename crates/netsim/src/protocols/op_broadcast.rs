//! Op broadcast: each op once to every peer, fire and forget (the relay server and gossiping
//! replicas pass on what they receive), with optional periodic full-state anti-entropy and a
//! snapshot for joiners. Nothing is retransmitted: a lost op stays lost unless anti-entropy or a
//! snapshot brings it.

use std::sync::Arc;

use converge_crdt::OpCrdt;

use super::{message_bytes, message_memory_bytes, on_round_or_retry, on_state_or_request};
use super::{start_rounds, CatchUp, Message, Timer};
use crate::outcome::NodeId;
use crate::protocol::{Ctx, Protocol, Restart, Update};

/// `op-broadcast`.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpBroadcast;

impl<C: OpCrdt> Protocol<C> for OpBroadcast {
    type Message = Message<C>;
    type Node = CatchUp;
    type Timer = Timer;

    fn ships_ops(&self) -> bool {
        true
    }

    fn name(&self) -> String {
        "op-broadcast".into()
    }

    fn init(&self, _ctx: &Ctx<'_, C, Self>) -> CatchUp {
        CatchUp::default()
    }

    fn on_start(&self, _node: &mut CatchUp, ctx: &mut Ctx<'_, C, Self>) {
        if let Some(period) = ctx.options().anti_entropy {
            start_rounds(period.us, ctx);
        }
    }

    fn on_write(&self, _node: &mut CatchUp, update: Update, ctx: &mut Ctx<'_, C, Self>) {
        let targets = ctx.push_targets(None);
        ctx.send_all(targets, Message::Ops(Arc::from([update].as_slice())));
    }

    fn on_message(
        &self,
        node: &mut CatchUp,
        from: NodeId,
        message: &Message<C>,
        ctx: &mut Ctx<'_, C, Self>,
    ) {
        match message {
            Message::Ops(ops) => {
                let mut learned = false;
                for update in ops.iter() {
                    learned |= ctx.apply(*update);
                }
                if ctx.forwards(learned) {
                    let targets = ctx.push_targets(Some(from));
                    ctx.forward(targets);
                }
            }
            _ => {
                on_state_or_request(node, from, message, ctx);
            }
        }
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

    fn message_bytes(&self, message: &Message<C>, ctx: &Ctx<'_, C, Self>) -> u64 {
        message_bytes(message, ctx)
    }

    fn message_memory_bytes(&self, message: &Message<C>) -> u64 {
        message_memory_bytes(message)
    }
}
