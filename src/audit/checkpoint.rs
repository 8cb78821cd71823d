//! Checkpoints of a node's audit log and their witnesses.
//!
//! A checkpoint says "my log has `size` entries and entry `size` hashes to
//! `head`, and roster version `n` (hash `h`) was in force here", signed
//! with the node's record-signing key under its own
//! domain-separation prefix (a checkpoint signature never verifies as a
//! record, nor the reverse). A peer that receives one checks it, stores it,
//! and countersigns it: the [`Witness`] it returns binds the checkpoint
//! to the witness's key and the time it saw it. Countersignatures let a
//! verifier trust witnesses that the audited node itself relays: the node
//! can withhold them, which the verifier sees, but not forge them.
//!
//! The roster version ([`RosterStamp`]) lets a witness refuse a checkpoint
//! made under a roster it knows to be superseded or conflicting
//! ([`judge_roster`]): a node that lags behind the federation, or follows
//! another version of the chain, shows it in every checkpoint. Checkpoints
//! made before checkpoints carried the roster have none ([`Stamped`] with
//! `roster: None`); they decode, verify and are witnessed as before.

use std::collections::HashMap;

use crate::records::crypto::{
    self, CHECKPOINT_SIGNATURE_CONTEXT, SigningKey, WITNESS_SIGNATURE_CONTEXT,
};
use crate::records::model::NodeId;
use crate::store::audit_log::HASH_LEN;
use crate::trust::roster::Roster;
use crate::wire::{CheckpointBody, CheckpointsAnswer, MemberKey, SignedCheckpoint, Witness};

/// A checkpoint's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub node: NodeId,
    pub size: u64,
    pub head: [u8; HASH_LEN],
    pub time_ms: i64,
}

/// The roster version in force at a node when it made a checkpoint: its
/// number and the SHA-256 of its bytes (docs/roster.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RosterStamp {
    pub version: u64,
    pub sha256: [u8; 32],
}

impl RosterStamp {
    /// The version `roster` stands at.
    pub fn of(roster: &Roster) -> Self {
        Self {
            version: roster.position.version,
            sha256: roster.position.hash,
        }
    }
}

impl std::fmt::Display for RosterStamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "version {} (sha256 {})",
            self.version,
            crate::trust::chain::hex(&self.sha256)
        )
    }
}

/// A checkpoint as its node signs it: the state of the log, and the
/// roster version in force when it was made (`None`: made before
/// checkpoints carried it).
///
/// Its own type rather than a field of [`Checkpoint`]: the state of a log
/// is what verifiers, recoveries and forks compare, and the roster is
/// what a witness judges before it countersigns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped {
    pub checkpoint: Checkpoint,
    pub roster: Option<RosterStamp>,
}

/// A checkpoint a peer witnessed, after both signatures were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Witnessed {
    pub checkpoint: Checkpoint,
    /// The roster version the checkpoint was made under, if it says.
    pub roster: Option<RosterStamp>,
    pub witness: NodeId,
    pub witnessed_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint body does not decode: {0}")]
    Decode(String),
    #[error("checkpoint head is {0} bytes, not {HASH_LEN}")]
    HeadLength(usize),
    #[error(
        "checkpoint roster hash is {len} bytes (roster version {version}), not 32; a checkpoint without a roster has neither"
    )]
    RosterHashLength { version: u64, len: usize },
    #[error("checkpoint names node {0:?}, which is not a member")]
    Node(String),
    #[error("signing key {0:?} is not in the roster")]
    UnknownKey(String),
    #[error("key {key_id:?} belongs to {owner}, not to {claimed}")]
    WrongOwner {
        key_id: String,
        owner: NodeId,
        claimed: NodeId,
    },
    #[error("key {key_id:?} is not valid at {at_ms}")]
    KeyNotValid { key_id: String, at_ms: i64 },
    #[error("signature does not verify under key {0:?}")]
    BadSignature(String),
    #[error("witness carries no checkpoint")]
    Missing,
    #[error("statement of {node} resumes from a checkpoint of {checkpoint_of}")]
    Foreign { node: NodeId, checkpoint_of: NodeId },
}

/// A signing key as a verifier knows it.
#[derive(Debug, Clone)]
pub struct BookKey {
    pub node: NodeId,
    pub public_key: Vec<u8>,
    pub valid_from_ms: Option<i64>,
    pub valid_until_ms: Option<i64>,
}

/// The signing keys of the federation's members, by key id: from the
/// roster (a node, an offline verifier) or from a node's answer (a remote
/// verifier without a roster copy).
#[derive(Debug, Clone, Default)]
pub struct KeyBook(pub HashMap<String, BookKey>);

impl KeyBook {
    pub fn from_roster(roster: &Roster) -> Self {
        let mut book = HashMap::new();
        for m in roster.members() {
            for k in &m.signing_keys {
                book.insert(
                    k.key_id.clone(),
                    BookKey {
                        node: m.id.clone(),
                        public_key: k.public_key.to_vec(),
                        valid_from_ms: k.valid_from_ms,
                        valid_until_ms: k.valid_until_ms,
                    },
                );
            }
        }
        Self(book)
    }

    /// The keys of every version of a roster chain, oldest first, so that
    /// what was signed under a key a later version rotated out still
    /// verifies: a later version's validity window for a key replaces an
    /// earlier one, and a key a later version drops keeps the window its
    /// last version gave it. (A node signs with its old key until it
    /// adopts the version that drops it, which may be days after the
    /// proposal: only an explicit `valid_until` bounds a key.)
    pub fn from_chain<'a>(versions: impl IntoIterator<Item = &'a Roster>) -> Self {
        let mut book: HashMap<String, BookKey> = HashMap::new();
        for roster in versions {
            book.extend(Self::from_roster(roster).0);
        }
        Self(book)
    }

    /// The keys a node handed over with its answer.
    pub fn from_keys(keys: &[MemberKey]) -> Result<Self, String> {
        let mut book = HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            let node = NodeId::parse(&k.node).map_err(|rule| format!("keys[{i}].node: {rule}"))?;
            book.insert(
                k.key_id.clone(),
                BookKey {
                    node,
                    public_key: k.public_key.clone(),
                    valid_from_ms: k.valid_from_ms,
                    valid_until_ms: k.valid_until_ms,
                },
            );
        }
        Ok(Self(book))
    }

    /// The keys, sorted by member and key id, to hand to a verifier.
    pub(crate) fn to_keys(&self) -> Vec<MemberKey> {
        let mut keys: Vec<_> = self
            .0
            .iter()
            .map(|(id, k)| MemberKey {
                node: k.node.to_string(),
                key_id: id.clone(),
                public_key: k.public_key.clone(),
                valid_from_ms: k.valid_from_ms,
                valid_until_ms: k.valid_until_ms,
            })
            .collect();
        keys.sort_by(|a, b| (&a.node, &a.key_id).cmp(&(&b.node, &b.key_id)));
        keys
    }

    /// Checks `signature` over `message` by `owner`'s key `key_id`, valid at `at_ms`.
    pub(crate) fn check(
        &self,
        context: &[u8],
        owner: &NodeId,
        key_id: &str,
        at_ms: i64,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), CheckpointError> {
        let key = self
            .0
            .get(key_id)
            .ok_or_else(|| CheckpointError::UnknownKey(key_id.to_owned()))?;
        if key.node != *owner {
            return Err(CheckpointError::WrongOwner {
                key_id: key_id.to_owned(),
                owner: key.node.clone(),
                claimed: owner.clone(),
            });
        }
        if key.valid_from_ms.is_some_and(|f| at_ms < f)
            || key.valid_until_ms.is_some_and(|u| at_ms >= u)
        {
            return Err(CheckpointError::KeyNotValid {
                key_id: key_id.to_owned(),
                at_ms,
            });
        }
        crypto::verify_in(context, &key.public_key, key_id, message, signature)
            .map_err(|_| CheckpointError::BadSignature(key_id.to_owned()))
    }
}

impl Checkpoint {
    /// The body of a checkpoint without a roster (the format before
    /// checkpoints carried it): see [`Stamped::encode`] for what a node
    /// makes now.
    pub fn encode(&self) -> Vec<u8> {
        self.clone().under(None).encode()
    }

    /// The state of the log a body describes, whatever its roster (which
    /// is checked to be well formed, and read with [`Stamped::decode`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, CheckpointError> {
        Stamped::decode(bytes).map(|s| s.checkpoint)
    }

    /// Signs the checkpoint with the node's key, without a roster.
    pub fn sign(&self, key: &SigningKey) -> SignedCheckpoint {
        self.clone().under(None).sign(key)
    }

    /// The checkpoint as made under `roster`.
    pub fn under(self, roster: Option<RosterStamp>) -> Stamped {
        Stamped {
            checkpoint: self,
            roster,
        }
    }
}

impl Stamped {
    pub fn encode(&self) -> Vec<u8> {
        let cp = &self.checkpoint;
        CheckpointBody {
            node: cp.node.to_string(),
            size: cp.size,
            head: cp.head.to_vec(),
            time_ms: cp.time_ms,
            roster_version: self.roster.map_or(0, |r| r.version),
            roster_sha256: self.roster.map(|r| r.sha256.to_vec()).unwrap_or_default(),
        }
        .encode()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CheckpointError> {
        let body =
            CheckpointBody::decode(bytes).map_err(|e| CheckpointError::Decode(e.to_string()))?;
        let node = NodeId::parse(&body.node).map_err(|_| CheckpointError::Node(body.node))?;
        let head: [u8; HASH_LEN] = body
            .head
            .as_slice()
            .try_into()
            .map_err(|_| CheckpointError::HeadLength(body.head.len()))?;
        // Neither field: a checkpoint made before they existed. A version
        // without its hash, or a hash of another length, is malformed.
        let roster = if body.roster_version == 0 && body.roster_sha256.is_empty() {
            None
        } else {
            let sha256: [u8; 32] = body.roster_sha256.as_slice().try_into().map_err(|_| {
                CheckpointError::RosterHashLength {
                    version: body.roster_version,
                    len: body.roster_sha256.len(),
                }
            })?;
            Some(RosterStamp {
                version: body.roster_version,
                sha256,
            })
        };
        Ok(Self {
            checkpoint: Checkpoint {
                node,
                size: body.size,
                head,
                time_ms: body.time_ms,
            },
            roster,
        })
    }

    /// Signs the checkpoint with the node's key.
    pub fn sign(&self, key: &SigningKey) -> SignedCheckpoint {
        let body = self.encode();
        SignedCheckpoint {
            signature: key.sign_in(CHECKPOINT_SIGNATURE_CONTEXT, &body),
            key_id: key.key_id().to_owned(),
            body,
        }
    }
}

/// Why a witness does not countersign a checkpoint: the roster it was made
/// under is not one the witness can stand behind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterRefusal {
    #[error(
        "unstamped: {node} named the roster version in its earlier checkpoints; one without it is refused (its roster would go unstated)"
    )]
    Unstamped { node: NodeId },
    #[error(
        "superseded: made under roster version {made}, version {} is in force here (sha256 {}); {node} has not adopted it yet",
        .in_force.version,
        crate::trust::chain::hex(&.in_force.sha256)
    )]
    Superseded {
        node: NodeId,
        made: u64,
        in_force: RosterStamp,
    },
    #[error(
        "conflicting: made under roster version {version} with sha256 {}, but version {version} here has sha256 {}: {node} holds another version {version} than this node's chain",
        crate::trust::chain::hex(.made),
        crate::trust::chain::hex(.held)
    )]
    Conflicting {
        node: NodeId,
        version: u64,
        made: [u8; 32],
        held: [u8; 32],
    },
}

/// Whether a witness whose roster in force is `in_force`, heading the
/// verified chain `chain` (the versions it walked, with their hashes), may
/// countersign `node`'s checkpoint made under `made`.
///
/// - No roster (a checkpoint made before checkpoints carried it): yes, as
///   before.
/// - A version number the chain holds with another hash: refused as
///   conflicting (two versions of one number: double signing, or a
///   doctored roster on one side).
/// - An older version than the one in force: refused as superseded (the
///   maker has not adopted what the federation approved since).
/// - The version in force, same hash: yes.
/// - A newer version than the one in force: yes. The witness may lag (it
///   adopts a version at its next reload, or once the approvals reach it),
///   and it cannot judge a version it has not verified; refusing would
///   leave the up-to-date node unwitnessed for the witness's delay.
///
/// `stamped_before`: whether the node's checkpoint this witness holds
/// already named its roster; a node that did may not drop the stamp.
/// The stamp is the maker's own statement: a witness checks it against
/// what it knows, not against what the maker really runs.
pub fn judge_roster(
    node: &NodeId,
    made: Option<RosterStamp>,
    in_force: RosterStamp,
    chain: &[RosterStamp],
    stamped_before: bool,
) -> Result<(), RosterRefusal> {
    let Some(made) = made else {
        if stamped_before {
            return Err(RosterRefusal::Unstamped { node: node.clone() });
        }
        return Ok(());
    };
    if let Some(held) = chain
        .iter()
        .chain(std::iter::once(&in_force))
        .find(|v| v.version == made.version && v.sha256 != made.sha256)
    {
        return Err(RosterRefusal::Conflicting {
            node: node.clone(),
            version: made.version,
            made: made.sha256,
            held: held.sha256,
        });
    }
    if made.version < in_force.version {
        return Err(RosterRefusal::Superseded {
            node: node.clone(),
            made: made.version,
            in_force,
        });
    }
    Ok(())
}

/// Checks a signed checkpoint: it decodes, and its node signed it with a
/// key valid when it was made.
pub fn open(signed: &SignedCheckpoint, keys: &KeyBook) -> Result<Checkpoint, CheckpointError> {
    open_stamped(signed, keys).map(|s| s.checkpoint)
}

/// [`open`], with the roster version the checkpoint was made under.
pub fn open_stamped(signed: &SignedCheckpoint, keys: &KeyBook) -> Result<Stamped, CheckpointError> {
    let stamped = Stamped::decode(&signed.body)?;
    let cp = &stamped.checkpoint;
    keys.check(
        CHECKPOINT_SIGNATURE_CONTEXT,
        &cp.node,
        &signed.key_id,
        cp.time_ms,
        &signed.body,
        &signed.signature,
    )?;
    Ok(stamped)
}

/// What a witness signs: the body it saw, its id, and when.
pub(super) fn witness_message(body: &[u8], witness: &str, at_ms: i64) -> Vec<u8> {
    let mut m = Vec::with_capacity(body.len() + witness.len() + 9);
    m.extend_from_slice(body);
    m.extend_from_slice(witness.as_bytes());
    m.extend_from_slice(&at_ms.to_be_bytes());
    m
}

/// The countersignature of `signed` by `witness` at `at_ms`.
pub fn countersign(
    signed: &SignedCheckpoint,
    witness: &NodeId,
    at_ms: i64,
    key: &SigningKey,
) -> Witness {
    let message = witness_message(&signed.body, witness.as_str(), at_ms);
    Witness {
        checkpoint: Some(signed.clone()),
        witness: witness.to_string(),
        witnessed_at_ms: at_ms,
        key_id: key.key_id().to_owned(),
        signature: key.sign_in(WITNESS_SIGNATURE_CONTEXT, &message),
    }
}

/// Checks a witness: the checkpoint's own signature, and the witness's.
pub(crate) fn open_witness(w: &Witness, keys: &KeyBook) -> Result<Witnessed, CheckpointError> {
    let signed = w.checkpoint.as_ref().ok_or(CheckpointError::Missing)?;
    let Stamped { checkpoint, roster } = open_stamped(signed, keys)?;
    let witness =
        NodeId::parse(&w.witness).map_err(|_| CheckpointError::Node(w.witness.clone()))?;
    let message = witness_message(&signed.body, witness.as_str(), w.witnessed_at_ms);
    keys.check(
        WITNESS_SIGNATURE_CONTEXT,
        &witness,
        &w.key_id,
        w.witnessed_at_ms,
        &message,
        &w.signature,
    )?;
    Ok(Witnessed {
        checkpoint,
        roster,
        witness,
        witnessed_at_ms: w.witnessed_at_ms,
    })
}

/// What an `AuditCheckpoints` answer says, with every signature checked
/// against the keys it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// Size of the node's latest checkpoint (0: none).
    pub size: u64,
    /// Per peer: the largest size it countersigned, and why it could not
    /// be asked (empty if it answered).
    pub peers: Vec<(String, u64, String)>,
    /// Per peer that did not witness the checkpoint just made: why.
    pub refused: Vec<(String, String)>,
}

impl Coverage {
    pub fn of(resp: &CheckpointsAnswer) -> Result<Self, String> {
        let keys = KeyBook::from_keys(&resp.keys)?;
        let size = resp
            .own
            .iter()
            .filter_map(|s| open(s, &keys).ok())
            .map(|c| c.size)
            .max()
            .unwrap_or(0);
        let peers = resp
            .peers
            .iter()
            .map(|p| {
                let seen = p
                    .witnesses
                    .iter()
                    .filter_map(|w| open_witness(w, &keys).ok())
                    .map(|w| w.checkpoint.size)
                    .max()
                    .unwrap_or(0);
                (p.peer.clone(), seen, p.error.clone())
            })
            .collect();
        let refused = resp
            .peers
            .iter()
            .filter(|p| !p.refused.is_empty())
            .map(|p| (p.peer.clone(), p.refused.clone()))
            .collect();
        Ok(Self {
            size,
            peers,
            refused,
        })
    }

    /// The peers that countersigned a larger log than the latest
    /// checkpoint covers: entries were lost since (a restored or lost
    /// store), with what each witnessed.
    pub fn beyond(&self) -> Vec<(&str, u64)> {
        self.peers
            .iter()
            .filter(|(_, seen, _)| *seen > self.size)
            .map(|(peer, seen, _)| (peer.as_str(), *seen))
            .collect()
    }

    /// The peers that countersigned the latest checkpoint (a peer that
    /// countersigned a larger log is [`Coverage::beyond`], not a witness
    /// of this one).
    pub fn witnesses(&self) -> Vec<&str> {
        self.peers
            .iter()
            .filter(|(_, seen, error)| error.is_empty() && *seen == self.size)
            .map(|(peer, _, _)| peer.as_str())
            .collect()
    }
}

/// Whether two checkpoint bodies state the same thing: one node's log
/// at one size and head, under one roster (the time they were made
/// aside). A witness hands back what it countersigned for the same state;
/// a checkpoint made again under a new roster is another state.
pub fn same_state(a: &[u8], b: &[u8]) -> bool {
    match (Stamped::decode(a), Stamped::decode(b)) {
        (Ok(a), Ok(b)) => {
            a.roster == b.roster
                && (a.checkpoint.node, a.checkpoint.size, a.checkpoint.head)
                    == (b.checkpoint.node, b.checkpoint.size, b.checkpoint.head)
        }
        _ => false,
    }
}

#[cfg(test)]
#[path = "checkpoint_tests.rs"]
mod tests;
