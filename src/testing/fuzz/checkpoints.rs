//! The `checkpoint` target: checkpoints, witnesses and recovery statements,
//! and the answer `audit verify` reads. Its own file, as each target is:
//! see [`super`] for what every target asserts and the fixtures they share.

use prost::Message;

use super::{Fixture, PEER, fixture, node};
use crate::audit::checkpoint::{self, Checkpoint, CheckpointError, Coverage, Stamped};
use crate::audit::recovery;
use crate::records::model::NodeId;
use crate::wire::pb::v1 as pb;
use crate::wire::{
    CheckpointBody, CheckpointsAnswer, RecoveryBody, RecoveryWitness, SignedCheckpoint,
    SignedRecovery, Witness,
};

/// The first byte chooses the message, the rest is its encoding:
/// 0 `CheckpointBody`, 1 `SignedCheckpoint`, 2 `Witness`,
/// 3 `SignedRecovery`, 4 `RecoveryWitness`, 5 `AuditCheckpointsResponse`
/// (the answer `audit verify` reads, with the keys it carries).
pub fn checkpoint(data: &[u8]) {
    let fx = fixture();
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 6 {
        0 => {
            if let Ok(body) = CheckpointBody::decode(bytes) {
                assert_eq!(CheckpointBody::decode(&body.encode()).ok(), Some(body));
            }
            if let Ok(cp) = Checkpoint::decode(bytes) {
                assert_eq!(Checkpoint::decode(&cp.encode()), Ok(cp));
            }
            // With the roster it was made under (or none, for a body made
            // before checkpoints carried it): the same either way.
            match Stamped::decode(bytes) {
                Ok(stamped) => {
                    assert_eq!(Stamped::decode(&stamped.encode()).as_ref(), Ok(&stamped));
                    assert_eq!(Checkpoint::decode(bytes), Ok(stamped.checkpoint));
                }
                Err(e) => assert_eq!(Checkpoint::decode(bytes), Err(e)),
            }
        }
        1 => {
            let Ok(signed) = SignedCheckpoint::decode(bytes) else {
                return;
            };
            let _ = checkpoint::open(&signed, &fx.keys);
            let resigned = resign_checkpoint(fx, &signed.body);
            let opened = checkpoint::open_stamped(&resigned, &fx.keys);
            assert_signed_right(&opened);
            if let Ok(stamped) = opened {
                assert_eq!(Stamped::decode(&resigned.body).as_ref(), Ok(&stamped));
                assert_eq!(
                    checkpoint::open(&resigned, &fx.keys),
                    Ok(stamped.checkpoint)
                );
            }
        }
        2 => {
            let Ok(w) = Witness::decode(bytes) else {
                return;
            };
            let _ = checkpoint::open_witness(&w, &fx.keys);
            if let Some(signed) = &w.checkpoint {
                let resigned = resign_checkpoint(fx, &signed.body);
                let witness = NodeId::parse(&w.witness).unwrap_or_else(|_| node(PEER));
                let key = fx.signer(witness.as_str());
                let cw = checkpoint::countersign(&resigned, &witness, w.witnessed_at_ms, key);
                let opened = checkpoint::open_witness(&cw, &fx.keys);
                assert_signed_right(&opened);
            }
        }
        3 => {
            let Ok(msg) = pb::SignedRecovery::decode(bytes) else {
                return;
            };
            let signed = SignedRecovery::from_pb(msg);
            let _ = recovery::open(&signed, &fx.keys);
            if let Some(resigned) = resign_recovery(fx, &signed.body) {
                assert_signed_right(&recovery::open(&resigned, &fx.keys));
            }
        }
        4 => {
            let Ok(w) = RecoveryWitness::decode(bytes) else {
                return;
            };
            let _ = recovery::open_witness(&w, &fx.keys);
            if let Some(resigned) = w
                .recovery
                .as_ref()
                .and_then(|s| resign_recovery(fx, &s.body))
            {
                let witness = NodeId::parse(&w.witness).unwrap_or_else(|_| node(PEER));
                let key = fx.signer(witness.as_str());
                let cw = recovery::countersign(&resigned, &witness, w.witnessed_at_ms, key);
                assert_signed_right(&recovery::open_witness(&cw, &fx.keys));
            }
        }
        _ => {
            let Ok(msg) = pb::AuditCheckpointsResponse::decode(bytes) else {
                return;
            };
            let answer = CheckpointsAnswer::from(&msg);
            if let Ok(coverage) = Coverage::of(&answer) {
                let _ = coverage.beyond();
                let _ = coverage.witnesses();
            }
            for r in &answer.recoveries {
                let _ = recovery::open(&r.statement, &fx.keys);
                for w in &r.witnesses {
                    let _ = recovery::open_witness(w, &fx.keys);
                }
            }
        }
    }
}

/// A signature made with the right key must verify: whatever else is
/// refused, it is not the signature.
fn assert_signed_right<T>(opened: &Result<T, CheckpointError>) {
    if let Err(e @ (CheckpointError::BadSignature(_) | CheckpointError::UnknownKey(_))) = opened {
        panic!("a statement signed with the right key is refused: {e}");
    }
}

/// A checkpoint body signed by the member it names (`gt` if none).
fn resign_checkpoint(fx: &Fixture, body: &[u8]) -> SignedCheckpoint {
    let node = CheckpointBody::decode(body)
        .map(|b| b.node)
        .unwrap_or_default();
    let key = fx.signer(&node);
    SignedCheckpoint {
        body: body.to_vec(),
        key_id: key.key_id().to_owned(),
        signature: key.sign_in(crate::records::crypto::CHECKPOINT_SIGNATURE_CONTEXT, body),
    }
}

/// A recovery statement with its checkpoint re-signed, signed by the
/// member it names.
fn resign_recovery(fx: &Fixture, body: &[u8]) -> Option<SignedRecovery> {
    let mut statement = RecoveryBody::decode(body).ok()?;
    statement.resumes = statement.resumes.map(|cp| resign_checkpoint(fx, &cp.body));
    let body = statement.encode();
    let key = fx.signer(&statement.node);
    Some(SignedRecovery {
        signature: key.sign_in(crate::records::crypto::RECOVERY_SIGNATURE_CONTEXT, &body),
        key_id: key.key_id().to_owned(),
        body,
    })
}
