//! The built-in protocols, one module each, written against the public seam
//! ([`crate::protocol::Protocol`]) exactly as a user's protocol is: [`StateBroadcast`],
//! [`AntiEntropy`], [`OpBroadcast`], [`ReliableCausal`], [`DeltaSync`], [`MerkleAntiEntropy`]
//! and [`OpStream`].
//! The first five share one message type and one timer type ([`Message`], [`Timer`]) and the
//! snapshot catch-up of a joining or restarting replica (`catch_up`); Merkle anti-entropy, which
//! ships parts of states rather than states or ops, has its own ([`MerkleMessage`]); everything
//! else is each protocol's own, as op stream's messages are.
//!
//! [`run_builtin`] is the registry: the one place that maps a scenario's `[protocol] kind` to its
//! implementation.

use std::sync::Arc;

use converge_crdt::{OpCrdt, ReplicaId};

use crate::outcome::{NodeId, Observer, Outcome};
use crate::protocol::{Ctx, Delta, Protocol, Snapshot, Update, HEADER_BYTES, MESSAGE_MEMORY_BYTES};
use crate::replicas::Replicas;
use crate::scenario::{ProtocolKind, Scenario};
use crate::sim::run_protocol;
use crate::validation::ScenarioError;

mod anti_entropy;
mod catch_up;
mod delta_sync;
mod merkle_anti_entropy;
mod op_broadcast;
mod op_stream;
mod reliable_causal;
mod state_broadcast;

pub use anti_entropy::AntiEntropy;
pub use catch_up::CatchUp;
pub use delta_sync::{DeltaNode, DeltaSync, LogPosition};
pub use merkle_anti_entropy::{KeyView, MerkleAntiEntropy, MerkleMessage, MerkleNode, RangeDigest};
pub use op_broadcast::OpBroadcast;
pub use op_stream::{OpStream, StreamMessage, StreamNode};
pub use reliable_causal::{ReliableCausal, ReliableNode};
pub use state_broadcast::StateBroadcast;

/// Runs `scenario` under the built-in protocol its `[protocol] kind` names.
pub(crate) fn run_builtin<C: OpCrdt>(
    scenario: &Scenario,
    seed: u64,
    make: &dyn Replicas<C>,
    observer: &mut dyn Observer<C>,
) -> Result<Outcome<C>, ScenarioError> {
    match scenario.protocol.kind {
        ProtocolKind::StateBroadcast => {
            run_protocol(scenario, seed, &StateBroadcast, make, observer)
        }
        ProtocolKind::AntiEntropy => run_protocol(scenario, seed, &AntiEntropy, make, observer),
        ProtocolKind::OpBroadcast => run_protocol(scenario, seed, &OpBroadcast, make, observer),
        ProtocolKind::ReliableCausal => {
            run_protocol(scenario, seed, &ReliableCausal, make, observer)
        }
        ProtocolKind::DeltaSync => run_protocol(scenario, seed, &DeltaSync, make, observer),
        ProtocolKind::MerkleAntiEntropy => merkle_anti_entropy::run(scenario, seed, make, observer),
        ProtocolKind::OpStream => run_protocol(scenario, seed, &OpStream, make, observer),
    }
}

/// What the built-in protocols send. States and op lists are shared between copies
/// (duplicates, relay fan-out) instead of cloned. `Debug` and `Hash` (where the CRDT has them)
/// let the model checker explore them.
#[derive(Debug, Hash)]
pub enum Message<C> {
    /// A whole state.
    State(Snapshot<C>),
    /// Ops, fire and forget.
    Ops(Arc<[Update]>),
    /// One update of reliable causal broadcast, with the origin's delivery vector when it was
    /// issued (its causal past).
    Reliable {
        update: Update,
        deps: Arc<[u32]>,
    },
    Ack {
        update: Update,
    },
    /// A joiner asks for a state.
    SnapshotRequest,
    /// A delta-sync poll.
    DeltaRequest {
        /// The requester's position in the answering node's log (log-position mode).
        position: LogPosition,
        /// The requester's contiguous delivery vector (version-vector mode).
        vector: Option<Arc<[u32]>>,
        /// A joiner's first request: answer with a snapshot of the whole state.
        snapshot: bool,
    },
    /// What the requester lacks: a delta of the answering node's state (none when it lacks
    /// nothing), or a snapshot.
    DeltaReply {
        delta: Option<Delta<C>>,
        next_position: LogPosition,
        snapshot: Option<Snapshot<C>>,
    },
}

/// What the built-in protocols' timers carry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// A periodic full-state round.
    AntiEntropy,
    /// A periodic delta-sync poll.
    Poll,
    /// A joiner asks for a snapshot again unless a state has arrived.
    SnapshotRetry { attempt: u32 },
    /// Reliable causal: send `update` to `to` again unless it was acknowledged.
    Retransmit {
        to: NodeId,
        update: Update,
        attempt: u32,
        deps: Arc<[u32]>,
    },
}

/// The retransmission backoff doubles at most this many times (to 8 timeouts, 1.6 s by default):
/// an uncapped backoff after a few losses in a row waited past the settle period, and a replica
/// that would have caught up was judged not converged (zoo sweep, seed 2859).
pub const BACKOFF_DOUBLINGS_MAX: u32 = 3;

/// The wait before retry `attempt` (counting from 0): the timeout, doubled per attempt up to
/// [`BACKOFF_DOUBLINGS_MAX`] times.
fn backoff_us(timeout_us: u64, attempt: u32) -> u64 {
    timeout_us.saturating_mul(1 << attempt.min(BACKOFF_DOUBLINGS_MAX))
}

/// The built-in protocols' message sizes on the wire: a header, plus ops and states.
fn message_bytes<C: OpCrdt, P: Protocol<C>>(message: &Message<C>, ctx: &Ctx<'_, C, P>) -> u64 {
    let ops = |ops: &[Update]| ops.iter().map(|u| ctx.op_bytes(*u)).sum::<u64>();
    HEADER_BYTES
        + match message {
            Message::State(snapshot) => snapshot.size_bytes(),
            Message::Ops(updates) => ops(updates),
            Message::Reliable { update, .. } => ctx.op_bytes(*update),
            Message::Ack { .. } => 4,
            Message::SnapshotRequest => 0,
            Message::DeltaRequest { vector, .. } => {
                8 + vector.as_ref().map_or(0, |v| 4 * v.len() as u64)
            }
            Message::DeltaReply {
                delta, snapshot, ..
            } => {
                8 + delta.as_ref().map_or(0, |d| d.size_bytes())
                    + snapshot.as_ref().map_or(0, |s| s.size_bytes())
            }
        }
}

/// The memory a built-in message in flight is charged: a fixed cost, plus what it holds (states
/// with their delivered sets, lists of updates).
fn message_memory_bytes<C: OpCrdt>(message: &Message<C>) -> u64 {
    MESSAGE_MEMORY_BYTES
        + match message {
            Message::State(snapshot) => snapshot.memory_bytes(),
            Message::Ops(ops) => 4 * ops.len() as u64,
            Message::DeltaRequest { vector, .. } => {
                vector.as_ref().map_or(0, |v| 4 * v.len() as u64)
            }
            Message::DeltaReply {
                delta, snapshot, ..
            } => {
                delta.as_ref().map_or(0, |d| d.memory_bytes())
                    + snapshot.as_ref().map_or(0, |s| s.memory_bytes())
            }
            Message::Reliable { .. } | Message::Ack { .. } | Message::SnapshotRequest => 0,
        }
}

/// The periodic full-state round shared by anti-entropy and the broadcasts' optional
/// anti-entropy: every node starts at a random offset within one period.
fn start_rounds<C: OpCrdt, P>(period_us: u64, ctx: &mut Ctx<'_, C, P>)
where
    P: Protocol<C, Message = Message<C>, Timer = Timer>,
{
    let offset = ctx.random_below(period_us.max(1));
    ctx.set_timer(offset, Timer::AntiEntropy);
}

/// One anti-entropy round: the node's whole state to `fanout` random peers, then the next round.
fn anti_entropy_round<C: OpCrdt, P>(period_us: u64, ctx: &mut Ctx<'_, C, P>)
where
    P: Protocol<C, Message = Message<C>, Timer = Timer>,
{
    ctx.set_timer(period_us, Timer::AntiEntropy);
    if ctx.is_up() {
        let targets = ctx.random_peers();
        if !targets.is_empty() {
            let state = ctx.snapshot();
            ctx.send_all(targets, Message::State(state));
        }
    }
}

/// A received state: merged; the relay server passes it on to the other clients, a gossiping
/// replica that learned something pushes its own state on. Returns whether it learned.
fn on_state<C: OpCrdt, P>(from: NodeId, state: &Snapshot<C>, ctx: &mut Ctx<'_, C, P>) -> bool
where
    P: Protocol<C, Message = Message<C>, Timer = Timer>,
{
    let learned = ctx.merge(state);
    pass_state_on(from, learned, ctx);
    learned
}

fn pass_state_on<C: OpCrdt, P>(from: NodeId, learned: bool, ctx: &mut Ctx<'_, C, P>)
where
    P: Protocol<C, Message = Message<C>, Timer = Timer>,
{
    if ctx.is_server() {
        let targets = ctx.push_targets(Some(from));
        ctx.forward(targets);
    } else if ctx.forwards(learned) {
        let own = ctx.snapshot();
        let targets = ctx.push_targets(Some(from));
        ctx.send_all(targets, Message::State(own));
    }
}

/// Over a connection that came back, this node's whole state to the other end, as a client does
/// when its socket opens again (unless `snapshot-on-join = false`, which reproduces the peer that
/// sends nothing on connecting): what was lost in flight while it was down is in it.
fn send_state_on_connect<C: OpCrdt, P>(peer: NodeId, ctx: &mut Ctx<'_, C, P>)
where
    P: Protocol<C, Message = Message<C>, Timer = Timer>,
{
    if ctx.options().snapshot_on_join {
        let state = ctx.snapshot();
        ctx.send(peer, Message::State(state));
    }
}

/// What the protocols that ship whole states to joiners do alike on a message (state broadcast,
/// anti-entropy, op broadcast): merge a state, answer a snapshot request. Returns whether the
/// message was one of those.
fn on_state_or_request<C: OpCrdt, P>(
    node: &mut CatchUp,
    from: NodeId,
    message: &Message<C>,
    ctx: &mut Ctx<'_, C, P>,
) -> bool
where
    P: Protocol<C, Message = Message<C>, Timer = Timer>,
{
    match message {
        Message::State(state) => {
            node.received_state();
            on_state(from, state, ctx);
            true
        }
        Message::SnapshotRequest => {
            catch_up::answer(from, ctx);
            true
        }
        _ => false,
    }
}

/// Their timers: an anti-entropy round every `anti-entropy` (or `interval`), a joiner's retry.
fn on_round_or_retry<C: OpCrdt, P>(node: &mut CatchUp, timer: Timer, ctx: &mut Ctx<'_, C, P>)
where
    P: Protocol<C, Message = Message<C>, Timer = Timer>,
{
    match timer {
        Timer::AntiEntropy => {
            let options = ctx.options();
            let period = options.anti_entropy.unwrap_or(options.interval);
            anti_entropy_round(period.us, ctx);
        }
        Timer::SnapshotRetry { attempt } => node.retry(attempt, ctx),
        Timer::Poll | Timer::Retransmit { .. } => {}
    }
}

/// Moves `origin`'s entry of a contiguous-delivery vector past every update now delivered.
fn advance_vector<C: OpCrdt, P: Protocol<C>>(
    vector: &mut [u32],
    origin: ReplicaId,
    ctx: &Ctx<'_, C, P>,
) {
    let Some(count) = vector.get_mut(origin as usize) else {
        return;
    };
    while let Some(update) = ctx.updates_by(origin).nth(*count as usize) {
        if !ctx.holds(update) {
            break;
        }
        *count += 1;
    }
}

/// Moves every origin's entry past what is now delivered (after a merged state).
fn advance_vector_all<C: OpCrdt, P: Protocol<C>>(vector: &mut [u32], ctx: &Ctx<'_, C, P>) {
    for origin in 0..ctx.replicas() {
        advance_vector(vector, origin, ctx);
    }
}
