//! The node's metrics listener: the series of [`crate::metrics`], rendered
//! at each scrape from the counters and from what the components hold
//! ([`scrape`]), served over HTTP/1.1 and mTLS ([`server`]).

pub mod scrape;
pub mod server;
