//! The roster chain: how the federation changes its own membership and
//! keys without a centre.
//!
//! Why: there is no central server to sign the federation's configuration,
//! and a roster edited by hand on every node drifts, and can be doctored on
//! one without the others noticing. So the roster is a chain of versions,
//! each the exact bytes of an encoded `RosterVersion`
//! (`proto/enlace/v1/roster.proto`), and a version is in force only when a
//! quorum of members approved it (docs/roster.md, ADR 0015).
//!
//! The rules, after The Update Framework's root rotation:
//! - Version N+1 names version N by the SHA-256 of N's bytes (`previous`)
//!   and carries the number N+1 exactly: a skip, a rollback or a wrong
//!   `previous` is refused, so a node walks N+1, N+2, ... one by one.
//! - N+1 needs approvals from a threshold of *distinct members* of N (the
//!   members in power agree) and a threshold of distinct members of N+1
//!   (the new members can act). A member is counted once however many of
//!   its keys signed, and one key signing twice counts once (tough
//!   CVE-2020-15093, python-tuf GHSA-r7vq-6425-j94w).
//! - The threshold is a strict majority of voting members, so two
//!   different versions N+1 can both reach it only if some member approved
//!   both: that pair is kept as evidence of double signing and adoption
//!   halts ([`Refusal::Conflict`]).
//! - A version expires. The version a node ends on must be unexpired when
//!   it is adopted; versions walked through on the way may have expired
//!   since (a node back from a long absence still walks the chain).
//!   Approvals are detached signatures over the hash, by governance keys
//!   that never sign records, so they can be made offline and carried
//!   anywhere.
//! - A member's OPRF epochs only move forward: an epoch keeps its key, a
//!   new one is greater than every one listed before, and a member's
//!   latest epoch stays listed until a greater one replaces it
//!   (`oprf_epochs`), because nodes drop
//!   what they hold of a retired epoch for good.
//!
//! Everything here is pure: no I/O, no clock (the caller passes the time).

use std::collections::BTreeSet;
use std::sync::Arc;

use prost::Message;

use crate::records::crypto::{self, SigningKey};
use crate::records::model::NodeId;
use crate::trust::roster::{Roster, RosterError, sha256};
use crate::wire::pb::v1 as pb;

pub mod dir;
mod oprf_epochs;
#[cfg(test)]
mod tests;
mod walk;

pub use oprf_epochs::{OprfEpochRule, check as check_oprf_epochs};
pub use walk::{Walk, verify_chain};

/// Prefix of what a governance key signs when it approves a version.
pub const APPROVAL_SIGNATURE_CONTEXT: &[u8] = b"enlace/roster-approval/v1\0";

/// Lower-case hex of a hash, as logs, the CLI and anchors spell it.
pub fn hex(hash: &[u8; 32]) -> String {
    ::hex::encode(hash)
}

pub use crate::records::crypto::parse_sha256_hex as parse_hash;

pub use crate::records::roster::Approval;

impl Approval {
    /// Approves the version whose bytes hash to `hash` with a governance key.
    pub fn sign(key: &SigningKey, hash: &[u8; 32]) -> Self {
        let mut governance_key = [0u8; crypto::PUBLIC_KEY_LEN];
        governance_key.copy_from_slice(key.public_key());
        Self {
            roster_sha256: *hash,
            governance_key,
            signature: key.sign_in(APPROVAL_SIGNATURE_CONTEXT, hash),
        }
    }

    /// Whether the signature is the governance key's over the hash.
    pub fn signature_verifies(&self) -> bool {
        crypto::verify_in(
            APPROVAL_SIGNATURE_CONTEXT,
            &self.governance_key,
            "governance",
            &self.roster_sha256,
            &self.signature,
        )
        .is_ok()
    }

    /// The short name of the key in logs: the first 8 bytes of its SHA-256.
    pub fn key_name(&self) -> String {
        key_name(&self.governance_key)
    }

    pub fn from_pb(a: &pb::RosterApproval) -> Result<Self, String> {
        Ok(Self {
            roster_sha256: a
                .roster_sha256
                .as_slice()
                .try_into()
                .map_err(|_| "roster_sha256: must be 32 bytes".to_owned())?,
            governance_key: a
                .governance_key
                .as_slice()
                .try_into()
                .map_err(|_| "governance_key: must be 32 bytes".to_owned())?,
            signature: a.signature.clone(),
        })
    }

    pub fn to_pb(&self) -> pb::RosterApproval {
        pb::RosterApproval {
            roster_sha256: self.roster_sha256.to_vec(),
            governance_key: self.governance_key.to_vec(),
            signature: self.signature.clone(),
        }
    }
}

/// The short name of a governance key: hex of the first 8 bytes of its
/// SHA-256.
pub fn key_name(key: &[u8]) -> String {
    ::hex::encode(&sha256(key)[..8])
}

/// A version whose bytes describe a valid roster (approvals not checked).
#[derive(Debug, Clone)]
pub struct Version {
    pub bytes: Arc<Vec<u8>>,
    pub roster: Arc<Roster>,
}

impl Version {
    pub fn parse(bytes: Vec<u8>) -> Result<Self, RosterError> {
        let roster = Roster::from_version(&bytes)?;
        Ok(Self {
            bytes: Arc::new(bytes),
            roster: Arc::new(roster),
        })
    }

    pub fn number(&self) -> u64 {
        self.roster.position.version
    }

    pub fn hash(&self) -> [u8; 32] {
        self.roster.position.hash
    }
}

/// A version with the approvals offered for it.
#[derive(Debug, Clone)]
pub struct Signed {
    pub version: Version,
    pub approvals: Vec<Approval>,
}

impl Signed {
    /// Decodes a `SignedRoster`.
    pub fn decode(bytes: &[u8]) -> Result<Self, Refusal> {
        let s = pb::SignedRoster::decode(bytes)
            .map_err(|e| Refusal::Invalid(vec![format!("is not an encoded SignedRoster: {e}")]))?;
        let version = Version::parse(s.version).map_err(|e| Refusal::Invalid(e.problems))?;
        let approvals = s
            .approvals
            .iter()
            .enumerate()
            .map(|(i, a)| Approval::from_pb(a).map_err(|e| format!("approvals[{i}].{e}")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Refusal::Invalid(vec![e]))?;
        Ok(Self { version, approvals })
    }

    pub fn encode(&self) -> Vec<u8> {
        pb::SignedRoster {
            version: self.version.bytes.as_ref().clone(),
            approvals: self.approvals.iter().map(Approval::to_pb).collect(),
        }
        .encode_to_vec()
    }
}

/// Why a version (or an approval) is not adopted. Each has a short
/// `reason()` for the metric `enlace_roster_refused_total{reason}` and the
/// audit log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("version {got} skips ahead: the version in force is {current}, so only {} may follow", current + 1)]
    Skip { current: u64, got: u64 },
    #[error(
        "version {got} is not newer than the version in force ({current}): a rollback or replay"
    )]
    Rollback { current: u64, got: u64 },
    #[error("version {version} names previous {got}, but version {} in force has hash {expected}", version - 1)]
    WrongPrevious {
        version: u64,
        expected: String,
        got: String,
    },
    #[error("version {version} expired at {expires_at_ms} ms (now {now_ms} ms)")]
    Expired {
        version: u64,
        expires_at_ms: i64,
        now_ms: i64,
    },
    #[error("governance key {key} is not a governance key of version {current} or {next}")]
    UnknownKey {
        key: String,
        current: u64,
        next: u64,
    },
    #[error("the approval by governance key {key} does not verify")]
    BadSignature { key: String },
    #[error("member {member} has already approved version {version}; it counts once")]
    DuplicateSigner { member: NodeId, version: u64 },
    #[error(
        "version {version} has approvals from {have} distinct members of version {of}, which needs {need} ({members})"
    )]
    BelowThreshold {
        version: u64,
        of: u64,
        have: usize,
        need: u32,
        members: String,
    },
    #[error("the approval is for version hash {got}, not {expected}")]
    WrongVersion { expected: String, got: String },
    #[error(
        "the federation cannot change: version {version} names {got:?}, the chain is {expected:?}"
    )]
    FederationChanged {
        version: u64,
        expected: String,
        got: String,
    },
    #[error(
        "version {version} exists twice with valid approvals: {first} and {second}; adoption halts, both are kept as evidence of double signing"
    )]
    Conflict {
        version: u64,
        first: String,
        second: String,
    },
    #[error("version {version}, member {member}'s oprf_keys, epoch {epoch}: {rule}")]
    OprfEpoch {
        version: u64,
        member: NodeId,
        /// The epoch the rule concerns (for [`OprfEpochRule::KeepsLatest`],
        /// the member's greatest epoch in the previous version).
        epoch: u32,
        rule: OprfEpochRule,
    },
    #[error("no version in the chain hashes to the anchor {anchor}")]
    AnchorMismatch { anchor: String },
    #[error("the chain is empty: it needs version 1 or the anchored version")]
    Empty,
    #[error("the version is invalid: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

impl Refusal {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Skip { .. } => "version_skip",
            Self::Rollback { .. } => "rollback",
            Self::WrongPrevious { .. } => "wrong_previous",
            Self::Expired { .. } => "expired",
            Self::UnknownKey { .. } => "unknown_key",
            Self::BadSignature { .. } => "bad_signature",
            Self::DuplicateSigner { .. } => "duplicate_signer",
            Self::BelowThreshold { .. } => "below_threshold",
            Self::WrongVersion { .. } => "wrong_version",
            Self::FederationChanged { .. } => "federation_changed",
            Self::Conflict { .. } => "conflict",
            Self::OprfEpoch { .. } => "oprf_epoch",
            Self::AnchorMismatch { .. } => "anchor_mismatch",
            Self::Empty => "empty",
            Self::Invalid(_) => "invalid",
        }
    }

    /// Every reason, for metrics that start at zero.
    pub const REASONS: [&'static str; 15] = [
        "version_skip",
        "rollback",
        "wrong_previous",
        "expired",
        "unknown_key",
        "bad_signature",
        "duplicate_signer",
        "below_threshold",
        "wrong_version",
        "federation_changed",
        "conflict",
        "oprf_epoch",
        "anchor_mismatch",
        "empty",
        "invalid",
    ];
}

/// Whether `next` may follow `current`, before its approvals are counted:
/// the number, the link, the federation, the members' OPRF epochs and
/// (with `now_ms`) the expiry.
pub fn check_link(current: &Roster, next: &Roster, now_ms: Option<i64>) -> Result<(), Refusal> {
    let (c, n) = (&current.position, &next.position);
    if n.version <= c.version {
        return Err(Refusal::Rollback {
            current: c.version,
            got: n.version,
        });
    }
    if n.version != c.version + 1 {
        return Err(Refusal::Skip {
            current: c.version,
            got: n.version,
        });
    }
    if n.previous != c.hash {
        return Err(Refusal::WrongPrevious {
            version: n.version,
            expected: hex(&c.hash),
            got: hex(&n.previous),
        });
    }
    if next.federation != current.federation {
        return Err(Refusal::FederationChanged {
            version: n.version,
            expected: current.federation.clone(),
            got: next.federation.clone(),
        });
    }
    oprf_epochs::check(current, next)?;
    if let Some(now_ms) = now_ms {
        check_expiry(next, now_ms)?;
    }
    Ok(())
}

/// Whether a version is still in its life at `now_ms`.
pub fn check_expiry(roster: &Roster, now_ms: i64) -> Result<(), Refusal> {
    if roster.position.expires_at_ms <= now_ms {
        return Err(Refusal::Expired {
            version: roster.position.version,
            expires_at_ms: roster.position.expires_at_ms,
            now_ms,
        });
    }
    Ok(())
}

/// The approvals of one version, counted.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Distinct members of the version in force that approved.
    pub current: BTreeSet<NodeId>,
    /// Distinct members of the proposed version that approved.
    pub next: BTreeSet<NodeId>,
    /// Approvals not counted, and why (unknown key, bad signature,
    /// duplicate, another version's hash).
    pub ignored: Vec<Refusal>,
}

impl Tally {
    /// Counts `approvals` of `next` against the members of `current` (the
    /// version in force; `None` for version 1, which needs only its own).
    pub fn count(current: Option<&Roster>, next: &Roster, approvals: &[Approval]) -> Self {
        let mut tally = Self::default();
        let mut seen_keys = BTreeSet::new();
        let hash = next.position.hash;
        for a in approvals {
            if a.roster_sha256 != hash {
                tally.ignored.push(Refusal::WrongVersion {
                    expected: hex(&hash),
                    got: hex(&a.roster_sha256),
                });
                continue;
            }
            let in_current = current.and_then(|c| c.governance_key_owner(&a.governance_key));
            let in_next = next.governance_key_owner(&a.governance_key);
            if in_current.is_none() && in_next.is_none() {
                tally.ignored.push(Refusal::UnknownKey {
                    key: a.key_name(),
                    current: current.map_or(0, |c| c.position.version),
                    next: next.position.version,
                });
                continue;
            }
            if !a.signature_verifies() {
                tally
                    .ignored
                    .push(Refusal::BadSignature { key: a.key_name() });
                continue;
            }
            if !seen_keys.insert(a.governance_key) {
                let member = in_next.or(in_current).map(|m| m.id.clone());
                if let Some(member) = member {
                    tally.ignored.push(Refusal::DuplicateSigner {
                        member,
                        version: next.position.version,
                    });
                }
                continue;
            }
            let mut duplicate = true;
            if let Some(m) = in_current {
                duplicate &= !tally.current.insert(m.id.clone());
            }
            if let Some(m) = in_next {
                duplicate &= !tally.next.insert(m.id.clone());
            }
            if duplicate && let Some(m) = in_next.or(in_current) {
                tally.ignored.push(Refusal::DuplicateSigner {
                    member: m.id.clone(),
                    version: next.position.version,
                });
            }
        }
        tally
    }

    /// Whether both thresholds are met; if not, the first one missing.
    pub fn decide(&self, current: Option<&Roster>, next: &Roster) -> Result<(), Refusal> {
        let version = next.position.version;
        let short = |of: &Roster, have: &BTreeSet<NodeId>| {
            let need = of.position.threshold;
            (have.len() < need as usize).then(|| Refusal::BelowThreshold {
                version,
                of: of.position.version,
                have: have.len(),
                need,
                members: if have.is_empty() {
                    "none".into()
                } else {
                    have.iter()
                        .map(|m| m.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            })
        };
        if let Some(c) = current
            && let Some(r) = short(c, &self.current)
        {
            return Err(r);
        }
        match short(next, &self.next) {
            Some(r) => Err(r),
            None => Ok(()),
        }
    }
}

/// Verifies that `signed` may follow `current` and carries both
/// thresholds of approvals. `now_ms`: check the new version's expiry
/// (`None` while walking through versions that a later one supersedes).
pub fn verify_successor(
    current: &Roster,
    signed: &Signed,
    now_ms: Option<i64>,
) -> Result<Tally, Refusal> {
    let next = &signed.version.roster;
    check_link(current, next, now_ms)?;
    let tally = Tally::count(Some(current), next, &signed.approvals);
    tally.decide(Some(current), next)?;
    Ok(tally)
}

/// Verifies a version a node starts from: version 1 approved by its own
/// threshold, or any version whose hash is the anchor the operator was
/// given out of band (trusted because of the anchor, whatever it carries).
pub fn verify_start(
    signed: &Signed,
    anchor: Option<&[u8; 32]>,
    now_ms: Option<i64>,
) -> Result<(), Refusal> {
    let roster = &signed.version.roster;
    if let Some(anchor) = anchor {
        if roster.position.hash != *anchor {
            return Err(Refusal::AnchorMismatch {
                anchor: hex(anchor),
            });
        }
    } else {
        if roster.position.version != 1 {
            return Err(Refusal::Skip {
                current: 0,
                got: roster.position.version,
            });
        }
        let tally = Tally::count(None, roster, &signed.approvals);
        tally.decide(None, roster)?;
    }
    if let Some(now_ms) = now_ms {
        check_expiry(roster, now_ms)?;
    }
    Ok(())
}

/// Encodes a version as `SignedRoster` with the given approvals.
pub fn seal(version: &Version, approvals: Vec<Approval>) -> Signed {
    Signed {
        version: version.clone(),
        approvals,
    }
}
