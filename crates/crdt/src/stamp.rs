//! Stamps, update ids and the tie-break policies of last-writer-wins types.

use serde::{Deserialize, Serialize};

use crate::traits::Coin;

/// A replica's identity. Replicas are numbered from zero in a scenario.
pub type ReplicaId = u32;

/// When and where a write happened. Stamps are totally ordered by `(time, replica)`: the derived
/// `Ord` compares `time` first, so a greater time always wins and the replica id only breaks ties.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Stamp {
    /// Logical or physical time, as the replica's clock issued it.
    pub time: u64,
    /// The replica that issued the stamp.
    pub replica: ReplicaId,
}

impl Stamp {
    pub fn new(time: u64, replica: ReplicaId) -> Self {
        Stamp { time, replica }
    }
}

/// The unique identity of one update: the replica it originated at and its sequence number there
/// (starting at 1). The simulator tracks which replica has delivered which update by these ids.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct UpdateId {
    pub origin: ReplicaId,
    pub seq: u32,
}

/// What a last-writer-wins register does when two writes carry the same stamp time.
///
/// Only [`TieBreak::PeerId`] is a correct CRDT. The other two are faithful reproductions of bugs seen
/// in real code, kept so that the harness can show what they do.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum TieBreak {
    /// The greater replica id wins, then the greater value: every replica picks the same winner.
    #[default]
    PeerId,
    /// Each receiver flips a coin (the grid tutorial's behaviour): replicas can pick different winners.
    Random,
    /// The receiver keeps what it has: each replica keeps its own write.
    KeepLocal,
}

/// Decides whether an incoming `(stamp, value)` replaces the local one in a last-writer-wins
/// register. Times are compared first; equal times go to the policy. With `PeerId`, the full order
/// `(time, replica, value)` makes the outcome independent of which side is local, which is what makes
/// merge commutative even for two writes with identical stamps.
pub fn incoming_wins<V: Ord>(
    local: (Stamp, &V),
    incoming: (Stamp, &V),
    tie_break: TieBreak,
    coin: &mut dyn Coin,
) -> bool {
    let (local_stamp, local_value) = local;
    let (incoming_stamp, incoming_value) = incoming;
    if incoming_stamp.time != local_stamp.time {
        return incoming_stamp.time > local_stamp.time;
    }
    if incoming_stamp == local_stamp && incoming_value == local_value {
        // The same write arriving again: nothing to decide, and no coin is spent on it.
        return false;
    }
    match tie_break {
        TieBreak::PeerId => {
            (incoming_stamp.replica, incoming_value) > (local_stamp.replica, local_value)
        }
        TieBreak::Random => coin.flip(),
        TieBreak::KeepLocal => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traits::FixedCoin;

    #[test]
    fn greater_time_wins_whatever_the_policy() {
        for policy in [TieBreak::PeerId, TieBreak::Random, TieBreak::KeepLocal] {
            let mut coin = FixedCoin(false);
            assert!(incoming_wins(
                (Stamp::new(1, 9), &5),
                (Stamp::new(2, 0), &1),
                policy,
                &mut coin
            ));
            assert!(!incoming_wins(
                (Stamp::new(2, 0), &1),
                (Stamp::new(1, 9), &5),
                policy,
                &mut coin
            ));
        }
    }

    #[test]
    fn equal_times_follow_the_policy() {
        let local = (Stamp::new(3, 1), &10u64);
        let incoming = (Stamp::new(3, 2), &20u64);
        assert!(incoming_wins(
            local,
            incoming,
            TieBreak::PeerId,
            &mut FixedCoin(false)
        ));
        assert!(!incoming_wins(
            incoming,
            local,
            TieBreak::PeerId,
            &mut FixedCoin(true)
        ));
        assert!(incoming_wins(
            local,
            incoming,
            TieBreak::Random,
            &mut FixedCoin(true)
        ));
        assert!(!incoming_wins(
            local,
            incoming,
            TieBreak::Random,
            &mut FixedCoin(false)
        ));
        assert!(!incoming_wins(
            local,
            incoming,
            TieBreak::KeepLocal,
            &mut FixedCoin(true)
        ));
    }

    #[test]
    fn a_duplicate_write_never_replaces_itself() {
        let write = (Stamp::new(3, 1), &10u64);
        for policy in [TieBreak::PeerId, TieBreak::Random, TieBreak::KeepLocal] {
            assert!(!incoming_wins(write, write, policy, &mut FixedCoin(true)));
        }
    }
}
