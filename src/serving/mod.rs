//! The scoring runtime: a Rust HTTP front that answers the Azure ML inference-server
//! contract and feeds a pool of Python worker processes (`images/serving/`), plus the
//! endpoint router that splits traffic across deployments.
//!
//! It runs inside deployed images as the static `tug-infsrv` binary, and directly on the
//! host against a scoring script and model folder (as `azmlinfsrv` is used for debugging).

pub mod cli;
pub mod router;
