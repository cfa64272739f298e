//! Liveness after the settle period: a *sync loop* (messages keep flowing on a healed network
//! with no writes left while no replica learns anything) and a *stall* (nothing in flight and
//! nothing sent, yet live replicas differ or lack updates).
//!
//! [`LivenessWatch`] is an observer that sleeps until the settle period begins, then follows
//! two things. The quiet tail: the time since a replica last learned an update, a write was
//! made or a fault ended, and the messages each node sent since. And idle chains: a delivery
//! that changed nothing and sent a message makes that message one link longer than the one it
//! answered, so that two peers answering each other forever (each believing the other needs
//! something) build a chain as long as the loop runs, while a periodic round (anti-entropy, a
//! poll) starts a new chain at every timer. [`judge_liveness`] reads both at the end of a run.

use std::collections::{BTreeMap, HashMap};

use converge_crdt::OpCrdt;
use converge_netsim::{EventKind, NodeId, Observer, Outcome, Scenario, TraceEvent, World};

/// Follows the settle period for [`judge_liveness`].
#[derive(Debug, Default)]
pub struct LivenessWatch {
    /// When a replica last learned an update, a write was made or a fault ended (or the settle
    /// period began).
    quiet_since_us: u64,
    /// Messages each node sent since `quiet_since_us`.
    sent_in_tail: BTreeMap<NodeId, u64>,
    /// When a message was last sent or delivered.
    last_traffic_us: u64,
    /// Each replica's delivered-set size when last seen, to tell a touched replica that learned
    /// something from one that was only handed what it had.
    delivered: Vec<u32>,
    /// The idle chain the handler being traced continues: its sends extend it.
    cause_chain: u64,
    /// Messages in flight that continue an idle chain, with its length. Only looked up, never
    /// iterated; an entry goes at the message's first delivery or drop.
    chain_of: HashMap<u64, u64>,
    /// The longest idle chain so far, with when it reached that length and the nodes of its
    /// last delivery.
    longest: Option<IdleChain>,
    settling: bool,
}

/// A chain of deliveries each of which changed nothing and sent the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct IdleChain {
    deliveries: u64,
    at_us: u64,
    between: (NodeId, NodeId),
}

/// What a run's liveness came to, when it is a failure.
#[derive(Clone, Debug, PartialEq)]
pub enum Liveness {
    /// Messages kept flowing while nobody learned anything.
    SyncLoop {
        detail: String,
        /// The nodes that kept talking, by messages sent.
        talkers: Vec<NodeId>,
    },
    /// Quiet for good while replicas still differ.
    Stalled { detail: String },
}

impl LivenessWatch {
    pub fn new() -> Self {
        Self::default()
    }

    fn quiet_from(&mut self, at_us: u64) {
        self.quiet_since_us = at_us;
        self.sent_in_tail.clear();
    }

    /// Whether a replica the event touched holds more updates than when last seen.
    fn learned<C: OpCrdt>(&mut self, world: &World<'_, C>) -> bool {
        let mut learned = false;
        for &replica in world.touched {
            let now = world.replicas[replica as usize].delivered.len();
            let before = std::mem::replace(&mut self.delivered[replica as usize], now);
            learned |= now > before;
        }
        learned
    }
}

impl<C: OpCrdt> Observer<C> for LivenessWatch {
    /// Asleep until the settle period: one test per event, inlined into the judged run loop
    /// (the watch is on every judged run, and most events come before the settle period).
    #[inline(always)]
    fn on_event(&mut self, event: &TraceEvent, world: &World<'_, C>) {
        if world.settling {
            self.follow(event, world);
        }
    }
}

impl LivenessWatch {
    #[inline(never)]
    fn follow<C: OpCrdt>(&mut self, event: &TraceEvent, world: &World<'_, C>) {
        let at_us = event.at_us;
        if !self.settling {
            self.settling = true;
            self.quiet_from(at_us);
            for replica in world.replicas {
                self.delivered.push(replica.delivered.len());
            }
        }
        let learned = self.learned(world);
        match event.kind {
            EventKind::Send { from, message, .. } => {
                self.last_traffic_us = at_us;
                *self.sent_in_tail.entry(from).or_default() += 1;
                if self.cause_chain > 0 {
                    self.chain_of.insert(message, self.cause_chain);
                }
                return;
            }
            EventKind::Drop { message, .. } => {
                self.chain_of.remove(&message);
                return;
            }
            EventKind::Duplicate { .. } => return,
            EventKind::Deliver {
                from,
                to,
                message,
                changed,
            } => {
                self.last_traffic_us = at_us;
                let answered = self.chain_of.remove(&message).unwrap_or(0);
                self.cause_chain = if changed || learned { 0 } else { answered + 1 };
                if self.longest.is_none_or(|l| self.cause_chain > l.deliveries) {
                    self.longest = Some(IdleChain {
                        deliveries: self.cause_chain,
                        at_us,
                        between: (from, to),
                    });
                }
                if changed || learned {
                    self.quiet_from(at_us);
                }
                return;
            }
            EventKind::Write { .. }
            | EventKind::FaultEnd { .. }
            | EventKind::Restart { .. }
            | EventKind::Join { .. } => self.quiet_from(at_us),
            _ if learned => self.quiet_from(at_us),
            _ => {}
        }
        self.cause_chain = 0;
    }
}

/// Whether every fault had ended by `end_us`: a cut healed, a dropped connection came back, an
/// outage ended (a crash without restart leaves a replica down, which is not judged, and does
/// not keep the network unhealed).
fn healed_by(
    scenario: &Scenario,
    outcome_faults: &[converge_netsim::FaultSpec],
    end_us: u64,
) -> bool {
    use converge_netsim::FaultSpec;
    outcome_faults.iter().all(|fault| match fault {
        FaultSpec::Partition { .. }
        | FaultSpec::Isolate { .. }
        | FaultSpec::Bridge { .. }
        | FaultSpec::ServerOutage { .. }
        | FaultSpec::ConnectionDrop { .. } => fault
            .end(scenario.network.reconnect_after)
            .is_some_and(|end| end.us <= end_us),
        _ => true,
    })
}

/// The liveness failure of a finished run, if it has one: a sync loop (an idle chain of
/// `bounds.sync-loop-messages` deliveries, or that many messages in the quiet tail of a run
/// that did not converge), else for a run that did not converge a stall (no message sent or
/// delivered in at least the last half of the settle period, and nothing in flight at the
/// end: a timer that would still send would have sent by then). A run whose network never
/// healed, or that has no settle period, has neither: there was no quiet time to judge.
pub fn judge_liveness<C: OpCrdt>(
    scenario: &Scenario,
    outcome: &Outcome<C>,
    watch: &LivenessWatch,
    converged: bool,
) -> Option<Liveness> {
    // Without a settle period there is no quiet time to judge.
    if !watch.settling
        || scenario.settle.us == 0
        || !healed_by(scenario, &outcome.faults, outcome.end_us)
    {
        return None;
    }
    let bound = scenario.bounds.sync_loop_messages.max(1);
    let tail_us = outcome.end_us.saturating_sub(watch.quiet_since_us);
    let sent: u64 = watch.sent_in_tail.values().sum();
    let mut talkers: Vec<(NodeId, u64)> =
        watch.sent_in_tail.iter().map(|(n, c)| (*n, *c)).collect();
    talkers.sort_by_key(|(node, count)| (std::cmp::Reverse(*count), *node));
    let named = |talkers: &[(NodeId, u64)]| {
        talkers
            .iter()
            .take(8)
            .map(|(node, count)| format!("n{node} ({count})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(chain) = watch.longest.filter(|chain| chain.deliveries >= bound) {
        let (a, b) = chain.between;
        return Some(Liveness::SyncLoop {
            detail: format!(
                "sync loop: by {:.1} s, {} deliveries in a row each changed nothing and answered \
                 with the next message (the bound is {bound}, bounds.sync-loop-messages), the last \
                 between n{a} and n{b}; {sent} messages in the last {:.1} s while no replica \
                 learned anything ({:.1}/s), from {}",
                chain.at_us as f64 / 1e6,
                chain.deliveries,
                tail_us as f64 / 1e6,
                per_second(sent, tail_us),
                named(&talkers)
            ),
            talkers: talkers.iter().map(|(node, _)| *node).collect(),
        });
    }
    if converged {
        return None;
    }
    if sent >= bound {
        return Some(Liveness::SyncLoop {
            detail: format!(
                "sync loop: {sent} messages in the last {:.1} s ({:.1}/s) after the network healed \
                 and the writes ended, while no replica learned anything and replicas still \
                 differ (the bound is {bound}, bounds.sync-loop-messages); nodes that keep \
                 talking: {}",
                tail_us as f64 / 1e6,
                per_second(sent, tail_us),
                named(&talkers)
            ),
            talkers: talkers.iter().map(|(node, _)| *node).collect(),
        });
    }
    let silent_us = outcome
        .end_us
        .saturating_sub(watch.last_traffic_us.max(watch.quiet_since_us));
    let quiet_enough = silent_us >= scenario.settle.us / 2;
    (outcome.in_flight_at_end == 0 && quiet_enough).then(|| Liveness::Stalled {
        detail: format!(
            "stalled: nothing in flight and no message sent for the last {:.1} s, after the \
             network healed and the writes ended, yet live replicas differ or lack updates",
            silent_us as f64 / 1e6
        ),
    })
}

fn per_second(messages: u64, span_us: u64) -> f64 {
    messages as f64 / (span_us.max(1) as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use converge_netsim::{FaultSpec, ProtocolKind, Scenario, SimDuration, Verdict};

    use crate::judge::judge_builtin;

    fn secs(s: u64) -> SimDuration {
        SimDuration::from_secs(s)
    }

    /// Op broadcast losing a tenth of its messages: replicas end apart, and nothing more is
    /// ever sent.
    fn lossy_op_broadcast() -> Scenario {
        let mut scenario = Scenario {
            name: "lossy".into(),
            replicas: 3,
            duration: secs(3),
            settle: secs(4),
            ..Scenario::default()
        };
        scenario.protocol.kind = ProtocolKind::OpBroadcast;
        scenario.network.drop = 0.1;
        scenario.workload.rate = 5.0;
        scenario
    }

    fn first_verdict_other_than_converges(scenario: &Scenario) -> Verdict {
        (0..20)
            .map(|seed| judge_builtin(scenario, seed).expect("valid").verdict)
            .find(|verdict| *verdict != Verdict::Converges)
            .expect("some seed loses an op")
    }

    #[test]
    fn a_lost_op_with_nothing_left_to_send_is_a_stall() {
        assert_eq!(
            first_verdict_other_than_converges(&lossy_op_broadcast()),
            Verdict::Stalled
        );
    }

    #[test]
    fn a_network_that_never_heals_or_no_settle_period_is_only_not_converged() {
        let mut cut = lossy_op_broadcast();
        cut.network.drop = 0.0;
        cut.faults.push(FaultSpec::Isolate {
            at: secs(1),
            heal: None,
            replica: 0,
        });
        assert_eq!(
            first_verdict_other_than_converges(&cut),
            Verdict::NotConverged
        );
        let mut unsettled = lossy_op_broadcast();
        unsettled.settle = SimDuration::ZERO;
        assert_eq!(
            first_verdict_other_than_converges(&unsettled),
            Verdict::NotConverged
        );
    }

    #[test]
    fn periodic_rounds_after_convergence_are_no_loop() {
        let mut rounds = lossy_op_broadcast();
        rounds.protocol.kind = ProtocolKind::AntiEntropy;
        rounds.protocol.interval = SimDuration::from_ms(100);
        rounds.settle = secs(30);
        for seed in 0..5 {
            let report = judge_builtin(&rounds, seed).expect("valid");
            assert_eq!(
                report.verdict,
                Verdict::Converges,
                "{:?}",
                report.violations
            );
            assert!(report.messages.sent > 1_000, "the rounds go on");
        }
    }
}
