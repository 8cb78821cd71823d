//! Audit checkpoints and witnesses as they travel and are stored.
//!
//! A checkpoint's signature covers the exact bytes of its encoded body, as
//! a record's covers its body: these types carry those bytes unchanged, and
//! [`CheckpointBody`] encodes and decodes them. What a checkpoint means and
//! how its signatures are checked is the audit module's concern
//! (`crate::audit::checkpoint`).

use prost::Message;

use super::pb::v1 as pb;

/// The content a node signs: its log's size and head at a time, and the
/// roster version in force when it made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointBody {
    /// As written: checked to be a node id by the reader.
    pub node: String,
    pub size: u64,
    pub head: Vec<u8>,
    pub time_ms: i64,
    /// 0 (with an empty `roster_sha256`) in a checkpoint made before
    /// checkpoints carried the roster.
    pub roster_version: u64,
    /// As written: checked to be 32 bytes (or empty) by the reader.
    pub roster_sha256: Vec<u8>,
}

impl CheckpointBody {
    pub fn encode(&self) -> Vec<u8> {
        pb::CheckpointBody {
            node: self.node.clone(),
            size: self.size,
            head: self.head.clone(),
            time_ms: self.time_ms,
            roster_version: self.roster_version,
            roster_sha256: self.roster_sha256.clone(),
        }
        .encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        let b = pb::CheckpointBody::decode(bytes)?;
        Ok(Self {
            node: b.node,
            size: b.size,
            head: b.head,
            time_ms: b.time_ms,
            roster_version: b.roster_version,
            roster_sha256: b.roster_sha256,
        })
    }
}

/// An encoded [`CheckpointBody`] with its node's signature.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub body: Vec<u8>,
    pub key_id: String,
    pub signature: Vec<u8>,
}

impl SignedCheckpoint {
    pub fn encode(&self) -> Vec<u8> {
        self.to_pb().encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        pb::SignedCheckpoint::decode(bytes).map(Self::from_pb)
    }

    pub fn to_pb(&self) -> pb::SignedCheckpoint {
        pb::SignedCheckpoint {
            body: self.body.clone(),
            key_id: self.key_id.clone(),
            signature: self.signature.clone(),
        }
    }

    pub fn from_pb(s: pb::SignedCheckpoint) -> Self {
        Self {
            body: s.body,
            key_id: s.key_id,
            signature: s.signature,
        }
    }
}

/// A peer's countersignature of a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Witness {
    pub checkpoint: Option<SignedCheckpoint>,
    /// As written: checked to be a node id by the reader.
    pub witness: String,
    pub witnessed_at_ms: i64,
    pub key_id: String,
    pub signature: Vec<u8>,
}

impl Witness {
    pub fn encode(&self) -> Vec<u8> {
        self.to_pb().encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        pb::Witness::decode(bytes).map(Self::from_pb)
    }

    pub fn to_pb(&self) -> pb::Witness {
        pb::Witness {
            checkpoint: self.checkpoint.as_ref().map(SignedCheckpoint::to_pb),
            witness: self.witness.clone(),
            witnessed_at_ms: self.witnessed_at_ms,
            key_id: self.key_id.clone(),
            signature: self.signature.clone(),
        }
    }

    pub fn from_pb(w: pb::Witness) -> Self {
        Self {
            checkpoint: w.checkpoint.map(SignedCheckpoint::from_pb),
            witness: w.witness,
            witnessed_at_ms: w.witnessed_at_ms,
            key_id: w.key_id,
            signature: w.signature,
        }
    }
}

/// The content of a recovery statement (see `RecoveryBody` in
/// `audit.proto`): the node's log continues after `resumes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryBody {
    /// As written: checked to be a node id by the reader.
    pub node: String,
    pub resumes: Option<SignedCheckpoint>,
    pub time_ms: i64,
    pub reason: String,
    /// A [`ResumeCause`] as written: checked by the reader.
    pub cause: i32,
}

/// Why a log resumes after a checkpoint (see `ResumeCause` in
/// `audit.proto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResumeCause {
    /// The node lost its log.
    #[default]
    Lost,
    /// The node pruned entries older than its retention period.
    Retention,
}

impl ResumeCause {
    pub fn code(self) -> i32 {
        match self {
            Self::Lost => pb::ResumeCause::Lost as i32,
            Self::Retention => pb::ResumeCause::Retention as i32,
        }
    }

    /// `None` for a value this version does not know.
    pub fn from_code(v: i32) -> Option<Self> {
        match pb::ResumeCause::try_from(v) {
            Ok(pb::ResumeCause::Lost) => Some(Self::Lost),
            Ok(pb::ResumeCause::Retention) => Some(Self::Retention),
            Err(_) => None,
        }
    }
}

impl RecoveryBody {
    pub fn encode(&self) -> Vec<u8> {
        pb::RecoveryBody {
            node: self.node.clone(),
            resumes: self.resumes.as_ref().map(SignedCheckpoint::to_pb),
            time_ms: self.time_ms,
            reason: self.reason.clone(),
            cause: self.cause,
        }
        .encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        let b = pb::RecoveryBody::decode(bytes)?;
        Ok(Self {
            cause: b.cause,
            node: b.node,
            resumes: b.resumes.map(SignedCheckpoint::from_pb),
            time_ms: b.time_ms,
            reason: b.reason,
        })
    }
}

/// An encoded [`RecoveryBody`] with its node's signature.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignedRecovery {
    pub body: Vec<u8>,
    pub key_id: String,
    pub signature: Vec<u8>,
}

impl SignedRecovery {
    pub fn to_pb(&self) -> pb::SignedRecovery {
        pb::SignedRecovery {
            body: self.body.clone(),
            key_id: self.key_id.clone(),
            signature: self.signature.clone(),
        }
    }

    pub fn from_pb(s: pb::SignedRecovery) -> Self {
        Self {
            body: s.body,
            key_id: s.key_id,
            signature: s.signature,
        }
    }
}

/// A peer's countersignature of a recovery statement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryWitness {
    pub recovery: Option<SignedRecovery>,
    /// As written: checked to be a node id by the reader.
    pub witness: String,
    pub witnessed_at_ms: i64,
    pub key_id: String,
    pub signature: Vec<u8>,
}

impl RecoveryWitness {
    pub fn encode(&self) -> Vec<u8> {
        self.to_pb().encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        pb::RecoveryWitness::decode(bytes).map(Self::from_pb)
    }

    pub fn to_pb(&self) -> pb::RecoveryWitness {
        pb::RecoveryWitness {
            recovery: self.recovery.as_ref().map(SignedRecovery::to_pb),
            witness: self.witness.clone(),
            witnessed_at_ms: self.witnessed_at_ms,
            key_id: self.key_id.clone(),
            signature: self.signature.clone(),
        }
    }

    pub fn from_pb(w: pb::RecoveryWitness) -> Self {
        Self {
            recovery: w.recovery.map(SignedRecovery::from_pb),
            witness: w.witness,
            witnessed_at_ms: w.witnessed_at_ms,
            key_id: w.key_id,
            signature: w.signature,
        }
    }
}

/// A recovery as the recovered node keeps it and hands it to verifiers:
/// its statement and the countersignatures gathered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditRecovery {
    pub statement: SignedRecovery,
    pub witnesses: Vec<RecoveryWitness>,
}

impl AuditRecovery {
    pub fn encode(&self) -> Vec<u8> {
        self.to_pb().encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        pb::AuditRecovery::decode(bytes).map(Self::from_pb)
    }

    pub fn to_pb(&self) -> pb::AuditRecovery {
        pb::AuditRecovery {
            statement: Some(self.statement.to_pb()),
            witnesses: self.witnesses.iter().map(RecoveryWitness::to_pb).collect(),
        }
    }

    pub fn from_pb(r: pb::AuditRecovery) -> Self {
        Self {
            statement: r.statement.map(SignedRecovery::from_pb).unwrap_or_default(),
            witnesses: r
                .witnesses
                .into_iter()
                .map(RecoveryWitness::from_pb)
                .collect(),
        }
    }
}

/// A member's record-signing key, as a node hands it to a verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberKey {
    /// As written: checked to be a node id by the reader.
    pub node: String,
    pub key_id: String,
    pub public_key: Vec<u8>,
    pub valid_from_ms: Option<i64>,
    pub valid_until_ms: Option<i64>,
}

impl MemberKey {
    pub fn to_pb(&self) -> pb::MemberKey {
        pb::MemberKey {
            node: self.node.clone(),
            key_id: self.key_id.clone(),
            public_key: self.public_key.clone(),
            valid_from_ms: self.valid_from_ms,
            valid_until_ms: self.valid_until_ms,
        }
    }

    pub fn from_pb(k: pb::MemberKey) -> Self {
        Self {
            node: k.node,
            key_id: k.key_id,
            public_key: k.public_key,
            valid_from_ms: k.valid_from_ms,
            valid_until_ms: k.valid_until_ms,
        }
    }
}

/// What one peer witnessed of a node's log, as the node relays it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerWitnesses {
    pub peer: String,
    pub witnesses: Vec<Witness>,
    /// Why the peer could not be asked (empty if it answered).
    pub error: String,
    /// Why it did not witness the checkpoint just made (empty if it did,
    /// or if none was made for this answer).
    pub refused: String,
}

/// A node's answer to `AuditCheckpoints`: its own checkpoints, what each
/// peer witnessed, and the keys to check them with. Unchecked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointsAnswer {
    pub own: Vec<SignedCheckpoint>,
    pub peers: Vec<PeerWitnesses>,
    pub keys: Vec<MemberKey>,
    pub recoveries: Vec<AuditRecovery>,
}

impl From<&pb::AuditCheckpointsResponse> for CheckpointsAnswer {
    fn from(r: &pb::AuditCheckpointsResponse) -> Self {
        Self {
            own: r
                .own
                .iter()
                .cloned()
                .map(SignedCheckpoint::from_pb)
                .collect(),
            peers: r
                .peers
                .iter()
                .map(|p| PeerWitnesses {
                    peer: p.peer.clone(),
                    witnesses: p.witnesses.iter().cloned().map(Witness::from_pb).collect(),
                    error: p.error.clone(),
                    refused: p.refused.clone(),
                })
                .collect(),
            keys: r.keys.iter().cloned().map(MemberKey::from_pb).collect(),
            recoveries: r
                .recoveries
                .iter()
                .cloned()
                .map(AuditRecovery::from_pb)
                .collect(),
        }
    }
}
