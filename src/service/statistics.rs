//! The agency API's statistics: compute this node's protected tables,
//! publish them as signed reports (or correct them), and hand a client
//! every member's latest reports for the regional table.
//!
//! The counting and protection are `stats`' (pure); this file reads the
//! local cases and the record log, applies the node's `[statistics]`
//! policy and the budget, and writes the audit entries. Reports are found
//! by reading the record log (statistical reports are few, but the log is
//! not): each call reads it once, so calls are budgeted
//! ([`crate::limits::STATISTICS_PER_MINUTE`]).

use std::collections::BTreeMap;

use tonic::{Request, Response, Status};

use super::agency::AgencyService;
use super::{invalid, status};
use crate::audit::{Action, Entry};
use crate::config::ClientRole;
use crate::publish::Change;
use crate::records::lifecycle::{self, Status as RecordStatus};
use crate::records::model::{Content, ContentRef, NodeId};
use crate::records::stats::{CorrectionReason, Period, StatisticalReport, TableKind};
use crate::wire;
use crate::wire::pb::v1 as pb;

/// Records read from the log per step of a scan.
const SCAN_STEP: usize = 1024;

/// A report as held here: the current version of its series.
pub(crate) struct HeldReport {
    pub origin: NodeId,
    pub series_id: String,
    pub record_id: String,
    pub seq: u64,
    pub version: u32,
    pub report: StatisticalReport,
}

impl AgencyService {
    /// The period and tables a request names.
    fn statistics_request(
        period: &str,
        tables: &[i32],
    ) -> Result<(Period, Vec<TableKind>), Status> {
        if period.is_empty() {
            return Err(invalid("period", "is required, e.g. 2026 or 2026-Q1"));
        }
        let period = Period::parse(period).map_err(|e| invalid("period", e))?;
        let mut kinds = Vec::new();
        for (i, t) in tables.iter().enumerate() {
            let kind = TableKind::from_wire(*t)
                .ok_or_else(|| invalid(&format!("tables[{i}]"), format!("unknown table {t}")))?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        if kinds.is_empty() {
            kinds = TableKind::ALL.to_vec();
        }
        Ok((period, kinds))
    }

    /// One statistics call of this client's budget, or a refusal saying
    /// when to retry.
    fn statistics_budget(&self, client: &str) -> Result<(), Status> {
        self.statistics_calls()
            .take(&client.to_owned(), crate::limits::STATISTICS_PER_MINUTE)
            .map_err(|wait| {
                Status::resource_exhausted(format!(
                    "rate limit: at most {} statistics calls a minute per client (each reads the local cases or the record log); retry in {} s",
                    crate::limits::STATISTICS_PER_MINUTE,
                    wait.as_secs() + 1
                ))
            })
    }

    /// This node's protected tables for `period`, each protected together
    /// with what its published series already suppressed.
    fn protected_tables(
        &self,
        period: Period,
        kinds: &[TableKind],
    ) -> Result<Vec<(StatisticalReport, Option<HeldReport>)>, Status> {
        let node = self.node();
        let own = node.id.clone();
        let country = node
            .trust
            .roster()
            .member(&own)
            .map(|m| m.country.clone())
            .unwrap_or_default();
        let policy = node.trust.policy();
        let config = &policy.statistics;
        let facts: Vec<_> = node
            .cases
            .local_cases()
            .map_err(status)?
            .iter()
            .map(|c| c.facts())
            .collect();
        let held = self.held_reports(period, kinds, Some(&own))?;
        let now = node.clock.now_ms();
        let mut out = Vec::new();
        for &kind in kinds {
            let counts = crate::records::stats::count(kind, period, &country, &facts);
            let previous = held.iter().find(|h| h.report.kind() == kind);
            let keep = previous
                .map(|h| crate::records::stats::suppressed_keys(&h.report.table))
                .unwrap_or_default();
            let table = crate::records::stats::protect(&counts, config.method, &keep)
                .map_err(|e| Status::failed_precondition(format!("{kind}: {e}")))?;
            let population = (kind == TableKind::Victims)
                .then(|| config.population_for(period.year()).cloned())
                .flatten();
            let validity = i64::try_from(config.validity.as_millis()).unwrap_or(i64::MAX);
            let report = StatisticalReport {
                table,
                population,
                correction: None,
                expires_at_ms: now.saturating_add(validity),
            };
            out.push((report, held.iter().position(|h| h.report.kind() == kind)));
        }
        let mut held: Vec<Option<HeldReport>> = held.into_iter().map(Some).collect();
        Ok(out
            .into_iter()
            .map(|(r, i)| (r, i.and_then(|i| held[i].take())))
            .collect())
    }

    /// The current reports held here for `period` and `kinds`, of one
    /// origin or all: per origin and table the series published last, if
    /// it is neither withdrawn nor expired.
    pub(crate) fn held_reports(
        &self,
        period: Period,
        kinds: &[TableKind],
        origin: Option<&NodeId>,
    ) -> Result<Vec<HeldReport>, Status> {
        let node = self.node();
        let store = &node.store;
        let now = node.clock.now_ms();
        let mut latest: BTreeMap<(NodeId, TableKind), HeldReport> = BTreeMap::new();
        let mut after = 0;
        loop {
            let (stored, last) = store
                .records()
                .list(after, SCAN_STEP, origin)
                .map_err(status)?;
            for r in &stored {
                let Some(envelope) = r.content.envelope() else {
                    continue;
                };
                let Ok((_, body)) = wire::open_stored(envelope) else {
                    continue;
                };
                let Some(ContentRef::StatisticalReport(report)) = body.kind.content() else {
                    continue;
                };
                if report.period() != period || !kinds.contains(&report.kind()) {
                    continue;
                }
                let state = store.series().decoded(body.series_id()).map_err(status)?;
                let st = lifecycle::status(
                    state.as_ref(),
                    body.version(),
                    Some(report.expires_at_ms),
                    false,
                    now,
                );
                if st != RecordStatus::Active {
                    continue;
                }
                let key = (r.origin.clone(), report.kind());
                if latest.get(&key).is_some_and(|h| h.seq > r.seq) {
                    continue;
                }
                latest.insert(
                    key,
                    HeldReport {
                        origin: r.origin.clone(),
                        series_id: body.series_id().to_owned(),
                        record_id: body.record_id.clone(),
                        seq: r.seq,
                        version: body.version(),
                        report: report.clone(),
                    },
                );
            }
            if last == after {
                break;
            }
            after = last;
        }
        Ok(latest.into_values().collect())
    }

    pub(super) async fn compute_statistics_impl(
        &self,
        r: Request<pb::StatisticsRequest>,
    ) -> Result<Response<pb::StatisticsResponse>, Status> {
        let client = self.authorize(&r, ClientRole::Reader)?;
        self.statistics_budget(&client)?;
        let req = r.into_inner();
        let (period, kinds) = Self::statistics_request(&req.period, &req.tables)?;
        let tables = self.protected_tables(period, &kinds)?;
        let own = self.node().id.clone();
        Ok(Response::new(pb::StatisticsResponse {
            country: self.country_of(&own),
            member: own.to_string(),
            reports: tables.iter().map(|(r, _)| wire::report_to_pb(r)).collect(),
        }))
    }

    pub(super) async fn publish_statistics_impl(
        &self,
        r: Request<pb::PublishStatisticsRequest>,
    ) -> Result<Response<pb::PublishStatisticsResponse>, Status> {
        let actor = self.authorize(&r, ClientRole::Publisher)?;
        self.statistics_budget(&actor)?;
        let req = r.into_inner();
        let dry_run = req.validate_only;
        let answer = async {
            let (period, kinds) = Self::statistics_request(&req.period, &req.tables)?;
            let correction = match req.correction {
                0 => None,
                v => Some(
                    CorrectionReason::from_wire(v)
                        .ok_or_else(|| invalid("correction", format!("unknown value {v}")))?,
                ),
            };
            let tables = self.protected_tables(period, &kinds)?;
            // Refuse before publishing any: a correction without a reason
            // is refused for all the tables named.
            let changed = |r: &StatisticalReport, h: &HeldReport| {
                h.report.table != r.table || h.report.population != r.population
            };
            if correction.is_none()
                && let Some(held) = tables
                    .iter()
                    .find_map(|(r, h)| h.as_ref().filter(|h| changed(r, h)))
            {
                return Err(Status::failed_precondition(format!(
                    "the {} table for {period} was published before (record {}, version {}) and has changed since; a new version corrects it: give the reason (--correction late_records|data_correction|reclassification|method_change)",
                    held.report.kind(),
                    held.record_id,
                    held.version
                )));
            }
            let mut reports = Vec::new();
            for (mut report, held) in tables {
                let kind = report.kind();
                let (change, outcome) = match held {
                    Some(h) if !changed(&report, &h) => {
                        reports.push(pb::PublishedReport {
                            table: kind.wire(),
                            record_id: String::new(),
                            version: h.version,
                            outcome: "unchanged".into(),
                        });
                        continue;
                    }
                    Some(h) => {
                        report.correction = correction;
                        (
                            Change::Update {
                                target: h.series_id,
                                content: Content::StatisticalReport(report),
                            },
                            "corrected",
                        )
                    }
                    None => (
                        Change::Publish {
                            content: Content::StatisticalReport(report),
                            recipients: Vec::new(),
                            key: None,
                        },
                        "published",
                    ),
                };
                let published = self.change(&actor, change, dry_run).await?.into_inner();
                reports.push(pb::PublishedReport {
                    table: kind.wire(),
                    version: published.version,
                    record_id: published.record_id,
                    outcome: outcome.into(),
                });
            }
            Ok(Response::new(pb::PublishStatisticsResponse { reports }))
        }
        .await;
        self.audited(&actor, dry_run, answer).await
    }

    pub(super) async fn regional_statistics_impl(
        &self,
        r: Request<pb::StatisticsRequest>,
    ) -> Result<Response<pb::RegionalStatisticsResponse>, Status> {
        let client = self.authorize(&r, ClientRole::Reader)?;
        self.statistics_budget(&client)?;
        let req = r.into_inner();
        let (period, kinds) = Self::statistics_request(&req.period, &req.tables)?;
        let held = self.held_reports(period, &kinds, None)?;
        // NOTE: audited before the answer leaves: the members whose
        // reports were read, the tables and the period.
        let entry = Entry::new(Action::StatisticsAssembled, &client)
            .counterparts(
                held.iter()
                    .map(|h| h.origin.to_string())
                    .collect::<Vec<_>>(),
            )
            .ids(held.iter().map(|h| h.record_id.clone()))
            .result(format!(
                "{period}: {} ({} reports)",
                kinds
                    .iter()
                    .map(|k| k.code())
                    .collect::<Vec<_>>()
                    .join(", "),
                held.len()
            ));
        self.node()
            .audit
            .record(vec![entry])
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RegionalStatisticsResponse {
            member: self.node().id.to_string(),
            reports: held
                .iter()
                .map(|h| pb::MemberStatisticalReport {
                    member: h.origin.to_string(),
                    country: self.country_of(&h.origin),
                    record_id: h.record_id.clone(),
                    version: h.version,
                    report: Some(wire::report_to_pb(&h.report)),
                })
                .collect(),
        }))
    }

    fn country_of(&self, id: &NodeId) -> String {
        self.node()
            .trust
            .roster()
            .member(id)
            .map(|m| m.country.clone())
            .unwrap_or_default()
    }
}
