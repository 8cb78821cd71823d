//! The node's match filter duty (`docs/selectors.md`): key its own
//! identifiers under each OPRF key it holds (at start: a key added since
//! the last start is a rotation or the move off the shared key), publish
//! what its filter gained and lost since the last filter record, and bring
//! its view of the peers' filters up to the records it holds. It runs
//! when a case or alert changed the filter, when the roster changed (an
//! epoch may have become active), and every half minute.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Components;
use crate::publish::Change;
use crate::shutdown::stopped;

/// How often the duty runs without being woken.
const EVERY: Duration = Duration::from_secs(30);

pub(super) fn spawn(node: &Components, duties: &mut JoinSet<()>, stop: &watch::Receiver<bool>) {
    let node = node.clone();
    let mut stop = stop.clone();
    duties.spawn(async move {
        if let Err(error) = node.cases.build_epochs().await {
            tracing::error!(%error, "cannot key this node's identifiers under its OPRF keys");
        }
        let wake = node.cases.filter_waker();
        let mut reloads = node.trust.subscribe();
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            publish(&node).await;
            catch_up(&node).await;
            tokio::select! {
                _ = wake.notified() => {}
                _ = reloads.recv() => {}
                _ = tick.tick() => {}
                _ = stopped(&mut stop) => break,
            }
        }
    });
}

/// Publishes this node's filter changes, each record noted as published
/// once durable; stops at the first failure (the next run retries).
pub(crate) async fn publish(node: &Components) {
    let changes = match node.cases.filter_changes() {
        Ok(c) => c,
        Err(error) => {
            tracing::error!(%error, "cannot read this node's match filter");
            return;
        }
    };
    for f in changes {
        let published = node
            .publisher
            .apply_change(Change::PublishFilter(f.clone()), false, node.id.as_str())
            .await;
        let noted = match published {
            Ok(_) => node.cases.filter_published(&f).await,
            Err(error) => {
                tracing::warn!(%error, epoch = f.epoch, "cannot publish a match filter change; retrying later");
                return;
            }
        };
        if let Err(error) = noted {
            tracing::error!(%error, "cannot note a match filter change as published");
            return;
        }
    }
}

/// Brings the view of every member's filter up to the records held.
async fn catch_up(node: &Components) {
    let members: Vec<_> = node
        .trust
        .roster()
        .members()
        .filter(|m| m.id != node.id && !m.oprf_keys.is_empty())
        .map(|m| m.id.clone())
        .collect();
    for m in members {
        if let Err(error) = node.cases.catch_up(&m).await {
            tracing::error!(%error, peer = %m, "cannot bring a member's match filter up to date");
        }
    }
}
