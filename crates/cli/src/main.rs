//! The `converge` binary: a thin layer over the library. See `converge --help`.
//!
//! Exit status: 0 when every run met its expectation, 1 when some did not, 2 on bad input or usage
//! (clap's own usage errors exit 2 as well; nothing was run), 3 when the runs ended (their verdict
//! is printed) but their reports could not all be written (a full disk, a read-only directory),
//! 130 when the user interrupted a run, a sweep or the suite with Ctrl-C (partial reports are
//! written first).

mod cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cmd::args::Cli::try_parse().unwrap_or_else(|error| {
        let hint = (error.kind() == clap::error::ErrorKind::InvalidSubcommand)
            .then(|| std::env::args().nth(1).and_then(|word| path_hint(&word)))
            .flatten();
        let _ = error.print();
        if let Some(hint) = hint {
            eprintln!("\n{hint}");
        }
        std::process::exit(error.exit_code());
    });
    match cmd::execute(cli) {
        Ok(cmd::Status::AllMet) => ExitCode::SUCCESS,
        Ok(cmd::Status::SomeFailed) => ExitCode::from(1),
        Ok(cmd::Status::Interrupted) => ExitCode::from(cmd::interrupt::EXIT_STATUS_INTERRUPTED),
        Err(error) => {
            // Whatever the error quotes (paths, names, a file's text) is shown escaped.
            eprintln!(
                "error: {}",
                cmd::terminal::clean_lines(&format!("{error:#}"))
            );
            if error.chain().any(|e| e.is::<cmd::files::NotWritten>()) {
                ExitCode::from(cmd::files::EXIT_STATUS_NOT_WRITTEN)
            } else {
                ExitCode::from(2)
            }
        }
    }
}

/// What to type instead, when the word taken for a command names a file or a directory.
fn path_hint(word: &str) -> Option<String> {
    let path = std::path::Path::new(word);
    let quoted = cmd::args::shell_quote(word);
    if path.is_dir() {
        Some(format!(
            "`{word}` is a directory: to run every scenario in it, converge suite {quoted}"
        ))
    } else if path.is_file() || word.ends_with(".toml") || word.ends_with(".json") {
        Some(format!(
            "`{word}` looks like a scenario file: to run it, converge run {quoted} \
             (or converge sweep {quoted} --seeds 0..100 for many seeds)"
        ))
    } else {
        None
    }
}
