//! Schedules: Azure ML's `cron` and `recurrence` triggers that submit a job each time they
//! fire. The trigger arithmetic is pure ([`trigger`], [`cron`]); the server's
//! [`controller`] is the single writer of schedule state and fires due schedules.

pub mod controller;
pub mod cron;
mod model;
pub mod trigger;
mod zones_table;

pub use model::{ScheduleSubmission, ScheduledJob};
