//! Plan: the fixed UTC grid a dataset is cut into, and the windows one run covers.
//!
//! Pure arithmetic on UTC seconds, with no clock and no I/O; the run coordinator ([`crate::run`])
//! decides which of the planned windows are pending from what the lake holds.

pub mod window;
