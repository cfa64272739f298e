//! The event queue: every scheduled action in one total order, virtual time first and then the
//! order of scheduling, so that simultaneous actions run in the order they were scheduled.
//!
//! A discrete-event simulation never schedules into its past, so the queue is a radix heap: an
//! entry lives in the bucket named by the highest bit in which its key differs from the last key
//! popped, pushing is appending to a bucket, and popping empties the lowest non-empty bucket into
//! lower ones around its least key. An entry moves down a few times in its life, each time by a
//! sequential append, where a binary heap moves it at every level of every push and pop: with
//! broadcast to 1,000 replicas tens of thousands of messages are in flight, and a binary heap of
//! whole actions was two fifths of the simulator's time. Actions travel inside their entries:
//! kept apart in a slab, each pop read a cold slot, which cost as much again.

/// The key of the last entry popped, or (0, 0) before the first.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    at_us: u64,
    seq: u64,
}

struct Entry<A> {
    key: Key,
    action: A,
}

/// Buckets 1 to 64 hold keys that differ from the last popped key in the sequence number only,
/// at bit `bucket - 1`; buckets 65 to 128 keys whose time differs, at bit `bucket - 65`.
const BUCKETS: usize = 129;

pub(super) struct EventQueue<A> {
    buckets: Vec<Vec<Entry<A>>>,
    /// Bit `(b - 1) % 64` of word `(b - 1) / 64` is set when bucket `b` (1 to 128) is not empty.
    /// Bucket 0 holds only keys equal to the last popped one, and keys are unique, so it holds at
    /// most the entry being popped and needs no bit. (Two words, not one 128-bit integer, whose
    /// variable shifts compile to branches.)
    occupied: [u64; 2],
    last: Key,
    next_seq: u64,
}

impl<A> EventQueue<A> {
    pub(super) fn new() -> Self {
        EventQueue {
            buckets: (0..BUCKETS).map(|_| Vec::new()).collect(),
            occupied: [0; 2],
            last: Key::default(),
            next_seq: 0,
        }
    }

    /// Schedules `action` at `at_us`, after everything already scheduled for that time.
    ///
    /// # Panics
    /// If `at_us` is before the time of the last action popped: the simulator never schedules
    /// into its past.
    pub(super) fn push(&mut self, at_us: u64, action: A) {
        assert!(
            at_us >= self.last.at_us,
            "an action scheduled at {at_us} us, before the current time {} us",
            self.last.at_us
        );
        let key = Key {
            at_us,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        self.insert(Entry { key, action });
    }

    /// The earliest action and its time.
    pub(super) fn pop(&mut self) -> Option<(u64, A)> {
        if self.buckets[0].is_empty() {
            let lowest = match self.occupied {
                [0, 0] => return None,
                [0, high] => 65 + high.trailing_zeros() as usize,
                [low, _] => 1 + low.trailing_zeros() as usize,
            };
            self.occupied[(lowest - 1) / 64] &= !(1 << ((lowest - 1) % 64));
            if self.buckets[lowest].len() == 1 {
                // A lone entry is the least: it is popped where it lies.
                let entry = self.buckets[lowest].pop().expect("one entry");
                self.last = entry.key;
                return Some((entry.key.at_us, entry.action));
            }
            let mut moving = std::mem::take(&mut self.buckets[lowest]);
            self.last = moving
                .iter()
                .map(|entry| entry.key)
                .min()
                .expect("an occupied bucket has entries");
            // Every entry of the bucket now differs from the new last key in a lower bit than
            // before, so each lands in a lower bucket, the least one in bucket 0.
            // (The order within a bucket does not matter: only its least key is ever asked for.)
            while let Some(entry) = moving.pop() {
                self.insert(entry);
            }
            // Keep the emptied bucket's allocation for its next use.
            self.buckets[lowest] = moving;
        }
        let entry = self.buckets[0]
            .pop()
            .expect("the least key of a bucket lands in bucket 0");
        debug_assert!(self.buckets[0].is_empty(), "keys are unique");
        Some((entry.key.at_us, entry.action))
    }

    // Inlined into both callers: called apart, each entry was copied once more to pass it.
    #[inline(always)]
    fn insert(&mut self, entry: Entry<A>) {
        let bucket = bucket_of(entry.key, self.last);
        if bucket > 0 {
            self.occupied[(bucket - 1) / 64] |= 1 << ((bucket - 1) % 64);
        }
        self.buckets[bucket].push(entry);
    }
}

/// The bucket of `key` while `last` is the last key popped (`key >= last`).
fn bucket_of(key: Key, last: Key) -> usize {
    if key.at_us != last.at_us {
        64 + (64 - (key.at_us ^ last.at_us).leading_zeros() as usize)
    } else if key.seq != last.seq {
        64 - (key.seq ^ last.seq).leading_zeros() as usize
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::EventQueue;

    #[test]
    fn pops_by_time_then_scheduling_order() {
        let mut queue = EventQueue::new();
        for (at_us, name) in [(5, "a"), (1, "b"), (5, "c"), (0, "d"), (1, "e")] {
            queue.push(at_us, name);
        }
        let first: Vec<_> = std::iter::from_fn(|| queue.pop()).take(3).collect();
        assert_eq!(first, vec![(0, "d"), (1, "b"), (1, "e")]);
        queue.push(5, "f");
        queue.push(2, "g");
        let rest: Vec<_> = std::iter::from_fn(|| queue.pop()).collect();
        assert_eq!(rest, vec![(2, "g"), (5, "a"), (5, "c"), (5, "f")]);
        assert!(queue.pop().is_none());
    }

    /// Against a plain sort by (time, scheduling order), with pushes between pops at or after the
    /// current time, many at the same time, and times far apart.
    #[test]
    fn pops_in_the_same_order_as_a_sort() {
        let mut queue = EventQueue::new();
        let mut expected: Vec<(u64, u64)> = Vec::new();
        let mut popped = Vec::new();
        let mut next = crate::test_random::below_generator(0x9e37_79b9_7f4a_7c15u64);
        let mut now = 0u64;
        let mut seq = 0u64;
        for _ in 0..20_000 {
            if next(3) > 0 || expected.is_empty() {
                let at = match next(4) {
                    0 => now,
                    1 => now + next(50),
                    2 => now + next(50_000),
                    _ => now + (1 << 40) + next(1 << 20),
                };
                queue.push(at, seq);
                expected.push((at, seq));
                seq += 1;
            } else {
                expected.sort_unstable();
                let want = expected.remove(0);
                let got = queue.pop().expect("not empty");
                assert_eq!(got, want);
                now = got.0;
                popped.push(got);
            }
        }
        expected.sort_unstable();
        let rest: Vec<_> = std::iter::from_fn(|| queue.pop()).collect();
        assert_eq!(rest, expected);
        assert!(popped.len() > 1_000);
    }

    #[test]
    #[should_panic(expected = "before the current time")]
    fn scheduling_into_the_past_is_a_bug() {
        let mut queue = EventQueue::new();
        queue.push(10, ());
        queue.pop();
        queue.push(9, ());
    }
}
