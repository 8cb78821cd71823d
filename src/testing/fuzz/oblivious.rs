//! The `oblivious` target: a peer's `Evaluate` and `Confirm` requests and
//! the checks the node makes of them before any identifier budget, key or audit
//! work (`service::oblivious`). Its own file, as each target is: see
//! [`super`] for what every target asserts and the fixtures they share.

use std::sync::OnceLock;

use prost::Message;

use super::input_file;
use crate::config::QueryConfig;
use crate::limits;
use crate::records::oprf::{self, SecretKey};
use crate::service::oblivious::{RequestError, check_confirm, check_evaluate};
use crate::wire::pb::v1 as pb;

/// The fields a refusal may name, as a request carries them.
const FIELDS: &[&str] = &[
    "query_id",
    "epoch",
    "blinded",
    "entries",
    "justification",
    "requested_by",
];

/// The input as an `EvaluateRequest` and as a `ConfirmRequest` (the two
/// share their field numbers, so one encoding is both), checked with the
/// default `query.max_selectors`. What is accepted keeps the rules the
/// handler relies on, and the key evaluates every evaluation accepted;
/// what is refused names its field. The rules the calls share give both
/// the same verdict.
pub fn oblivious(data: &[u8]) {
    let max = QueryConfig::default().max_selectors;
    let evaluate = pb::EvaluateRequest::decode(data);
    let confirm = pb::ConfirmRequest::decode(data);
    if let Ok(req) = &evaluate {
        match check_evaluate(req, max) {
            Ok(checked) => {
                assert_eq!(checked.epoch, req.epoch);
                assert!(checked.epoch >= 1);
                assert_eq!(checked.blinded, &req.blinded[..]);
                assert_said(
                    req.blinded.len(),
                    max,
                    [&req.justification, &req.requested_by, &req.query_id],
                );
                assert!(
                    checked
                        .blinded
                        .iter()
                        .all(|b| oprf::check_blinded(b).is_ok())
                );
                match key().evaluate(checked.blinded) {
                    Ok((evaluated, _)) => assert_eq!(evaluated.len(), checked.blinded.len()),
                    Err(e) => panic!("an accepted evaluation is not evaluated: {e}"),
                }
            }
            Err(e) => {
                assert_names_a_field(&e);
                if let RequestError::ElementLength { index, .. }
                | RequestError::NotAnElement { index } = e
                {
                    assert!(oprf::check_blinded(&req.blinded[index]).is_err());
                    assert!(key().evaluate(&req.blinded).is_err());
                }
            }
        }
    }
    if let Ok(req) = &confirm {
        match check_confirm(req, max) {
            Ok(checked) => {
                assert_eq!(checked.epoch, req.epoch);
                assert!(checked.epoch >= 1);
                assert_said(
                    req.entries.len(),
                    max,
                    [&req.justification, &req.requested_by, &req.query_id],
                );
                let sent: Vec<Vec<u8>> = checked.entries.iter().map(|o| o.to_bytes()).collect();
                assert_eq!(sent, req.entries, "entries are not confirmed as sent");
            }
            Err(e) => assert_names_a_field(&e),
        }
    }
    if let (Ok(e), Ok(c)) = (&evaluate, &confirm) {
        let e = check_evaluate(e, max).map(|_| ());
        let c = check_confirm(c, max).map(|_| ());
        // A blinded element is as long as an entry and its tag.
        assert!(
            e.is_err() || c.is_ok(),
            "an evaluation's elements are not entries"
        );
        assert_eq!(
            shared_verdict(e),
            shared_verdict(c),
            "the rules both calls share give two verdicts"
        );
    }
}

/// What holds of the part both calls share, once accepted.
fn assert_said(count: usize, max: usize, [justification, requested_by, query_id]: [&String; 3]) {
    assert!((1..=max).contains(&count));
    assert!(justification.len() <= limits::MAX_PEER_JUSTIFICATION);
    assert!(!justification.trim().is_empty());
    assert!(requested_by.len() <= limits::MAX_PEER_REQUESTED_BY);
    assert!(query_id.len() <= limits::MAX_PEER_QUERY_ID);
}

fn assert_names_a_field(e: &RequestError) {
    let message = e.to_string();
    assert!(
        FIELDS.iter().any(|f| message
            .strip_prefix(f)
            .is_some_and(|rest| rest.starts_with(':') || rest.starts_with('['))),
        "a refusal names no field: {message}"
    );
}

/// A verdict on the rules both calls share: the error, with the name of
/// the list counted left out, or none.
fn shared_verdict(verdict: Result<(), RequestError>) -> Option<RequestError> {
    match verdict {
        Err(RequestError::Count { max, got, .. }) => Some(RequestError::Count {
            field: "",
            max,
            got,
        }),
        Err(
            e @ (RequestError::TooLong { .. }
            | RequestError::NoJustification
            | RequestError::ZeroEpoch),
        ) => Some(e),
        Err(
            RequestError::ElementLength { .. }
            | RequestError::NotAnElement { .. }
            | RequestError::EntryLength { .. },
        )
        | Ok(()) => None,
    }
}

/// The key the harness evaluates with: RFC 9497's test vector key (A.1.2),
/// as a key file, read once.
// NOTE: a key that does not load is a broken build, not an input the
// harness must survive, so it panics with the reason.
pub(super) fn key() -> &'static SecretKey {
    static KEY: OnceLock<SecretKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let file = input_file(
            b"enlace-oprf-key-v1 epoch=1 5vc/NEt5s3nxoN034H/2LjjZ9xNFzmKuOpvGCwTM2Qk=\n",
        )
        .unwrap_or_else(|| panic!("the harness's OPRF key file cannot be written"));
        SecretKey::read(file.path())
            .unwrap_or_else(|e| panic!("the harness's OPRF key does not load: {e}"))
    })
}
