//! Runs: what they are (`model`), how metrics travel in their logs (`frame`), and the
//! lifecycle that drives one run on a compute target (`lifecycle`).

pub mod driver;
pub mod frame;
pub mod lifecycle;
mod logs;
pub mod model;
pub mod plan;
pub mod publish;
