//! Black-box crash test of roster adoption: a node approved into a new
//! roster version persists it and is killed with SIGKILL before it brings
//! it into force (the test kill point
//! `ENLACE_TEST_PAUSE_AFTER_ROSTER_PERSIST`, `crate::governance`). It
//! restarts consistent: on the new version, its chain directory verifying
//! from version 1, the proposal adopted, replication going on.

use crate::cli::{enlace, text};
use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{eventually, list_all, publish};
use enlace::records::model::NodeId;
use enlace::service::client::ClientConfig;
use enlace::store::Store;
use enlace::testing::Sandbox;
use enlace::trust::chain::{self, Approval, Signed, Version, dir};
use enlace::wire::pb::v1 as pb;
use enlace::wire::pb::v1::agency_client::AgencyClient;
use tonic::transport::Channel;

const KILL_POINT: &str = "ENLACE_TEST_PAUSE_AFTER_ROSTER_PERSIST";

/// A node process, killed if the test fails before it is stopped.
struct NodeProcess(Child);

impl NodeProcess {
    /// `enlace node run`, its log (standard error) in `log`; with the
    /// kill point set or not.
    fn start(config: &Path, log: &Path, pause_after_persist: bool) -> Self {
        let mut command = enlace();
        command
            .args(["node", "run", "--config"])
            .arg(config)
            .env_remove(KILL_POINT)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("the node's log file"));
        if pause_after_persist {
            command.env(KILL_POINT, "1");
        }
        Self(command.spawn().expect("start the node"))
    }

    /// SIGKILL, and the process reaped.
    fn kill(mut self) {
        self.0.kill().expect("SIGKILL");
        let status = self.0.wait().expect("wait");
        assert!(!status.success(), "killed, not exited: {status:?}");
    }

    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -TERM {pid}");
        self.0.wait().expect("wait")
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An agency client of the node whose client file is `client_toml`;
/// `None` while it is not up.
async fn agency(client_toml: &Path) -> Option<AgencyClient<Channel>> {
    ClientConfig::load(client_toml).ok()?.connect().await.ok()
}

/// The version in force at a node, through its agency API.
async fn in_force(client_toml: &Path) -> Option<pb::RosterStatus> {
    let mut c = agency(client_toml).await?;
    Some(
        c.get_roster(pb::GetRosterRequest {})
            .await
            .ok()?
            .into_inner(),
    )
}

/// A proposal as a node lists it.
async fn proposal(client_toml: &Path, version: &Version) -> Option<pb::RosterProposalStatus> {
    let mut c = agency(client_toml).await?;
    c.list_roster_proposals(pb::ListRosterProposalsRequest {})
        .await
        .ok()?
        .into_inner()
        .proposals
        .into_iter()
        .find(|p| p.id == chain::hex(&version.hash()))
}

async fn approve(client: &mut AgencyClient<Channel>, fed: &Sandbox, by: &str, version: &Version) {
    let approval = Approval::sign(&fed.governance_key(by).unwrap(), &version.hash());
    client
        .approve_roster(pb::ApproveRosterRequest {
            approval: Some(approval.to_pb()),
        })
        .await
        .unwrap_or_else(|s| panic!("{by} approves: {s:?}"));
}

/// The version file a node persisted, decoded; checked to be `version`
/// sealed with valid approvals by exactly `approvers`.
fn persisted(path: &Path, fed: &Sandbox, version: &Version, approvers: &[&str]) -> Signed {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let signed = Signed::decode(&bytes)
        .unwrap_or_else(|r| panic!("{} does not decode: {r}", path.display()));
    assert_eq!(
        signed.version.hash(),
        version.hash(),
        "the approved version"
    );
    assert_eq!(*signed.version.bytes, *version.bytes, "its exact bytes");
    let keys: BTreeSet<Vec<u8>> = signed
        .approvals
        .iter()
        .map(|a| {
            assert_eq!(a.roster_sha256, version.hash(), "approves this version");
            assert!(a.signature_verifies(), "a valid approval");
            a.governance_key.to_vec()
        })
        .collect();
    let expected: BTreeSet<Vec<u8>> = approvers
        .iter()
        .map(|id| fed.governance_key(id).unwrap().public_key().to_vec())
        .collect();
    assert_eq!(keys, expected, "sealed with the approvals of {approvers:?}");
    assert_eq!(signed.approvals.len(), approvers.len(), "each once");
    signed
}

/// `enlace roster verify --chain <dir> --json`, off the runtime's threads
/// (the in-process nodes run on them meanwhile): the versions verified.
async fn verify_chain_dir(dir: PathBuf) -> Vec<(u64, String)> {
    let out = tokio::task::spawn_blocking(move || {
        enlace()
            .args(["roster", "verify", "--json", "--chain"])
            .arg(&dir)
            .output()
            .expect("run enlace")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "roster verify: {}\n{}",
        text(&out.stderr),
        text(&out.stdout)
    );
    let report: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(report["valid"], true, "{report}");
    report["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["hash"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_between_persisting_a_roster_version_and_reloading_restarts_on_it() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn", "sv"])
        .await
        .unwrap();
    let v1 = fed.roster().unwrap();
    assert_eq!(v1.position.version, 1);
    assert_eq!(v1.position.threshold, 2, "2 of 3");
    let (sv_config, sv_client, sv_data) = {
        let m = fed.member("sv").unwrap();
        (m.config_path(), m.client_path(), m.data_dir())
    };
    let sv_own = dir::adopted_dir(&sv_data);
    // The file watcher would notice the persisted version in sv's own
    // chain directory and bring it into force by a reload of its own
    // (every 5 s by default), closing the window the kill point opens:
    // SIGHUP only while sv pauses.
    let sv_toml = std::fs::read_to_string(&sv_config).unwrap();
    std::fs::write(&sv_config, format!("{sv_toml}\n[reload]\npoll_ms = 0\n")).unwrap();
    drop(fed.take_listeners("sv"));

    let gt = fed.start("gt").await.unwrap();
    let hn = fed.start("hn").await.unwrap();
    let first_log = fed.dir.join("sv-1.log");
    let sv = NodeProcess::start(&sv_config, &first_log, true);
    let up = eventually("sv is up", || in_force(&sv_client)).await;
    assert_eq!(up.version, 1);
    // Before any adoption, sv's own chain holds version 1 alone.
    assert!(sv_own.join("1.roster").exists());
    assert!(!sv_own.join("2.roster").exists());

    // gt proposes version 2 (sv renamed); gt and hn approve it: 2 of 3
    // of version 1 and of version 2.
    let text_v1 = std::fs::read_to_string(fed.dir.join("federation.toml")).unwrap();
    let text_v2 = text_v1.replace("Sandbox member sv", "El Salvador");
    assert_ne!(text_v1, text_v2);
    let v2 = fed
        .compile_roster(&text_v2, 2, Some(v1.position.hash))
        .unwrap();
    assert_eq!(v2.roster.position.threshold, 2);
    let mut g = fed.client("gt").await.unwrap();
    let proposed = g
        .propose_roster(pb::ProposeRosterRequest {
            version: v2.bytes.to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(proposed.state, "pending", "{proposed:?}");
    approve(&mut g, &fed, "gt", &v2).await;
    let hn_client = fed.member("hn").unwrap().client_path();
    eventually("hn holds the proposal", || async {
        proposal(&hn_client, &v2)
            .await
            .filter(|p| p.state == "pending")
    })
    .await;
    let mut h = fed.client("hn").await.unwrap();
    approve(&mut h, &fed, "hn", &v2).await;
    for n in [&gt, &hn] {
        eventually(&format!("{} adopts version 2", n.id), || async {
            (n.components.trust.roster().position.hash == v2.hash()).then_some(())
        })
        .await;
    }

    // sv receives the proposal and both approvals, persists version 2 and
    // stops at the kill point: the version is on disk, not in force.
    eventually("sv persists version 2", || async {
        sv_own.join("2.roster").exists().then_some(())
    })
    .await;
    eventually("sv stops at the kill point", || async {
        std::fs::read_to_string(&first_log)
            .ok()
            .filter(|log| log.contains("test kill point"))
            .map(|_| ())
    })
    .await;
    let paused = in_force(&sv_client).await.expect("sv answers while paused");
    assert_eq!(paused.version, 1, "persisted, not brought into force");
    assert_eq!(paused.sha256, chain::hex(&v1.position.hash));
    let before_kill = std::fs::read(sv_own.join("2.roster")).unwrap();
    persisted(&sv_own.join("2.roster"), &fed, &v2, &["gt", "hn"]);

    sv.kill();

    // What sv finds on disk at its next start: the operator's chain and
    // its own, pooled and verified from version 1, end on version 2.
    assert_eq!(
        std::fs::read(sv_own.join("2.roster")).unwrap(),
        before_kill,
        "the file is as it was persisted"
    );
    let walk = enlace::trust::load::chain_of(&fed.chain_dir(), Some(&sv_data), None)
        .unwrap_or_else(|p| panic!("sv's chain: {}", p.join("; ")));
    assert!(walk.stopped.is_none(), "{:?}", walk.stopped);
    assert_eq!(walk.chain.len(), 2);
    assert_eq!(walk.head().version.hash(), v2.hash());
    chain::verify_successor(&v1, walk.head(), Some(enlace::clock::now_ms()))
        .expect("version 2 follows version 1");

    // sv restarts without the kill point (and with the configuration it
    // had before the test touched it).
    std::fs::write(&sv_config, &sv_toml).unwrap();
    let second_log = fed.dir.join("sv-2.log");
    let sv = NodeProcess::start(&sv_config, &second_log, false);
    let restarted = eventually("sv is up again", || in_force(&sv_client)).await;
    assert_eq!(restarted.version, 2, "sv comes up on version 2");
    assert_eq!(restarted.sha256, chain::hex(&v2.hash()));
    assert_eq!(*restarted.version_bytes, *v2.bytes);
    let sv_entry = restarted
        .members
        .iter()
        .find(|m| m.id == "sv")
        .expect("sv is listed");
    assert_eq!(sv_entry.name, "El Salvador");
    let listed = eventually("sv lists version 2 as adopted", || async {
        proposal(&sv_client, &v2)
            .await
            .filter(|p| p.state == "adopted")
    })
    .await;
    assert_eq!(listed.approved_by, vec!["gt", "hn"], "{listed:?}");
    assert_eq!(listed.version, 2);
    // Its own chain directory verifies from version 1 by itself, and the
    // persisted file is the one sv stands on.
    let verified = verify_chain_dir(sv_own.clone()).await;
    assert_eq!(
        verified,
        vec![
            (1, chain::hex(&v1.position.hash)),
            (2, chain::hex(&v2.hash()))
        ]
    );
    persisted(&sv_own.join("2.roster"), &fed, &v2, &["gt", "hn"]);

    // Replication goes on both ways.
    let from_gt = publish(&mut g, "alerta después del reinicio", &[])
        .await
        .record_id;
    eventually("gt's record reaches sv", || async {
        let mut c = agency(&sv_client).await?;
        list_all(&mut c)
            .await
            .iter()
            .any(|r| r.record_id == from_gt)
            .then_some(())
    })
    .await;
    let mut s = agency(&sv_client).await.expect("sv's agency API");
    let from_sv = publish(&mut s, "alerta desde El Salvador", &[])
        .await
        .record_id;
    eventually("sv's record reaches gt", || async {
        list_all(&mut g.clone())
            .await
            .iter()
            .any(|r| r.record_id == from_sv)
            .then_some(())
    })
    .await;
    drop(s);

    // sv's audit log, read from its store once it stopped: the chain
    // survived the kill, and both starts are on record.
    assert!(sv.terminate().success(), "sv stops cleanly");
    let store = Store::open(&sv_data, &NodeId::parse("sv").unwrap()).unwrap();
    let mut verifier = enlace::audit::verify::Verifier::new(enlace::audit::verify::Evidence {
        node: NodeId::parse("sv").unwrap(),
        anchor: None,
        own: Vec::new(),
        peers: Vec::new(),
        keys: Default::default(),
        recoveries: Vec::new(),
        retention: None,
        now_ms: enlace::clock::now_ms(),
    });
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        let batch = store.audit().entries(after, 1000).unwrap();
        let Some(last) = batch.last().map(|e| e.n) else {
            break;
        };
        for e in &batch {
            verifier.push(e);
            entries.push(enlace::audit::Entry::decode(&e.body).unwrap());
        }
        after = last;
    }
    assert!(
        verifier.finish().holds(),
        "sv's audit chain survived the kill"
    );
    let count = |action: &str| entries.iter().filter(|e| e.action == action).count();
    assert_eq!(count("node_started"), 2, "both starts");
    // The adoption's own entry is written after the reload that the kill
    // prevented; the restart puts the version in force on record instead:
    // its start's fingerprints name the roster version, so the change
    // since the previous start is a `config_changed` entry naming it.
    let v2_name = format!("roster:2:{}", &enlace::trust::chain::hex(&v2.hash())[..32]);
    let changed: Vec<_> = entries
        .iter()
        .filter(|e| e.action == "config_changed")
        .collect();
    assert!(
        changed.iter().any(|e| e.ids.contains(&v2_name)),
        "the restart records roster version 2 in force: {changed:?}"
    );
    drop(store);
    gt.stop().await.unwrap();
    hn.stop().await.unwrap();
}
