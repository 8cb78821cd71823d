//! The node's match filter duty (`docs/selectors.md`): key its own
//! identifiers under each OPRF key it holds (at start: a key added since
//! the last start is a rotation or the move off the shared key), publish
//! what its filter gained and lost since the last filter record, and bring
//! its view of the peers' filters up to the records it holds. It runs
//! when a case or alert changed the filter, when replication stored a
//! peer's filter record, when the roster changed (an epoch may have become
//! active), and every half minute (to retry a publication).
//!
//! Once the node has an active OPRF key it also moves off the shared key
//! (`docs/selectors.md`, "Migration"): each of its active alerts whose
//! current version still carries shared-key selectors is republished as a
//! new version without them.

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
        let mut migrated = false;
        // At start, and after a reload (an epoch may have become active),
        // the filter is read whole; otherwise only when it changed.
        let mut force = true;
        // The views of the peers' filters follow their records: woken
        // when replication stores one (and at start, and at a reload);
        // the half-minute tick only retries publications.
        let mut catch = true;
        // Retired epochs are dropped at start and at a reload (the roster
        // changed), and at every pass after a pass that could not.
        let mut retire_due = true;
        loop {
            if !migrated && !node.cases.active_epochs().is_empty() {
                match migrate_alerts(&node).await {
                    Ok(n) => {
                        migrated = true;
                        if n > 0 {
                            tracing::info!(alerts = n, "active alerts republished without shared-key selectors");
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot republish alerts without shared-key selectors; retrying later");
                    }
                }
            }
            if force || retire_due {
                retire_due = !retire(&node).await;
            }
            publish(&node, force).await;
            if catch {
                catch_up(&node).await;
                // What arrived of a retired epoch since: a view that held
                // nothing of it at the last pass may hold some now.
                retire_due = !retire(&node).await;
            }
            (force, catch) = tokio::select! {
                _ = wake.notified() => (false, true),
                r = reloads.recv() => {
                    if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                        break;
                    }
                    (true, true)
                }
                _ = tick.tick() => (false, false),
                _ = stopped(&mut stop) => break,
            };
        }
    });
}

/// Publishes this node's filter changes ([`Components::publish_filter`]).
async fn publish(node: &Components, force: bool) {
    if let Err(error) = node.publish_filter(force).await {
        tracing::warn!(%error, "cannot publish a match filter change; retrying later");
    }
}

/// Republishes each active alert of this node whose current version
/// carries shared-key selectors as a new version without them (the
/// identifiers themselves are not known here: agencies re-submit them,
/// `docs/runbook.md`). Returns how many.
pub(crate) async fn migrate_alerts(node: &Components) -> Result<usize, String> {
    use crate::records::model::{Content, RecordKind};
    let now = node.clock.now_ms();
    let last = node.store.watermark().own_seq;
    let records = node.store.records();
    let mut due = Vec::new();
    let mut after = 0;
    while after < last {
        let batch = records
            .of_origin(&node.id, after, last, 512)
            .map_err(|e| e.to_string())?;
        let Some(end) = batch.last().map(|r| r.seq) else {
            break;
        };
        after = end;
        for r in batch {
            let Some(Ok((_, body))) = r.content.envelope().map(crate::wire::open_stored) else {
                continue;
            };
            let alert = match &body.kind {
                RecordKind::Alert(a) => a,
                RecordKind::Update(u) => match &u.content {
                    Content::Alert(a) => a,
                    _ => continue,
                },
                _ => continue,
            };
            if alert.selectors.is_empty() || alert.expires_at_ms <= now {
                continue;
            }
            let series = body.series_id().to_owned();
            let state = node
                .store
                .series()
                .decoded(&series)
                .map_err(|e| e.to_string())?;
            if state.is_some_and(|s| s.withdrawn.is_some() || s.current != body.record_id) {
                continue;
            }
            let mut alert = alert.clone();
            alert.selectors.clear();
            due.push((series, alert));
        }
    }
    let n = due.len();
    for (series, alert) in due {
        node.publisher
            .apply_change(
                Change::Update {
                    target: series,
                    content: Content::Alert(alert),
                },
                false,
                node.id.as_str(),
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(n)
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

/// The end of the move off the shared key (`docs/runbook.md`, section 5):
/// replaces with a tombstone (ids, times, digest) the content of every
/// alert version held here, of any origin, that carries shared-key
/// selectors and is no longer in force (superseded, or of a withdrawn
/// series), each purge audited. For `enlace node purge-shared-tokens` on
/// a stopped node whose configuration no longer has `[matching]`. Returns
/// how many were purged.
pub async fn purge_shared_tokens(
    store: &crate::store::Store,
    own: &crate::records::model::NodeId,
    now_ms: i64,
) -> Result<usize, crate::store::StoreError> {
    use crate::records::model::{Content, RecordKind};
    let mut due = Vec::new();
    let mut after = 0;
    loop {
        let (records, last) = store.records().list(after, 512, None)?;
        if last == after {
            break;
        }
        after = last;
        for r in records {
            let Some(Ok((envelope, body))) = r.content.envelope().map(crate::wire::open_stored)
            else {
                continue;
            };
            let carries = match &body.kind {
                RecordKind::Alert(a) => !a.selectors.is_empty(),
                RecordKind::Update(u) => {
                    matches!(&u.content, Content::Alert(a) if !a.selectors.is_empty())
                }
                _ => false,
            };
            if !carries {
                continue;
            }
            let in_force = store
                .series()
                .decoded(body.series_id())?
                .is_none_or(|s| s.withdrawn.is_none() && s.current == body.record_id);
            if !in_force {
                due.push((r.origin, r.seq, envelope, body));
            }
        }
    }
    let n = due.len();
    for (origin, seq, envelope, body) in due {
        purge_content(store, own, &origin, seq, (&envelope, &body), now_ms, "a version no longer in force that carried shared-key selectors, purged after the move off the shared key").await?;
    }
    Ok(n)
}

/// Replaces the content of `origin`'s record `seq` (`record`: its
/// envelope and body) with a tombstone, audited with `why`.
async fn purge_content(
    store: &crate::store::Store,
    own: &crate::records::model::NodeId,
    origin: &crate::records::model::NodeId,
    seq: u64,
    record: (&crate::wire::Envelope, &crate::records::model::RecordBody),
    now_ms: i64,
    why: &str,
) -> Result<(), crate::store::StoreError> {
    use crate::records::lifecycle;
    let (envelope, body) = record;
    let tombstone = lifecycle::Tombstone::of(body, &envelope.encode(), now_ms, now_ms);
    let expires = lifecycle::expires_at(body).unwrap_or(now_ms);
    let entry = crate::audit::Entry::new(crate::audit::Action::RecordPurged, own.as_str())
        .counterpart(origin)
        .id(tombstone.record_id.clone())
        .result(why);
    store
        .records()
        .purge(origin, seq, expires, tombstone.encode(), entry.encode())
        .await
}

/// Drops what this node holds of epochs the roster retired
/// ([`crate::cases::CaseIndex::retire_epochs`]), then purges their filter
/// records. False if either could not be done (it is tried again).
async fn retire(node: &Components) -> bool {
    let dropped = match node.cases.retire_epochs().await {
        Ok(retired) => {
            for (member, epoch) in retired {
                tracing::info!(%member, epoch, "a retired epoch's match filter dropped");
            }
            true
        }
        Err(error) => {
            tracing::error!(%error, "cannot drop the match filters of retired epochs; retrying at the next pass");
            false
        }
    };
    match purge_retired(node).await {
        Ok(_) => dropped,
        Err(error) => {
            tracing::warn!(%error, "cannot purge the filter records of retired epochs; retrying at the next pass");
            false
        }
    }
}

/// Purges, wherever this node holds them, the filter records of every
/// member's retired epochs (its own too), from where the last pass
/// stopped up to the records held. Each purge is audited; the tombstone
/// keeps the record's place and digest in the origin's log. Returns how
/// many.
pub(crate) async fn purge_retired(node: &Components) -> Result<usize, crate::store::StoreError> {
    use crate::records::model::RecordKind;
    let filters = node.store.filters();
    let records = node.store.records();
    let now = node.clock.now_ms();
    let mut purged = 0;
    let roster = node.trust.roster();
    for member in roster.members() {
        let origin = member.id.clone();
        for (epoch, done) in filters.retired(&origin)? {
            // NOTE: the chain never lists a retired epoch again
            // (`trust::chain`'s OPRF epoch rule); should a mark and the
            // roster disagree, what the roster lists is not purged.
            if member.oprf_key(epoch).is_some() {
                continue;
            }
            let up_to = if origin == node.id {
                node.store.watermark().own_seq
            } else {
                records.cursor(&origin)?
            };
            let mut after = done;
            while after < up_to {
                let batch = records.of_origin(&origin, after, up_to, 256)?;
                let Some(last) = batch.last().map(|r| r.seq) else {
                    break;
                };
                for r in batch {
                    let Some(Ok((envelope, body))) =
                        r.content.envelope().map(crate::wire::open_stored)
                    else {
                        continue;
                    };
                    if matches!(&body.kind, RecordKind::MatchFilter(f) if f.epoch == epoch) {
                        purge_content(
                            &node.store,
                            &node.id,
                            &origin,
                            r.seq,
                            (&envelope, &body),
                            now,
                            &format!("a match filter record of retired epoch {epoch}, purged"),
                        )
                        .await?;
                        purged += 1;
                    }
                }
                after = last;
            }
            if up_to > done {
                filters.purged_up_to(&origin, epoch, up_to).await?;
            }
        }
    }
    Ok(purged)
}
