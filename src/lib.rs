//! tug: the Azure Machine Learning workflow on Docker and Kubernetes you own.
//!
//! The library holds everything; `src/main.rs` is a thin CLI over it.

pub mod build;
pub mod cli;
pub mod client;
pub mod components;
pub mod compute;
pub mod datastore;
pub mod deploy;
pub mod endpoint;
#[doc(hidden)]
pub mod fuzzing;
pub mod pipeline;
pub mod registry;
pub mod run;
pub mod schedule;
pub mod secrets;
pub mod server;
pub mod serving;
pub mod snapshot;
pub mod spec;
pub mod store;
pub mod submit;
pub mod sweep;
pub mod tracking;
pub mod workspace;
