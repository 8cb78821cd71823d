//! The federation client, speaking domain types.
//!
//! Replication, recovery, queries, witnessing and convergence checks all
//! call a peer's `Federation` service. They do it through [`PeerClient`],
//! which takes and returns the types of this crate (envelopes, tokens,
//! checkpoints), so that none of them names the generated code: what a
//! peer sent is converted here, once, at the edge, exactly as the services
//! convert what a caller sent.
//!
//! The client never trusts what it converts: an envelope is only bytes
//! until `trust::verify` has checked it, a witness only a claim until its
//! signatures are opened, and an answer's strings are reported as the
//! peer's words.

use tonic::Status;
use tonic::transport::Channel;

use super::pb::v1 as pb;
use super::{Envelope, contact_from_pb, selector_to_pb};
use crate::records::model::{ContactPoint, NodeId};
use crate::records::selector::Token;

/// What to ask a peer's `Pull` for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// Whose log: another member's, or the caller's own (the hand-back that
    /// recovery uses).
    pub origin: NodeId,
    /// Records above this seq.
    pub after_seq: u64,
    /// Keep the stream open and follow the log live.
    pub follow: bool,
    /// At most this many records per batch (0: the peer's default).
    pub max_batch: u32,
}

/// One batch of a `Pull` stream, as the peer sent it: unverified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullBatch {
    pub records: Vec<Envelope>,
    /// The last seq this batch accounts for, records or not.
    pub high_water: u64,
    /// How far the peer has seen the origin's log.
    pub head: u64,
}

impl From<pb::PullBatch> for PullBatch {
    fn from(b: pb::PullBatch) -> Self {
        Self {
            records: b.records.into_iter().map(Envelope::from_pb).collect(),
            high_water: b.high_water,
            head: b.head,
        }
    }
}

impl From<&PullBatch> for pb::PullBatch {
    fn from(b: &PullBatch) -> Self {
        Self {
            records: b.records.iter().map(Envelope::to_pb).collect(),
            high_water: b.high_water,
            head: b.head,
        }
    }
}

/// A running `Pull` stream.
pub struct PullStream(tonic::Streaming<pb::PullBatch>);

impl PullStream {
    /// The next batch; `None` once the peer closed the stream.
    pub async fn message(&mut self) -> Result<Option<PullBatch>, Status> {
        Ok(self.0.message().await?.map(PullBatch::from))
    }
}

/// A peer's answer to a hit/no-hit question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchAnswer {
    /// One per selector asked, in order.
    pub hits: Vec<bool>,
    /// The peer's case references for the hits, where its policy reveals them.
    pub case_refs: Vec<String>,
    pub contact: Option<ContactPoint>,
}

/// The hit/no-hit question put to one peer.
#[derive(Debug, Clone)]
pub struct MatchRequest {
    pub query_id: String,
    pub tokens: Vec<Token>,
    pub justification: String,
    pub requested_by: String,
}

/// The first step of an oblivious question put to one peer: identifiers
/// blinded for its OPRF key of `epoch`.
#[derive(Debug, Clone)]
pub struct EvaluateRequest {
    pub query_id: String,
    pub epoch: u32,
    pub blinded: Vec<Vec<u8>>,
    pub justification: String,
    pub requested_by: String,
}

/// The second step, after a hit in the peer's filter: the entries that
/// hit with their confirmation tags, for the peer to say which of its
/// cases hold them.
#[derive(Debug, Clone)]
pub struct ConfirmRequest {
    pub query_id: String,
    pub epoch: u32,
    pub entries: Vec<crate::records::oprf::Output>,
    pub justification: String,
    pub requested_by: String,
}

/// A peer's digest of one origin's log up to a seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginDigest {
    /// As the peer wrote it: not yet checked to be a node id.
    pub origin: String,
    pub up_to_seq: u64,
    pub count: u64,
    pub hash: Vec<u8>,
}

/// The `Federation` client of one peer, over its mTLS channel.
#[derive(Clone)]
pub struct PeerClient(pb::federation_client::FederationClient<Channel>);

impl std::fmt::Debug for PeerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerClient")
    }
}

impl PeerClient {
    /// A client on `channel`, with tonic's default message limits.
    pub fn new(channel: Channel) -> Self {
        Self(pb::federation_client::FederationClient::new(channel))
    }

    /// Accepts answers up to `limit` bytes.
    #[must_use]
    pub fn max_decoding_message_size(self, limit: usize) -> Self {
        Self(self.0.max_decoding_message_size(limit))
    }

    /// Sends requests up to `limit` bytes.
    #[must_use]
    pub(crate) fn max_encoding_message_size(self, limit: usize) -> Self {
        Self(self.0.max_encoding_message_size(limit))
    }

    /// The roster versions the peer verified after version `after`.
    pub async fn roster_chain(&mut self, after: u64) -> Result<pb::RosterChainResponse, Status> {
        Ok(self
            .0
            .roster_chain(pb::RosterChainRequest { after })
            .await?
            .into_inner())
    }

    /// Opens a `Pull` stream.
    pub async fn pull(&mut self, request: PullRequest) -> Result<PullStream, Status> {
        let request = pb::PullRequest {
            origin: request.origin.to_string(),
            after_seq: request.after_seq,
            follow: request.follow,
            max_batch: request.max_batch,
        };
        Ok(PullStream(self.0.pull(request).await?.into_inner()))
    }

    /// Asks a hit/no-hit question.
    pub async fn query(&mut self, request: MatchRequest) -> Result<MatchAnswer, Status> {
        let request = pb::MatchRequest {
            query_id: request.query_id,
            selectors: request.tokens.iter().map(selector_to_pb).collect(),
            justification: request.justification,
            requested_by: request.requested_by,
        };
        let m = self.0.r#match(request).await?.into_inner();
        Ok(MatchAnswer {
            hits: m.hits,
            case_refs: m.case_refs,
            contact: contact_from_pb(m.contact),
        })
    }

    /// Has the peer evaluate blinded identifiers: its evaluated elements,
    /// proof and latest filter record's seq, unchecked.
    pub async fn evaluate(
        &mut self,
        request: EvaluateRequest,
    ) -> Result<(Vec<Vec<u8>>, Vec<u8>, u64), Status> {
        let request = pb::EvaluateRequest {
            query_id: request.query_id,
            epoch: request.epoch,
            blinded: request.blinded,
            justification: request.justification,
            requested_by: request.requested_by,
        };
        let r = self.0.evaluate(request).await?.into_inner();
        Ok((r.evaluated, r.proof, r.filter_seq))
    }

    /// Confirms hits in the peer's filter.
    pub async fn confirm(&mut self, request: ConfirmRequest) -> Result<MatchAnswer, Status> {
        let request = pb::ConfirmRequest {
            query_id: request.query_id,
            epoch: request.epoch,
            entries: request.entries.iter().map(|e| e.to_bytes()).collect(),
            justification: request.justification,
            requested_by: request.requested_by,
        };
        let m = self.0.confirm(request).await?.into_inner();
        Ok(MatchAnswer {
            hits: m.hits,
            case_refs: m.case_refs,
            contact: contact_from_pb(m.contact),
        })
    }

    /// Asks for the peer's digests of each origin's log up to a bound.
    pub async fn digest(&mut self, bounds: &[(NodeId, u64)]) -> Result<Vec<OriginDigest>, Status> {
        let request = pb::DigestRequest {
            origins: bounds
                .iter()
                .map(|(origin, up_to)| pb::OriginBound {
                    origin: origin.to_string(),
                    up_to_seq: *up_to,
                })
                .collect(),
        };
        let answer = self.0.digest(request).await?.into_inner();
        Ok(answer
            .digests
            .into_iter()
            .map(|d| OriginDigest {
                origin: d.origin,
                up_to_seq: d.up_to_seq,
                count: d.count,
                hash: d.hash,
            })
            .collect())
    }

    /// Sends a signed checkpoint to be witnessed; the peer's countersignature
    /// (unchecked), if its answer carried one.
    pub async fn witness(
        &mut self,
        signed: &super::SignedCheckpoint,
    ) -> Result<Option<super::Witness>, Status> {
        let reply = self.0.witness(signed.to_pb()).await?.into_inner();
        Ok(reply.witness.map(super::Witness::from_pb))
    }

    /// Sends a recovery statement to be witnessed; the peer's
    /// countersignature (unchecked).
    pub async fn witness_recovery(
        &mut self,
        signed: &super::SignedRecovery,
    ) -> Result<super::RecoveryWitness, Status> {
        let reply = self.0.witness_recovery(signed.to_pb()).await?.into_inner();
        Ok(super::RecoveryWitness::from_pb(reply))
    }

    /// One page of what the peer witnessed of `node`'s log in
    /// (`after_size`, `up_to_size`] (0: no upper bound), unchecked, and
    /// whether more follow.
    pub async fn witnessed(
        &mut self,
        node: &NodeId,
        after_size: u64,
        up_to_size: u64,
    ) -> Result<(Vec<super::Witness>, bool), Status> {
        let request = pb::WitnessedRequest {
            node: node.to_string(),
            after_size,
            up_to_size,
            limit: 0,
            justification: String::new(),
        };
        let reply = self.0.witnessed(request).await?.into_inner();
        Ok((
            reply
                .witnesses
                .into_iter()
                .map(super::Witness::from_pb)
                .collect(),
            reply.more,
        ))
    }
}

/// One member's answer to a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerResult {
    Hit {
        hits: Vec<bool>,
        case_refs: Vec<String>,
        contact: Option<ContactPoint>,
    },
    NoHit,
    Unreachable(String),
    Refused(String),
}

impl PeerResult {
    /// `hit`, `no_hit`, `unreachable` or `refused`.
    pub fn label(&self) -> &'static str {
        match self {
            PeerResult::Hit { .. } => "hit",
            PeerResult::NoHit => "no_hit",
            PeerResult::Unreachable(_) => "unreachable",
            PeerResult::Refused(_) => "refused",
        }
    }

    /// Why a peer could not be asked (or, for an answer, what it was): for
    /// callers that only need to say what went wrong.
    pub fn reason(self) -> String {
        match self {
            PeerResult::Unreachable(why) | PeerResult::Refused(why) => why,
            other => format!("{other:?}"),
        }
    }
}

/// How a component reaches a peer, without knowing how channels are made:
/// the audit keeper (witnessing) and the case index (queries) are handed
/// one, and the node hands them its [`crate::exchange::peers::Dialer`].
pub trait Reach: Send + Sync {
    /// Whether `peer` has an endpoint to dial (configured or in the roster).
    fn reachable(&self, peer: &NodeId) -> bool;
    /// A federation client for `peer`, made once and kept; `Unreachable`
    /// when there is no endpoint or no channel can be built.
    fn client(&self, peer: &NodeId) -> Result<PeerClient, PeerResult>;
}
