//! Resending until acknowledged survives loss; the same protocol without its resend timer does
//! not, and the report says who lacks what.

use converge::crdt::{LwwGrid, LwwGridConfig};
use converge::netsim::{FaultSpec, Scenario, SimDuration, Verdict};
use converge::verify::Verify;
use converge_example_sync_protocols::resend::ResendUntilAcked;

fn grid() -> LwwGrid {
    LwwGrid::new(LwwGridConfig::default())
}

/// Three replicas on a mesh that loses and duplicates a fifth of its messages, with a partition
/// and a late joiner.
fn lossy() -> Scenario {
    let mut scenario = Scenario {
        name: "resend".into(),
        replicas: 3,
        duration: SimDuration::from_secs(4),
        settle: SimDuration::from_secs(6),
        ..Scenario::default()
    };
    scenario.network.drop = 0.2;
    scenario.network.duplicate = 0.2;
    scenario.faults = vec![
        FaultSpec::Partition {
            at: SimDuration::from_ms(500),
            heal: Some(SimDuration::from_ms(2_500)),
            groups: vec![vec![0]],
            direction: Default::default(),
        },
        FaultSpec::Join {
            at: SimDuration::from_secs(2),
            replica: 2,
        },
    ];
    scenario
}

#[test]
fn resending_until_acknowledged_converges() {
    let verify = Verify::new(lossy(), |_| grid())
        .protocol(ResendUntilAcked::default())
        .seeds(0..100);
    let summary = verify.assert_converges();
    let seeds = verify.effective_seeds().expect("a valid range");
    assert_eq!(summary.seeds, seeds.end - seeds.start);
}

#[test]
fn without_resending_a_lost_op_stays_lost() {
    let failure = Verify::new(lossy(), |_| grid())
        .protocol(ResendUntilAcked { resend_every_us: 0 })
        .seeds(0..20)
        .without_shrinking()
        .run()
        .expect("the scenario is valid")
        .expect_err("fire and forget loses ops");
    // Nothing is ever sent again: quiet for good while replicas lack ops.
    assert_eq!(failure.report.verdict, Verdict::Stalled);
    assert!(failure.to_string().contains("lacks"), "{failure}");
}
