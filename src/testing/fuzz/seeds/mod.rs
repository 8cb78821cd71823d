//! Valid inputs for every target, so that fuzzing starts from what a peer,
//! a disk or an operator really hands the node: records of every kind
//! signed with the example federation's keys, a Pull batch, checkpoints
//! and their witnesses, the example roster and configurations, selectors,
//! record log frames and CRLs made by `enlace cert revoke`'s own code,
//! and oblivious evaluation and confirmation requests (with an
//! `invalid-*` one per rule their checks apply).
//!
//! `cargo test --test corpora -- --ignored write_seeds` writes them to
//! `tests/fuzz/corpus/<target>/seed-*`; the replay test checks that each
//! still does what its name says.

mod oblivious;
mod records;

use prost::Message;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use records::{pull_batch, record_bodies, record_id, sign};

use super::{NOW_MS, PEER, THIS_NODE, fixture, node};
use crate::audit::checkpoint::{self, Checkpoint};
use crate::audit::recovery::{self, Recovery};
use crate::records::lifecycle::SeriesState;
use crate::store::Content;
use crate::store::record_log::{self, Head};
use crate::wire::AuditRecovery;
use crate::wire::pb::v1 as pb;

/// One seed: its target, its file name, its bytes.
pub struct Seed {
    pub target: &'static str,
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Every seed of every target.
pub fn seeds() -> Vec<Seed> {
    let mut out = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        out.push(Seed {
            target,
            name: format!("seed-{name}"),
            bytes,
        });
    };
    for (name, body) in record_bodies() {
        add("record", &format!("body-{name}"), body.clone());
        add("record", &format!("envelope-{name}"), sign(&body));
    }
    add("pull_batch", "batch", pull_batch());
    for (name, bytes) in checkpoints() {
        add("checkpoint", name, bytes);
    }
    let fx = fixture();
    let roster = std::fs::read(fx.dir.join("federation.toml")).unwrap_or_default();
    add("roster", "example", roster.clone());
    add("roster", "observer-and-validity", roster_variant(&roster));
    add(
        "roster",
        "signed-version-1",
        std::fs::read(fx.dir.join("roster/1.roster")).unwrap_or_default(),
    );
    let root = fx.dir.parent().unwrap_or(&fx.dir);
    for (name, path) in [
        ("deploy", root.join("deploy/config/node.toml")),
        ("example-gt", fx.dir.join("gt/node.toml")),
    ] {
        add("config", name, std::fs::read(path).unwrap_or_default());
    }
    for (i, value) in SELECTORS.iter().enumerate() {
        add("selector", &format!("{i:02}"), value.as_bytes().to_vec());
    }
    for (name, bytes) in record_log_files() {
        add("record_log", name, bytes);
    }
    for (name, bytes) in crls() {
        add("crl", name, bytes);
    }
    for (name, bytes) in oblivious::requests() {
        add("oblivious", name, bytes);
    }
    out
}

// ---------------------------------------------------------------------------
// Checkpoints.

fn checkpoints() -> Vec<(&'static str, Vec<u8>)> {
    let fx = fixture();
    let (gt, hn) = (node(PEER), node(THIS_NODE));
    let cp = Checkpoint {
        node: gt.clone(),
        size: 42,
        head: [7; crate::store::audit_log::HASH_LEN],
        time_ms: NOW_MS,
    };
    let signed = cp.sign(fx.signer(PEER));
    let witness = checkpoint::countersign(&signed, &hn, NOW_MS + 1_000, fx.signer(THIS_NODE));
    let statement = Recovery {
        node: gt,
        resumes: cp.clone(),
        resumes_signed: signed.clone(),
        time_ms: NOW_MS + 60_000,
        reason: "disco perdido".into(),
        cause: crate::wire::ResumeCause::Lost,
    }
    .sign(fx.signer(PEER));
    let countersigned =
        recovery::countersign(&statement, &hn, NOW_MS + 61_000, fx.signer(THIS_NODE));
    let answer = pb::AuditCheckpointsResponse {
        own: vec![signed.to_pb()],
        peers: vec![pb::PeerWitnesses {
            peer: THIS_NODE.into(),
            error: String::new(),
            witnesses: vec![witness.to_pb()],
            refused: String::new(),
        }],
        keys: fx.keys.to_keys().iter().map(|k| k.to_pb()).collect(),
        recoveries: vec![
            AuditRecovery {
                statement: statement.clone(),
                witnesses: vec![countersigned.clone()],
            }
            .to_pb(),
        ],
        ..Default::default()
    };
    let tagged = |tag: u8, bytes: Vec<u8>| [vec![tag], bytes].concat();
    vec![
        ("body", tagged(0, cp.encode())),
        ("signed", tagged(1, signed.encode())),
        ("witness", tagged(2, witness.encode())),
        ("recovery", tagged(3, statement.to_pb().encode_to_vec())),
        ("recovery-witness", tagged(4, countersigned.encode())),
        ("answer", tagged(5, answer.encode_to_vec())),
        (
            "body-under-roster",
            tagged(
                0,
                cp.clone()
                    .under(Some(checkpoint::RosterStamp {
                        version: 2,
                        sha256: [9; 32],
                    }))
                    .encode(),
            ),
        ),
    ]
}

// ---------------------------------------------------------------------------
// Roster, selectors.

/// The example roster with `sv` an observer (no endpoint, no governance
/// key: it does not vote) and `gt`'s key bounded in time.
fn roster_variant(example: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(example).replace(
        "key_id = \"gt-example-1\"",
        "key_id = \"gt-example-1\"\nvalid_from = \"2025-01-01T00:00:00Z\"\nvalid_until = \"2027-01-01T00:00:00+02:00\"",
    );
    text.split("[[members]]")
        .map(|block| {
            if block.contains("id = \"sv\"") {
                block
                    .lines()
                    .filter(|l| !l.starts_with("governance_keys") && !l.starts_with("endpoint"))
                    .map(|l| l.replace("role = \"member\"", "role = \"observer\"") + "\n")
                    .collect::<String>()
            } else {
                block.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("[[members]]")
        .into_bytes()
}

/// One value of each kind as officers type them (`docs/selectors.md`).
const SELECTORS: &[&str] = &[
    "A1234567",
    "p-123 456.78",
    "PÉREZ GÓMEZ, José|1990-05-17",
    "O'Neil Ødegård, Łukasz|2000-02-29",
    "+502 5555-1234",
    "00 (504) 2222 3333",
    "Cooperacion@MP.Example.org",
    "P-123-ABC",
    "GT82 TRAJ 0102 0000 0012 1002 9690",
    "35-209900-176148-1",
    "passport=A1234567",
    "name-dob=Ana María Ruiz|1985-12-31",
];

// ---------------------------------------------------------------------------
// Record log frames.

fn record_log_files() -> Vec<(&'static str, Vec<u8>)> {
    let envelope = record_bodies()
        .first()
        .map(|(_, b)| sign(b))
        .unwrap_or_default();
    let state = SeriesState {
        kind: "alert".into(),
        version: 1,
        current: record_id(PEER, 1),
        victim: true,
        recipients: vec![THIS_NODE.into()],
        withdrawn: None,
        statistics: None,
    };
    let head = |seq: u64, v2: bool| Head {
        origin: node(PEER),
        seq,
        position: seq - 1,
        record_id: record_id(PEER, seq),
        expires_at_ms: (!v2).then_some(1_800_000_000_000),
        series_state: (!v2).then(|| state.encode()),
        v2,
    };
    let v3 = record_log::encode(&head(1, false), &Content::Envelope(envelope.clone()));
    let v2 = record_log::encode(&head(2, true), &Content::Envelope(envelope));
    let tomb = record_log::encode(
        &head(3, false),
        &Content::Tombstone(b"{\"record_id\":\"gt-0000000000000003\"}".to_vec()),
    );
    let (Ok(v3), Ok(v2), Ok(tomb)) = (v3, v2, tomb) else {
        return Vec::new();
    };
    // A purge's rewrite: the same length, the tombstone inside, padded.
    let purged = record_log::Frame {
        head: head(1, false),
        content: record_log::FrameContent::Held(Content::Envelope(Vec::new())),
        len: v3.len(),
    };
    let purged = record_log::tombstone_frame(&purged, b"{}")
        .map(|(f, _)| f)
        .unwrap_or_default();
    let log = [v3.clone(), v2.clone(), tomb.clone(), purged.clone()].concat();
    vec![
        ("v3-envelope", v3),
        ("v2-envelope", v2),
        ("tombstone", tomb),
        ("purged", purged),
        ("log", log),
    ]
}

// ---------------------------------------------------------------------------
// CRLs.

/// A CRL of `gt`'s CA revoking its node certificate, then one extending
/// it with its client certificate: PEM and DER.
fn crls() -> Vec<(&'static str, Vec<u8>)> {
    let fx = fixture();
    let read =
        |name: &str| std::fs::read_to_string(fx.dir.join("gt").join(name)).unwrap_or_default();
    let (ca, key) = (read("ca.crt"), read("ca.key"));
    let cert = |name: &str| {
        CertificateDer::from_pem_slice(read(name).as_bytes())
            .map(|c| c.to_vec())
            .unwrap_or_default()
    };
    let reason = rcgen::RevocationReason::KeyCompromise;
    let Ok(first) = crate::trust::crl::revoke(&ca, &key, &cert("node.crt"), None, reason, 30)
    else {
        return Vec::new();
    };
    // A second certificate of the same CA, for a second entry.
    let other = crate::trust::pki::issue(
        &ca,
        &key,
        &crate::trust::pki::Profile::Client {
            name: "gt-retired".into(),
        },
        30,
    )
    .ok()
    .and_then(|c| CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).ok())
    .map(|c| c.to_vec())
    .unwrap_or_default();
    let second = crate::trust::crl::revoke(
        &ca,
        &key,
        &other,
        Some(&first.crl_pem),
        rcgen::RevocationReason::Superseded,
        30,
    )
    .map(|r| r.crl_pem)
    .unwrap_or_else(|_| first.crl_pem.clone());
    let der =
        rustls_pki_types::CertificateRevocationListDer::from_pem_slice(first.crl_pem.as_bytes())
            .map(|d| d.to_vec())
            .unwrap_or_default();
    vec![
        ("pem", first.crl_pem.into_bytes()),
        ("der", der),
        ("pem-extended", second.into_bytes()),
    ]
}
