//! Convergence checks: do two nodes hold the same records?
//!
//! Two members hold different subsets of an origin's log (each only what is
//! addressed to it), so a comparison is made over what both are entitled
//! to: node A asks peer B for B's digest of origin O's records addressed to
//! A, up to a sequence number both have resolved, and computes its own
//! digest of O's records addressed to B up to the same bound. If both hold
//! the same records, the digests are equal.
//!
//! The digest is SHA-256 over, for each record in seq order, the seq
//! (8 bytes, big endian) and SHA-256 of its SignedRecord bytes; a tombstone
//! keeps that hash, so expiry does not change a digest.

use ring::digest::{Context, SHA256};

use std::sync::Arc;

use super::peers::Dialer;
use crate::records::lifecycle::Tombstone;
use crate::records::model::{Distribution, NodeId};
use crate::store::{Content, Store, StoreError};
use crate::trust::roster::Roster;
use crate::wire::{self, Envelope};

/// Records read from the store per step.
const STEP: usize = 1024;

/// A digest of one origin's records up to a bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginDigest {
    pub origin: NodeId,
    pub up_to_seq: u64,
    pub count: u64,
    pub hash: Vec<u8>,
}

/// The highest seq of `origin` resolved in `store`: the durable head of
/// the node's own log, or the replication cursor of another origin.
pub fn resolved(store: &Store, origin: &NodeId) -> Result<u64, StoreError> {
    if origin == store.own() {
        Ok(store.watermark().own_seq)
    } else {
        store.records().cursor(origin)
    }
}

/// Digest of `origin`'s records held here that `member` is entitled to
/// (it is their origin, or their distribution names it), with seq up to
/// `min(up_to, resolved(origin))`.
pub fn digest(
    store: &Store,
    origin: &NodeId,
    up_to: u64,
    member: &NodeId,
) -> Result<OriginDigest, StoreError> {
    let bound = up_to.min(resolved(store, origin)?);
    let mut ctx = Context::new(&SHA256);
    let mut count = 0;
    let mut after = 0;
    loop {
        let records = store.records().of_origin(origin, after, bound, STEP)?;
        let Some(last) = records.last() else { break };
        after = last.seq;
        for r in &records {
            let (entitled, record_hash) = match &r.content {
                Content::Envelope(bytes) => {
                    let envelope =
                        Envelope::decode(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    let body = wire::decode_body(&envelope.body)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    (
                        origin == member || body.distribution.includes(member),
                        ring::digest::digest(&SHA256, &envelope.encode())
                            .as_ref()
                            .to_vec(),
                    )
                }
                Content::Tombstone(bytes) => {
                    let t = Tombstone::decode(bytes)
                        .ok_or_else(|| StoreError::Corrupt("tombstone does not decode".into()))?;
                    let d = Distribution::from_recipients("recipients", &t.recipients)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    let h = hex::decode(&t.digest)
                        .map_err(|_| StoreError::Corrupt("tombstone digest is not hex".into()))?;
                    (origin == member || d.includes(member), h)
                }
            };
            if entitled {
                ctx.update(&r.seq.to_be_bytes());
                ctx.update(&record_hash);
                count += 1;
            }
        }
    }
    Ok(OriginDigest {
        origin: origin.clone(),
        up_to_seq: bound,
        count,
        hash: ctx.finish().as_ref().to_vec(),
    })
}

/// How one origin's log compares between this node and a peer, or why it
/// could not be compared (`error` set, counts zero).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PeerComparison {
    pub peer: String,
    pub origin: String,
    pub error: String,
    pub up_to_seq: u64,
    pub local_count: u64,
    pub peer_count: u64,
    pub equal: bool,
}

/// How long a peer may take to answer a digest request.
const PEER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Compares this node's digests with every peer's, origin by origin.
pub(crate) async fn compare_with_peers(
    store: Arc<Store>,
    roster: &Roster,
    dialer: &Dialer,
) -> Vec<PeerComparison> {
    let mut out = Vec::new();
    let origins: Vec<NodeId> = roster.members().map(|m| m.id.clone()).collect();
    for member in roster.members() {
        if member.id == *store.own() {
            continue;
        }
        let peer = member.id.clone();
        let fail = |error: String| PeerComparison {
            peer: peer.to_string(),
            error,
            ..Default::default()
        };
        if dialer.endpoint(&peer).is_none() {
            out.push(fail("no endpoint in the roster".into()));
            continue;
        }
        let mut bounds = Vec::new();
        for o in &origins {
            match resolved(&store, o) {
                Ok(up_to) => bounds.push((o.clone(), up_to)),
                Err(e) => out.push(fail(format!("local store: {e}"))),
            }
        }
        let answer = async {
            let channel = dialer.channel(&peer).map_err(wire::PeerResult::reason)?;
            let mut client = crate::wire::PeerClient::new(channel)
                .max_decoding_message_size(crate::exchange::peers::MAX_PEER_MESSAGE);
            client
                .digest(&bounds)
                .await
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
        };
        let remote = match tokio::time::timeout(PEER_TIMEOUT, answer).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                out.push(fail(e));
                continue;
            }
            Err(_) => {
                out.push(fail(format!("no answer within {PEER_TIMEOUT:?}")));
                continue;
            }
        };
        for d in remote {
            let Ok(origin) = NodeId::parse(&d.origin) else {
                continue;
            };
            let local = {
                let store = store.clone();
                let origin = origin.clone();
                let peer = peer.clone();
                tokio::task::spawn_blocking(move || digest(&store, &origin, d.up_to_seq, &peer))
                    .await
            };
            match local {
                Ok(Ok(l)) => out.push(PeerComparison {
                    peer: peer.to_string(),
                    origin: origin.to_string(),
                    error: String::new(),
                    up_to_seq: d.up_to_seq,
                    local_count: l.count,
                    peer_count: d.count,
                    equal: l.up_to_seq == d.up_to_seq && l.count == d.count && l.hash == d.hash,
                }),
                Ok(Err(e)) => out.push(fail(format!("local store: {e}"))),
                Err(e) => out.push(fail(format!("digest task failed: {e}"))),
            }
        }
    }
    out
}
