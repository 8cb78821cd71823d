//! The bodies of the fuzz targets (`tests/fuzz/`), here so that the stable
//! replay test (`tests/corpora.rs`) runs every corpus file through exactly
//! what the fuzzer ran.
//!
//! Each function takes arbitrary bytes, hands them to the parsers a peer,
//! a disk or an operator can reach, and asserts what must hold of what
//! they accept. None may panic on any input: a panic is a bug in the
//! parser (or in an invariant stated here), and the fuzzer reports it as a
//! crash.
//!
//! The fixtures are the example federation in `certs-example/` (roster,
//! CAs, signing keys), read once per process. Records, checkpoints and
//! statements are also re-signed with the key of the member they name,
//! so that the checks behind the signature are reached at all: a fuzzer
//! cannot forge Ed25519, and a harness that only fed it forged envelopes
//! would exercise the signature check and nothing after it.

pub mod seeds;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use prost::Message;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};

use crate::audit::checkpoint::{self, Checkpoint, CheckpointError, Coverage, KeyBook};
use crate::audit::recovery;
use crate::records::crypto::SigningKey;
use crate::records::lifecycle::{self, Mode, SeriesState, Tombstone};
use crate::records::mla::{self, MlaState};
use crate::records::model::{NodeId, RecordBody};
use crate::records::selector::{MatchingKey, NormalisationVersion, normalise_as};
use crate::records::vocabulary::SelectorKind;
use crate::store::record_log::{self, FrameContent, RecordLog};
use crate::trust::crl::{self, CrlInfo};
use crate::trust::roster::Roster;
use crate::trust::verify::{self, Rejection};
use crate::wire::pb::v1 as pb;
use crate::wire::{
    self, CheckpointBody, CheckpointsAnswer, Envelope, PullBatch, RecoveryBody, RecoveryWitness,
    SignedCheckpoint, SignedRecovery, Witness,
};

/// The body of a fuzz target.
pub type Target = fn(&[u8]);

/// Every target: its name (the directory of its corpus, the name of its
/// `cargo fuzz` binary) and its body.
pub const TARGETS: &[(&str, Target)] = &[
    ("record", record),
    ("pull_batch", pull_batch),
    ("checkpoint", checkpoint),
    ("roster", roster),
    ("config", config),
    ("selector", selector),
    ("record_log", record_log),
    ("crl", crl),
];

/// The node the harnesses replicate into, and the peer they pull from.
const THIS_NODE: &str = "hn";
const PEER: &str = "gt";
/// The clock of the harnesses: after the seeds were made, before they expire.
const NOW_MS: i64 = 1_760_000_000_000;

/// The example federation, read once.
struct Fixture {
    dir: PathBuf,
    roster: Roster,
    keys: KeyBook,
    /// Each member's signing key, by node id.
    signers: Vec<(NodeId, SigningKey)>,
    /// Every member's CA certificates.
    cas: Vec<CertificateDer<'static>>,
    matching: MatchingKey,
}

impl Fixture {
    /// The signing key of `node`, or the first member's for a node that
    /// is not in the example federation.
    fn signer(&self, node: &str) -> &SigningKey {
        let (_, key) = self
            .signers
            .iter()
            .find(|(id, _)| id.as_str() == node)
            .unwrap_or(&self.signers[0]);
        key
    }
}

// NOTE: a fixture that does not load is a broken checkout, not an input the
// harness must survive, so it panics with the reason.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs-example");
        let roster = Roster::load(&dir.join("federation.toml"))
            .unwrap_or_else(|e| panic!("the example roster does not load: {e}"));
        let keys = KeyBook::from_roster(&roster);
        let mut signers = Vec::new();
        let mut cas = Vec::new();
        for member in roster.members() {
            let key_id = &member.signing_keys[0].key_id;
            let path = dir.join(member.id.as_str()).join("signing.key");
            let key = SigningKey::read(&path, key_id)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            signers.push((member.id.clone(), key));
            cas.extend(member.ca_certs.iter().cloned());
        }
        let matching = MatchingKey::read(&dir.join("gt/matching.key"), 1)
            .unwrap_or_else(|e| panic!("the example matching key does not load: {e}"));
        Fixture {
            dir,
            roster,
            keys,
            signers,
            cas,
            matching,
        }
    })
}

/// `bytes` in a temporary file, for the parsers that read files (the
/// record log, CRL files); removed when dropped.
fn input_file(bytes: &[u8]) -> Option<tempfile::NamedTempFile> {
    let file = tempfile::Builder::new()
        .prefix("enlace-fuzz-")
        .tempfile()
        .ok()?;
    std::fs::write(file.path(), bytes).ok()?;
    Some(file)
}

fn node(id: &str) -> NodeId {
    NodeId::parse(id).unwrap_or_else(|e| panic!("{id}: {e}"))
}

// ---------------------------------------------------------------------------
// 1. Records: the envelope, the body, and the gate.

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
fn resign_record(fx: &Fixture, body: &[u8]) -> Envelope {
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
fn check_verified(fx: &Fixture, envelope: &Envelope, v: &verify::VerifiedRecord) {
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
    if let Some(at) = lifecycle::expires_at(body) {
        let t = Tombstone::of(body, envelope, at, NOW_MS);
        assert_eq!(Tombstone::decode(&t.encode()).as_ref(), Some(&t));
    }
}

// ---------------------------------------------------------------------------
// 2. A Pull batch, and what the replicator does with it before storing.

/// A `PullBatch` from peer `gt` to `hn`: decoded, every record verified
/// (as sent, and signed by the member it names), then taken through the
/// replicator's checks that need no store, in its order
/// (`exchange::sync::apply`: origin, seq window, entitlement, then the
/// series or MLA state carried along the batch, and the tombstone of
/// content that has already expired).
pub fn pull_batch(data: &[u8]) {
    let fx = fixture();
    let Ok(msg) = pb::PullBatch::decode(data) else {
        return;
    };
    let batch = PullBatch::from(msg.clone());
    assert_eq!(pb::PullBatch::from(&batch), msg, "PullBatch conversion");
    let peer = node(PEER);
    let this = node(THIS_NODE);
    let high_water = batch.high_water;
    let mut last_seq = 0u64;
    let mut pinned: Option<u64> = None;
    let mut series: HashMap<String, SeriesState> = HashMap::new();
    let mut mla_states: HashMap<String, MlaState> = HashMap::new();
    for envelope in &batch.records {
        if let Ok(v) = verify::verify(&fx.roster, envelope) {
            check_verified(fx, envelope, &v);
        }
        let resigned = resign_record(fx, &envelope.body);
        let v = match verify::verify(&fx.roster, &resigned) {
            Ok(v) => v,
            Err(_) => {
                pinned.get_or_insert(last_seq);
                continue;
            }
        };
        check_verified(fx, &resigned, &v);
        let seq = v.body.seq;
        if v.body.origin != peer || seq <= last_seq || seq > high_water {
            pinned.get_or_insert(last_seq);
            continue;
        }
        if !v.body.distribution.includes(&this) {
            last_seq = seq;
            continue;
        }
        let admitted = if v.body.kind.is_mla() {
            let key = mla::key(v.body.series_id());
            mla::next(mla_states.get(&key), &v.body).map(|after| {
                mla_states.insert(key, after);
            })
        } else {
            let id = v.body.series_id().to_owned();
            lifecycle::next(series.get(&id), &v.body, Mode::Recipient).map(|after| {
                series.insert(id, after);
            })
        };
        if admitted.is_ok()
            && let Some(at) = lifecycle::expires_at(&v.body)
            && at <= NOW_MS
        {
            let t = Tombstone::of(&v.body, &v.envelope, at, NOW_MS);
            assert_eq!(Tombstone::decode(&t.encode()).as_ref(), Some(&t));
        }
        assert!(seq > last_seq && seq <= high_water);
        last_seq = seq;
    }
    let cursor = pinned.map_or(high_water, |p| p.min(high_water));
    assert!(cursor <= high_water && last_seq <= high_water);
}

// ---------------------------------------------------------------------------
// 3. Checkpoints, witnesses and recovery statements.

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
        }
        1 => {
            let Ok(signed) = SignedCheckpoint::decode(bytes) else {
                return;
            };
            let _ = checkpoint::open(&signed, &fx.keys);
            let resigned = resign_checkpoint(fx, &signed.body);
            let opened = checkpoint::open(&resigned, &fx.keys);
            assert_signed_right(&opened);
            if let Ok(cp) = opened {
                assert_eq!(Checkpoint::decode(&resigned.body), Ok(cp));
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

// ---------------------------------------------------------------------------
// 4. The roster and the node's configuration.

/// A roster file, its relative paths resolved in `certs-example/`.
pub fn roster(data: &[u8]) {
    let fx = fixture();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // NOTE: the roster reads the CA files it names. Only names inside the
    // example directory are let through, so that the fuzzer cannot make it
    // read a device or a file outside the tree.
    if !ca_paths_stay_inside(text) {
        return;
    }
    match Roster::from_toml(text, &fx.dir) {
        Ok(r) => {
            assert!(!r.federation.is_empty());
            let mut keys = 0;
            for m in r.members() {
                assert!(!m.ca_certs.is_empty(), "member {} without a CA", m.id);
                for k in &m.signing_keys {
                    keys += 1;
                    let (owner, found) = r.signing_key(&k.key_id).expect("a key is indexed");
                    assert_eq!(owner.id, m.id);
                    assert_eq!(found.public_key, k.public_key);
                }
            }
            assert_eq!(KeyBook::from_roster(&r).0.len(), keys);
        }
        Err(e) => assert!(!e.problems.is_empty(), "a refusal names no problem"),
    }
}

/// Whether every `ca` entry of a roster text is a relative path without
/// `..` (true when the text does not parse: then nothing is read).
fn ca_paths_stay_inside(text: &str) -> bool {
    let Ok(table) = text.parse::<toml::Table>() else {
        return true;
    };
    let Some(members) = table.get("members").and_then(|m| m.as_array()) else {
        return true;
    };
    members
        .iter()
        .filter_map(|m| m.get("ca").and_then(|c| c.as_array()))
        .flatten()
        .all(|ca| {
            ca.as_str().is_some_and(|p| {
                let p = Path::new(p);
                p.is_relative()
                    && p.components()
                        .all(|c| matches!(c, std::path::Component::Normal(_)))
            })
        })
}

/// A node configuration (`node.toml`), read as if from
/// `/etc/enlace/node.toml` and validated whole. Nothing it names is read.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/enlace/node.toml");
    let raw = match crate::config::parse(text, path) {
        Ok(raw) => raw,
        Err(e) => {
            assert!(!e.problems.is_empty(), "a refusal names no problem");
            return;
        }
    };
    match crate::config::validate::settings(&raw, path, None) {
        Ok(s) => {
            assert_eq!(s.path, path);
            assert!(s.tls_files.roster.is_absolute());
        }
        Err(e) => assert!(!e.problems.is_empty(), "a refusal names no problem"),
    }
}

// ---------------------------------------------------------------------------
// 5. Selectors.

/// The input as a value of every selector kind, under both rule versions:
/// what is accepted normalises to itself, hashes to the token of its
/// normalised form, and `KIND=VALUE` parses to the same.
pub fn selector(data: &[u8]) {
    let fx = fixture();
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    for &kind in SelectorKind::ALL {
        for version in [NormalisationVersion::V1, NormalisationVersion::V2] {
            let Ok(once) = normalise_as(version, kind, value) else {
                continue;
            };
            let twice = normalise_as(version, kind, &once);
            assert_eq!(
                twice.as_ref().map_err(ToString::to_string),
                Ok(&once),
                "{} {version:?} is not idempotent on {value:?}",
                kind.code()
            );
            if version == NormalisationVersion::CURRENT {
                let token = fx.matching.hash(kind, value).expect("accepted once");
                assert_eq!(token, fx.matching.token(kind, &once));
                let arg = crate::records::selector::parse_selector_arg(&format!(
                    "{}={value}",
                    kind.code()
                ));
                assert_eq!(arg.ok(), Some((kind, once.clone())));
            }
        }
    }
    let _ = crate::records::selector::parse_selector_arg(value);
}

// ---------------------------------------------------------------------------
// 6. The record log.

/// The input as a record log file: scanned as at open, every frame that
/// passed its checksum read back, and its compacted form read back equal.
pub fn record_log(data: &[u8]) {
    let Some(file) = input_file(data) else {
        return;
    };
    let mut scanned = Vec::new();
    let log = RecordLog::open(file.path(), data.len() as u64, |s| {
        scanned.push(s);
        Ok(())
    });
    if let Ok(log) = log {
        for s in &scanned {
            let Some(kind) = s.content else { continue };
            let frame = match log.read(s.offset) {
                Ok(f) => f,
                Err(e) => panic!(
                    "frame at {} scanned as {kind:?} but does not read: {e}",
                    s.offset
                ),
            };
            assert_eq!(frame.head, s.head);
            assert_eq!(frame.len, s.len);
            let elsewhere =
                matches!(frame.content, FrameContent::TombstoneElsewhere).then_some(&b"{}"[..]);
            if let Ok(bytes) = record_log::compacted(&frame, elsewhere)
                && let Some(again) = input_file(&bytes)
            {
                let reread = RecordLog::open(again.path(), bytes.len() as u64, |_| Ok(()))
                    .and_then(|l| l.read(0));
                match reread {
                    Ok(f) => {
                        assert_eq!(f.head, frame.head, "compaction changed the head");
                        if let FrameContent::Held(c) = &frame.content {
                            assert_eq!(&f.content, &FrameContent::Held(c.clone()));
                        }
                    }
                    Err(e) => panic!("a compacted frame does not read back: {e}"),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 7. CRLs.

/// The input as one DER CRL, and as a PEM CRL file: parsed, its issuer
/// looked for among the example CAs, and handed to a WebPKI verifier as
/// the node does.
pub fn crl(data: &[u8]) {
    let fx = fixture();
    crl_der(fx, data);
    if let Some(file) = input_file(data)
        && let Ok(crls) = crl::load(file.path())
    {
        for der in &crls {
            assert!(CrlInfo::parse(der).is_ok(), "load let a bad CRL through");
            crl_der(fx, der);
        }
        let mut roots = rustls::RootCertStore::empty();
        for ca in &fx.cas {
            let _ = roots.add(ca.clone());
        }
        let _ = rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            crate::trust::tls::provider(),
        )
        .with_crls(crls)
        .allow_unknown_revocation_status()
        .build();
    }
    for der in CertificateRevocationListDer::pem_slice_iter(data).flatten() {
        crl_der(fx, &der);
    }
}

fn crl_der(fx: &Fixture, der: &[u8]) {
    if let Ok(info) = CrlInfo::parse(der) {
        for r in &info.revoked {
            assert!(info.entry(&r.raw_serial).is_some());
        }
    }
    if let Ok(ca) = crl::signer(der, &fx.cas, "fuzz input") {
        assert!(fx.cas.contains(ca));
    }
}
