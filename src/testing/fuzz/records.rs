//! The `record` target: a record as a peer sends it, as a body, and through
//! the gate every shared record passes. Its own file, as each target is:
//! see [`super`] for what every target asserts and the fixtures they share.

use prost::Message;

use super::{Fixture, NOW_MS, fixture};
use crate::records::lifecycle::{self, Mode, SeriesState, Tombstone};
use crate::records::mla::{self, MlaState};
use crate::records::model::RecordBody;
use crate::trust::verify::{self, Rejection};
use crate::wire::pb::v1 as pb;
use crate::wire::{self, Envelope};

/// A record as a peer sends it (a `SignedRecord`) and as a body
/// (`RecordBody`): decoded, validated, and verified against the example
/// roster, once as sent and once signed by the member it names.
pub fn record(data: &[u8]) {
    let fx = fixture();
    if let Ok(envelope) = Envelope::decode(data) {
        if let Ok(v) = verify::verify(&fx.roster, &envelope) {
            check_verified(fx, &envelope, &v);
        }
        if let Ok((stored, body)) = wire::open_stored(data) {
            assert_eq!(stored, envelope, "open_stored decodes another envelope");
            check_body(&body, data);
        }
        let resigned = resign_record(fx, &envelope.body);
        match verify::verify(&fx.roster, &resigned) {
            Ok(v) => check_verified(fx, &resigned, &v),
            Err(e @ (Rejection::UnknownKey(_) | Rejection::BadSignature(_))) => {
                panic!("a record signed with a roster key is refused at the signature: {e}")
            }
            Err(_) => {}
        }
    }
    if let Ok(body) = wire::decode_body(data) {
        check_body(&body, data);
    }
}

/// `body` signed by the key of the member its `origin` names.
pub(super) fn resign_record(fx: &Fixture, body: &[u8]) -> Envelope {
    let origin = pb::RecordBody::decode(body)
        .map(|b| b.origin)
        .unwrap_or_default();
    let signer = fx.signer(&origin);
    Envelope {
        body: body.to_vec(),
        key_id: signer.key_id().to_owned(),
        signature: signer.sign_record(body),
    }
}

/// What `verify` promises of a record it lets through.
pub(super) fn check_verified(fx: &Fixture, envelope: &Envelope, v: &verify::VerifiedRecord) {
    let (member, key) = fx
        .roster
        .signing_key(&envelope.key_id)
        .expect("a verified record's key is in the roster");
    assert_eq!(v.body.origin, member.id, "verified under another's key");
    assert_eq!(v.key_id, envelope.key_id);
    let stored = Envelope::decode(&v.envelope).expect("the stored envelope decodes");
    assert_eq!(stored.body, envelope.body, "the signed bytes were not kept");
    assert_eq!(
        wire::decode_body(&stored.body).ok().as_ref(),
        Some(&v.body),
        "the stored body decodes to another record"
    );
    assert!(key.covers(v.body.created_at_ms));
    if let crate::records::model::Distribution::Named(members) = &v.body.distribution {
        assert!(members.iter().all(|m| fx.roster.member(m).is_some()));
    }
}

/// What holds of every body that decodes: it is valid, it encodes back to
/// itself, and the series and MLA rules and the tombstone take it without
/// a panic.
fn check_body(body: &RecordBody, envelope: &[u8]) {
    if let Err(e) = body.validate() {
        panic!("decode_body let an invalid body through: {e}");
    }
    let again = wire::encode_body(body);
    match wire::decode_body(&again) {
        Ok(b) => assert_eq!(&b, body, "a body does not survive re-encoding"),
        Err(e) => panic!("a valid body does not decode once re-encoded: {e}"),
    }
    for mode in [Mode::Origin, Mode::Recipient] {
        if let Ok(state) = lifecycle::next(None, body, mode) {
            assert_eq!(SeriesState::decode(&state.encode()).as_ref(), Some(&state));
            let _ = lifecycle::next(Some(&state), body, mode);
        }
    }
    if body.kind.is_mla()
        && let Ok(state) = mla::next(None, body)
    {
        assert_eq!(MlaState::decode(&state.encode()).as_ref(), Some(&state));
        let _ = mla::next(Some(&state), body);
    }
    if let Some((key, entry)) = body.roster_index() {
        assert!(key.starts_with(crate::records::roster::KEY_PREFIX));
        let indexed = crate::records::roster::Indexed::decode(&entry);
        assert_eq!(indexed.map(|i| i.record_id), Some(body.record_id.clone()));
    }
    if let Some(at) = lifecycle::expires_at(body) {
        let t = Tombstone::of(body, envelope, at, NOW_MS);
        assert_eq!(Tombstone::decode(&t.encode()).as_ref(), Some(&t));
    }
}
