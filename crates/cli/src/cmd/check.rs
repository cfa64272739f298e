//! `converge check`: exhaustive model checking of a small configuration with the checker's
//! stateright model.

use anyhow::{bail, Result};
use converge_checker::model::{
    check as check_model, CheckConfig, ModelCrdt, ModelProtocol, NetworkKind, Verdict,
};
use converge_crdt::{Bias, TieBreak};

use super::args::{BiasArg, CheckArgs, CrdtArg, NetworkArg, ProtocolArg, TieBreakArg};
use super::Status;

/// Replicas the model checker explores at most: the state space grows factorially beyond.
const REPLICAS_MAX: u32 = 4;

/// The command line as a checker configuration; protocols the model does not cover are refused.
fn config(args: &CheckArgs) -> Result<CheckConfig> {
    if !(2..=REPLICAS_MAX).contains(&args.replicas) {
        bail!(
            "--replicas {}: the model checker explores 2 to {REPLICAS_MAX} replicas",
            args.replicas
        );
    }
    let tie_break = match args.tie_break {
        TieBreakArg::PeerId => TieBreak::PeerId,
        TieBreakArg::Random => TieBreak::Random,
        TieBreakArg::KeepLocal => TieBreak::KeepLocal,
    };
    let crdt = match args.crdt {
        CrdtArg::LwwGrid => ModelCrdt::Grid { tie_break },
        CrdtArg::LwwDict => ModelCrdt::Dict {
            bias: match args.bias {
                BiasArg::Add => Bias::Add,
                BiasArg::Remove => Bias::Remove,
            },
            tie_break,
        },
    };
    let protocol = match args.protocol {
        ProtocolArg::StateBroadcast => ModelProtocol::StateBroadcast,
        ProtocolArg::OpBroadcast => ModelProtocol::OpBroadcast,
        ProtocolArg::AntiEntropy => ModelProtocol::AntiEntropy,
        ProtocolArg::ReliableCausal | ProtocolArg::DeltaSync => bail!(
            "--protocol: the model checker covers state-broadcast, op-broadcast and anti-entropy; \
             run reliable-causal and delta-sync through `converge sweep` instead"
        ),
    };
    let network = match args.network {
        NetworkArg::Reliable => NetworkKind::Reliable,
        NetworkArg::Lossy => NetworkKind::Lossy,
        NetworkArg::Duplicating => NetworkKind::Duplicating,
        NetworkArg::LossyDuplicating => NetworkKind::LossyDuplicating,
        NetworkArg::Reordering => NetworkKind::Reordering,
    };
    let defaults = CheckConfig::default();
    Ok(CheckConfig {
        crdt,
        protocol,
        replicas: args.replicas,
        writes_per_replica: args.writes,
        network,
        drops: args.drops.unwrap_or(defaults.drops),
        ..defaults
    })
}

/// Exit 0 only when every property held and a conflict was witnessed; a failure, an inconclusive
/// run (a bound was hit) and a vacuous pass all exit 1.
pub fn check(args: &CheckArgs) -> Result<Status> {
    let config = config(args)?;
    let report = match check_model(&config) {
        Ok(report) => report,
        Err(error) => bail!("invalid check: {error}"),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} unique states, {} states, {:.0} states/s, depth {}, {} ms, symmetry {:?}",
            report.unique_states,
            report.states,
            report.states_per_sec,
            report.max_depth,
            report.elapsed_ms,
            report.symmetry
        );
        if let Some(note) = &report.symmetry_note {
            println!("{note}");
        }
        match &report.verdict {
            Verdict::Pass => println!("pass: every reachable state is safe, and a conflict occurs"),
            Verdict::Fail { property } => println!("FAIL: {property}"),
            Verdict::Inconclusive { reason } => println!("INCONCLUSIVE (not a pass): {reason}"),
            Verdict::Vacuous => {
                println!("VACUOUS: no conflict ever occurred, so the pass proves nothing")
            }
        }
        if let Some(counterexample) = &report.counterexample {
            let shortest = if counterexample.minimal {
                "shortest"
            } else {
                "not proven shortest"
            };
            println!(
                "counterexample, {} steps ({shortest}):",
                counterexample.depth
            );
            for (index, step) in counterexample.steps.iter().enumerate() {
                println!("  {}. {step}", index + 1);
            }
            for view in &counterexample.final_views {
                println!("  {view}");
            }
        }
    }
    Ok(match report.verdict {
        Verdict::Pass => Status::AllMet,
        _ => Status::SomeFailed,
    })
}
