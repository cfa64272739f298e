//! Reliable causal broadcast: each op with its causal past (the origin's delivery vector), an
//! ack per copy, retransmission with capped exponential backoff until acknowledged (or
//! `retransmit-max` attempts), and a delivery buffer that holds an op until everything it
//! depends on is delivered. The relay server and gossiping replicas pass on what they deliver,
//! hop by hop, reliably. Duplicates are filtered here, by the protocol's own bookkeeping.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use converge_crdt::OpCrdt;

use super::{advance_vector, advance_vector_all, backoff_us, catch_up, message_bytes};
use super::{message_memory_bytes, pass_state_on, send_state_on_connect, CatchUp, Message, Timer};
use crate::outcome::NodeId;
use crate::protocol::{Ctx, Protocol, Restart, Update};

/// `reliable-causal`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReliableCausal;

/// A node's reliable-causal bookkeeping.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ReliableNode {
    pub catch_up: CatchUp,
    /// Per origin, how many of its updates were delivered here without a gap.
    pub vector: Vec<u32>,
    /// Received updates waiting for their dependencies, with those dependencies.
    pub buffer: BTreeMap<Update, Arc<[u32]>>,
    /// `(peer, update)` sent and not yet acknowledged.
    pub outstanding: BTreeSet<(NodeId, Update)>,
}

type Cx<'a, 'b, C> = &'a mut Ctx<'b, C, ReliableCausal>;

impl ReliableNode {
    fn send<C: OpCrdt>(
        &mut self,
        to: NodeId,
        update: Update,
        deps: Arc<[u32]>,
        ctx: Cx<'_, '_, C>,
    ) {
        self.outstanding.insert((to, update));
        ctx.send(
            to,
            Message::Reliable {
                update,
                deps: Arc::clone(&deps),
            },
        );
        let timeout_us = ctx.options().retransmit_timeout.us;
        ctx.set_timer(
            timeout_us,
            Timer::Retransmit {
                to,
                update,
                attempt: 1,
                deps,
            },
        );
    }

    fn retransmit<C: OpCrdt>(
        &mut self,
        timer: (NodeId, Update, u32, Arc<[u32]>),
        ctx: Cx<'_, '_, C>,
    ) {
        let (to, update, attempt, deps) = timer;
        if !self.outstanding.contains(&(to, update)) {
            return;
        }
        let wait_us = backoff_us(ctx.options().retransmit_timeout.us, attempt);
        if !ctx.is_up() {
            // A down sender keeps its outbox and tries again once it is back.
            ctx.set_timer(
                wait_us,
                Timer::Retransmit {
                    to,
                    update,
                    attempt,
                    deps,
                },
            );
            return;
        }
        if attempt > ctx.options().retransmit_max {
            self.outstanding.remove(&(to, update));
            return;
        }
        ctx.count_retransmission();
        ctx.send(
            to,
            Message::Reliable {
                update,
                deps: Arc::clone(&deps),
            },
        );
        let next = Timer::Retransmit {
            to,
            update,
            attempt: attempt + 1,
            deps,
        };
        ctx.set_timer(wait_us, next);
    }

    /// Delivers every buffered update whose causal past has been delivered; returns them in
    /// order, with their dependencies.
    fn deliver_ready<C: OpCrdt>(&mut self, ctx: Cx<'_, '_, C>) -> Vec<(Update, Arc<[u32]>)> {
        let mut delivered = Vec::new();
        loop {
            let ready = self.buffer.iter().find(|(update, deps)| {
                let id = ctx.update_id(**update);
                let origin = id.origin as usize;
                self.vector[origin] + 1 == id.seq
                    && deps
                        .iter()
                        .zip(&self.vector)
                        .enumerate()
                        .all(|(o, (need, have))| o == origin || have >= need)
            });
            let Some((&update, _)) = ready else { break };
            let deps = self.buffer.remove(&update).expect("found in the buffer");
            // The deduplication: what this node delivered already (a copy, or an update a
            // snapshot brought while it waited) never reaches the application again.
            if !ctx.holds(update) && ctx.apply(update) {
                advance_vector(&mut self.vector, ctx.update_id(update).origin, ctx);
                delivered.push((update, deps));
            }
        }
        // Updates that arrived some other way (a snapshot) need no delivery.
        self.buffer.retain(|update, _| !ctx.holds(*update));
        delivered
    }

    /// Hop by hop: the server and gossiping replicas pass on what they delivered, reliably.
    fn pass_on<C: OpCrdt>(
        &mut self,
        from: NodeId,
        delivered: Vec<(Update, Arc<[u32]>)>,
        ctx: Cx<'_, '_, C>,
    ) {
        for (update, deps) in delivered {
            let origin = ctx.update_id(update).origin;
            if ctx.forwards(true) && origin != ctx.id() {
                for target in ctx.push_targets(Some(from)) {
                    if target != origin {
                        self.send(target, update, Arc::clone(&deps), ctx);
                    }
                }
            }
        }
    }
}

impl<C: OpCrdt> Protocol<C> for ReliableCausal {
    type Message = Message<C>;
    type Node = ReliableNode;
    type Timer = Timer;

    fn ships_ops(&self) -> bool {
        true
    }

    fn name(&self) -> String {
        "reliable-causal".into()
    }

    fn init(&self, ctx: &Ctx<'_, C, Self>) -> ReliableNode {
        ReliableNode {
            vector: vec![0; ctx.replicas() as usize],
            ..ReliableNode::default()
        }
    }

    fn on_write(&self, node: &mut ReliableNode, update: Update, ctx: &mut Ctx<'_, C, Self>) {
        let deps: Arc<[u32]> = Arc::from(node.vector.as_slice());
        advance_vector(&mut node.vector, ctx.id(), ctx);
        for to in ctx.push_targets(None) {
            node.send(to, update, Arc::clone(&deps), ctx);
        }
    }

    fn on_message(
        &self,
        node: &mut ReliableNode,
        from: NodeId,
        message: &Message<C>,
        ctx: &mut Ctx<'_, C, Self>,
    ) {
        match message {
            Message::Reliable { update, deps } => {
                ctx.send(from, Message::Ack { update: *update });
                if !ctx.holds(*update) {
                    node.buffer.insert(*update, Arc::clone(deps));
                }
                let delivered = node.deliver_ready(ctx);
                node.pass_on(from, delivered, ctx);
            }
            Message::Ack { update } => {
                node.outstanding.remove(&(from, *update));
            }
            Message::State(state) => {
                node.catch_up.received_state();
                let learned = ctx.merge(state);
                // A snapshot can fill the causal gap that buffered updates wait on; their acks
                // went out on arrival, so nothing else would wake them.
                let delivered = if learned {
                    advance_vector_all(&mut node.vector, ctx);
                    node.deliver_ready(ctx)
                } else {
                    Vec::new()
                };
                pass_state_on(from, learned, ctx);
                node.pass_on(from, delivered, ctx);
            }
            Message::SnapshotRequest => catch_up::answer(from, ctx),
            _ => {}
        }
    }

    fn on_timer(&self, node: &mut ReliableNode, timer: Timer, ctx: &mut Ctx<'_, C, Self>) {
        match timer {
            Timer::Retransmit {
                to,
                update,
                attempt,
                deps,
            } => node.retransmit((to, update, attempt, deps), ctx),
            Timer::SnapshotRetry { attempt } => node.catch_up.retry(attempt, ctx),
            _ => {}
        }
    }

    /// Over a connection that came back, both ends send their states, so that updates whose
    /// retransmissions gave up while it was down still arrive.
    fn on_connect(&self, _node: &mut ReliableNode, peer: NodeId, ctx: &mut Ctx<'_, C, Self>) {
        send_state_on_connect(peer, ctx);
    }

    fn on_join(&self, node: &mut ReliableNode, ctx: &mut Ctx<'_, C, Self>) {
        node.catch_up.start(ctx);
    }

    fn on_restart(&self, node: &mut ReliableNode, _restart: Restart, ctx: &mut Ctx<'_, C, Self>) {
        node.catch_up.start(ctx);
    }

    fn message_bytes(&self, message: &Message<C>, ctx: &Ctx<'_, C, Self>) -> u64 {
        message_bytes(message, ctx)
    }

    fn message_memory_bytes(&self, message: &Message<C>) -> u64 {
        message_memory_bytes(message)
    }
}
