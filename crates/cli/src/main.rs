//! The `converge` binary: a thin layer over the library. See `converge --help`.
//!
//! Exit status: 0 when every run met its expectation, 1 when some did not, 2 on bad input or usage
//! (clap's own usage errors exit 2 as well).

mod cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cmd::args::Cli::parse();
    match cmd::execute(cli) {
        Ok(cmd::Status::AllMet) => ExitCode::SUCCESS,
        Ok(cmd::Status::SomeFailed) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
