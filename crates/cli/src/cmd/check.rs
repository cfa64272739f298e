//! `converge check`: exhaustive model checking of a small configuration with the checker's
//! stateright model. When a property fails, the counterexample is also written as a scripted
//! scenario (`--out`, default `reports/`) that `converge run` replays to the same violation.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use converge::report::verdict_phrase;
use converge_checker::judge_builtin;
use converge_checker::model::{
    check as check_model, CheckConfig, CheckReport, ModelCrdt, ModelProtocol, NetworkKind, Verdict,
};
use converge_crdt::{Bias, TieBreak};
use converge_netsim::{Reconnect, Verdict as RunVerdict};
use serde::Serialize;

use super::args::{
    shell_quote, BiasArg, CheckArgs, CrdtArg, NetworkArg, ProtocolArg, ReconnectArg, TieBreakArg,
};
use super::files::{scenario_toml, write_atomic};
use super::Status;

/// Checker threads at most; more buy nothing on the small models the checker explores.
const THREADS_MAX: u32 = 64;

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
        CrdtArg::Rga => ModelCrdt::Rga,
    };
    let protocol = match args.protocol {
        ProtocolArg::StateBroadcast => ModelProtocol::StateBroadcast,
        ProtocolArg::OpBroadcast => ModelProtocol::OpBroadcast,
        ProtocolArg::AntiEntropy => ModelProtocol::AntiEntropy,
        ProtocolArg::OpStream => ModelProtocol::OpStream,
        ProtocolArg::ReliableCausal | ProtocolArg::DeltaSync => bail!(
            "--protocol: the model checker covers state-broadcast, op-broadcast, anti-entropy and \
             op-stream; run reliable-causal and delta-sync through `converge sweep` instead"
        ),
    };
    let on_reconnect = match args.on_reconnect {
        ReconnectArg::Handshake => Reconnect::Handshake,
        ReconnectArg::KeepPosition => Reconnect::KeepPosition,
        ReconnectArg::EchoHandshake => Reconnect::EchoHandshake,
    };
    let network = match args.network {
        NetworkArg::Reliable => NetworkKind::Reliable,
        NetworkArg::Lossy => NetworkKind::Lossy,
        NetworkArg::Duplicating => NetworkKind::Duplicating,
        NetworkArg::LossyDuplicating => NetworkKind::LossyDuplicating,
        NetworkArg::Reordering => NetworkKind::Reordering,
        NetworkArg::Connections => NetworkKind::Connections,
    };
    let threads = match args.threads {
        Some(threads) if (1..=THREADS_MAX).contains(&threads) => threads,
        Some(threads) => bail!("--threads {threads}: expected 1 to {THREADS_MAX}"),
        None => std::thread::available_parallelism()
            .map_or(1, |cores| u32::try_from(cores.get()).unwrap_or(THREADS_MAX))
            .min(THREADS_MAX),
    };
    let defaults = CheckConfig::default();
    Ok(CheckConfig {
        crdt,
        protocol,
        replicas: args.replicas,
        writes_per_replica: args.writes,
        network,
        drops: args.drops.unwrap_or(defaults.drops),
        connection_drops: args.connection_drops.unwrap_or(defaults.connection_drops),
        on_reconnect,
        threads,
        ..defaults
    })
}

/// The scripted scenario written for a failing check.
#[derive(Debug, Serialize)]
struct Replay {
    /// The scenario file, or `None` when the counterexample could not be scripted.
    scenario: Option<PathBuf>,
    /// The command that replays it.
    reproduce: Option<String>,
    /// What netsim concluded when the replay was run once here, in kebab case.
    verdict: Option<RunVerdict>,
    /// Whether that verdict is the violation the model checker found.
    reproduced: bool,
    /// Why there is no scenario, when there is none.
    error: Option<String>,
}

/// Writes the counterexample of a failing check as a scripted scenario in `dir`, and runs it once
/// to confirm that it replays to the same violation.
fn write_replay(report: &CheckReport, dir: &Path) -> Result<Option<Replay>> {
    let (Verdict::Fail { property }, Some(counterexample)) =
        (&report.verdict, &report.counterexample)
    else {
        return Ok(None);
    };
    let scenario = match counterexample.to_scenario(&report.config) {
        Ok(scenario) => scenario,
        Err(error) => {
            return Ok(Some(Replay {
                scenario: None,
                reproduce: None,
                verdict: None,
                reproduced: false,
                error: Some(error.to_string()),
            }))
        }
    };
    let path = dir.join(format!("{}.toml", scenario.name));
    write_atomic(&path, scenario_toml(&scenario)?.as_bytes())?;
    let expected = match property.as_str() {
        "strong convergence" => Some(RunVerdict::Diverges),
        "quiescent implies converged" => Some(RunVerdict::NotConverged),
        "no sync loop" => Some(RunVerdict::SyncLoop),
        _ => None,
    };
    let verdict = judge_builtin(&scenario, 0).ok().map(|run| run.verdict);
    Ok(Some(Replay {
        reproduce: Some(format!(
            "converge run {}",
            shell_quote(&path.display().to_string())
        )),
        scenario: Some(path),
        reproduced: matches!((verdict, expected), (Some(v), Some(e)) if v.meets(e)),
        verdict,
        error: None,
    }))
}

/// Exit 0 only when every property held and a conflict was witnessed; a failure, an inconclusive
/// run (a bound was hit) and a vacuous pass all exit 1.
pub fn check(args: &CheckArgs) -> Result<Status> {
    let config = config(args)?;
    let report = match check_model(&config) {
        Ok(report) => report,
        Err(error) => bail!("invalid check: {error}"),
    };
    // A scripted scenario that cannot be written (a full disk) must not hide the verdict: it is
    // printed first, then the error (exit status 3).
    let (replay, not_written) = match write_replay(&report, &args.out) {
        Ok(replay) => (replay, None),
        Err(error) => (None, Some(error)),
    };
    if args.json {
        let mut document = serde_json::to_value(&report)?;
        if let (Some(replay), Some(fields)) = (&replay, document.as_object_mut()) {
            fields.insert("replay".to_string(), serde_json::to_value(replay)?);
        }
        say!("{}", super::terminal::json(&document)?);
    } else {
        print_report(&report);
        if let Some(replay) = &replay {
            print_replay(replay);
        }
    }
    if let Some(error) = not_written {
        return Err(error.context(
            "the check ended and its verdict is printed above, but its scripted scenario could \
             not be written",
        ));
    }
    Ok(match report.verdict {
        Verdict::Pass => Status::AllMet,
        _ => Status::SomeFailed,
    })
}

fn print_report(report: &CheckReport) {
    say!(
        "{} unique states, {} states, {:.0} states/s, depth {}, {} ms, symmetry {}, {} threads",
        report.unique_states,
        report.states,
        report.states_per_sec,
        report.max_depth,
        report.elapsed_ms,
        match report.symmetry {
            converge_checker::model::Symmetry::On => "on",
            converge_checker::model::Symmetry::Off => "off",
        },
        report.config.threads
    );
    if let Some(note) = &report.symmetry_note {
        say!("{note}");
    }
    if let Some(note) = &report.bound_note {
        say!("{note}");
    }
    match &report.verdict {
        Verdict::Pass => say!("pass: every reachable state is safe, and a conflict occurs"),
        Verdict::Fail { property } => say!("FAIL: {property}"),
        Verdict::Inconclusive { reason } => say!("INCONCLUSIVE (not a pass): {reason}"),
        Verdict::Vacuous => {
            say!("VACUOUS: no conflict ever occurred, so the pass proves nothing")
        }
    }
    if let Some(counterexample) = &report.counterexample {
        let shortest = if counterexample.minimal {
            "shortest"
        } else {
            "not proven shortest"
        };
        say!(
            "counterexample, {} steps ({shortest}):",
            counterexample.depth
        );
        for (index, step) in counterexample.steps.iter().enumerate() {
            say!("  {}. {step}", index + 1);
        }
        for view in &counterexample.final_views {
            say!("  {view}");
        }
        if let Some(liveness) = &counterexample.liveness {
            say!("{liveness}");
        }
    }
}

fn print_replay(replay: &Replay) {
    match (&replay.scenario, &replay.reproduce) {
        (Some(path), Some(command)) => {
            say!(
                "scripted scenario: {}",
                super::terminal::clean(&path.display().to_string())
            );
            match replay.verdict {
                Some(verdict) if replay.reproduced => {
                    say!(
                        "replays in netsim to verdict \"{}\": {command}",
                        verdict_phrase(verdict)
                    )
                }
                Some(verdict) => say!(
                    "replay: {command} (netsim concluded \"{}\", not the model's violation)",
                    verdict_phrase(verdict)
                ),
                None => say!("replay: {command} (netsim could not run it here)"),
            }
        }
        _ => say!(
            "no scripted scenario: {}",
            replay.error.as_deref().unwrap_or("unknown reason")
        ),
    }
}
