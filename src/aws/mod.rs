//! Everything AWS: asking STS `GetCallerIdentity` about a key (the only AWS SDK code), the credential
//! chain terraform falls back to, and the pure classification of an STS answer into a verdict.
//! Knows nothing of repairs or reports.

pub mod chain;
pub mod fresh;
pub mod proxy;
pub mod sts;
pub mod verdict;
