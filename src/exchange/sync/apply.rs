//! The store side of replication: each verified record checked against
//! the cursor, its series and its MLA state, then stored with the cursor
//! in one durable step, with the audit entries of what was received and
//! refused.

use std::collections::HashMap;

use crate::records::model::ContentRef;

use super::*;

/// How a refused record affects the cursor.
enum Refused {
    /// Authentic record at this seq that must not be stored; move past it.
    Skip(u64, Rejection),
    /// Untrustworthy record: keep the cursor before it.
    Pin(Rejection),
    /// The store failed: end the session, retry later.
    Store(StoreError),
}

impl PeerReplicator {
    pub(super) async fn apply(
        &self,
        batch: VerifiedBatch,
        last_seq: &mut u64,
        pinned: &mut Option<u64>,
    ) -> Result<(), SessionError> {
        let high_water = batch.high_water;
        let head = batch.head;
        if high_water < *last_seq {
            return Err(SessionError::HighWaterBelow {
                high_water,
                last_seq: *last_seq,
            });
        }
        let mut accepted = Vec::with_capacity(batch.records.len());
        let mut rejected = 0u64;
        // Refusals, written to the audit log with the batch.
        let mut refusals: Vec<Entry> = Vec::new();
        // Series states changed by earlier records of this batch.
        let mut series: HashMap<String, SeriesState> = HashMap::new();
        let mut mla_states: HashMap<String, MlaState> = HashMap::new();
        // Whether the batch holds a roster proposal or approval.
        let mut roster_records = false;
        // Whether the batch holds a match filter record.
        let mut filter_records = false;
        // MLA records stored from this batch, for the audit and the acks.
        let mut mla_records: Vec<(String, String)> = Vec::new();
        // Statistical reports stored from this batch, for the audit.
        let mut reports: Vec<(String, String)> = Vec::new();
        let now = self.shared.clock.now_ms();
        for verified in batch.records {
            // An authentic record's id, for the audit entry of a refusal.
            let record_id = verified.as_ref().ok().map(|v| v.body.record_id.clone());
            let checked = self.check(verified, *last_seq, high_water).and_then(|v| {
                let kind = v.body.kind.name();
                let id = v.body.record_id.clone();
                let report = match v.body.kind.content() {
                    Some(ContentRef::StatisticalReport(r)) => Some(format!(
                        "{} {} version {}",
                        r.kind(),
                        r.period(),
                        v.body.version()
                    )),
                    _ => None,
                };
                roster_records |= v.body.kind.is_roster();
                filter_records |= matches!(
                    v.body.kind,
                    crate::records::model::RecordKind::MatchFilter(_)
                );
                let record = self.prepare(v, &mut series, &mut mla_states, now)?;
                if kind.starts_with("mla_") && record.series.is_some() {
                    mla_records.push((kind.to_owned(), id));
                } else if let Some(report) = report {
                    reports.push((report, id));
                }
                Ok(record)
            });
            match checked {
                Ok(record) => {
                    *last_seq = record.seq;
                    accepted.push(record);
                }
                Err(Refused::Skip(seq, rejection)) => {
                    // Authentic, but not for us: nothing to ask for again.
                    rejected += 1;
                    self.shared
                        .metrics
                        .record_rejected(&self.peer, rejection.label());
                    tracing::warn!(security_event = true, reason = rejection.label(), %rejection, seq, "record rejected");
                    refusals.push(self.refusal(&rejection, Some(seq), record_id.as_deref()));
                    *last_seq = seq;
                }
                Err(Refused::Pin(rejection)) => {
                    // Not authentic or not well formed: its slot stays open
                    // so the record is asked for again after a reconnect.
                    rejected += 1;
                    self.shared
                        .metrics
                        .record_rejected(&self.peer, rejection.label());
                    tracing::warn!(security_event = true, reason = rejection.label(), %rejection, "record rejected");
                    refusals.push(self.refusal(&rejection, None, None));
                    pinned.get_or_insert(*last_seq);
                }
                Err(Refused::Store(e)) => return Err(e.into()),
            }
        }
        let cursor = match pinned {
            Some(p) => (*p).min(high_water),
            None => high_water,
        };
        // The receipt, the refusals and the MLA messages are written to the
        // audit log in the same transaction as the records and the cursor.
        let mut written: Vec<Entry> = Vec::new();
        let applied = self
            .shared
            .store
            .records()
            .apply_received(&self.peer, &accepted, cursor, |stored, applied| {
                let mut entries = std::mem::take(&mut refusals);
                for seq in &applied.conflicts {
                    let id = accepted
                        .iter()
                        .find(|r| r.seq == *seq)
                        .map(|r| r.record_id.as_str());
                    entries.push(self.refusal(&Rejection::Conflict(*seq), Some(*seq), id));
                }
                if !stored.is_empty() {
                    entries.push(
                        Entry::new(Action::RecordsReceived, self.peer.as_str())
                            .counterpart(&self.peer)
                            .ids(stored.iter().map(|r| r.record_id.clone()))
                            .result(format!(
                                "{} stored, {} already held",
                                stored.len(),
                                applied.duplicates
                            )),
                    );
                }
                for (kind, id) in &mla_records {
                    if stored.iter().any(|r| r.record_id == *id) {
                        entries.push(
                            Entry::new(Action::MlaReceived, self.peer.as_str())
                                .counterpart(&self.peer)
                                .id(id.clone())
                                .result(kind.clone()),
                        );
                    }
                }
                for (report, id) in &reports {
                    if stored.iter().any(|r| r.record_id == *id) {
                        entries.push(
                            Entry::new(Action::StatisticsReceived, self.peer.as_str())
                                .counterpart(&self.peer)
                                .id(id.clone())
                                .result(report.clone()),
                        );
                    }
                }
                let bodies = entries.iter().map(Entry::encode).collect();
                written = entries;
                bodies
            })
            .await?;
        for e in written
            .iter()
            .filter(|e| e.action != Action::RecordsReceived.code())
        {
            e.log(&self.shared.id);
        }
        for seq in &applied.conflicts {
            rejected += 1;
            let rejection = Rejection::Conflict(*seq);
            self.shared
                .metrics
                .record_rejected(&self.peer, rejection.label());
            tracing::warn!(security_event = true, reason = rejection.label(), %rejection, "record rejected");
        }
        if applied.stored > 0 {
            tracing::debug!(stored = applied.stored, cursor, "batch applied");
        }
        for (kind, id) in mla_records {
            if kind == "mla_request" {
                // The signed acknowledgment goes out on its own, so that a
                // slow store write does not hold up replication: the node
                // hands it to the publisher. If the node stops first, it
                // acknowledges at its next start.
                let _ = self.shared.received_mla.send(id);
            }
        }
        if roster_records && applied.stored > 0 {
            self.shared.roster_records.notify_one();
        }
        if filter_records && applied.stored > 0 {
            self.shared.filter_records.notify_one();
        }
        self.shared.update_peer(&self.peer, |p| {
            p.last_contact_ms = Some(self.shared.clock.now_ms());
            p.records_received += applied.stored as u64;
            p.records_rejected += rejected;
            p.head = p.head.max(head);
        });
        Ok(())
    }

    /// The audit entry of a refused record.
    fn refusal(&self, rejection: &Rejection, seq: Option<u64>, record_id: Option<&str>) -> Entry {
        let mut e = Entry::new(Action::RecordRejected, self.peer.as_str())
            .counterpart(&self.peer)
            .result(format!("{}: {rejection}", rejection.label()));
        if let Some(seq) = seq {
            e = e.id(format!("{}#{seq}", self.peer));
        }
        if let Some(id) = record_id {
            e = e.id(id.to_owned());
        }
        e
    }

    /// Turns a verified record into what the store writes: its series
    /// state, and a tombstone instead of content that has already expired.
    fn prepare(
        &self,
        v: verify::VerifiedRecord,
        series: &mut HashMap<String, SeriesState>,
        mla_states: &mut HashMap<String, MlaState>,
        now: i64,
    ) -> Result<NewRecord, Refused> {
        let seq = v.body.seq;
        let expires_at = lifecycle::expires_at(&v.body);
        let mut record = NewRecord {
            seq,
            record_id: v.body.record_id.clone(),
            content: store::Content::Envelope(v.envelope),
            expires_at_ms: expires_at,
            series: None,
            publish_key: None,
        };
        if self
            .shared
            .store
            .records()
            .contains(&self.peer, seq)
            .map_err(Refused::Store)?
        {
            // Re-delivery: the store compares bytes; the series is unchanged.
            return Ok(record);
        }
        if let Some((series_id, state)) = v.body.roster_index() {
            record.series = Some(SeriesWrite { series_id, state });
            return Ok(record);
        }
        if matches!(
            v.body.kind,
            crate::records::model::RecordKind::MatchFilter(_)
        ) {
            // No series: the filter view reads it from the log
            // (`crate::cases::filters`).
            return Ok(record);
        }
        if v.body.kind.is_mla() {
            let key = mla::key(v.body.series_id());
            let before = match mla_states.get(&key) {
                Some(s) => Some(s.clone()),
                None => self
                    .shared
                    .store
                    .series()
                    .mla(v.body.series_id())
                    .map_err(Refused::Store)?,
            };
            let after = mla::next(before.as_ref(), &v.body)
                .map_err(|e| Refused::Skip(seq, Rejection::Series(e.to_string())))?;
            record.series = Some(SeriesWrite {
                series_id: key.clone(),
                state: after.encode(),
            });
            mla_states.insert(key, after);
            return Ok(record);
        }
        let series_id = v.body.series_id().to_owned();
        let before = match series.get(&series_id) {
            Some(s) => Some(s.clone()),
            None => self
                .shared
                .store
                .series()
                .decoded(&series_id)
                .map_err(Refused::Store)?,
        };
        let after = lifecycle::next(before.as_ref(), &v.body, Mode::Recipient)
            .map_err(|e| Refused::Skip(seq, Rejection::Series(e.to_string())))?;
        record.series = Some(SeriesWrite {
            series_id: series_id.clone(),
            state: after.encode(),
        });
        series.insert(series_id, after);
        if let (Some(at), store::Content::Envelope(bytes)) = (expires_at, &record.content)
            && at <= now
        {
            let tombstone = lifecycle::Tombstone::of(&v.body, bytes, at, now);
            record.content = store::Content::Tombstone(tombstone.encode());
            record.expires_at_ms = None;
        }
        Ok(record)
    }

    /// Verifies one record of the stream.
    fn check(
        &self,
        verified: Result<verify::VerifiedRecord, Rejection>,
        after: u64,
        high_water: u64,
    ) -> Result<verify::VerifiedRecord, Refused> {
        let v = verified.map_err(Refused::Pin)?;
        let seq = v.body.seq;
        if v.body.origin != self.peer {
            return Err(Refused::Pin(Rejection::UnexpectedOrigin {
                expected: self.peer.clone(),
                found: v.body.origin,
            }));
        }
        if seq <= after || seq > high_water {
            return Err(Refused::Pin(Rejection::OutOfOrder {
                seq,
                after,
                high_water,
            }));
        }
        if !self.recovering && !v.body.distribution.includes(&self.shared.id) {
            return Err(Refused::Skip(
                seq,
                Rejection::NotEntitled(self.shared.id.clone()),
            ));
        }
        Ok(v)
    }
}
