//! Ctrl-C. `converge run`, `converge sweep` and the suite catch SIGINT: the first Ctrl-C raises a
//! flag that the simulator checks every 1,024 actions and the sweep checks before every seed, so
//! the command stops within a fraction of a second, writes a partial report that says it is
//! partial, and exits with [`EXIT_STATUS_INTERRUPTED`]. A second Ctrl-C exits at once, writing
//! nothing more. Other commands keep the default behaviour (Ctrl-C ends them).
//!
//! The handler only touches an atomic flag and, on the second signal, calls `_exit`: both are
//! async-signal-safe, which is why this is a bare `libc::signal` handler and not a thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// The exit status of a command the user interrupted: 128 + SIGINT, as shells report it.
pub const EXIT_STATUS_INTERRUPTED: u8 = 130;

/// How often a command waiting on work it cannot interrupt (shrinking) looks at the flag.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The flag the first Ctrl-C raises; pass it to the simulator's observers and the sweep.
pub fn flag() -> &'static AtomicBool {
    &INTERRUPTED
}

/// Whether the user has pressed Ctrl-C.
pub fn requested() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Catches Ctrl-C for the rest of the process (Unix; elsewhere Ctrl-C keeps ending the process).
pub fn install() {
    #[cfg(unix)]
    {
        extern "C" fn on_interrupt(_signal: libc::c_int) {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                // SAFETY: `_exit` is async-signal-safe; nothing is flushed or unwound.
                unsafe { libc::_exit(i32::from(EXIT_STATUS_INTERRUPTED)) };
            }
            let notice: &[u8] =
                b"\ninterrupted: writing a partial report (Ctrl-C again to quit at once)\n";
            // SAFETY: `write` is async-signal-safe, and the buffer outlives the call. A failed
            // write of a notice is of no consequence.
            unsafe { libc::write(2, notice.as_ptr().cast(), notice.len()) };
        }
        let handler: extern "C" fn(libc::c_int) = on_interrupt;
        // SAFETY: installing a handler that only does async-signal-safe things.
        unsafe { libc::signal(libc::SIGINT, handler as libc::sighandler_t) };
    }
}

/// Runs `work` on a thread of its own and returns its result, unless the user interrupts first:
/// then it returns `None` at once, and the thread is abandoned to end with the process. For work
/// that does not look at the flag itself (shrinking runs many simulations one after another).
pub fn unless_interrupted<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    if requested() {
        return None;
    }
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        // The receiver is gone when the user interrupted; the result is then of no use.
        let _ = sender.send(work());
    });
    loop {
        match receiver.recv_timeout(POLL_INTERVAL) {
            Ok(result) => return Some(result),
            Err(mpsc::RecvTimeoutError::Timeout) if requested() => return None,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // The worker panicked: let the panic be reported as it would have been in line.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("a worker thread of converge panicked")
            }
        }
    }
}
