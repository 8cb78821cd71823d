//! The bench's records: signed alerts of a fixed size, made the way the
//! publish path makes them, and the bulk load that writes them straight
//! into a stopped node's store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};

use enlace::clock::now_ms;
use enlace::records::crypto::{self, SigningKey};
use enlace::records::lifecycle::{self, Mode, SeriesState};
use enlace::records::model::{
    self, ContactPoint, Distribution, Errors, NodeId, RecordBody, RecordKind,
};
use enlace::records::selector::MatchingKey;
use enlace::records::vocabulary::{SelectorKind, SubjectCategory, Urgency};
use enlace::store::{self, NewRecord, SeriesWrite, Store};
use enlace::trust::load::LoadedSettings;
use enlace::wire::pb::v1 as pb;
use enlace::wire::{self, Envelope};

use crate::failure::Spelled;

/// Target size of an encoded record body, in bytes.
pub const BODY_BYTES: usize = 512;
/// Records written per store transaction by the bulk load.
pub(super) const LOAD_CHUNK: u64 = 2000;
/// The passport number hashed into each bench alert's selector.
pub(super) const SAMPLE_PASSPORT: &str = "X1234567";

/// Signed alerts of about [`BODY_BYTES`] encoded bytes, built and signed
/// the way [`enlace::publish`] does for an agency's publish: the agency
/// API's defaults, the alert rules, the series state of a first record.
pub(super) struct Records {
    origin: NodeId,
    pub(super) signing: Arc<SigningKey>,
    alert: model::Alert,
    /// The padded summary, for requests through the agency API.
    summary: String,
    with_selector: bool,
    pub(super) body_bytes: usize,
}

impl Records {
    pub(super) fn for_node(settings: &LoadedSettings) -> anyhow::Result<Self> {
        Self::new(
            settings.node_id.clone(),
            settings.signing.clone(),
            settings.matching.as_deref(),
            settings.agency.contact.clone(),
            settings.records.default_validity,
        )
    }

    pub(super) fn new(
        origin: NodeId,
        signing: Arc<SigningKey>,
        matching: Option<&MatchingKey>,
        contact: Option<ContactPoint>,
        validity: Duration,
    ) -> anyhow::Result<Self> {
        let selector = matching
            .map(|k| k.hash(SelectorKind::Passport, SAMPLE_PASSPORT))
            .transpose()
            .spelled()?
            .map(|t| wire::selector_to_pb(&t));
        let expires_at_ms =
            now_ms().saturating_add(i64::try_from(validity.as_millis()).unwrap_or(i64::MAX));
        // What the agency API does to a request before it is published.
        let make = |summary: &str| -> anyhow::Result<model::Alert> {
            let mut a = enlace::testing::sample_alert(summary);
            a.urgency = Urgency::Routine.wire();
            a.subject_category = SubjectCategory::Victim.wire();
            a.expires_at_ms = expires_at_ms;
            a.contact = contact.as_ref().map(|c| pb::ContactPoint {
                unit: c.unit.clone(),
                email: c.email.clone(),
                phone: c.phone.clone(),
            });
            a.selectors.extend(selector.clone());
            let mut errors = Errors::default();
            let alert = wire::alert_from_pb(a, "alert", &mut errors);
            if let Some(alert) = &alert {
                alert.check("alert", &mut errors);
            }
            errors.finish().spelled()?;
            alert.context("the bench alert is invalid")
        };
        let size = |alert: model::Alert| {
            wire::encode_body(&RecordBody {
                origin: origin.clone(),
                seq: 100_000,
                record_id: model::new_record_id(&origin, [0xa5; 8]),
                created_at_ms: now_ms(),
                distribution: Distribution::AllMembers,
                kind: RecordKind::Alert(alert),
            })
            .len()
        };
        // Padding is ASCII, so one character is one byte; a few rounds
        // absorb the length prefix growing with the field.
        let mut pad = 0usize;
        let mut summary = padded_summary(pad);
        let mut body_bytes = size(make(&summary)?);
        for _ in 0..8 {
            if body_bytes == BODY_BYTES {
                break;
            }
            pad = if body_bytes < BODY_BYTES {
                pad + (BODY_BYTES - body_bytes)
            } else {
                pad.saturating_sub(body_bytes - BODY_BYTES)
            };
            summary = padded_summary(pad);
            body_bytes = size(make(&summary)?);
        }
        Ok(Self {
            alert: make(&summary)?,
            origin,
            signing,
            summary,
            with_selector: selector.is_some(),
            body_bytes,
        })
    }

    /// A signed first record at `seq`: its body, envelope and series state.
    pub(super) fn signed(&self, seq: u64) -> anyhow::Result<(RecordBody, Envelope, SeriesState)> {
        let random: [u8; 8] = crypto::random_bytes().spelled()?;
        let body = RecordBody {
            origin: self.origin.clone(),
            seq,
            record_id: model::new_record_id(&self.origin, random),
            created_at_ms: now_ms(),
            distribution: Distribution::AllMembers,
            kind: RecordKind::Alert(self.alert.clone()),
        };
        body.validate().spelled()?;
        let series = lifecycle::next(None, &body, Mode::Origin).spelled()?;
        let bytes = wire::encode_body(&body);
        let signature = self.signing.sign_record(&bytes);
        let envelope = Envelope {
            body: bytes,
            key_id: self.signing.key_id().to_owned(),
            signature,
        };
        Ok((body, envelope, series))
    }

    /// What the store writes for the record at `seq`.
    pub(super) fn record(&self, seq: u64) -> anyhow::Result<NewRecord> {
        let (body, envelope, series) = self.signed(seq)?;
        Ok(NewRecord {
            seq,
            record_id: body.record_id.clone(),
            content: store::Content::Envelope(envelope.encode()),
            expires_at_ms: lifecycle::expires_at(&body),
            series: Some(SeriesWrite {
                series_id: body.series_id().to_owned(),
                state: series.encode(),
            }),
            publish_key: None,
        })
    }

    /// Records `first..first + count`, signed on every core.
    pub(super) fn build(&self, first: u64, count: u64) -> anyhow::Result<Vec<NewRecord>> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        let per = count.div_ceil(threads).max(1);
        let end = first + count;
        std::thread::scope(|scope| {
            let parts: Vec<_> = (0..threads)
                .map(|t| {
                    let lo = first + t * per;
                    let hi = (lo + per).min(end);
                    scope.spawn(move || {
                        (lo..hi)
                            .map(|seq| self.record(seq))
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            let mut out = Vec::with_capacity(count as usize);
            for part in parts {
                out.extend(
                    part.join()
                        .map_err(|_| anyhow!("a signing thread panicked"))??,
                );
            }
            Ok(out)
        })
    }

    /// The same alert as an agency client sends it.
    pub(super) fn request(&self) -> pb::PublishAlertRequest {
        pb::PublishAlertRequest {
            alert: Some(enlace::testing::sample_alert(&self.summary)),
            to: Vec::new(),
            selector_values: if self.with_selector {
                vec![pb::SelectorValue {
                    kind: SelectorKind::Passport.wire(),
                    value: SAMPLE_PASSPORT.into(),
                }]
            } else {
                Vec::new()
            },
            validate_only: false,
            idempotency_key: String::new(),
        }
    }
}

/// The sample alert's summary, padded with `pad` ASCII characters.
pub(super) fn padded_summary(pad: usize) -> String {
    const FILLER: &str = " Ruta Tecun Uman - Tapachula; victima trasladada en autobus, documentos retenidos por el reclutador.";
    let mut s = String::from(
        "Posible víctima de trata con fines de explotación sexual; ruta Tecún Umán – Tapachula.",
    );
    s.extend(FILLER.chars().cycle().take(pad));
    s
}

pub(super) fn sample_contact() -> ContactPoint {
    ContactPoint {
        unit: "Unidad de Cooperación Internacional (gt)".into(),
        email: "cooperacion@gt.example".into(),
        phone: String::new(),
    }
}

/// Writes `records` signed records into the node's own log, straight into
/// its store (the node must not be running). Returns how long it took and
/// the size of an encoded body.
pub(super) async fn bulk_load(
    settings: &LoadedSettings,
    records: u64,
) -> anyhow::Result<(Duration, usize)> {
    let started = Instant::now();
    let factory = Arc::new(Records::for_node(settings)?);
    let store = Store::open_with_cache(&settings.data_dir, &settings.node_id, settings.cache_bytes)
        .spelled()?;
    let first = store.watermark().own_seq + 1;
    let end = first + records;
    let build = |from: u64| {
        let factory = factory.clone();
        let count = LOAD_CHUNK.min(end - from);
        tokio::task::spawn_blocking(move || factory.build(from, count))
    };
    // Signing the next chunk overlaps writing this one.
    let mut next = first;
    let mut pending = Some(build(next));
    while let Some(job) = pending.take() {
        let batch = job.await.spelled()??;
        let count = batch.len();
        next += count as u64;
        if next < end {
            pending = Some(build(next));
        }
        let mut batch = batch.into_iter();
        store
            .records()
            .append_own_batch(
                count,
                |seq| match batch.next() {
                    Some(r) if r.seq == seq => Ok(r),
                    _ => Err(anyhow!("the store gave seq {seq}, not the one signed")),
                },
                // One entry per record, as publishing through the agency
                // API writes: the audit log a publishing node really holds.
                |records| {
                    records
                        .iter()
                        .map(|r| {
                            enlace::audit::Entry::new(
                                enlace::audit::Action::RecordPublished,
                                "enlace-bench",
                            )
                            .id(r.record_id.clone())
                            .result("alert")
                            .encode()
                        })
                        .collect()
                },
            )
            .await
            .spelled()??;
    }
    Ok((started.elapsed(), factory.body_bytes))
}

// ---------------------------------------------------------------------------
// Processes, nodes and small helpers

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_records_are_valid_signed_and_about_the_target_size() {
        let origin = NodeId::parse("gt").unwrap();
        let (signing, _) = SigningKey::generate("gt-1").unwrap();
        let (matching, _) = MatchingKey::generate().unwrap();
        let records = Records::new(
            origin,
            Arc::new(signing),
            Some(&matching),
            Some(sample_contact()),
            Duration::from_secs(86_400),
        )
        .unwrap();
        assert!(
            records.body_bytes.abs_diff(BODY_BYTES) <= 2,
            "{}",
            records.body_bytes
        );
        let (body, envelope, _) = records.signed(7).unwrap();
        crypto::verify_record(
            records.signing.public_key(),
            "gt-1",
            &envelope.body,
            &envelope.signature,
        )
        .unwrap();
        assert_eq!(wire::decode_body(&envelope.body).unwrap(), body);
        let built = records.build(10, 5).unwrap();
        assert_eq!(
            built.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![10, 11, 12, 13, 14]
        );
    }
}
