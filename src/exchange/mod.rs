//! Node to node: reaching a peer over mTLS, replicating each origin's log
//! from a cursor (the [`Replication`] component and its replicators),
//! asking the peers for a lost own log, comparing digests to see that
//! replication converged, and fetching the roster chain when a new member
//! starts from an anchor.

pub mod bootstrap;
pub mod convergence;
pub mod peers;
pub mod recover;
mod replication;
pub mod sync;

pub use replication::Replication;
pub(crate) use replication::{PeerState, ReplicationParts};
