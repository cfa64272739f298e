//! The example protocols' tests, one module per protocol, in one test binary.

mod model;
mod pull_sync;
mod relay;
mod resend;
