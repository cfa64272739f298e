//! The trace: every event gets an index, is hashed into the trace hash through a canonical
//! encoding written field by field, is shown to the observer, and is kept while the trace has room.

use converge_crdt::OpCrdt;

use super::Sim;
use crate::outcome::{EventKind, NodeId, TraceEvent, World};

impl<C: OpCrdt> Sim<'_, C> {
    pub(super) fn emit(&mut self, kind: EventKind, touched: &[NodeId]) {
        let event = TraceEvent {
            index: self.events,
            at_us: self.now_us,
            kind,
        };
        self.events += 1;
        hash_event(&mut self.trace_hash, &event);
        let clients = self.replicas;
        let touched_clients: &[NodeId] = if touched.iter().all(|t| *t < clients) {
            touched
        } else {
            &[]
        };
        let world = World {
            now_us: self.now_us,
            replicas: &self.nodes[..clients as usize],
            updates: &self.updates,
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

pub(super) fn hash_event(hash: &mut u64, event: &TraceEvent) {
    hash_word(hash, event.index);
    hash_word(hash, event.at_us);
    let words: [u64; 5] = match event.kind {
        EventKind::Write {
            replica,
            update,
            key,
        } => [
            1,
            u64::from(replica),
            u64::from(update.origin),
            u64::from(update.seq),
            u64::from(key),
        ],
        EventKind::Send {
            from,
            to,
            message,
            bytes,
        } => [2, u64::from(from), u64::from(to), message, bytes],
        EventKind::Deliver {
            from,
            to,
            message,
            changed,
        } => [
            3,
            u64::from(from),
            u64::from(to),
            message,
            u64::from(changed),
        ],
        EventKind::Drop {
            from,
            to,
            message,
            cause,
        } => [4, u64::from(from), u64::from(to), message, cause as u64],
        EventKind::Duplicate { from, to, message } => {
            [5, u64::from(from), u64::from(to), message, 0]
        }
        EventKind::FaultStart { fault } => [6, u64::from(fault), 0, 0, 0],
        EventKind::FaultEnd { fault } => [7, u64::from(fault), 0, 0, 0],
        EventKind::Crash { replica } => [8, u64::from(replica), 0, 0, 0],
        EventKind::Restart { replica } => [9, u64::from(replica), 0, 0, 0],
        EventKind::Join { replica } => [10, u64::from(replica), 0, 0, 0],
        EventKind::Leave { replica } => [11, u64::from(replica), 0, 0, 0],
        EventKind::Timer { node } => [12, u64::from(node), 0, 0, 0],
        EventKind::SettleStart => [13, 0, 0, 0, 0],
    };
    for word in words {
        hash_word(hash, word);
    }
}
