//! The sweep's progress line on stderr: redrawn in place (`\r`) on a terminal, a plain line every
//! few seconds otherwise (CI logs keep every line, so redrawing would only add noise).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often a non-terminal progress line is printed.
const PLAIN_LINE_INTERVAL: Duration = Duration::from_secs(5);

pub struct Progress {
    started: Instant,
    terminal: bool,
    last_plain_line: Instant,
    label: String,
    drew: bool,
}

impl Progress {
    pub fn new(label: &str) -> Progress {
        let now = Instant::now();
        Progress {
            started: now,
            terminal: std::io::stderr().is_terminal(),
            last_plain_line: now,
            label: super::terminal::clean(label).into_owned(),
            drew: false,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn update(&mut self, done: usize, total: usize) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 {
            done as f64 / elapsed
        } else {
            0.0
        };
        let remaining_s = if rate > 0.0 {
            (total - done.min(total)) as f64 / rate
        } else {
            0.0
        };
        let line = format!(
            "{}: {done}/{total} seeds ({:.0}%), {rate:.1} seeds/s, {:.0} s left",
            self.label,
            if total == 0 {
                100.0
            } else {
                done as f64 * 100.0 / total as f64
            },
            remaining_s
        );
        let mut stderr = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(stderr, "\r{line}\x1b[K");
            let _ = stderr.flush();
            self.drew = true;
        } else if self.last_plain_line.elapsed() >= PLAIN_LINE_INTERVAL {
            let _ = writeln!(stderr, "{line}");
            self.last_plain_line = Instant::now();
        }
    }

    /// Ends the redrawn line so that later output starts on a fresh one.
    pub fn finish(&mut self) {
        if self.terminal && self.drew {
            let _ = writeln!(std::io::stderr());
        }
    }
}
