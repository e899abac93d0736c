//! Healing a stale saved credential: gathering the facts (saved backend, STS verdicts), the pure
//! decision, the verified repair (lock, restore, invariants), and the preflight that wires them
//! together for a proxied run. Uses `proxy` to run terraform, `aws` to ask STS, `backends` to read
//! what was saved; never renders output for people beyond one-line `tfshim:` messages.

pub mod datadir;
pub mod decide;
pub mod facts;
pub mod outcome;
pub mod preflight;
pub mod repair;
