//! The commands of the `converge` binary. `args` turns the command line into validated
//! configurations; each command module runs one; `files` writes reports atomically and keeps a
//! different run's reports from being overwritten; `interrupt` turns Ctrl-C into partial reports.

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
pub mod interrupt;
pub mod progress;
pub mod run;
pub mod sweep;
pub mod terminal;

use anyhow::Result;

use args::{Cli, Command, RunConfig, SuiteArgs, SweepConfig};

/// How a command ended, short of an error (an error is bad input, exit status 2, or reports that
/// could not be written after the runs, [`files::NotWritten`], exit status 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Every run met its expectation (or: reproduced, all properties held).
    AllMet,
    /// Some run did not.
    SomeFailed,
    /// The user pressed Ctrl-C; partial reports were written (exit status 130).
    Interrupted,
}

pub fn execute(cli: Cli) -> Result<Status> {
    // The commands that run simulations turn Ctrl-C into partial reports; the others keep the
    // default (Ctrl-C ends them at once). The handler is installed only once the input is read
    // and checked: until a simulation runs, nothing would look at its flag, and the first Ctrl-C
    // must end the command.
    match cli.command {
        None => {
            let suite = SuiteArgs {
                dir: "scenarios".into(),
                no_shrink: false,
                check_determinism: false,
                output: args::OutputArgs {
                    out: "reports".into(),
                    json: false,
                },
            };
            let config = RunConfig::from_suite(&suite)?;
            interrupt::install();
            run::run(&config, true)
        }
        Some(Command::Suite(suite)) => {
            let config = RunConfig::from_suite(&suite)?;
            interrupt::install();
            run::run(&config, true)
        }
        Some(Command::Run(run_args)) => {
            let config = RunConfig::from_run(&run_args)?;
            interrupt::install();
            run::run(&config, false)
        }
        Some(Command::Sweep(sweep_args)) => {
            let config = SweepConfig::from_args(&sweep_args)?;
            interrupt::install();
            sweep::sweep(&config)
        }
        Some(Command::Merge(merge_args)) => sweep::merge(&merge_args),
        Some(Command::Check(check_args)) => check::check(&check_args),
        Some(Command::Replay(replay_args)) => run::replay(&replay_args),
        Some(Command::Shrink(shrink_args)) => run::shrink(&shrink_args),
    }
}
