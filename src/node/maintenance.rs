//! The node's periodic duties, beside serving and replicating: MLA
//! acknowledgments, certificate expiry warnings, the expiry purge, audit
//! checkpoints and retention, and putting trust reloads on record.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Components;
use crate::records::lifecycle;
use crate::shutdown::stopped;
use crate::store::StoreError;
use crate::wire;

/// Starts every periodic duty of `node` in `duties`; each ends at `stop`.
pub(super) fn spawn_duties(
    node: &Components,
    duties: &mut JoinSet<()>,
    stop: &watch::Receiver<bool>,
) {
    // Before anything is published, the peers say how far they saw this
    // node's log (publications wait for it); then the MLA requests
    // received: those stored before a crash or stop first, then each one
    // replication stores from now on.
    {
        let node = node.clone();
        let mut stop = stop.clone();
        let received = node.to_acknowledge.lock().ok().and_then(|mut r| r.take());
        duties.spawn(async move {
            tokio::select! {
                _ = node.publisher.check_own_log() => {}
                _ = stopped(&mut stop) => return,
            }
            tokio::select! {
                _ = node.audit.check_witnessed() => {}
                _ = stopped(&mut stop) => return,
            }
            node.publisher.acknowledge_pending_mla().await;
            let Some(mut received) = received else {
                return;
            };
            loop {
                tokio::select! {
                    Some(request_id) = received.recv() => {
                        node.publisher.acknowledge_mla(&request_id).await;
                    }
                    _ = stopped(&mut stop) => break,
                }
            }
        });
    }
    {
        let node = node.clone();
        let mut stop = stop.clone();
        duties.spawn(async move {
            let mut daily = tokio::time::interval(Duration::from_secs(86_400));
            loop {
                tokio::select! {
                    _ = daily.tick() => {
                        node.trust.warn_expiring_certificates();
                        warn_expiring_roster(&node);
                    }
                    _ = stopped(&mut stop) => break,
                }
            }
        });
    }
    {
        let node = node.clone();
        let mut stop = stop.clone();
        duties.spawn(async move {
            let mut tick = tokio::time::interval(node.publisher.records.expiry_check);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(error) = purge_expired(&node).await {
                            tracing::error!(%error, "expiry purge failed");
                        }
                    }
                    _ = stopped(&mut stop) => break,
                }
            }
        });
    }
    {
        let node = node.clone();
        let mut stop = stop.clone();
        duties.spawn(async move {
            let mut tick = tokio::time::interval(node.audit.config.checkpoint_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Hourly retention sweeps, the first at start.
            let mut sweep = tokio::time::interval(Duration::from_secs(3_600));
            // Peers' refusals counted beyond their budget, summarised.
            let mut refusals = tokio::time::interval(Duration::from_secs(60));
            refusals.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        node.audit.send_checkpoint().await;
                    }
                    _ = refusals.tick() => {
                        if let Err(error) = node.audit.summarise_refusals().await {
                            tracing::error!(%error, "cannot write the summary of refused requests");
                        }
                    }
                    _ = sweep.tick() => {
                        if let Some(keep) = node.audit.config.retention {
                            let before = node.clock.now_ms().saturating_sub(keep.as_millis() as i64);
                            match node.audit.prune(before).await {
                                Ok(_) => {}
                                Err(error @ crate::audit::keeper::PruneError::NotCountersigned { .. }) => {
                                    tracing::warn!(%error, "audit retention sweep kept the entries");
                                }
                                Err(error) => tracing::error!(%error, "audit retention sweep failed"),
                            }
                        }
                    }
                    _ = stopped(&mut stop) => break,
                }
            }
        });
    }
    // Certificates, keys, CRLs and roster reloaded: on record.
    {
        let node = node.clone();
        let mut stop = stop.clone();
        let mut reloads = node.trust.subscribe();
        duties.spawn(async move {
            loop {
                let outcome = tokio::select! {
                    o = reloads.recv() => o,
                    _ = stopped(&mut stop) => break,
                };
                match outcome {
                    Ok(o) if o.applied() => {
                        let entry = crate::audit::Entry::new(
                            crate::audit::Action::ConfigChanged,
                            node.id.as_str(),
                        )
                        .ids(o.changed.clone())
                        .result(format!(
                            "reloaded ({}); certificate serial {} -> {}{}{}",
                            o.trigger,
                            o.old_certificate.serial,
                            o.new_certificate.serial,
                            if o.roster_changed() {
                                format!(
                                    "; roster version {} -> {} ({})",
                                    o.old_roster.0,
                                    o.new_roster.0,
                                    crate::trust::chain::hex(&o.new_roster.1)
                                )
                            } else {
                                String::new()
                            },
                            if o.restart_needed.is_empty() {
                                String::new()
                            } else {
                                format!("; at next restart: {}", o.restart_needed.join(", "))
                            }
                        ));
                        if let Err(error) = node.audit.record(vec![entry]).await {
                            tracing::error!(%error, "cannot audit a reload");
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
    }
}

/// Replaces the content of every record whose validity has ended with a
/// tombstone. Returns how many were purged.
pub(crate) async fn purge_expired(node: &Components) -> Result<usize, StoreError> {
    let now = node.clock.now_ms();
    let mut purged = 0;
    loop {
        let due = node.store.records().expired(now, 256)?;
        if due.is_empty() {
            // The publication keys of expired records go with them.
            node.store.publish_keys().prune(now).await?;
            return Ok(purged);
        }
        for record in due {
            let (tombstone, expires_at, own_alert) = match record
                .content
                .envelope()
                .map(wire::open_stored)
                .transpose()
            {
                Ok(Some((envelope, body))) => {
                    let expires_at = lifecycle::expires_at(&body).unwrap_or(now);
                    let t = lifecycle::Tombstone::of(&body, &envelope.encode(), expires_at, now);
                    let own_alert = (record.origin == node.id
                        && matches!(
                            body.kind.content(),
                            Some(crate::records::model::ContentRef::Alert(_))
                        ))
                    .then(|| (body.series_id().to_owned(), body.record_id.clone()));
                    (t, expires_at, own_alert)
                }
                _ => {
                    tracing::error!(origin = %record.origin, seq = record.seq, "expired record does not decode");
                    return Err(StoreError::Corrupt(format!(
                        "expired record {}#{} does not decode",
                        record.origin, record.seq
                    )));
                }
            };
            let entry =
                crate::audit::Entry::new(crate::audit::Action::RecordPurged, node.id.as_str())
                    .counterpart(&record.origin)
                    .id(tombstone.record_id.clone())
                    .result("content purged at expiry");
            node.store
                .records()
                .purge(
                    &record.origin,
                    record.seq,
                    expires_at,
                    tombstone.encode(),
                    entry.encode(),
                )
                .await?;
            tracing::info!(origin = %record.origin, seq = record.seq, record_id = %tombstone.record_id, "record content purged at expiry");
            purged += 1;
            // An own alert whose current version expired: its identifiers
            // leave the match filter (an older version's expiry does not
            // end the alert).
            if let Some((series, record_id)) = own_alert {
                let current = node.store.series().decoded(&series)?.map(|s| s.current);
                if current.is_none_or(|c| c == record_id)
                    && let Err(error) = node
                        .cases
                        .put_own_source(&crate::cases::alert_source(&series), None)
                        .await
                {
                    tracing::error!(%error, "cannot take an expired alert's identifiers out of the match filter");
                }
            }
        }
    }
}

/// Logs a warning, at start and then daily, when the roster version in
/// force expires within [`EXPIRY_WARNING_DAYS`] days or has expired (the
/// metric `enlace_roster_expiring` and `enlace doctor` say the same).
fn warn_expiring_roster(node: &Components) {
    use crate::trust::reload::EXPIRY_WARNING_DAYS;
    let roster = node.trust.roster();
    let p = &roster.position;
    let left_ms = p.expires_at_ms - node.clock.now_ms();
    let days_left = left_ms.div_euclid(86_400_000);
    if left_ms <= 0 {
        tracing::warn!(
            version = p.version,
            expires_at_ms = p.expires_at_ms,
            "the roster version in force has expired: links keep working, but no change can follow it until a successor is approved (docs/roster.md, \"Expiry\")"
        );
    } else if days_left < EXPIRY_WARNING_DAYS {
        tracing::warn!(
            version = p.version,
            expires_at_ms = p.expires_at_ms,
            days_left,
            "the roster version in force expires soon: propose and approve a successor (enlace roster propose)"
        );
    }
}
