//! Healing a stale saved credential: gathering the facts (saved backend, STS verdicts), the pure
//! decision, the verified repair (lock, restore, invariants), and the preflight that wires them
//! together for a proxied run. Uses `proxy` to run terraform, `credentials` for what a saved
//! credential is and how to check it, `backends` to read what was saved; never renders output for
//! people beyond one-line `tfshim:` messages.

pub mod datadir;
pub mod decide;
pub mod facts;
pub mod invariants;
pub mod outcome;
pub mod preflight;
pub mod repair;
