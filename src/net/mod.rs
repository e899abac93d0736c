//! One blocking HTTP(S) request, made the way terraform's Go HTTP client makes it (basic auth, the
//! http backend's TLS options, an HTTP proxy with `CONNECT`). Used to check a credential saved for a
//! backend that speaks plain HTTP (the http backend); the AWS SDK's client stays the only one for
//! STS.
//!
//! Plain `std` sockets and rustls (already linked for STS: one TLS stack in the binary), no async
//! runtime: the check is one request whose status line is all tfshim reads. The pass-through path
//! never reaches this module.

pub mod client;
