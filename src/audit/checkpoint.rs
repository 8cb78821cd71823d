//! Checkpoints of a node's audit log and their witnesses.
//!
//! A checkpoint says "my log has `size` entries and entry `size` hashes to
//! `head`", signed with the node's record-signing key under its own
//! domain-separation prefix (a checkpoint signature never verifies as a
//! record, nor the reverse). A peer that receives one checks it, stores it,
//! and countersigns it: the [`Witness`] it returns binds the checkpoint
//! to the witness's key and the time it saw it. Countersignatures let a
//! verifier trust witnesses that the audited node itself relays: the node
//! can withhold them, which the verifier sees, but not forge them.

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

/// A checkpoint a peer witnessed, after both signatures were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Witnessed {
    pub checkpoint: Checkpoint,
    pub witness: NodeId,
    pub witnessed_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint body does not decode: {0}")]
    Decode(String),
    #[error("checkpoint head is {0} bytes, not {HASH_LEN}")]
    HeadLength(usize),
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
    pub fn encode(&self) -> Vec<u8> {
        CheckpointBody {
            node: self.node.to_string(),
            size: self.size,
            head: self.head.to_vec(),
            time_ms: self.time_ms,
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
        Ok(Self {
            node,
            size: body.size,
            head,
            time_ms: body.time_ms,
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

/// Checks a signed checkpoint: it decodes, and its node signed it with a
/// key valid when it was made.
pub fn open(signed: &SignedCheckpoint, keys: &KeyBook) -> Result<Checkpoint, CheckpointError> {
    let cp = Checkpoint::decode(&signed.body)?;
    keys.check(
        CHECKPOINT_SIGNATURE_CONTEXT,
        &cp.node,
        &signed.key_id,
        cp.time_ms,
        &signed.body,
        &signed.signature,
    )?;
    Ok(cp)
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
    let checkpoint = open(signed, keys)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn book(keys: &[(&str, &SigningKey)]) -> KeyBook {
        KeyBook(
            keys.iter()
                .map(|(node, k)| {
                    (
                        k.key_id().to_owned(),
                        BookKey {
                            node: NodeId::parse(node).unwrap(),
                            public_key: k.public_key().to_vec(),
                            valid_from_ms: None,
                            valid_until_ms: None,
                        },
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn checkpoints_and_witnesses_verify_and_any_change_breaks_them() {
        let (gt_key, _) = SigningKey::generate("gt-2026").unwrap();
        let (hn_key, _) = SigningKey::generate("hn-2026").unwrap();
        let keys = book(&[("gt", &gt_key), ("hn", &hn_key)]);
        let cp = Checkpoint {
            node: NodeId::parse("gt").unwrap(),
            size: 12,
            head: [7; HASH_LEN],
            time_ms: 1_700_000_000_000,
        };
        let signed = cp.sign(&gt_key);
        assert_eq!(open(&signed, &keys).unwrap(), cp);

        let hn = NodeId::parse("hn").unwrap();
        let w = countersign(&signed, &hn, 1_700_000_000_500, &hn_key);
        let seen = open_witness(&w, &keys).unwrap();
        assert_eq!(seen.checkpoint, cp);
        assert_eq!(seen.witness, hn);

        // A different size under the same signature.
        let mut forged = signed.clone();
        forged.body = Checkpoint {
            size: 11,
            ..cp.clone()
        }
        .encode();
        assert!(matches!(
            open(&forged, &keys),
            Err(CheckpointError::BadSignature(_))
        ));
        // gt cannot sign as hn's witness.
        let mut fake = countersign(&signed, &hn, 1, &gt_key);
        fake.key_id = gt_key.key_id().to_owned();
        assert!(matches!(
            open_witness(&fake, &keys),
            Err(CheckpointError::WrongOwner { .. })
        ));
        // A moved witness time.
        let mut moved = w.clone();
        moved.witnessed_at_ms += 1;
        assert!(matches!(
            open_witness(&moved, &keys),
            Err(CheckpointError::BadSignature(_))
        ));
        // A record signature is not a checkpoint signature.
        let mut as_record = signed.clone();
        as_record.signature = gt_key.sign_record(&signed.body);
        assert!(open(&as_record, &keys).is_err());
    }
}
