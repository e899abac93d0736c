//! Standing in for terraform: what its command line means (pure), finding the real binary, running it
//! (exec on Unix, a child where tfshim must look at the result), and watching a child's stderr for the
//! rejected-key error. This is the pass-through path, so it stays lean: nothing here knows about
//! backends' contents, STS or repairs (those are `heal`'s), and nothing here imports from above.

pub mod exec;
#[cfg(unix)]
pub mod fast;
pub mod inherit;
pub mod invocation;
#[cfg(target_os = "linux")]
mod linkage;
pub mod locate;
pub mod reactive;
