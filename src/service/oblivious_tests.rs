use super::*;
use crate::records::oprf::{Blinded, input};
use crate::records::vocabulary::SelectorKind;

const MAX: usize = 4;

fn blinded(n: usize) -> Vec<Vec<u8>> {
    let inputs = (0..n)
        .map(|i| input(SelectorKind::Phone, &format!("+5025555000{i}")))
        .collect();
    Blinded::new(inputs).unwrap().elements
}

fn evaluate(blinded: Vec<Vec<u8>>) -> pb::EvaluateRequest {
    pb::EvaluateRequest {
        query_id: "q-sv-0001".into(),
        epoch: 1,
        blinded,
        justification: "Investigación de red de trata".into(),
        requested_by: "analyst".into(),
    }
}

fn confirm(entries: Vec<Vec<u8>>) -> pb::ConfirmRequest {
    pb::ConfirmRequest {
        query_id: "q-sv-0001".into(),
        epoch: 1,
        entries,
        justification: "Investigación de red de trata".into(),
        requested_by: "analyst".into(),
    }
}

fn refusal(e: RequestError) -> String {
    let status = e.into_status();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    status.message().to_owned()
}

#[test]
fn a_well_formed_request_passes_as_sent() {
    let req = evaluate(blinded(MAX));
    let checked = check_evaluate(&req, MAX).unwrap();
    assert_eq!(checked.epoch, 1);
    assert_eq!(checked.blinded, &req.blinded[..]);
    let req = confirm(vec![vec![7; ENTRY_LEN + TAG_LEN]; 2]);
    let checked = check_confirm(&req, MAX).unwrap();
    assert_eq!(checked.epoch, 1);
    assert_eq!(checked.entries.len(), 2);
    assert_eq!(checked.entries[1].to_bytes(), req.entries[1]);
}

#[test]
fn an_evaluation_is_refused_naming_the_field_and_the_rule() {
    let cases: Vec<(pb::EvaluateRequest, &str)> = vec![
        (
            evaluate(Vec::new()),
            "blinded: between 1 and 4 identifiers per call (got 0)",
        ),
        (
            evaluate(blinded(MAX + 1)),
            "blinded: between 1 and 4 identifiers per call (got 5)",
        ),
        (
            pb::EvaluateRequest {
                epoch: 0,
                ..evaluate(blinded(1))
            },
            "epoch: must be 1 or more (0 is what an unset field reads as)",
        ),
        (
            pb::EvaluateRequest {
                justification: " \n".into(),
                ..evaluate(blinded(1))
            },
            "justification: is required: say why you ask",
        ),
        (
            pb::EvaluateRequest {
                justification: "x".repeat(limits::MAX_PEER_JUSTIFICATION + 1),
                ..evaluate(blinded(1))
            },
            "justification: at most 500 bytes (got 501)",
        ),
        (
            pb::EvaluateRequest {
                requested_by: "x".repeat(limits::MAX_PEER_REQUESTED_BY + 1),
                ..evaluate(blinded(1))
            },
            "requested_by: at most 128 bytes (got 129)",
        ),
        (
            pb::EvaluateRequest {
                query_id: "x".repeat(limits::MAX_PEER_QUERY_ID + 1),
                ..evaluate(blinded(1))
            },
            "query_id: at most 64 bytes (got 65)",
        ),
        (
            evaluate(vec![blinded(1).remove(0), vec![0xff; 32]]),
            "blinded[1]: is not a ristretto255 element (the canonical encoding of a point other than the identity)",
        ),
        (
            evaluate(vec![vec![0; 32]]),
            "blinded[0]: is not a ristretto255 element (the canonical encoding of a point other than the identity)",
        ),
        (
            evaluate(vec![vec![1; 33]]),
            "blinded[0]: must be 32 bytes of a ristretto255 element (got 33)",
        ),
    ];
    for (req, message) in cases {
        let e = check_evaluate(&req, MAX).unwrap_err();
        assert_eq!(refusal(e), message);
    }
}

#[test]
fn a_confirmation_is_refused_naming_the_field_and_the_rule() {
    let entry = || vec![7; ENTRY_LEN + TAG_LEN];
    let cases: Vec<(pb::ConfirmRequest, &str)> = vec![
        (
            confirm(Vec::new()),
            "entries: between 1 and 4 identifiers per call (got 0)",
        ),
        (
            pb::ConfirmRequest {
                epoch: 0,
                ..confirm(vec![entry()])
            },
            "epoch: must be 1 or more (0 is what an unset field reads as)",
        ),
        (
            confirm(vec![entry(), vec![7; ENTRY_LEN]]),
            "entries[1]: must be 32 bytes, an entry and its tag (got 16)",
        ),
    ];
    for (req, message) in cases {
        let e = check_confirm(&req, MAX).unwrap_err();
        assert_eq!(refusal(e), message);
    }
}
