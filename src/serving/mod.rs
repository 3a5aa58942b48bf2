//! The scoring runtime: a Rust HTTP front that answers the Azure ML inference-server
//! contract and feeds a pool of Python worker processes (`images/serving/`), plus the
//! endpoint router that splits traffic across deployments.
//!
//! It runs inside deployed images as the static `tug-infsrv` binary, and directly on the
//! host against a scoring script and model folder (as `azmlinfsrv` is used for debugging).
//!
//! The front, request by request: [`http`] accepts connections and hands each request to
//! [`routes`], which checks it ([`headers`]: key auth, request ids, CORS) and sends `/score`
//! to the [`pool`]; the pool leases a [`worker`] process and runs one [`protocol`] exchange
//! with it. [`settings`] resolves flags, environment and config file, [`shim`] provides the
//! worker's Python files, [`metrics`] counts, and [`cli`] wires it all into the binary.

pub mod cli;
mod exchange;
pub mod headers;
pub mod http;
pub mod metrics;
pub mod pool;
pub mod protocol;
pub mod router;
pub mod routes;
pub mod settings;
pub mod shim;
pub mod worker;
