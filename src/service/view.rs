//! How the agency API shows a stored record, and the filters of a list.
//!
//! A view is computed from the stored envelope (or tombstone) and the
//! series state at the time of the request, so that an expired record
//! shows no content even before the purge has run. The filters are
//! checked whole, with every problem named, before anything is read.

use tonic::Status;

use super::{invalid, invalid_all, status};
use crate::records::lifecycle::{self, Status as RecordStatus, Tombstone};
use crate::records::model::{Content, Errors, NodeId, RecordKind};
use crate::records::vocabulary::{AlertType, Offence, parse_country};
use crate::store::{Content as Stored, Store, StoredRecord};
use crate::wire;
use crate::wire::pb::v1 as pb;

/// A record as a view shows it, with what the filters need.
pub(crate) struct View {
    pub view: pb::RecordView,
    pub alert_type: Option<AlertType>,
    pub offence: Option<Offence>,
    pub countries: Vec<String>,
    pub status: RecordStatus,
}

fn status_to_pb(s: RecordStatus) -> pb::RecordStatus {
    match s {
        RecordStatus::Active => pb::RecordStatus::Active,
        RecordStatus::Superseded => pb::RecordStatus::Superseded,
        RecordStatus::Withdrawn => pb::RecordStatus::Withdrawn,
        RecordStatus::Expired => pb::RecordStatus::Expired,
    }
}

/// The view of a stored record: its content (unless expired), its series
/// and version, and its status now.
pub(crate) fn view(store: &Store, record: &StoredRecord, now: i64) -> Result<View, Status> {
    let base = pb::RecordView {
        origin: record.origin.to_string(),
        seq: record.seq,
        position: record.position,
        ..Default::default()
    };
    match &record.content {
        Stored::Tombstone(bytes) => {
            let t = Tombstone::decode(bytes).unwrap_or_else(|| Tombstone {
                record_id: String::new(),
                series_id: String::new(),
                version: 0,
                kind: String::new(),
                created_at_ms: 0,
                expired_at_ms: 0,
                purged_at_ms: 0,
                digest: String::new(),
                recipients: Vec::new(),
            });
            let series = store.series().decoded(&t.series_id).map_err(status)?;
            Ok(View {
                view: pb::RecordView {
                    record_id: t.record_id,
                    created_at_ms: t.created_at_ms,
                    kind_name: t.kind,
                    series_id: t.series_id,
                    version: t.version,
                    status: pb::RecordStatus::Expired as i32,
                    withdrawal_reason: series
                        .and_then(|s| s.withdrawn)
                        .map(|w| w.reason)
                        .unwrap_or_default(),
                    expired_at_ms: t.expired_at_ms,
                    ..base
                },
                alert_type: None,
                offence: None,
                countries: Vec::new(),
                status: RecordStatus::Expired,
            })
        }
        Stored::Envelope(bytes) => {
            let (envelope, body) = wire::open_stored(bytes).map_err(|e| {
                tracing::error!(origin = %record.origin, seq = record.seq, error = %e, "stored record does not decode");
                Status::internal("this node's store holds an undecodable record")
            })?;
            let series = store.series().decoded(body.series_id()).map_err(status)?;
            let expires_at = lifecycle::expires_at(&body);
            let version = body.version();
            let st = match &body.kind {
                RecordKind::Withdrawal(_) => {
                    if series.as_ref().is_some_and(|s| s.withdrawn.is_some()) {
                        RecordStatus::Withdrawn
                    } else {
                        RecordStatus::Active
                    }
                }
                _ => lifecycle::status(series.as_ref(), version, expires_at, false, now),
            };
            let content = body.kind.content();
            let (alert_type, offence, countries) = match content {
                Some(crate::records::model::ContentRef::Alert(a)) => (
                    Some(a.alert_type),
                    Some(a.offence),
                    content
                        .map(|c| c.countries().iter().map(|s| s.to_string()).collect())
                        .unwrap_or_default(),
                ),
                Some(c) => (None, Some(c.offence()), Vec::new()),
                None => (None, None, Vec::new()),
            };
            let kind = if st == RecordStatus::Expired {
                None
            } else {
                match &body.kind {
                    RecordKind::Alert(a) => {
                        Some(pb::record_view::Kind::Alert(wire::alert_to_pb(a)))
                    }
                    RecordKind::CaseReference(c) => Some(pb::record_view::Kind::CaseReference(
                        wire::case_ref_to_pb(c),
                    )),
                    RecordKind::StatisticalReport(r) => Some(
                        pb::record_view::Kind::StatisticalReport(wire::report_to_pb(r)),
                    ),
                    RecordKind::Update(u) => Some(match &u.content {
                        Content::Alert(a) => pb::record_view::Kind::Alert(wire::alert_to_pb(a)),
                        Content::CaseReference(c) => {
                            pb::record_view::Kind::CaseReference(wire::case_ref_to_pb(c))
                        }
                        Content::StatisticalReport(r) => {
                            pb::record_view::Kind::StatisticalReport(wire::report_to_pb(r))
                        }
                    }),
                    RecordKind::Withdrawal(w) => {
                        Some(pb::record_view::Kind::Withdrawal(pb::Withdrawal {
                            target_record_id: w.target.clone(),
                            reason: w.reason.clone(),
                        }))
                    }
                    // MLA records are shown by ListMla, as request
                    // states; roster records by ListRosterProposals;
                    // match filters are nobody's reading.
                    RecordKind::MlaRequest(_)
                    | RecordKind::MlaAck(_)
                    | RecordKind::MlaResponse(_)
                    | RecordKind::RosterProposal(_)
                    | RecordKind::RosterApproval(_)
                    | RecordKind::MatchFilter(_) => None,
                }
            };
            let kind_name = content.map(|c| c.kind_name()).unwrap_or(body.kind.name());
            Ok(View {
                view: pb::RecordView {
                    record_id: body.record_id.clone(),
                    created_at_ms: body.created_at_ms,
                    key_id: envelope.key_id,
                    distribution: Some(wire::distribution_to_pb(&body.distribution)),
                    kind,
                    kind_name: kind_name.into(),
                    series_id: body.series_id().to_owned(),
                    version,
                    status: status_to_pb(st) as i32,
                    withdrawal_reason: series
                        .and_then(|s| s.withdrawn)
                        .map(|w| w.reason)
                        .unwrap_or_default(),
                    expired_at_ms: if st == RecordStatus::Expired {
                        expires_at.unwrap_or(0)
                    } else {
                        0
                    },
                    ..base
                },
                alert_type,
                offence,
                countries,
                status: st,
            })
        }
    }
}

/// The filters of a list request, checked.
pub(super) struct Filter {
    pub(super) origin: Option<NodeId>,
    pub(super) alert_type: Option<AlertType>,
    pub(super) offence: Option<Offence>,
    pub(super) country: Option<String>,
    pub(super) status: Option<RecordStatus>,
    pub(super) since_ms: i64,
    pub(super) all_versions: bool,
    pub(super) kind: Option<String>,
}

impl Filter {
    pub(super) fn from_request(r: &pb::ListRecordsRequest) -> Result<Self, Status> {
        let mut errors = Errors::default();
        let alert_type = if r.r#type == 0 {
            None
        } else {
            AlertType::from_wire(r.r#type).or_else(|| {
                errors.push("type", format!("unknown value {}", r.r#type));
                None
            })
        };
        let offence = if r.offence == 0 {
            None
        } else {
            Offence::from_wire(r.offence).or_else(|| {
                errors.push("offence", format!("unknown value {}", r.offence));
                None
            })
        };
        let country = if r.country.is_empty() {
            None
        } else {
            parse_country(&r.country)
                .map(str::to_owned)
                .map_err(|e| errors.push("country", e))
                .ok()
        };
        let status = match pb::RecordStatus::try_from(r.status) {
            Ok(pb::RecordStatus::Unspecified) => None,
            Ok(pb::RecordStatus::Active) => Some(RecordStatus::Active),
            Ok(pb::RecordStatus::Superseded) => Some(RecordStatus::Superseded),
            Ok(pb::RecordStatus::Withdrawn) => Some(RecordStatus::Withdrawn),
            Ok(pb::RecordStatus::Expired) => Some(RecordStatus::Expired),
            Err(_) => {
                errors.push("status", format!("unknown value {}", r.status));
                None
            }
        };
        // Kebab or snake case, like every code.
        let kind = match r.kind.replace('-', "_").as_str() {
            "" => None,
            k @ ("alert" | "case_reference" | "withdrawal") => Some(k.to_owned()),
            _ => {
                errors.push(
                    "kind",
                    format!(
                        "unknown kind {:?}; one of: alert, case-reference, withdrawal",
                        r.kind
                    ),
                );
                None
            }
        };
        let origin = parse_origin(&r.origin)?;
        errors.finish().map_err(invalid_all)?;
        Ok(Self {
            origin,
            alert_type,
            offence,
            country,
            status,
            since_ms: r.since_ms,
            // Asking for superseded records implies all versions.
            all_versions: r.all_versions || status == Some(RecordStatus::Superseded),
            kind,
        })
    }

    pub(super) fn matches(&self, v: &View) -> bool {
        // A match filter is the node's machinery, not something to read:
        // its entries mean nothing without the origin's key.
        if v.view.kind_name == "match_filter" {
            return false;
        }
        if !self.all_versions
            && (v.status == RecordStatus::Superseded || v.view.kind_name == "withdrawal")
        {
            return false;
        }
        self.alert_type.is_none_or(|t| v.alert_type == Some(t))
            && self.offence.is_none_or(|o| v.offence == Some(o))
            && self
                .country
                .as_ref()
                .is_none_or(|c| v.countries.contains(c))
            && self.status.is_none_or(|s| v.status == s)
            && v.view.created_at_ms >= self.since_ms
            && self.kind.as_ref().is_none_or(|k| v.view.kind_name == *k)
    }
}

/// An optional origin filter: empty means every origin.
pub(super) fn parse_origin(origin: &str) -> Result<Option<NodeId>, Status> {
    if origin.is_empty() {
        return Ok(None);
    }
    NodeId::parse(origin)
        .map(Some)
        .map_err(|rule| invalid("origin", rule))
}
