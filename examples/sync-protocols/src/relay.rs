//! The grid tutorial's WebSocket relay, written as a user's protocol: every client sends its
//! whole state to the server whenever it edits, the server merges what it receives and passes it
//! on to every other connected client, and a client that joins (or comes back from a crash) asks
//! the server for a snapshot until one arrives. With `[protocol] anti-entropy` set, every client
//! also sends its state to the server on that period, as a client that resyncs on a timer does.
//!
//! It is the built-in `state-broadcast` protocol over the `relay` topology, written from
//! scratch; the tests check that both give the same verdicts on the grid stories, and in fact the
//! same trace, event for event.

use converge::crdt::OpCrdt;
use converge::netsim::protocol::{Ctx, NodeId, Protocol, Restart, Snapshot, Update, HEADER_BYTES};
use converge::netsim::Status;

/// The relay protocol.
#[derive(Clone, Copy, Debug, Default)]
pub struct WebSocketRelay;

/// What travels: a whole state, or a joiner's request for one.
pub enum Message<C> {
    State(Snapshot<C>),
    SnapshotRequest,
}

/// Timers: the periodic resync, and a joiner asking again for its snapshot.
#[derive(Clone, Copy, Debug)]
pub enum Timer {
    Resync,
    AskAgain { attempt: u32 },
}

/// A client waiting for its snapshot.
#[derive(Clone, Copy, Debug, Default)]
pub struct Client {
    pub awaiting_snapshot: bool,
}

fn server<C: OpCrdt>(ctx: &Ctx<'_, C, WebSocketRelay>) -> NodeId {
    ctx.server()
        .expect("the relay runs over the relay topology")
}

fn ask_for_snapshot<C: OpCrdt>(attempt: u32, ctx: &mut Ctx<'_, C, WebSocketRelay>) {
    let to = server(ctx);
    ctx.send(to, Message::SnapshotRequest);
    // Ask again after a timeout that doubles three times at most.
    let wait_us = ctx.options().retransmit_timeout.us << attempt.min(3);
    ctx.set_timer(
        wait_us,
        Timer::AskAgain {
            attempt: attempt + 1,
        },
    );
}

impl<C: OpCrdt> Protocol<C> for WebSocketRelay {
    type Message = Message<C>;
    type Node = Client;
    type Timer = Timer;

    fn refers_to_updates(&self) -> bool {
        false
    }

    fn init(&self, _ctx: &Ctx<'_, C, Self>) -> Client {
        Client::default()
    }

    fn on_start(&self, _client: &mut Client, ctx: &mut Ctx<'_, C, Self>) {
        if let Some(period) = ctx.options().anti_entropy {
            let offset = ctx.random_below(period.us.max(1));
            ctx.set_timer(offset, Timer::Resync);
        }
    }

    fn on_write(&self, _client: &mut Client, _update: Update, ctx: &mut Ctx<'_, C, Self>) {
        let state = ctx.snapshot();
        let to = server(ctx);
        ctx.send(to, Message::State(state));
    }

    fn on_message(
        &self,
        client: &mut Client,
        from: NodeId,
        message: &Message<C>,
        ctx: &mut Ctx<'_, C, Self>,
    ) {
        match message {
            Message::State(state) => {
                client.awaiting_snapshot = false;
                ctx.merge(state);
                if ctx.is_server() {
                    // Pass it on to every other connected client, as received.
                    let clients: Vec<NodeId> = (0..ctx.replicas())
                        .filter(|c| *c != from && ctx.status_of(*c) == Status::Up)
                        .collect();
                    ctx.forward(clients);
                }
            }
            Message::SnapshotRequest => {
                let state = ctx.snapshot();
                ctx.send(from, Message::State(state));
            }
        }
    }

    fn on_timer(&self, client: &mut Client, timer: Timer, ctx: &mut Ctx<'_, C, Self>) {
        match timer {
            Timer::Resync => {
                let period = ctx.options().anti_entropy.expect("set at start");
                ctx.set_timer(period.us, Timer::Resync);
                if ctx.is_up() {
                    // A client resyncs with the server; the server with `fanout` clients drawn
                    // at random.
                    let peers = ctx.random_peers();
                    if !peers.is_empty() {
                        let state = ctx.snapshot();
                        ctx.send_all(peers, Message::State(state));
                    }
                }
            }
            Timer::AskAgain { attempt } => {
                let retries = ctx.options().retransmit_max;
                if client.awaiting_snapshot && ctx.is_up() && attempt <= retries {
                    ask_for_snapshot(attempt, ctx);
                }
            }
        }
    }

    fn on_join(&self, client: &mut Client, ctx: &mut Ctx<'_, C, Self>) {
        if ctx.options().snapshot_on_join {
            client.awaiting_snapshot = true;
            ask_for_snapshot(0, ctx);
        }
    }

    fn on_restart(&self, client: &mut Client, _restart: Restart, ctx: &mut Ctx<'_, C, Self>) {
        self.on_join(client, ctx);
    }

    fn message_bytes(&self, message: &Message<C>, _ctx: &Ctx<'_, C, Self>) -> u64 {
        HEADER_BYTES
            + match message {
                Message::State(state) => state.size_bytes(),
                Message::SnapshotRequest => 0,
            }
    }
}
