//! The wall clock, read one way everywhere.
//!
//! Record times, audit entries, deadlines and expiries are all milliseconds
//! since the Unix epoch. Nearly every module reads that clock, from the
//! audit log at the bottom to the services at the top, so it lives here on
//! its own rather than in any of them: a module that only needs the time
//! then imports nothing else of the node. Correctness never depends on
//! clocks agreeing between nodes; these are the times that are written down.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
