//! The trace: every event gets an index, is hashed into the trace hash through a canonical
//! encoding written field by field, is shown to the observer, and is kept while the trace has room.

use converge_crdt::OpCrdt;

use super::Sim;
use crate::outcome::{EventKind, NodeId, TraceEvent, World};
use crate::protocol::Protocol;

impl<C: OpCrdt, P: Protocol<C>> Sim<'_, C, P> {
    pub(super) fn emit(&mut self, kind: EventKind, touched: &[NodeId]) {
        let event = TraceEvent {
            index: self.events,
            at_us: self.net.now_us,
            kind,
        };
        self.events += 1;
        if let Some(flips) = self.net.coins.take_trail() {
            // The coins the action behind this event flipped.
            hash_word(&mut self.trace_hash, flips);
        }
        hash_event(&mut self.trace_hash, &event);
        let clients = self.net.replicas;
        let touched_clients: &[NodeId] = if touched.iter().all(|t| *t < clients) {
            touched
        } else {
            &[]
        };
        let world = World {
            now_us: self.net.now_us,
            replicas: &self.net.nodes[..clients as usize],
            updates: &self.net.updates,
            touched: touched_clients,
            settling: self.settling,
        };
        self.observer.on_event(&event, &world);
        if (self.trace.len() as u64) < self.scenario.bounds.trace_events_kept_max {
            self.trace.push(event);
        } else {
            self.trace_truncated = true;
        }
    }
}

/// The trace hash before any event: an arbitrary fixed constant (FNV-1a's offset basis).
pub(super) const HASH_SEED: u64 = 0xcbf2_9ce4_8422_2325;
/// An odd multiplier with well-spread bits (splitmix64's second constant).
const HASH_MULTIPLIER: u64 = 0x94d0_49bb_1331_11eb;

/// Folds one 64-bit word into the hash: a multiply-xorshift round. It works on whole words rather
/// than bytes (byte-wise FNV-1a cost a fifth of the simulator's time), and every bit of the word
/// reaches every later bit through the multiply and the low half through the shift.
fn hash_word(hash: &mut u64, word: u64) {
    let mixed = (*hash ^ word).wrapping_mul(HASH_MULTIPLIER);
    *hash = mixed ^ (mixed >> 32);
}

/// Node ids fit in this many bits (validation caps replicas far below), so that two of them and the
/// event kind share one word.
const NODE_BITS: u32 = 28;

/// Kind and two node ids (or other small fields) in one word.
fn pack(kind: u64, a: u32, b: u32) -> u64 {
    debug_assert!(a < 1 << NODE_BITS && b < 1 << NODE_BITS);
    kind | u64::from(a) << 8 | u64::from(b) << (8 + NODE_BITS)
}

/// Folds an event into the hash: its time, then its fields in four words. The index is left out:
/// the chain already encodes each event's position.
pub(super) fn hash_event(hash: &mut u64, event: &TraceEvent) {
    let words: [u64; 3] = match event.kind {
        EventKind::Write {
            replica,
            update,
            key,
        } => [
            pack(1, replica, update.origin),
            u64::from(update.seq),
            u64::from(key),
        ],
        EventKind::Send {
            from,
            to,
            message,
            bytes,
        } => [pack(2, from, to), message, bytes],
        EventKind::Deliver {
            from,
            to,
            message,
            changed,
        } => [pack(3, from, to), message, u64::from(changed)],
        EventKind::Drop {
            from,
            to,
            message,
            cause,
        } => [pack(4, from, to), message, cause as u64],
        EventKind::Duplicate { from, to, message } => [pack(5, from, to), message, 0],
        EventKind::FaultStart { fault } => [pack(6, 0, 0), u64::from(fault), 0],
        EventKind::FaultEnd { fault } => [pack(7, 0, 0), u64::from(fault), 0],
        EventKind::Crash { replica } => [pack(8, replica, 0), 0, 0],
        EventKind::Restart { replica } => [pack(9, replica, 0), 0, 0],
        EventKind::Join { replica } => [pack(10, replica, 0), 0, 0],
        EventKind::Leave { replica } => [pack(11, replica, 0), 0, 0],
        EventKind::Timer { node } => [pack(12, node, 0), 0, 0],
        EventKind::SettleStart => [pack(13, 0, 0), 0, 0],
    };
    hash_word(hash, event.at_us);
    for word in words {
        hash_word(hash, word);
    }
}
