//! The scoring runtime: a Rust HTTP front that answers the Azure ML inference-server
//! contract and feeds a pool of Python worker processes (`images/serving/`), plus the
//! endpoint router that splits traffic across deployments.
//!
//! It runs inside deployed images as the static `tug-infsrv` binary, and directly on the
//! host against a scoring script and model folder (as `azmlinfsrv` is used for debugging).
//!
//! Layout: [`settings`] resolves flags, environment and config file; [`protocol`] encodes the
//! frames spoken with the workers; [`pool`] runs the workers; [`http`] answers HTTP;
//! [`cli`] wires them into the binary.

pub mod cli;
pub mod protocol;
pub mod router;
pub mod settings;
