//! Local cases and hit/no-hit queries.
//!
//! A local case is the agency's own: its case number, offence, stage,
//! contact, the selectors (hashed identifiers) of the people and things in
//! it, and the statistics the UNODC data collection asks for. It never
//! leaves the node. Its selectors are indexed, so that when a peer asks
//! "do you hold any of these tokens?" the node answers per selector, hit or
//! no hit, and on a hit either names its case numbers and contact point or
//! says only "hit, contact us", as its policy (`[query] reveal`) says.
//!
//! Queries are bounded: selectors per query, and queries per peer per
//! minute (a token bucket). A refusal says why. Every query sent, answered
//! or refused goes to the audit path.

use serde::{Deserialize, Serialize};

use crate::records::model::{ContactPoint, Errors, ValidationErrors, check_contact, check_text};
use crate::records::selector::Token;
use crate::records::vocabulary::{
    AgeGroup, CaseStage, Exploitation, Offence, SelectorKind, Sex, parse_country,
};
use crate::store::StoreError;

mod index;
mod oblivious;
mod own;
mod retire;
#[cfg(all(test, feature = "testing"))]
mod tests;

pub(crate) use index::IndexParts;
pub use index::{Ask, CaseIndex};
pub use oblivious::{AnswerError, Confirmed, Evaluated};
pub use own::{Identifier, OprfKeys, OwnError, alert_source, case_source};

/// Victims of a case, for statistics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VictimStat {
    pub sex: Sex,
    pub age_group: AgeGroup,
    #[serde(default)]
    pub exploitation: Vec<Exploitation>,
    #[serde(default)]
    pub citizenship: String,
}

/// Offenders of a case, for statistics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffenderStat {
    pub sex: Sex,
    #[serde(default)]
    pub citizenship: String,
}

/// A selector as stored with a local case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredToken {
    pub kind: SelectorKind,
    pub epoch: u32,
    /// 64 hex digits.
    pub token: String,
}

impl StoredToken {
    pub(crate) fn from_token(t: &Token) -> Self {
        Self {
            kind: t.kind,
            epoch: t.epoch,
            token: t.hex(),
        }
    }

    pub(crate) fn to_token(&self) -> Option<Token> {
        let bytes: Vec<u8> = (0..self.token.len())
            .step_by(2)
            .map(|i| {
                self.token
                    .get(i..i + 2)
                    .and_then(|b| u8::from_str_radix(b, 16).ok())
            })
            .collect::<Option<_>>()?;
        Some(Token {
            kind: self.kind,
            epoch: self.epoch,
            token: bytes.try_into().ok()?,
        })
    }
}

/// An agency's own case (stored as JSON in `local_cases`; fields are only
/// ever added).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalCase {
    pub case_id: String,
    pub case_number: String,
    pub offence: Offence,
    pub stage: CaseStage,
    #[serde(default)]
    pub contact: Option<ContactPoint>,
    #[serde(default)]
    pub selectors: Vec<StoredToken>,
    #[serde(default)]
    pub victims: Vec<VictimStat>,
    #[serde(default)]
    pub offenders: Vec<OffenderStat>,
    #[serde(default)]
    pub closed: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// The highest stage the case reached; `closed` does not lower it.
    /// Absent in cases stored before statistics: then the current stage.
    #[serde(default)]
    pub highest_stage: Option<CaseStage>,
    /// When it reached that stage (ms since the epoch); 0 in cases stored
    /// before statistics: then the last update.
    #[serde(default)]
    pub stage_reached_at_ms: i64,
}

/// The selector index key of a token: kind, epoch, token bytes.
pub(crate) fn index_key(t: &Token) -> Vec<u8> {
    let mut k = Vec::with_capacity(37);
    k.push(t.kind.wire() as u8);
    k.extend_from_slice(&t.epoch.to_be_bytes());
    k.extend_from_slice(&t.token);
    k
}

impl LocalCase {
    /// The rules of a local case; every problem at once.
    pub fn check(&self) -> Result<(), ValidationErrors> {
        let mut errors = Errors::default();
        check_text(
            &mut errors,
            "case.case_number",
            &self.case_number,
            100,
            true,
        );
        if let Some(c) = &self.contact {
            check_contact(&mut errors, "case", c);
        }
        errors.check(self.selectors.len() <= 64, "case.selectors", "at most 64");
        errors.check(self.victims.len() <= 1000, "case.victims", "at most 1000");
        errors.check(
            self.offenders.len() <= 1000,
            "case.offenders",
            "at most 1000",
        );
        for (i, v) in self.victims.iter().enumerate() {
            if !v.citizenship.is_empty()
                && let Err(e) = parse_country(&v.citizenship)
            {
                errors.push(format!("case.victims[{i}].citizenship"), e);
            }
        }
        // 2000-01-01T00:00:00Z; a date "after the fact" is a date in the past.
        errors.check(
            self.stage_reached_at_ms == 0 || self.stage_reached_at_ms >= 946_684_800_000,
            "case.stage_reached_at_ms",
            "must be a date after 2000-01-01 (ms since the Unix epoch)",
        );
        for (i, o) in self.offenders.iter().enumerate() {
            if !o.citizenship.is_empty()
                && let Err(e) = parse_country(&o.citizenship)
            {
                errors.push(format!("case.offenders[{i}].citizenship"), e);
            }
        }
        errors.finish()
    }

    /// Sets the highest stage and when it was reached, given the stored
    /// case this one replaces (if any). `given` is the client's date for a
    /// case recorded after the fact (0: none).
    pub(crate) fn track_stage(&mut self, old: Option<&LocalCase>, now_ms: i64) {
        // A client that sends back the stored date (read, change, write)
        // gives nothing: the date then follows the stage.
        let given = match old {
            Some(o) if o.stage_reached_at_ms == self.stage_reached_at_ms => 0,
            _ => self.stage_reached_at_ms,
        };
        let before = old.map(LocalCase::reached);
        let current = (self.stage != CaseStage::Closed).then_some(self.stage);
        let (highest, at) = match (before, current) {
            (Some((h, at)), Some(s)) if s <= h => (h, at),
            (Some((h, at)), None) => (h, at),
            (_, Some(s)) => (s, now_ms),
            // Registered closed: it never got further than an investigation.
            (None, None) => (CaseStage::Investigation, now_ms),
        };
        self.highest_stage = Some(highest);
        self.stage_reached_at_ms = if given != 0 { given } else { at };
    }

    /// The highest stage and when it was reached, for a stored case.
    pub fn reached(&self) -> (CaseStage, i64) {
        let stage = self.highest_stage.unwrap_or(match self.stage {
            CaseStage::Closed => CaseStage::Investigation,
            s => s,
        });
        let at = if self.stage_reached_at_ms != 0 {
            self.stage_reached_at_ms
        } else {
            self.updated_at_ms
        };
        (stage, at)
    }

    /// What the statistics count of this case (`stats::count`): no case
    /// number, contact or selector.
    pub fn facts(&self) -> crate::records::stats::CaseFacts {
        let (highest_stage, stage_at_ms) = self.reached();
        crate::records::stats::CaseFacts {
            offence: self.offence,
            highest_stage,
            stage_at_ms,
            victims: self
                .victims
                .iter()
                .map(|v| crate::records::stats::VictimFacts {
                    sex: v.sex,
                    age_group: v.age_group,
                    exploitation: v.exploitation.clone(),
                    citizenship: v.citizenship.clone(),
                })
                .collect(),
            offenders: self
                .offenders
                .iter()
                .map(|o| crate::records::stats::OffenderFacts {
                    sex: o.sex,
                    citizenship: o.citizenship.clone(),
                })
                .collect(),
        }
    }

    pub fn tokens(&self) -> Vec<Token> {
        self.selectors
            .iter()
            .filter_map(StoredToken::to_token)
            .collect()
    }
}

/// Why a case operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CaseError {
    #[error("invalid request: {0}")]
    Invalid(#[from] ValidationErrors),
    #[error("no local case {0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the case's identifiers cannot enter the match filter: {0}")]
    Own(#[from] OwnError),
}

pub use crate::wire::PeerResult;
