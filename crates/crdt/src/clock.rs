//! Clocks that issue stamp times.
//!
//! A clock never reads a time source: the caller passes the virtual time (`now_us`, microseconds)
//! and, for per-key counters, the stamp time currently held under the key being written. Skew (a
//! fixed offset and a drift) is part of the clock, so a skewed wall clock is an ordinary value.

use serde::{Deserialize, Serialize};

/// Which clock a replica stamps its writes with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClockKind {
    /// A Lamport counter: one tick per local write, and the maximum of its own and the received time
    /// on every receive. Causally later writes always get greater stamps.
    #[default]
    Lamport,
    /// A Lamport counter that forgets to take the maximum on receive: a reproduction of a real bug.
    /// A replica that writes rarely keeps issuing small stamps and loses to stale writes.
    LamportLocalOnly,
    /// The grid tutorial's counter: the new stamp is the cell's current stamp plus one.
    PerKeyCounter,
    /// The replica's physical clock in microseconds, skewed by its offset and drift. A replica whose
    /// clock runs behind issues stamps that lose to causally earlier writes.
    WallClock,
    /// A hybrid logical clock: the physical reading, but never less than one past the greatest time
    /// issued or received, so it tracks real time yet respects causality. (The logical counter of the
    /// published algorithm is folded into the microsecond: it advances by one microsecond.)
    Hybrid,
}

/// A replica's physical clock error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Skew {
    /// Added to every reading, in microseconds (negative: the clock is behind).
    pub offset_us: i64,
    /// How fast the clock runs against virtual time, in parts per million (negative: slower).
    pub drift_ppm: i64,
}

impl Skew {
    /// The physical reading at virtual time `now_us`, clamped at zero.
    pub fn read_us(&self, now_us: u64) -> u64 {
        let scaled = i128::from(now_us) * (1_000_000 + i128::from(self.drift_ppm)) / 1_000_000;
        let reading = scaled + i128::from(self.offset_us);
        reading.clamp(0, i128::from(u64::MAX)) as u64
    }
}

/// A replica's clock: its kind, its skew and the greatest time it has issued or (where the kind
/// listens) received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Clock {
    pub kind: ClockKind,
    pub skew: Skew,
    /// The greatest time issued or observed so far.
    pub last: u64,
}

impl Clock {
    pub fn new(kind: ClockKind, skew: Skew) -> Self {
        Clock {
            kind,
            skew,
            last: 0,
        }
    }

    /// Issues the time for a new local write at virtual time `now_us`. `key_time` is the stamp time
    /// currently held under the written key, used by [`ClockKind::PerKeyCounter`].
    pub fn tick(&mut self, now_us: u64, key_time: Option<u64>) -> u64 {
        let time = match self.kind {
            ClockKind::Lamport | ClockKind::LamportLocalOnly => self.last.saturating_add(1),
            ClockKind::PerKeyCounter => key_time.unwrap_or(0).saturating_add(1),
            // A wall clock's own readings never go backwards on one replica: two writes in the same
            // microsecond still get distinct, increasing stamps.
            ClockKind::WallClock | ClockKind::Hybrid => {
                self.skew.read_us(now_us).max(self.last.saturating_add(1))
            }
        };
        self.last = self.last.max(time);
        time
    }

    /// Observes a time carried by a received message.
    pub fn observe(&mut self, remote_time: u64) {
        match self.kind {
            ClockKind::Lamport | ClockKind::Hybrid => self.last = self.last.max(remote_time),
            ClockKind::LamportLocalOnly | ClockKind::PerKeyCounter | ClockKind::WallClock => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lamport_ticks_and_takes_the_maximum_on_receive() {
        let mut clock = Clock::new(ClockKind::Lamport, Skew::default());
        assert_eq!(clock.tick(0, None), 1);
        assert_eq!(clock.tick(0, None), 2);
        clock.observe(10);
        assert_eq!(clock.tick(0, None), 11);
        clock.observe(5);
        assert_eq!(clock.tick(0, None), 12);
    }

    #[test]
    fn lamport_without_max_on_receive_ignores_what_it_hears() {
        let mut clock = Clock::new(ClockKind::LamportLocalOnly, Skew::default());
        clock.observe(10);
        assert_eq!(clock.tick(0, None), 1);
    }

    #[test]
    fn per_key_counter_adds_one_to_the_key_stamp() {
        let mut clock = Clock::new(ClockKind::PerKeyCounter, Skew::default());
        assert_eq!(clock.tick(0, None), 1);
        assert_eq!(clock.tick(0, Some(7)), 8);
        assert_eq!(clock.tick(0, Some(2)), 3);
    }

    #[test]
    fn wall_clock_applies_offset_and_drift_and_stays_monotonic() {
        let behind = Skew {
            offset_us: -1_000,
            drift_ppm: 0,
        };
        let mut clock = Clock::new(ClockKind::WallClock, behind);
        assert_eq!(clock.tick(5_000, None), 4_000);
        assert_eq!(clock.tick(5_000, None), 4_001);
        clock.observe(1_000_000);
        assert_eq!(
            clock.tick(6_000, None),
            5_000,
            "a wall clock does not listen"
        );
        let fast = Skew {
            offset_us: 0,
            drift_ppm: 100_000,
        };
        assert_eq!(fast.read_us(1_000_000), 1_100_000);
        assert_eq!(
            Skew {
                offset_us: -10,
                drift_ppm: 0
            }
            .read_us(5),
            0,
            "readings clamp at zero"
        );
    }

    #[test]
    fn hybrid_clock_follows_physical_time_and_respects_causality() {
        let mut clock = Clock::new(
            ClockKind::Hybrid,
            Skew {
                offset_us: -1_000,
                drift_ppm: 0,
            },
        );
        assert_eq!(clock.tick(5_000, None), 4_000);
        clock.observe(9_000);
        assert_eq!(clock.tick(5_000, None), 9_001);
        assert_eq!(clock.tick(20_000, None), 19_000);
    }
}
