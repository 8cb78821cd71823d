//! The running node's side of the audit log: writing entries that stand on
//! their own, making and sending checkpoints, witnessing peers'
//! checkpoints, gathering witnesses for a verifier, and pruning under the
//! retention period.

use std::sync::Arc;
use std::time::Duration;

use ring::digest::{SHA256, digest};
use rustls_pki_types::CertificateDer;

use super::checkpoint::{self, Checkpoint, KeyBook, RosterStamp, Stamped};
use super::recovery::RecoveryRefusal;
use super::refusals::{Caller, Tally, Verdict};
use super::{Action, Entry, hex};
use crate::clock::SharedClock;
use crate::config::AuditConfig;
use crate::records::crypto::SigningKey;
use crate::records::model::NodeId;
use crate::store::{Store, StoreError};
use crate::trust::reload::LiveTls;
use crate::wire::{PeerResult, Reach, SignedCheckpoint};

mod lost;
mod retention;
mod witnessing;

pub use retention::PruneError;

/// How long a peer has to witness a checkpoint or hand over witnesses.
pub(crate) const WITNESS_TIMEOUT: Duration = Duration::from_secs(5);
/// Most witnesses in one `Witnessed` answer: a page, well under the
/// message size limits whatever the history.
pub const WITNESS_PAGE: usize = 1000;
/// Entries removed per pruning step (one transaction, one anchor).
const PRUNE_STEP: usize = 10_000;
/// `meta` note holding the fingerprints of the last start.
const FINGERPRINTS_NOTE: &str = "fingerprints";
/// Most entries written on an empty store that a recovery carries over
/// (renumbered after the lost log); a node that ran that long on the
/// wrong store needs an operator, not a tool.
const MAX_CARRIED: u64 = 100_000;

/// Why a peer's checkpoint was refused.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error("checkpoint: {0}")]
    Invalid(#[from] checkpoint::CheckpointError),
    #[error(
        "checkpoint is of node {claimed}, but {caller} sent it; a node hands over only its own"
    )]
    NotOwn { claimed: NodeId, caller: NodeId },
    #[error(
        "checkpoint covers {size} entries, fewer than the {witnessed} already witnessed: the log of {node} shrank"
    )]
    Shrank {
        node: NodeId,
        size: u64,
        witnessed: u64,
    },
    #[error(
        "checkpoint of {size} entries has another head than the one already witnessed at that size: the log of {node} forked"
    )]
    Forked { node: NodeId, size: u64 },
    /// Made under a roster version this node knows to be superseded or
    /// conflicting: "superseded: …" or "conflicting: …".
    #[error(transparent)]
    Roster(#[from] checkpoint::RosterRefusal),
    #[error("recovery statement refused: {0}")]
    Recovery(#[from] RecoveryRefusal),
    #[error("{field}: at most {max} bytes (got {len})")]
    TooLong {
        field: &'static str,
        max: usize,
        len: usize,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Refuses what is longer than a real one can be, before it is opened or
/// quoted in a refusal that goes on record.
fn bounded(field: &'static str, len: usize, max: usize) -> Result<(), WitnessError> {
    if len > max {
        return Err(WitnessError::TooLong { field, max, len });
    }
    Ok(())
}

/// What resuming a lost audit log did ([`AuditKeeper::resume_lost_log`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resumed {
    /// Nothing to resume: the log was resumed before (a recovery run
    /// again), or it holds what the peers witnessed.
    Untouched { held: u64 },
    /// No peer witnessed any checkpoint of this node: the log starts at
    /// entry 1 with nothing to account for.
    Fresh,
    /// The log resumes after entry `after`.
    After {
        after: u64,
        /// The peers that had witnessed the checkpoint resumed from.
        witnessed_by: Vec<NodeId>,
        /// The peers that countersigned the statement.
        countersigned: Vec<NodeId>,
        /// The peers that did not, with why.
        refused: Vec<(NodeId, String)>,
    },
}

/// The audit keeper: the one writer of entries that stand on their own,
/// and the keeper of this node's checkpoints and of the ones it witnessed.
///
/// It needs the store, the signing key, the roster in use (the keys
/// checkpoints are checked with), a way to reach peers ([`Reach`]) to have
/// its checkpoints witnessed, and what it fingerprints at each start.
pub struct AuditKeeper {
    id: NodeId,
    clock: SharedClock,
    store: Arc<Store>,
    signing: Arc<SigningKey>,
    trust: Arc<LiveTls>,
    peers: Arc<dyn Reach>,
    /// Checkpoint interval and retention.
    pub(crate) config: AuditConfig,
    /// This node's TLS certificate, as presented at start.
    tls_leaf: Option<CertificateDer<'static>>,
    /// The agency CA, as trusted at start.
    agency_ca: Vec<CertificateDer<'static>>,
    /// Entries this node's peers witnessed beyond what its log holds, as
    /// the start check found ([`AuditKeeper::check_witnessed`]).
    lost: std::sync::atomic::AtomicU64,
    /// Peers' refusals, written one by one up to a budget, then counted.
    refusals: Tally,
}

impl std::fmt::Debug for AuditKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKeeper")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What the audit keeper is made of: see [`AuditKeeper`].
pub(crate) struct KeeperParts {
    pub id: NodeId,
    pub clock: SharedClock,
    pub store: Arc<Store>,
    pub signing: Arc<SigningKey>,
    pub trust: Arc<LiveTls>,
    pub peers: Arc<dyn Reach>,
    pub config: AuditConfig,
    pub tls_leaf: Option<CertificateDer<'static>>,
    pub agency_ca: Vec<CertificateDer<'static>>,
}

impl AuditKeeper {
    pub(crate) fn new(p: KeeperParts) -> Self {
        Self {
            id: p.id,
            clock: p.clock,
            store: p.store,
            signing: p.signing,
            trust: p.trust,
            peers: p.peers,
            config: p.config,
            tls_leaf: p.tls_leaf,
            agency_ca: p.agency_ca,
            lost: std::sync::atomic::AtomicU64::new(0),
            refusals: Tally::default(),
        }
    }

    /// Compares the log with what the peers witnessed of it: a checkpoint
    /// this node signed, countersigned by a peer, of a larger log than the
    /// store holds proves that entries were lost (a damaged store that
    /// rolled back, an old backup). That is an ERROR, and the figure
    /// (`enlace_audit_lost_entries`) stays until the next start. A peer
    /// cannot fake it: the checkpoint carries this node's own signature.
    pub(crate) async fn check_witnessed(&self) -> u64 {
        let held = self.store.watermark().audit;
        let keys = self.key_book();
        let mut beyond: Option<(NodeId, u64)> = None;
        for (peer, answer) in self.gather_witnesses_between(held, 0).await {
            let Ok(witnesses) = answer else { continue };
            for w in &witnesses {
                let Ok(seen) = checkpoint::open_witness(w, &keys) else {
                    continue;
                };
                if seen.checkpoint.node == self.id
                    && seen.checkpoint.size > held
                    && beyond
                        .as_ref()
                        .is_none_or(|(_, s)| seen.checkpoint.size > *s)
                {
                    beyond = Some((peer.clone(), seen.checkpoint.size));
                }
            }
        }
        let lost = match beyond {
            Some((peer, witnessed)) => {
                tracing::error!(
                    peer = %peer, witnessed, held,
                    "the audit log holds fewer entries than a peer witnessed: entries were lost \
                     (a damaged store that rolled back, or an old backup); restore the data \
                     directory from a newer backup, or keep the peers' witnesses as the record \
                     (runbook sections 6 and 8)"
                );
                witnessed - held
            }
            None => 0,
        };
        self.lost.store(lost, std::sync::atomic::Ordering::Relaxed);
        lost
    }

    /// Entries the peers witnessed beyond this log, as the start check
    /// found (0: none).
    pub fn lost_entries(&self) -> u64 {
        self.lost.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Writes entries that record no other store change, durably, before
    /// the action they describe takes effect.
    pub async fn record(&self, entries: Vec<Entry>) -> Result<u64, StoreError> {
        for e in &entries {
            e.log(&self.id);
        }
        self.store
            .audit()
            .append(entries.iter().map(Entry::encode).collect())
            .await
    }

    /// Records the refusal of a peer's `call`, within the peer's budget of
    /// refusals written one by one (see `audit::refusals`); beyond it the
    /// refusal is counted for [`AuditKeeper::summarise_refusals`].
    pub(crate) async fn record_peer_refusal(
        &self,
        peer: &NodeId,
        call: &'static str,
        entry: Entry,
    ) -> Result<(), StoreError> {
        if self.refusal_gets_an_entry(&Caller::Peer(peer.clone()), call) {
            self.record(vec![entry]).await?;
        }
        Ok(())
    }

    /// Whether a refusal of `caller`'s `call` is written one by one (within
    /// its budget) or only counted for the next summary: decided before
    /// any work is done for it.
    pub(crate) fn refusal_gets_an_entry(&self, caller: &Caller, call: &'static str) -> bool {
        self.refusals.refusal(caller, call, self.clock.now_ms()) == Verdict::Record
    }

    /// Writes one `requests_refused` entry per caller for the refusals
    /// counted beyond its budget since the last summary.
    pub(crate) async fn summarise_refusals(&self) -> Result<(), StoreError> {
        let entries: Vec<Entry> = self
            .refusals
            .take()
            .into_iter()
            .map(|s| {
                let calls: Vec<String> = s
                    .calls
                    .iter()
                    .map(|(call, n)| format!("{call}: {n}"))
                    .collect();
                let entry = Entry::new(Action::RequestsRefused, s.caller.name());
                let entry = match &s.caller {
                    Caller::Peer(peer) => entry.counterpart(peer),
                    Caller::Client(_) => entry,
                };
                entry.result(format!(
                    "{} further refusals since {}, beyond the {} a minute written one by one ({})",
                    s.count,
                    super::rfc3339(s.since_ms),
                    crate::limits::REFUSALS_AUDITED_PER_MINUTE,
                    calls.join(", ")
                ))
            })
            .collect();
        if !entries.is_empty() {
            self.record(entries).await?;
        }
        Ok(())
    }

    /// [`AuditKeeper::record`], also setting a note in the same durable
    /// step (read back with `Store::audit().note`).
    pub(crate) async fn record_noting(
        &self,
        entries: Vec<Entry>,
        note: (&str, &[u8]),
    ) -> Result<u64, StoreError> {
        for e in &entries {
            e.log(&self.id);
        }
        self.store
            .audit()
            .append_noting(entries.iter().map(Entry::encode).collect(), Some(note))
            .await
    }

    /// Records that an agency client's request was refused, and why,
    /// within the client's refusal budget (counted beyond it).
    pub(crate) async fn record_refusal(
        &self,
        actor: &str,
        call: &'static str,
        reason: &str,
    ) -> Result<(), StoreError> {
        if self.refusal_gets_an_entry(&Caller::Client(actor.to_owned()), call) {
            self.record(vec![
                Entry::new(Action::RequestRejected, actor).result(reason),
            ])
            .await?;
        }
        Ok(())
    }

    /// Fingerprints of what this node trusts and presents: its TLS
    /// certificate, its signing key, the agency CA and the roster version
    /// in force. A change between two starts is audited.
    pub(crate) fn fingerprints(&self) -> Vec<String> {
        let sha = |b: &[u8]| hex(&digest(&SHA256, b).as_ref()[..16]);
        let mut out = Vec::new();
        if let Some(leaf) = &self.tls_leaf {
            out.push(format!("tls_certificate:{}", sha(leaf.as_ref())));
        }
        out.push(format!(
            "signing_key:{}:{}",
            self.signing.key_id(),
            sha(self.signing.public_key())
        ));
        let mut ca = Vec::new();
        for c in &self.agency_ca {
            ca.extend_from_slice(c.as_ref());
        }
        out.push(format!("agency_ca:{}", sha(&ca)));
        // The roster version in force and its hash: a version adopted
        // (and persisted) just before a crash, whose own audit entry the
        // crash lost, is on record at the next start this way.
        let roster = self.trust.roster();
        out.push(format!(
            "roster:{}:{}",
            roster.position.version,
            hex(&roster.position.hash[..16])
        ));
        out
    }

    /// Records the start, and what changed in certificates, keys and
    /// roster since the previous start.
    pub(crate) async fn record_start(&self) -> Result<(), StoreError> {
        let now = self.fingerprints();
        let before: Vec<String> = self
            .store
            .audit()
            .note(FINGERPRINTS_NOTE)?
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let mut entries = Vec::new();
        if !before.is_empty() && before != now {
            let changed: Vec<String> = now
                .iter()
                .filter(|f| !before.contains(f))
                .cloned()
                .collect();
            entries.push(
                Entry::new(Action::ConfigChanged, self.id.as_str())
                    .ids(changed)
                    .result("changed since the previous start"),
            );
        }
        entries.push(
            Entry::new(Action::NodeStarted, self.id.as_str())
                .ids(now.clone())
                .result(concat!("enlace ", env!("CARGO_PKG_VERSION"))),
        );
        for e in &entries {
            e.log(&self.id);
        }
        let note = serde_json::to_vec(&now).unwrap_or_default();
        self.store
            .audit()
            .append_noting(
                entries.iter().map(Entry::encode).collect(),
                Some((FINGERPRINTS_NOTE, &note)),
            )
            .await?;
        Ok(())
    }

    /// The signing keys this node checks checkpoints with: those of every
    /// version of the chain in force, so that a checkpoint signed before a
    /// key rotation still verifies.
    pub fn key_book(&self) -> KeyBook {
        let chain = self.trust.chain();
        if chain.is_empty() {
            return KeyBook::from_roster(&self.trust.roster());
        }
        KeyBook::from_chain(chain.iter().map(|s| s.version.roster.as_ref()))
    }

    /// The roster version in force here, as checkpoints carry it.
    pub(crate) fn roster_stamp(&self) -> RosterStamp {
        RosterStamp::of(&self.trust.roster())
    }

    /// A signed checkpoint of the durable log as it is now, under the
    /// roster version in force (the last one again if nothing was added
    /// and the roster is the same since); `None` for an empty log.
    pub async fn checkpoint_now(&self) -> Result<Option<SignedCheckpoint>, StoreError> {
        let size = self.store.watermark().audit;
        if size == 0 {
            return Ok(None);
        }
        let roster = self.roster_stamp();
        if let Some((latest, bytes)) = self.store.checkpoints().latest(&self.id)?
            && latest == size
        {
            // NOTE: made again (same size, same head) when the roster
            // changed since: witnesses on the new version refuse one made
            // under the old, and an idle log would never get past them.
            let held = SignedCheckpoint::decode(bytes.as_slice()).ok();
            let held_roster = held
                .as_ref()
                .and_then(|s| Stamped::decode(&s.body).ok())
                .and_then(|s| s.roster);
            if held_roster == Some(roster) {
                return Ok(held);
            }
        }
        let head = match self.store.audit().entry(size)? {
            Some(e) => e.hash,
            None => match self.store.audit().anchor()? {
                Some(a) if a.n == size => a.hash,
                _ => {
                    return Err(StoreError::Corrupt(format!(
                        "audit entry {size} is missing"
                    )));
                }
            },
        };
        let signed = Checkpoint {
            node: self.id.clone(),
            size,
            head,
            time_ms: self.clock.now_ms(),
        }
        .under(Some(roster))
        .sign(&self.signing);
        self.store
            .checkpoints()
            .put(&self.id, size, &signed.encode())
            .await?;
        Ok(Some(signed))
    }

    /// Makes a checkpoint and hands it to every peer to witness; a peer
    /// that does not is logged (it gets the next one). Returns each such
    /// peer with why.
    pub async fn send_checkpoint(&self) -> Vec<(NodeId, String)> {
        self.send_checkpoint_logged(tracing::Level::WARN).await
    }

    /// The last checkpoint, at shutdown: a peer that is itself stopping is
    /// expected not to witness it (it gets the next one), so no warning.
    pub(crate) async fn send_final_checkpoint(&self) {
        self.send_checkpoint_logged(tracing::Level::DEBUG).await;
    }

    async fn send_checkpoint_logged(&self, level: tracing::Level) -> Vec<(NodeId, String)> {
        let signed = match self.checkpoint_now().await {
            Ok(Some(s)) => s,
            Ok(None) => return Vec::new(),
            Err(e) => {
                tracing::error!(error = %e, "cannot make an audit checkpoint");
                return Vec::new();
            }
        };
        let keys = self.key_book();
        let peers: Vec<NodeId> = self
            .trust
            .roster()
            .members()
            .filter(|m| m.id != self.id && self.peers.reachable(&m.id))
            .map(|m| m.id.clone())
            .collect();
        let asks = peers.into_iter().map(|peer| {
            let signed = signed.clone();
            let keys = &keys;
            async move {
                let outcome = async {
                    let mut client = self.peers.client(&peer).map_err(PeerResult::reason)?;
                    let reply = tokio::time::timeout(WITNESS_TIMEOUT, client.witness(&signed))
                        .await
                        .map_err(|_| "timed out".to_string())?
                        .map_err(|s| s.message().to_string())?;
                    // An answer whose countersignature does not verify
                    // vouches for nothing: report it as not witnessed.
                    let witness = reply.ok_or_else(|| "answer carries no witness".to_string())?;
                    if !witness
                        .checkpoint
                        .as_ref()
                        .is_some_and(|c| checkpoint::same_state(&c.body, &signed.body))
                    {
                        return Err("the countersignature covers another checkpoint".to_string());
                    }
                    checkpoint::open_witness(&witness, keys)
                        .map(|_| ())
                        .map_err(|e| format!("countersignature does not verify: {e}"))
                }
                .await;
                match outcome {
                    Err(error) => {
                        if level == tracing::Level::WARN {
                            tracing::warn!(peer = %peer, %error, "peer did not witness the audit checkpoint");
                        } else {
                            tracing::debug!(peer = %peer, %error, "peer did not witness the final audit checkpoint");
                        }
                        Some((peer, error))
                    }
                    Ok(()) => None,
                }
            }
        });
        futures_util::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}

#[cfg(all(test, feature = "testing"))]
#[path = "keeper_tests.rs"]
mod tests;
