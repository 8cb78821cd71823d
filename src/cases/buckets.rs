//! The token bucket that bounds each peer's queries.
//!
//! The token bucket is written out here rather than taken from `governor`:
//! governor would decide the same, but even without its default features it
//! adds eleven crates to the lockfile for what is twenty lines here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::records::model::NodeId;

/// A token bucket per peer: `per_minute` queries, refilled continuously.
#[derive(Debug, Default)]
pub(crate) struct Buckets(Mutex<HashMap<NodeId, (f64, Instant)>>);

impl Buckets {
    /// Takes one token for `peer`, or says how long until one is free.
    pub(crate) fn take(&self, peer: &NodeId, per_minute: u32) -> Result<(), Duration> {
        let capacity = f64::from(per_minute.max(1));
        let rate = capacity / 60.0;
        let now = Instant::now();
        let Ok(mut map) = self.0.lock() else {
            return Ok(());
        };
        let (tokens, last) = map.entry(peer.clone()).or_insert((capacity, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(capacity);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_refuses_the_one_too_many_and_says_when() {
        let b = Buckets::default();
        let gt = NodeId::parse("gt").unwrap();
        for _ in 0..3 {
            b.take(&gt, 3).unwrap();
        }
        let wait = b.take(&gt, 3).unwrap_err();
        assert!(
            wait > Duration::from_secs(10) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        b.take(&NodeId::parse("hn").unwrap(), 3).expect("per peer");
    }
}
