//! The commands of the `converge` binary. `args` turns the command line into validated
//! configurations; each command module runs one; `files` writes reports atomically.

/// `println!` that ignores a closed stdout (`converge ... | head` must not panic).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

pub mod args;
pub mod check;
pub mod files;
pub mod progress;
pub mod run;
pub mod sweep;

use anyhow::Result;

use args::{Cli, Command, RunConfig, SuiteArgs, SweepConfig};

/// How a command ended, short of an error (an error is bad input: exit status 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Every run met its expectation (or: reproduced, all properties held).
    AllMet,
    /// Some run did not.
    SomeFailed,
}

pub fn execute(cli: Cli) -> Result<Status> {
    match cli.command {
        None => {
            let suite = SuiteArgs {
                dir: "scenarios".into(),
                no_shrink: false,
                output: args::OutputArgs {
                    out: "reports".into(),
                    json: false,
                },
            };
            run::run(&RunConfig::from_suite(&suite)?, true)
        }
        Some(Command::Suite(suite)) => run::run(&RunConfig::from_suite(&suite)?, true),
        Some(Command::Run(run_args)) => run::run(&RunConfig::from_run(&run_args)?, false),
        Some(Command::Sweep(sweep_args)) => sweep::sweep(&SweepConfig::from_args(&sweep_args)?),
        Some(Command::Merge(merge_args)) => sweep::merge(&merge_args),
        Some(Command::Check(check_args)) => check::check(&check_args),
        Some(Command::Replay(replay_args)) => run::replay(&replay_args),
        Some(Command::Shrink(shrink_args)) => run::shrink(&shrink_args),
    }
}
