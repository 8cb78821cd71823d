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

mod checkpoints;
mod configuration;
mod crls;
mod log_file;
mod oblivious;
mod pull;
mod records;
mod selectors;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustls_pki_types::CertificateDer;

pub use checkpoints::checkpoint;
pub use configuration::{config, roster};
pub use crls::crl;
pub use log_file::record_log;
pub use oblivious::oblivious;
pub use pull::pull_batch;
pub use records::record;
pub use selectors::selector;

use crate::audit::checkpoint::KeyBook;
use crate::records::crypto::SigningKey;
use crate::records::model::NodeId;
use crate::records::selector::MatchingKey;
use crate::trust::roster::Roster;

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
    ("oblivious", oblivious),
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
        let roster = crate::trust::load::chain_of(&dir.join("roster"), None, None)
            .unwrap_or_else(|e| panic!("the example roster chain does not load: {e:?}"))
            .head()
            .version
            .roster
            .as_ref()
            .clone();
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
