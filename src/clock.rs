//! The wall clock, read one way everywhere, and substitutable.
//!
//! Record times, audit entries, deadlines and expiries are all milliseconds
//! since the Unix epoch. Nearly every module reads that clock, from the
//! audit log at the bottom to the services at the top, so it lives here on
//! its own rather than in any of them: a module that only needs the time
//! then imports nothing else of the node. Correctness never depends on
//! clocks agreeing between nodes; these are the times that are written down.
//!
//! A running node reads the time through the [`Clock`] handed to each of
//! its components (`node::Components::clock`): the system clock in
//! production, a [`ManualClock`]
//! in tests that need a record to expire or an entry to age without
//! waiting for it. Tools and code outside a node call [`now_ms`].

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now, by the system clock.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Where a node reads the time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch, now.
    fn now_ms(&self) -> i64;
}

/// A clock shared by every part of a node.
pub(crate) type SharedClock = Arc<dyn Clock>;

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}

/// The system clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that moves only when told to: for tests of expiry and
/// retention. Clones share one time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock that reads `start_ms` until it is moved.
    pub fn starting_at(start_ms: i64) -> Self {
        Self(Arc::new(AtomicI64::new(start_ms)))
    }

    /// A clock that reads the system time now, until it is moved.
    pub fn starting_now() -> Self {
        Self::starting_at(now_ms())
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let c = ManualClock::starting_at(1_000);
        let shared: SharedClock = Arc::new(c.clone());
        assert_eq!(shared.now_ms(), 1_000);
        c.advance(Duration::from_secs(2));
        assert_eq!(shared.now_ms(), 3_000);
        assert!(SystemClock.now_ms() > 1_600_000_000_000);
    }
}
