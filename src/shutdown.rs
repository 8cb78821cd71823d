//! The stop signal every long-running task listens to.
//!
//! A running node hands one `watch::Receiver<bool>` to its listeners, its
//! replicators, its streams and its reload watcher; it turns true when the
//! node stops (see [`crate::node::Node::run`]). Each of them waits on it in
//! the same way, so the waiting lives here, below all of them, rather than
//! in the node that starts them and which they would otherwise import.

use tokio::sync::watch;

/// Resolves once `stop` is true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
