//! Record series: versions, withdrawals and expiry.
//!
//! A first record (alert or case reference) starts a series whose id is its
//! record id. An update carries the whole new content as version n+1; a
//! withdrawal ends the series with a reason; expiry purges a record's
//! content and leaves a tombstone. Every node keeps the state of each series
//! it holds, written in the same transaction as the record that changes it,
//! so a recipient's views can show the current version only and flag
//! withdrawn and expired records.
//!
//! The origin applies the rules strictly (the target must exist, versions
//! follow each other, a withdrawn series takes no update). A recipient is
//! lenient where it cannot know better (it may never have received the
//! first version, which expired before it joined) but strict about what
//! protects people: a series about a victim never turns into another
//! category.

use serde::{Deserialize, Serialize};

use crate::records::model::{ContentRef, Distribution, FieldError, RecordBody, RecordKind};

/// The state of one series, as stored (JSON; fields are only ever added).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesState {
    /// "alert" or "case_reference".
    pub kind: String,
    /// Current version (1 for a series without updates; 0 if only a
    /// withdrawal was ever seen).
    pub version: u32,
    /// Record id of the current version.
    pub current: String,
    /// Whether the current content is about a victim.
    #[serde(default)]
    pub victim: bool,
    /// Recipients of the series; empty means all members.
    #[serde(default)]
    pub recipients: Vec<String>,
    #[serde(default)]
    pub withdrawn: Option<Withdrawn>,
    /// For a statistical report: its table, period and the cells
    /// suppressed so far (every later version keeps them suppressed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistics: Option<ReportSeries>,
}

/// What a statistical report series must keep across versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportSeries {
    pub table: String,
    pub period: String,
    /// Cell keys as `stats::key_code`.
    pub suppressed: Vec<String>,
}

impl ReportSeries {
    fn of(content: ContentRef<'_>) -> Option<Self> {
        match content {
            ContentRef::StatisticalReport(r) => Some(Self {
                table: r.kind().code().to_owned(),
                period: r.period().to_string(),
                suppressed: crate::records::stats::suppressed_codes(&r.table),
            }),
            _ => None,
        }
    }

    /// A new version keeps the table, the period and every suppression.
    // NOTE: "protect the union". If version 2 published a cell version 1
    // suppressed, subtracting the two would give the suppressed figure.
    fn check_next(&self, next: &Self, series: &str) -> Result<(), FieldError> {
        if (next.table.as_str(), next.period.as_str())
            != (self.table.as_str(), self.period.as_str())
        {
            return Err(FieldError::new(
                "update.statistical_report",
                format!(
                    "series {series} is the {} table for {}; a correction keeps the table and the period",
                    self.table, self.period
                ),
            ));
        }
        let kept: std::collections::BTreeSet<&str> =
            next.suppressed.iter().map(String::as_str).collect();
        let lost: Vec<&str> = self
            .suppressed
            .iter()
            .map(String::as_str)
            .filter(|k| !kept.contains(k))
            .collect();
        if !lost.is_empty() {
            return Err(FieldError::new(
                "update.statistical_report.cells",
                format!(
                    "cells suppressed in an earlier version must stay suppressed, or the two versions could be subtracted: {}",
                    lost.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

/// How a series was withdrawn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawn {
    pub record_id: String,
    pub reason: String,
    pub at_ms: i64,
}

impl SeriesState {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    /// The series' distribution.
    pub fn distribution(&self) -> Result<Distribution, crate::records::model::ValidationErrors> {
        Distribution::from_recipients("distribution", &self.recipients)
    }
}

/// Whether the origin applies the rules (strict) or a recipient (lenient).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Origin,
    Recipient,
}

/// The series state after `body`, given the state before it.
pub fn next(
    before: Option<&SeriesState>,
    body: &RecordBody,
    mode: Mode,
) -> Result<SeriesState, FieldError> {
    let strict = mode == Mode::Origin;
    let target_field = "record_id";
    match &body.kind {
        RecordKind::Alert(_) | RecordKind::CaseReference(_) | RecordKind::StatisticalReport(_) => {
            let content = body
                .kind
                .content()
                .ok_or_else(|| FieldError::new("kind", "has no content"))?;
            if before.is_some() {
                return Err(FieldError::new(
                    target_field,
                    format!("series {} already exists", body.record_id),
                ));
            }
            Ok(SeriesState {
                kind: content.kind_name().into(),
                version: 1,
                current: body.record_id.clone(),
                victim: content.is_victim(),
                recipients: body.distribution.recipients(),
                withdrawn: None,
                statistics: ReportSeries::of(content),
            })
        }
        RecordKind::Update(u) => {
            let content = u.content.as_ref();
            let Some(before) = before else {
                if strict {
                    return Err(FieldError::new(
                        target_field,
                        format!("no series {} at this node", u.target),
                    ));
                }
                return Ok(fresh(body, content, u.version));
            };
            if let Some(w) = &before.withdrawn {
                return Err(FieldError::new(
                    target_field,
                    format!(
                        "series {} was withdrawn ({}); publish a new record instead",
                        u.target, w.reason
                    ),
                ));
            }
            if before.kind != content.kind_name() {
                return Err(FieldError::new(
                    "content",
                    format!(
                        "series {} holds a {}, not a {}",
                        u.target,
                        before.kind,
                        content.kind_name()
                    ),
                ));
            }
            // NOTE: the victim rule. A person recorded as a victim is never
            // re-recorded in another category; the reverse (a suspect later
            // recognised as a victim) is allowed: the non-punishment principle.
            if before.victim && !content.is_victim() {
                return Err(FieldError::new(
                    "alert.subject_category",
                    "a series about a victim stays about a victim: the subject category cannot change",
                ));
            }
            let expected_ok = if strict {
                u.version == before.version + 1
            } else {
                u.version > before.version
            };
            if !expected_ok {
                return Err(FieldError::new(
                    "update.version",
                    format!(
                        "version {} does not follow version {} of series {}",
                        u.version, before.version, u.target
                    ),
                ));
            }
            if strict && body.distribution.recipients() != before.recipients {
                return Err(FieldError::new(
                    "to",
                    "an update keeps the distribution of its series",
                ));
            }
            let statistics = ReportSeries::of(content);
            if let (Some(was), Some(next)) = (&before.statistics, &statistics) {
                was.check_next(next, &u.target)?;
            }
            Ok(SeriesState {
                version: u.version,
                current: body.record_id.clone(),
                victim: content.is_victim(),
                statistics,
                ..before.clone()
            })
        }
        RecordKind::MlaRequest(_) | RecordKind::MlaAck(_) | RecordKind::MlaResponse(_) => Err(
            FieldError::new("kind", "an MLA record belongs to no series (see mla::next)"),
        ),
        RecordKind::RosterProposal(_) | RecordKind::RosterApproval(_) => Err(FieldError::new(
            "kind",
            "a roster record belongs to no series (see records::roster)",
        )),
        RecordKind::MatchFilter(_) => Err(FieldError::new(
            "kind",
            "a match filter record belongs to no series (see records::filter)",
        )),
        RecordKind::Withdrawal(w) => {
            let withdrawn = Some(Withdrawn {
                record_id: body.record_id.clone(),
                reason: w.reason.clone(),
                at_ms: body.created_at_ms,
            });
            match before {
                Some(b) if b.withdrawn.is_some() => Err(FieldError::new(
                    target_field,
                    format!("series {} is already withdrawn", w.target),
                )),
                Some(b) => {
                    if strict && body.distribution.recipients() != b.recipients {
                        return Err(FieldError::new(
                            "to",
                            "a withdrawal keeps the distribution of its series",
                        ));
                    }
                    Ok(SeriesState {
                        withdrawn,
                        ..b.clone()
                    })
                }
                None if strict => Err(FieldError::new(
                    target_field,
                    format!("no series {} at this node", w.target),
                )),
                None => Ok(SeriesState {
                    kind: String::new(),
                    version: 0,
                    current: String::new(),
                    victim: false,
                    recipients: body.distribution.recipients(),
                    withdrawn,
                    statistics: None,
                }),
            }
        }
    }
}

fn fresh(body: &RecordBody, content: ContentRef<'_>, version: u32) -> SeriesState {
    SeriesState {
        kind: content.kind_name().into(),
        version,
        current: body.record_id.clone(),
        victim: content.is_victim(),
        recipients: body.distribution.recipients(),
        withdrawn: None,
        statistics: ReportSeries::of(content),
    }
}

/// Status of one record as a view shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    Superseded,
    Withdrawn,
    Expired,
}

impl Status {
    pub fn code(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Superseded => "superseded",
            Status::Withdrawn => "withdrawn",
            Status::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "active" => Ok(Status::Active),
            "superseded" => Ok(Status::Superseded),
            "withdrawn" => Ok(Status::Withdrawn),
            "expired" => Ok(Status::Expired),
            _ => Err(format!(
                "unknown status {s:?}; one of: active, superseded, withdrawn, expired"
            )),
        }
    }
}

/// The status of a record of version `version` expiring at `expires_at_ms`
/// in a series in `state`, at `now_ms`. `purged` when only a tombstone is left.
pub fn status(
    state: Option<&SeriesState>,
    version: u32,
    expires_at_ms: Option<i64>,
    purged: bool,
    now_ms: i64,
) -> Status {
    if purged || expires_at_ms.is_some_and(|t| t <= now_ms) {
        return Status::Expired;
    }
    match state {
        // Older versions stay superseded: only the current one carries the
        // withdrawn flag, so a default view shows the series once.
        Some(s) if version < s.version => Status::Superseded,
        Some(s) if s.withdrawn.is_some() => Status::Withdrawn,
        _ => Status::Active,
    }
}

/// What is left of a record after expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    pub record_id: String,
    pub series_id: String,
    pub version: u32,
    pub kind: String,
    pub created_at_ms: i64,
    pub expired_at_ms: i64,
    pub purged_at_ms: i64,
    /// SHA-256 of the purged envelope, hex: proof of what was held.
    pub digest: String,
    /// The record's recipients (empty: all members), so that convergence
    /// checks still know who was entitled to it.
    #[serde(default)]
    pub recipients: Vec<String>,
}

impl Tombstone {
    /// The tombstone of `body` whose envelope was `envelope`.
    pub fn of(body: &RecordBody, envelope: &[u8], expired_at_ms: i64, now_ms: i64) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, envelope);
        Self {
            record_id: body.record_id.clone(),
            series_id: body.series_id().to_owned(),
            version: body.version(),
            kind: body
                .kind
                .content()
                .map(|c| c.kind_name())
                .unwrap_or(body.kind.name())
                .into(),
            created_at_ms: body.created_at_ms,
            expired_at_ms,
            purged_at_ms: now_ms,
            digest: hex::encode(digest),
            recipients: body.distribution.recipients(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// When a record's content expires: its content's `expires_at`, or for a
/// withdrawal never (it carries no content).
pub fn expires_at(body: &RecordBody) -> Option<i64> {
    body.kind.content().map(|c| c.expires_at_ms())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::model::fixtures::{body, sample_alert};
    use crate::records::model::{Content, Update, Withdrawal};
    use crate::records::vocabulary::SubjectCategory;

    fn update(target: &str, version: u32, victim: bool) -> RecordBody {
        let mut a = sample_alert();
        if !victim {
            a.subject = Some(SubjectCategory::Witness);
            a.alert_type = crate::records::vocabulary::AlertType::PersonOfInterest;
        }
        let mut b = body(RecordKind::Update(Update {
            target: target.into(),
            version,
            content: Content::Alert(a),
        }));
        b.record_id = format!("gt-{:016x}", u64::from(version) + 100);
        b
    }

    #[test]
    fn versions_follow_each_other_at_the_origin() {
        let first = body(RecordKind::Alert(sample_alert()));
        let s1 = next(None, &first, Mode::Origin).unwrap();
        assert_eq!((s1.version, s1.victim), (1, true));
        let s2 = next(Some(&s1), &update(&first.record_id, 2, true), Mode::Origin).unwrap();
        assert_eq!(s2.version, 2);
        let err = next(Some(&s2), &update(&first.record_id, 4, true), Mode::Origin).unwrap_err();
        assert!(err.rule.contains("does not follow version 2"), "{err}");
        // A recipient accepts a gap (a version it was not entitled to or that expired).
        assert_eq!(
            next(
                Some(&s2),
                &update(&first.record_id, 4, true),
                Mode::Recipient
            )
            .unwrap()
            .version,
            4
        );
        assert!(next(None, &update(&first.record_id, 2, true), Mode::Origin).is_err());
        assert!(next(None, &update(&first.record_id, 2, true), Mode::Recipient).is_ok());
    }

    #[test]
    fn a_victim_stays_a_victim_everywhere() {
        let first = body(RecordKind::Alert(sample_alert()));
        let s1 = next(None, &first, Mode::Origin).unwrap();
        for mode in [Mode::Origin, Mode::Recipient] {
            let err = next(Some(&s1), &update(&first.record_id, 2, false), mode).unwrap_err();
            assert_eq!(err.field, "alert.subject_category");
        }
    }

    #[test]
    fn a_withdrawn_series_takes_no_update() {
        let first = body(RecordKind::Alert(sample_alert()));
        let s1 = next(None, &first, Mode::Origin).unwrap();
        let mut w = body(RecordKind::Withdrawal(Withdrawal {
            target: first.record_id.clone(),
            reason: "error".into(),
        }));
        w.record_id = "gt-00000000000000ff".into();
        let s2 = next(Some(&s1), &w, Mode::Origin).unwrap();
        assert_eq!(
            s2.withdrawn.as_ref().map(|w| w.reason.as_str()),
            Some("error")
        );
        assert!(
            next(
                Some(&s2),
                &update(&first.record_id, 2, true),
                Mode::Recipient
            )
            .is_err()
        );
        assert!(
            next(Some(&s2), &w, Mode::Origin).is_err(),
            "withdrawn twice"
        );
        assert_eq!(
            status(Some(&s2), 1, Some(i64::MAX), false, 0),
            Status::Withdrawn
        );
    }

    #[test]
    fn statuses() {
        let s = SeriesState {
            kind: "alert".into(),
            version: 3,
            current: "gt-0000000000000003".into(),
            victim: false,
            recipients: vec![],
            withdrawn: None,
            statistics: None,
        };
        assert_eq!(status(Some(&s), 3, Some(100), false, 50), Status::Active);
        assert_eq!(
            status(Some(&s), 2, Some(100), false, 50),
            Status::Superseded
        );
        assert_eq!(status(Some(&s), 3, Some(100), false, 100), Status::Expired);
        assert_eq!(status(Some(&s), 3, Some(100), true, 0), Status::Expired);
        assert_eq!(SeriesState::decode(&s.encode()), Some(s));
    }
}
