//! tug: the Azure Machine Learning workflow on Docker and Kubernetes you own.
//!
//! The library holds everything; `src/main.rs` is a thin CLI over it.

pub mod run;
pub mod store;
pub mod workspace;
