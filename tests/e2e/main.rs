//! End-to-end tests: the real `terraform` binary against real moto servers on loopback, with tfshim
//! in front. One test crate (one moto pair for all of it); helpers live in `support/`.

mod support;

mod advice;
mod azurerm;
mod cli;
#[cfg(unix)]
mod completion;
#[cfg(unix)]
mod deadline;
mod differential;
mod doctor;
#[cfg(target_os = "linux")]
mod durability;
#[cfg(target_os = "linux")]
mod edges;
mod faults;
mod fidelity;
mod fresh;
#[cfg(unix)]
mod gcs;
mod heal;
mod http;
mod keys;
mod no_abort;
mod passthrough;
mod reactive;
#[cfg(unix)]
mod recovery;
mod seed;
mod settings;
mod signals;
mod sweep;
mod versions;
mod wrong_paths;
