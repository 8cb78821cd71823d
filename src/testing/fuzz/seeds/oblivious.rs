//! Seeds of the `oblivious` target: `Evaluate` and `Confirm` requests as a
//! querying node sends them, and one `invalid-*` request per rule the
//! checks apply (`service::oblivious`), named
//! `invalid-<call>-<field>-<what>` after the call that refuses it and the
//! field its refusal names.
//!
//! The elements are made without randomness, so that writing the seeds
//! again gives the same files: the ristretto255 generator, then each one
//! evaluated from the one before with the harness's key (an evaluated
//! element is as valid a point as a blinded one).

use prost::Message;

use crate::config::QueryConfig;
use crate::limits;
use crate::records::oprf::{ELEMENT_LEN, ENTRY_LEN};
use crate::records::vocabulary::SelectorKind;
use crate::testing::fuzz::oblivious::key;
use crate::wire::pb::v1 as pb;

/// The canonical encoding of the ristretto255 generator (RFC 9496).
const GENERATOR: [u8; ELEMENT_LEN] = [
    0xe2, 0xf2, 0xae, 0x0a, 0x6a, 0xbc, 0x4e, 0x71, 0xa8, 0x84, 0xa9, 0x61, 0xc5, 0x00, 0x51, 0x5f,
    0x58, 0xe3, 0x0b, 0x6a, 0xa5, 0x82, 0xdd, 0x8d, 0xb6, 0xa6, 0x59, 0x45, 0xe0, 0x8d, 0x2d, 0x76,
];

/// `n` valid elements, the same every time.
fn elements(n: usize) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = vec![GENERATOR.to_vec()];
    while out.len() < n {
        let last = out[out.len() - 1].clone();
        match key().evaluate(&[last]) {
            Ok((evaluated, _)) => out.push(evaluated[0].to_vec()),
            Err(_) => break,
        }
    }
    out.truncate(n);
    out
}

fn evaluate(blinded: Vec<Vec<u8>>) -> pb::EvaluateRequest {
    pb::EvaluateRequest {
        query_id: "sv-q-0000000000000042".into(),
        epoch: 1,
        blinded,
        justification: "Investigación de red de trata en frontera norte".into(),
        requested_by: "analista.perez".into(),
    }
}

/// Entries with their tags, as a querier that found them in the
/// filter sends them back: the harness key's outputs for two identifiers.
fn entries() -> Vec<Vec<u8>> {
    [
        (SelectorKind::Passport, "X1234567"),
        (SelectorKind::Phone, "+50255551234"),
    ]
    .iter()
    .filter_map(|(kind, value)| key().output(*kind, value).ok())
    .map(|o| o.to_bytes())
    .collect()
}

fn confirm(entries: Vec<Vec<u8>>) -> pb::ConfirmRequest {
    pb::ConfirmRequest {
        query_id: "sv-q-0000000000000042".into(),
        epoch: 1,
        entries,
        justification: "Investigación de red de trata en frontera norte".into(),
        requested_by: "analista.perez".into(),
    }
}

/// Every seed of the target: its name, its bytes.
pub(super) fn requests() -> Vec<(&'static str, Vec<u8>)> {
    let max = QueryConfig::default().max_selectors;
    let mut not_a_point = elements(2);
    not_a_point[1] = vec![0xff; ELEMENT_LEN];
    let long = |max: usize| "x".repeat(max + 1);
    let evaluations = [
        ("evaluate", evaluate(elements(3))),
        ("evaluate-max", evaluate(elements(max))),
        ("invalid-evaluate-blinded-none", evaluate(Vec::new())),
        (
            "invalid-evaluate-blinded-too-many",
            evaluate(elements(max + 1)),
        ),
        (
            "invalid-evaluate-blinded-not-a-point",
            evaluate(not_a_point),
        ),
        (
            "invalid-evaluate-blinded-identity",
            evaluate(vec![vec![0; ELEMENT_LEN]]),
        ),
        (
            "invalid-evaluate-blinded-length",
            evaluate(vec![GENERATOR[..ELEMENT_LEN - 1].to_vec()]),
        ),
        (
            "invalid-evaluate-epoch-0",
            pb::EvaluateRequest {
                epoch: 0,
                ..evaluate(elements(1))
            },
        ),
        (
            "invalid-evaluate-justification-blank",
            pb::EvaluateRequest {
                justification: " \t".into(),
                ..evaluate(elements(1))
            },
        ),
        (
            "invalid-evaluate-justification-long",
            pb::EvaluateRequest {
                justification: long(limits::MAX_PEER_JUSTIFICATION),
                ..evaluate(elements(1))
            },
        ),
        (
            "invalid-evaluate-requested_by-long",
            pb::EvaluateRequest {
                requested_by: long(limits::MAX_PEER_REQUESTED_BY),
                ..evaluate(elements(1))
            },
        ),
        (
            "invalid-evaluate-query_id-long",
            pb::EvaluateRequest {
                query_id: long(limits::MAX_PEER_QUERY_ID),
                ..evaluate(elements(1))
            },
        ),
    ];
    let mut short = entries();
    short[0].truncate(ENTRY_LEN);
    let confirmations = [
        ("confirm", confirm(entries())),
        ("invalid-confirm-entries-none", confirm(Vec::new())),
        ("invalid-confirm-entries-length", confirm(short)),
        (
            "invalid-confirm-epoch-0",
            pb::ConfirmRequest {
                epoch: 0,
                ..confirm(entries())
            },
        ),
    ];
    evaluations
        .into_iter()
        .map(|(name, r)| (name, r.encode_to_vec()))
        .chain(
            confirmations
                .into_iter()
                .map(|(name, r)| (name, r.encode_to_vec())),
        )
        .collect()
}
