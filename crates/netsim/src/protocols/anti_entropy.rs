//! Anti-entropy: every `interval` (or `anti-entropy`, when given), the whole state to `fanout`
//! random peers, and nothing else; a snapshot for joiners.

use converge_crdt::OpCrdt;

use super::{message_bytes, message_memory_bytes, on_round_or_retry, on_state_or_request};
use super::{start_rounds, CatchUp, Message, Timer};
use crate::outcome::NodeId;
use crate::protocol::{Ctx, Protocol, Restart};

/// `anti-entropy`.
#[derive(Clone, Copy, Debug, Default)]
pub struct AntiEntropy;

fn period_us<C: OpCrdt>(ctx: &Ctx<'_, C, AntiEntropy>) -> u64 {
    let options = ctx.options();
    options.anti_entropy.unwrap_or(options.interval).us
}

impl<C: OpCrdt> Protocol<C> for AntiEntropy {
    type Message = Message<C>;
    type Node = CatchUp;
    type Timer = Timer;

    fn name(&self) -> String {
        "anti-entropy".into()
    }

    fn refers_to_updates(&self) -> bool {
        false
    }

    fn init(&self, _ctx: &Ctx<'_, C, Self>) -> CatchUp {
        CatchUp::default()
    }

    fn on_start(&self, _node: &mut CatchUp, ctx: &mut Ctx<'_, C, Self>) {
        start_rounds(period_us(ctx), ctx);
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

    fn message_bytes(&self, message: &Message<C>, ctx: &Ctx<'_, C, Self>) -> u64 {
        message_bytes(message, ctx)
    }

    fn message_memory_bytes(&self, message: &Message<C>) -> u64 {
        message_memory_bytes(message)
    }
}
