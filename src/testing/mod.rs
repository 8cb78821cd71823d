//! A throwaway federation on this machine: PKI, roster, configs and
//! in-process nodes in a temporary directory.
//!
//! `enlace demo` and the integration tests both use it, so the demo shows
//! exactly what the tests check. Nothing here is a shortcut: every file is
//! written to disk and loaded back through [`crate::trust::load::settings`], every
//! node is a real [`Node`] on real sockets (`127.0.0.1:0`) with real mTLS.
//!
//! [`fuzz`] holds the bodies of the fuzz targets (`docs/fuzzing.md`), which
//! the corpus replay test (`tests/corpora.rs`) runs too.
//!
//! Layout of the directory (the same as `certs-example/`):
//!
//! ```text
//! federation.toml
//! <id>/ca.crt  ca.key            the member's federation CA
//! <id>/node.crt node.key         its node certificate (SPIFFE id, 127.0.0.1, localhost)
//! <id>/signing.key               Ed25519 record-signing key
//! <id>/matching.key              the federation's matching key (the same for all)
//! <id>/agency-ca.crt agency-ca.key   its local agency CA
//! <id>/client.crt client.key     an agency client ("<id>-operator")
//! <id>/node.toml client.toml
//! <id>/data/                     the store
//! ```

pub mod fuzz;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::components::{Components, NodeError};
use crate::node::{Listeners, Node};
use crate::records::crypto::{self, SigningKey};
use crate::records::model::NodeId;
use crate::service::client::ClientConfig;
use crate::trust::chain;
use crate::trust::pki::{self, Profile};
use crate::trust::roster::RosterSource;
use crate::wire::pb::v1::agency_client::AgencyClient;

/// Validity of sandbox certificates, in days.
const DAYS: u32 = 365;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("sandbox I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error(transparent)]
    Crypto(#[from] crypto::CryptoError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Client(#[from] crate::service::client::ClientError),
    #[error("{0}")]
    Other(String),
}

/// One member of the sandbox federation.
#[derive(Debug)]
pub struct SandboxMember {
    pub id: NodeId,
    pub dir: PathBuf,
    pub peer_addr: SocketAddr,
    pub agency_addr: SocketAddr,
    /// The metrics listener (`[metrics] listen`).
    pub metrics_addr: SocketAddr,
    listeners: Option<Listeners>,
}

impl SandboxMember {
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("node.toml")
    }
    pub fn client_path(&self) -> PathBuf {
        self.dir.join("client.toml")
    }
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }
}

/// A federation in a directory, with handles to start its nodes.
#[derive(Debug)]
pub struct Sandbox {
    pub federation: String,
    pub dir: PathBuf,
    pub members: BTreeMap<NodeId, SandboxMember>,
    /// The clock the nodes started from now on read (the system's unless
    /// a test sets its own).
    pub clock: crate::clock::SharedClock,
    _temp: Option<tempfile::TempDir>,
}

/// A node started by [`Sandbox::start`].
pub struct RunningNode {
    pub id: NodeId,
    /// The running node's components.
    pub components: Components,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), NodeError>>,
}

impl std::fmt::Debug for RunningNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningNode")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl RunningNode {
    /// Asks the node to shut down and waits until its store is closed.
    pub async fn stop(mut self) -> Result<(), NodeError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        drop(self.components);
        match self.handle.await {
            Ok(r) => r,
            Err(e) => Err(NodeError::Server(format!("node task failed: {e}"))),
        }
    }
}

impl Sandbox {
    /// Makes a federation of `ids` in a new temporary directory (removed
    /// when the sandbox is dropped).
    pub async fn create(federation: &str, ids: &[&str]) -> Result<Self, SandboxError> {
        let temp = tempfile::Builder::new().prefix("enlace-").tempdir()?;
        let mut sandbox = Self::create_in(federation, ids, temp.path()).await?;
        sandbox._temp = Some(temp);
        Ok(sandbox)
    }

    /// Makes a federation of `ids` in `dir`.
    pub async fn create_in(
        federation: &str,
        ids: &[&str],
        dir: &Path,
    ) -> Result<Self, SandboxError> {
        let mut members = BTreeMap::new();
        // One matching key for the whole federation: every member must turn
        // the same identifier into the same token.
        let (_, matching_key) = crate::records::selector::MatchingKey::generate()
            .map_err(|e| SandboxError::Other(e.to_string()))?;
        let mut roster =
            format!("# Sandbox federation, generated by enlace.\nfederation = \"{federation}\"\n");
        for raw_id in ids {
            let id = NodeId::parse(raw_id).map_err(SandboxError::Other)?;
            let mdir = dir.join(id.as_str());
            std::fs::create_dir_all(&mdir)?;
            // Bound now so that the roster can name the real ports.
            let peer = TcpListener::bind("127.0.0.1:0").await?;
            let agency = TcpListener::bind("127.0.0.1:0").await?;
            let metrics = TcpListener::bind("127.0.0.1:0").await?;
            let peer_addr = peer.local_addr()?;
            let agency_addr = agency.local_addr()?;
            let metrics_addr = metrics.local_addr()?;

            let ca = pki::new_ca(
                &format!("{id} federation CA"),
                Some(&format!("enlace sandbox {id}")),
                DAYS,
            )?;
            write(&mdir, "ca.crt", &ca.cert_pem, false)?;
            write(&mdir, "ca.key", &ca.key_pem, true)?;
            let node = pki::issue(
                &ca.cert_pem,
                &ca.key_pem,
                &Profile::Node {
                    federation: federation.to_owned(),
                    node_id: id.clone(),
                    dns_names: vec!["localhost".into()],
                    ip_addresses: vec![
                        "127.0.0.1"
                            .parse()
                            .map_err(|_| SandboxError::Other("ip".into()))?,
                    ],
                },
                DAYS,
            )?;
            write(&mdir, "node.crt", &node.cert_pem, false)?;
            write(&mdir, "node.key", &node.key_pem, true)?;
            let agency_ca = pki::new_ca(&format!("{id} agency CA"), None, DAYS)?;
            write(&mdir, "agency-ca.crt", &agency_ca.cert_pem, false)?;
            write(&mdir, "agency-ca.key", &agency_ca.key_pem, true)?;
            let client = pki::issue(
                &agency_ca.cert_pem,
                &agency_ca.key_pem,
                &Profile::Client {
                    name: format!("{id}-operator"),
                },
                DAYS,
            )?;
            write(&mdir, "client.crt", &client.cert_pem, false)?;
            write(&mdir, "client.key", &client.key_pem, true)?;
            write(&mdir, "matching.key", &matching_key, true)?;
            let key_id = format!("{id}-sandbox-1");
            let (signing, pem) = SigningKey::generate(&key_id)?;
            write(&mdir, "signing.key", &pem, true)?;
            let (governance, pem) = SigningKey::generate("governance")?;
            write(&mdir, "governance.key", &pem, true)?;
            let (oprf, file) = crate::records::oprf::SecretKey::generate(1)
                .map_err(|e| SandboxError::Other(e.to_string()))?;
            write(&mdir, "oprf-1.key", &file, true)?;
            let (_, file) = crate::records::sealed::LocalKey::generate()
                .map_err(|e| SandboxError::Other(e.to_string()))?;
            write(&mdir, "identifiers.key", &file, true)?;

            let _ = write!(
                roster,
                "\n[[members]]\nid = \"{id}\"\nname = \"Sandbox member {id}\"\ncountry = \"{country}\"\nrole = \"member\"\nendpoint = \"{peer_addr}\"\nca = [\"{id}/ca.crt\"]\ngovernance_keys = [\"{gk}\"]\n\n[[members.signing_keys]]\nkey_id = \"{key_id}\"\npublic_key = \"{pk}\"\n\n[[members.oprf_keys]]\nepoch = 1\npublic_key = \"{ok}\"\n",
                country = country_of(&id),
                pk = crypto::encode_public_key(signing.public_key()),
                gk = crypto::encode_public_key(governance.public_key()),
                ok = base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    oprf.public().key
                ),
            );
            let node_toml = format!(
                "[node]\nid = \"{id}\"\ndata_dir = \"data\"\n\n[federation]\nchain = \"../roster\"\n\n[listen]\npeer = \"{peer_addr}\"\nagency = \"{agency_addr}\"\n\n[tls]\ncert = \"node.crt\"\nkey = \"node.key\"\nagency_client_ca = \"agency-ca.crt\"\n\n[signing]\nkey = \"signing.key\"\nkey_id = \"{key_id}\"\n\n[sync]\nbackoff_min_ms = 50\nbackoff_max_ms = 1000\n\n[matching]\nkey = \"matching.key\"\nepoch = 1\n\n[oprf]\nkeys = [\"oprf-1.key\"]\nidentifiers_key = \"identifiers.key\"\n\n[records]\nexpiry_check_ms = 100\n\n[query]\nreveal = \"case_refs\"\ndeadline_ms = 3000\n\n[agency]\ndefault_role = \"reader\"\n\n[[agency.clients]]\nname = \"{id}-operator\"\nrole = \"admin\"\n\n[agency.contact]\nunit = \"Unidad de Cooperación Internacional ({id})\"\nemail = \"cooperacion@{id}.example\"\n\n[metrics]\nlisten = \"{metrics_addr}\"\n"
            );
            write(&mdir, "node.toml", &node_toml, false)?;
            let client_toml = format!(
                "endpoint = \"{agency_addr}\"\ncert = \"client.crt\"\nkey = \"client.key\"\nca = \"ca.crt\"\n"
            );
            write(&mdir, "client.toml", &client_toml, false)?;
            members.insert(
                id.clone(),
                SandboxMember {
                    id,
                    dir: mdir,
                    peer_addr,
                    agency_addr,
                    metrics_addr,
                    listeners: Some(Listeners {
                        peer,
                        agency,
                        metrics: Some(metrics),
                    }),
                },
            );
        }
        write(dir, "federation.toml", &roster, false)?;
        let sandbox = Self {
            federation: federation.to_owned(),
            dir: dir.to_owned(),
            members,
            clock: crate::clock::system(),
            _temp: None,
        };
        sandbox.sign_roster()?;
        Ok(sandbox)
    }

    /// The operator chain directory every member's configuration names.
    pub fn chain_dir(&self) -> PathBuf {
        self.dir.join("roster")
    }

    /// Makes `federation.toml` version 1 of a new chain, approved by every
    /// voting member, replacing the chain (for a test that changes the
    /// roster before any node starts).
    pub fn sign_roster(&self) -> Result<chain::Signed, SandboxError> {
        let text = std::fs::read_to_string(self.dir.join("federation.toml"))?;
        self.sign_roster_into(&text, &self.chain_dir())
    }

    /// Makes roster source `text` version 1 of a new chain in `dir`,
    /// approved by every voting member (replacing what `dir` held).
    pub fn sign_roster_into(&self, text: &str, dir: &Path) -> Result<chain::Signed, SandboxError> {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        let source = RosterSource::parse(text, &self.dir, &self.dir.join("federation.toml"))
            .map_err(|e| SandboxError::Other(e.to_string()))?;
        let (bytes, roster) = source
            .compile(1, None, self.clock.now_ms())
            .map_err(|e| SandboxError::Other(e.to_string()))?;
        let voters: Vec<String> = roster.voting_members().map(|m| m.id.to_string()).collect();
        let voters: Vec<&str> = voters.iter().map(String::as_str).collect();
        self.approve_and_write(bytes, &voters, dir)
    }

    /// Makes `federation.toml` the next version of the chain (after the
    /// newest in the chain directory), approved by `approvers`' governance
    /// keys, and writes it into the chain directory. A node picks it up
    /// at its next reload.
    pub fn next_roster_version(&self, approvers: &[&str]) -> Result<chain::Signed, SandboxError> {
        let head = self.roster()?;
        let source = RosterSource::load(&self.dir.join("federation.toml"))
            .map_err(|e| SandboxError::Other(e.to_string()))?;
        let (bytes, _) = source
            .compile(
                head.position.version + 1,
                Some(head.position.hash),
                self.clock.now_ms(),
            )
            .map_err(|e| SandboxError::Other(e.to_string()))?;
        self.approve_and_write(bytes, approvers, &self.chain_dir())
    }

    /// Roster source `text` (with paths relative to the sandbox
    /// directory) compiled as version `version` after the version whose
    /// hash is `previous`: the bytes of a proposal.
    pub fn compile_roster(
        &self,
        text: &str,
        version: u64,
        previous: Option<[u8; 32]>,
    ) -> Result<chain::Version, SandboxError> {
        let source = RosterSource::parse(text, &self.dir, &self.dir.join("federation.toml"))
            .map_err(|e| SandboxError::Other(e.to_string()))?;
        let (bytes, _) = source
            .compile(version, previous, self.clock.now_ms())
            .map_err(|e| SandboxError::Other(e.to_string()))?;
        chain::Version::parse(bytes).map_err(|e| SandboxError::Other(e.to_string()))
    }

    /// Makes version 1 of the chain list `founders` only, of the members
    /// created (the others join later, by quorum). Returns the roster
    /// source text with every member created, from which to propose.
    pub fn found(&self, founders: &[&str]) -> Result<String, SandboxError> {
        let path = self.dir.join("federation.toml");
        let full = std::fs::read_to_string(&path)?;
        let mut v1 = full.clone();
        for id in self.members.keys() {
            if !founders.contains(&id.as_str()) {
                v1 = Self::without_member(&v1, id.as_str());
            }
        }
        std::fs::write(&path, &v1)?;
        self.sign_roster()?;
        Ok(full)
    }

    /// Gives member `id` only the anchor `hash` and member `peer`'s
    /// endpoint, with an empty chain directory: at its start it fetches
    /// the chain from `peer` and verifies it from the anchor.
    pub fn anchor_only(&self, id: &str, hash: &[u8; 32], peer: &str) -> Result<(), SandboxError> {
        let dir = self.dir.join(format!("roster-{id}"));
        std::fs::create_dir_all(&dir)?;
        let config = self.member(id)?.config_path();
        let text = std::fs::read_to_string(&config)?.replace(
            "chain = \"../roster\"",
            &format!(
                "chain = \"../roster-{id}\"\nanchor = \"sha256:{}\"",
                chain::hex(hash)
            ),
        );
        std::fs::write(&config, text)?;
        let endpoint = self.member(peer)?.peer_addr;
        self.set_peer_endpoint(id, peer, endpoint)
    }

    /// The roster source text without the block of member `id`.
    pub fn without_member(text: &str, id: &str) -> String {
        text.split("\n[[members]]\n")
            .filter(|block| !block.contains(&format!("id = \"{id}\"")))
            .collect::<Vec<_>>()
            .join("\n[[members]]\n")
    }

    fn approve_and_write(
        &self,
        bytes: Vec<u8>,
        approvers: &[&str],
        dir: &Path,
    ) -> Result<chain::Signed, SandboxError> {
        let version =
            chain::Version::parse(bytes).map_err(|e| SandboxError::Other(e.to_string()))?;
        let mut approvals = Vec::new();
        for id in approvers {
            let key = self.governance_key(id)?;
            approvals.push(chain::Approval::sign(&key, &version.hash()));
        }
        let signed = chain::seal(&version, approvals);
        chain::dir::write(dir, &signed, chain::dir::Access::Shared).map_err(SandboxError::Other)?;
        Ok(signed)
    }

    /// Member `id`'s governance key.
    pub fn governance_key(&self, id: &str) -> Result<SigningKey, SandboxError> {
        let dir = self
            .members
            .values()
            .find(|m| m.id.as_str() == id)
            .map(|m| m.dir.clone())
            .unwrap_or_else(|| self.dir.join(id));
        Ok(SigningKey::load(&dir.join("governance.key"), "governance")?)
    }

    /// The newest version in the operator chain directory, verified.
    pub fn roster(&self) -> Result<crate::trust::roster::Roster, SandboxError> {
        let walk = crate::trust::load::chain_of(&self.chain_dir(), None, None)
            .map_err(|p| SandboxError::Other(p.join("; ")))?;
        Ok(walk.head().version.roster.as_ref().clone())
    }

    pub fn member(&self, id: &str) -> Result<&SandboxMember, SandboxError> {
        let id = NodeId::parse(id).map_err(SandboxError::Other)?;
        self.members
            .get(&id)
            .ok_or_else(|| SandboxError::Other(format!("{id} is not in the sandbox")))
    }

    /// Starts member `id` in this process. The first start uses the
    /// listeners bound at creation; a restart binds the same addresses again.
    pub async fn start(&mut self, id: &str) -> Result<RunningNode, SandboxError> {
        let nid = NodeId::parse(id).map_err(SandboxError::Other)?;
        let member = self
            .members
            .get_mut(&nid)
            .ok_or_else(|| SandboxError::Other(format!("{id} is not in the sandbox")))?;
        crate::exchange::bootstrap::chain_from_peers(&member.config_path(), None)
            .await
            .map_err(SandboxError::Other)?;
        let settings = crate::trust::load::settings(&member.config_path(), None)?;
        let listeners = match member.listeners.take() {
            Some(l) => l,
            None => {
                Listeners::bind(member.peer_addr, member.agency_addr)
                    .await?
                    .with_metrics(settings.metrics_listen)
                    .await?
            }
        };
        let node = Node::open_with_clock(settings, self.clock.clone())?;
        let components = node.components().clone();
        let (tx, rx) = oneshot::channel();
        let handle = tokio::spawn(node.run(listeners, async {
            let _ = rx.await;
        }));
        Ok(RunningNode {
            id: nid,
            components,
            stop: Some(tx),
            handle,
        })
    }

    /// Opens member `id`'s components without running its node: for the
    /// components' own tests, which drive one component and look at the
    /// store. The store stays open until every clone is dropped.
    pub fn components(&self, id: &str) -> Result<Components, SandboxError> {
        let nid = NodeId::parse(id).map_err(SandboxError::Other)?;
        let member = self
            .members
            .get(&nid)
            .ok_or_else(|| SandboxError::Other(format!("{id} is not in the sandbox")))?;
        let settings = crate::trust::load::settings(&member.config_path(), None)?;
        Ok(Components::open(settings, self.clock.clone())?)
    }

    /// Takes the listeners bound for member `id` at creation, to serve
    /// something else on its addresses (a test's stand-in peer), or to free
    /// the ports for a node run as a separate process.
    pub fn take_listeners(&mut self, id: &str) -> Option<Listeners> {
        let id = NodeId::parse(id).ok()?;
        self.members.get_mut(&id)?.listeners.take()
    }

    /// Makes member `node` dial `peer` at `addr` instead of the roster's
    /// endpoint (a test proxy in between, say). Takes effect at its next start.
    pub fn set_peer_endpoint(
        &self,
        node: &str,
        peer: &str,
        addr: SocketAddr,
    ) -> Result<(), SandboxError> {
        let path = self.member(node)?.config_path();
        let mut text = std::fs::read_to_string(&path)?;
        let _ = write!(
            text,
            "\n[[sync.peers]]\nid = \"{peer}\"\nendpoint = \"{addr}\"\n"
        );
        std::fs::write(&path, text)?;
        Ok(())
    }

    /// An agency client of member `id`.
    pub async fn client(
        &self,
        id: &str,
    ) -> Result<AgencyClient<tonic::transport::Channel>, SandboxError> {
        let cfg = ClientConfig::load(&self.member(id)?.client_path())?;
        Ok(cfg.connect().await?)
    }
}

/// A valid alert for demonstrations and tests: a possible victim of
/// trafficking for sexual exploitation, HN → GT → MX, TLP:AMBER, H1.
pub fn sample_alert(summary: &str) -> crate::wire::pb::v1::Alert {
    use crate::records::vocabulary::{
        AlertType, Exploitation, HandlingCode, Offence, Tlp, TraffickingAct,
    };
    crate::wire::pb::v1::Alert {
        summary: summary.into(),
        language: "es".into(),
        r#type: AlertType::PossibleVictim.wire(),
        offence: Offence::Trafficking.wire(),
        trafficking: Some(crate::wire::pb::v1::TraffickingElements {
            acts: vec![
                TraffickingAct::Recruitment.wire(),
                TraffickingAct::Transportation.wire(),
            ],
            exploitation: vec![Exploitation::Sexual.wire()],
            ..Default::default()
        }),
        origin_countries: vec!["HN".into()],
        transit_countries: vec!["GT".into()],
        destination_countries: vec!["MX".into()],
        handling: Some(crate::wire::pb::v1::Handling {
            code: HandlingCode::H1.wire(),
            condition: String::new(),
        }),
        tlp: Tlp::Amber.wire(),
        ..Default::default()
    }
}

fn write(dir: &Path, name: &str, contents: &str, private: bool) -> Result<(), SandboxError> {
    let path = dir.join(name);
    if private {
        crypto::write_private_file(&path, contents.as_bytes(), true)?;
    } else {
        crypto::write_public_file(&path, contents.as_bytes(), true)?;
    }
    Ok(())
}

/// A plausible ISO country for the usual member ids; "XX" otherwise.
fn country_of(id: &NodeId) -> String {
    let head = id
        .as_str()
        .split('-')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    if head.len() == 2 { head } else { "XX".into() }
}
