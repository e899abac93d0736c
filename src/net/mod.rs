//! One blocking HTTP(S) request, made the way terraform's Go HTTP client makes it (basic auth, the
//! http backend's TLS options, an HTTP proxy with `CONNECT`). Used to check a credential saved for a
//! backend that speaks plain HTTP (the http backend; the gcs backend's listing and OAuth token
//! exchanges, with a bearer token, a form body and a bounded body read); the AWS SDK's client
//! stays the only one for STS.
//!
//! hyper's HTTP/1 client, tokio and rustls (already linked for STS: one TLS stack and one HTTP
//! client in the binary) on a runtime built per request, so that one deadline bounds it end to end;
//! the check is one request whose status line is all tfshim reads. The pass-through path never
//! reaches this module.

pub mod client;
pub mod pinned;
