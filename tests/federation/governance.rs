//! Roster governance on real nodes: a proposal published by one member,
//! approved through the nodes (online) and from files (offline), adopted
//! by every node by itself once both thresholds are held, without a
//! restart; the refusals, each with its reason on record; a conflict that
//! halts adoption; a node that was offline catching up in order.

use crate::common;

use common::{eventually, list_all, publish};
use enlace::audit::Action;
use enlace::node::Components;
use enlace::publish::Change;
use enlace::records::roster::RosterProposal;
use enlace::testing::Sandbox;
use enlace::trust::chain::{self, Approval, Version, dir};
use enlace::wire::pb::v1 as pb;
use enlace::wire::pb::v1::agency_client::AgencyClient;
use tonic::transport::Channel;

type Client = AgencyClient<Channel>;

/// A sandbox whose version 1 lists `members` only (of those created).
async fn federation(created: &[&str], members: &[&str]) -> (Sandbox, String) {
    let fed = Sandbox::create("test-fed", created).await.unwrap();
    let full = fed.found(members).unwrap();
    (fed, full)
}

async fn propose(client: &mut Client, version: &Version) -> pb::RosterProposalStatus {
    client
        .propose_roster(pb::ProposeRosterRequest {
            version: version.bytes.to_vec(),
        })
        .await
        .unwrap()
        .into_inner()
}

async fn approve(
    client: &mut Client,
    fed: &Sandbox,
    by: &str,
    version: &Version,
) -> Result<pb::RosterProposalStatus, tonic::Status> {
    let approval = Approval::sign(&fed.governance_key(by).unwrap(), &version.hash());
    client
        .approve_roster(pb::ApproveRosterRequest {
            approval: Some(approval.to_pb()),
        })
        .await
        .map(|r| r.into_inner())
}

async fn proposal(client: &mut Client, version: &Version) -> Option<pb::RosterProposalStatus> {
    client
        .list_roster_proposals(pb::ListRosterProposalsRequest {})
        .await
        .ok()?
        .into_inner()
        .proposals
        .into_iter()
        .find(|p| p.id == chain::hex(&version.hash()))
}

/// What a compromised member does: publishes `change` past its own agency
/// API's checks (every receiver checks again).
async fn publish_unchecked(node: &Components, change: Change) {
    node.publisher
        .apply_change(change, false, "test")
        .await
        .unwrap();
}

/// Waits until `node` has `version` in force.
async fn adopted(node: &Components, version: &Version) {
    eventually(
        &format!("{} adopts version {}", node.id, version.number()),
        || async { (node.trust.roster().position.hash == version.hash()).then_some(()) },
    )
    .await;
}

fn entries(node: &Components, action: Action) -> Vec<enlace::audit::Entry> {
    common::audit_log(node)
        .into_iter()
        .filter(|e| e.action == action.code())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_joins_by_quorum_and_every_node_adopts_it_without_a_restart() {
    common::init_tracing();
    let (mut fed, full) = federation(&["gt", "hn", "sv", "cr"], &["gt", "hn", "sv"]).await;
    let v1 = fed.roster().unwrap();
    assert_eq!(v1.position.threshold, 2, "2 of 3");
    let gt = fed.start("gt").await.unwrap();
    let hn = fed.start("hn").await.unwrap();
    let sv = fed.start("sv").await.unwrap();
    let mut g = fed.client("gt").await.unwrap();
    let mut h = fed.client("hn").await.unwrap();

    // gt proposes version 2 with cr (4 voters: its threshold is 3).
    let v2 = fed
        .compile_roster(&full, 2, Some(v1.position.hash))
        .unwrap();
    assert_eq!(v2.roster.position.threshold, 3);
    let proposed = propose(&mut g, &v2).await;
    assert_eq!(proposed.state, "pending", "{proposed:?}");
    assert_eq!(proposed.version, 2);
    assert!(proposed.approved_by.is_empty());
    // It travels: hn holds it too, as pending.
    eventually("hn holds the proposal", || async {
        proposal(&mut h.clone(), &v2)
            .await
            .filter(|p| p.state == "pending")
    })
    .await;

    // gt approves; approving again with the same key counts once.
    let once = approve(&mut g, &fed, "gt", &v2).await.unwrap();
    assert_eq!(once.approved_by, vec!["gt"]);
    let twice = approve(&mut g, &fed, "gt", &v2).await.unwrap();
    assert_eq!(twice.approved_by, vec!["gt"], "the same key counts once");
    // One approval of three: not adopted.
    assert_eq!(gt.components.trust.roster().position.version, 1);

    // hn approves through its own node: 2 of version 1's 3, but only 2 of
    // version 2's 4 (it needs 3).
    eventually("hn holds gt's approval", || async {
        proposal(&mut h.clone(), &v2)
            .await
            .filter(|p| p.approved_by == vec!["gt"])
    })
    .await;
    let two = approve(&mut h, &fed, "hn", &v2).await.unwrap();
    assert_eq!(two.current_approvals, 2);
    assert_eq!(two.next_approvals, 2);
    assert_eq!(two.state, "pending", "{two:?}");
    assert_eq!(hn.components.trust.roster().position.version, 1);

    // cr, not a member yet, signs offline; gt submits its approval.
    let from_cr = Approval::sign(&fed.governance_key("cr").unwrap(), &v2.hash());
    g.approve_roster(pb::ApproveRosterRequest {
        approval: Some(from_cr.to_pb()),
    })
    .await
    .unwrap();
    for n in [&gt, &hn, &sv] {
        adopted(&n.components, &v2).await;
        let own = dir::adopted_dir(&fed.member(n.id.as_str()).unwrap().data_dir());
        assert!(own.join("2.roster").exists(), "{} persisted it", n.id);
        eventually("nothing pending", || async {
            (n.components.governor.pending() == 0).then_some(())
        })
        .await;
    }
    let at_gt = proposal(&mut g, &v2).await.unwrap();
    assert_eq!(at_gt.state, "adopted");
    assert_eq!(at_gt.approved_by, vec!["cr", "gt", "hn"]);
    // On record: the proposal, the approvals, the adoption.
    assert_eq!(entries(&gt.components, Action::RosterProposed).len(), 1);
    assert_eq!(entries(&gt.components, Action::RosterApproved).len(), 2);
    let adoption = eventually("sv audits its adoption", || async {
        Some(entries(&sv.components, Action::RosterAdopted)).filter(|e| !e.is_empty())
    })
    .await;
    assert_eq!(adoption.len(), 1, "once");
    assert!(
        adoption[0].result.contains("version 2") && adoption[0].result.contains("cr, gt, hn"),
        "{:?}",
        adoption[0]
    );

    // cr starts with only version 2's hash (its anchor) and gt's
    // endpoint: it fetches the chain from gt, verifies it from the
    // anchor, and joins; its alerts are accepted.
    fed.anchor_only("cr", &v2.hash(), "gt").unwrap();
    let cr = fed.start("cr").await.unwrap();
    assert_eq!(cr.components.trust.roster().position.hash, v2.hash());
    let cr_own = dir::adopted_dir(&fed.member("cr").unwrap().data_dir());
    assert!(cr_own.join("2.roster").exists(), "fetched and persisted");
    let mut c = fed.client("cr").await.unwrap();
    let from_cr = publish(&mut c, "alerta desde Costa Rica", &[])
        .await
        .record_id;
    for client in [&g, &h] {
        eventually("cr's alert is accepted", || async {
            list_all(&mut client.clone())
                .await
                .iter()
                .any(|r| r.record_id == from_cr)
                .then_some(())
        })
        .await;
    }
    for n in [gt, hn, sv, cr] {
        n.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_and_approvals_that_cannot_follow_are_refused_with_their_reason() {
    common::init_tracing();
    let (mut fed, full) = federation(&["gt", "hn", "sv"], &["gt", "hn", "sv"]).await;
    let v1 = fed.roster().unwrap();
    let gt = fed.start("gt").await.unwrap();
    let hn = fed.start("hn").await.unwrap();
    let mut g = fed.client("gt").await.unwrap();
    let refused = |status: tonic::Status, reason: &str| {
        assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
        assert!(status.message().starts_with(reason), "{status:?}");
    };

    // Through the agency API: a skip, a replay of version 1, a wrong
    // previous, an expired version.
    let skip = fed
        .compile_roster(&full, 3, Some(v1.position.hash))
        .unwrap();
    let replay = fed.compile_roster(&full, 1, None).unwrap();
    let wrong = fed.compile_roster(&full, 2, Some([7; 32])).unwrap();
    let expired = {
        use prost::Message;
        let fresh = fed
            .compile_roster(&full, 2, Some(v1.position.hash))
            .unwrap();
        let mut pb = pb::RosterVersion::decode(fresh.bytes.as_slice()).unwrap();
        pb.proposed_at_ms = 1_577_836_800_000; // 2020-01-01
        pb.expires_at_ms = pb.proposed_at_ms + 86_400_000;
        Version::parse(pb.encode_to_vec()).unwrap()
    };
    for (version, reason) in [
        (&skip, "version_skip"),
        (&replay, "rollback"),
        (&wrong, "wrong_previous"),
        (&expired, "expired"),
    ] {
        let status = g
            .propose_roster(pb::ProposeRosterRequest {
                version: version.bytes.to_vec(),
            })
            .await
            .unwrap_err();
        refused(status, reason);
    }
    // An approval by a key of no member of either version.
    let v2 = fed
        .compile_roster(
            &full.replace("Sandbox member sv", "El Salvador"),
            2,
            Some(v1.position.hash),
        )
        .unwrap();
    propose(&mut g, &v2).await;
    let (outsider, _) = enlace::records::crypto::SigningKey::generate("governance").unwrap();
    let status = g
        .approve_roster(pb::ApproveRosterRequest {
            approval: Some(Approval::sign(&outsider, &v2.hash()).to_pb()),
        })
        .await
        .unwrap_err();
    refused(status, "unknown_key");
    let audited: Vec<String> = entries(&gt.components, Action::RosterRefused)
        .into_iter()
        .map(|e| e.result)
        .collect();
    for reason in [
        "version_skip",
        "rollback",
        "wrong_previous",
        "expired",
        "unknown_key",
    ] {
        assert!(
            audited.iter().any(|r| r.starts_with(reason)),
            "{reason} audited: {audited:?}"
        );
    }

    // From the network: a member that bypasses its own checks (a
    // compromised gt) publishes an outsider's approval and a proposal
    // with a wrong previous; hn refuses both, with the reasons.
    let outsider_approval = Approval::sign(&outsider, &v2.hash());
    publish_unchecked(&gt.components, Change::ApproveRoster(outsider_approval)).await;
    publish_unchecked(
        &gt.components,
        Change::ProposeRoster(RosterProposal {
            version: wrong.bytes.to_vec(),
        }),
    )
    .await;
    // Counted, then on record.
    let at_hn = eventually("hn refuses the approval and the proposal", || async {
        let at_hn: Vec<String> = entries(&hn.components, Action::RosterRefused)
            .into_iter()
            .map(|e| e.result)
            .collect();
        (at_hn.iter().any(|r| r.starts_with("unknown_key"))
            && at_hn.iter().any(|r| r.starts_with("wrong_previous")))
        .then_some(at_hn)
    })
    .await;
    assert_eq!(at_hn.len(), 2, "each refusal on record once: {at_hn:?}");
    // The metric says so too.
    let (_, text) = common::scrape(&fed, "hn", "/metrics").await.unwrap();
    let samples = common::samples(&text);
    assert_eq!(
        common::sample(
            &samples,
            "enlace_roster_refused_total{reason=\"unknown_key\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        common::sample(&samples, "enlace_roster_pending_proposals"),
        Some(1.0)
    );
    assert_eq!(hn.components.trust.roster().position.version, 1);
    gt.stop().await.unwrap();
    hn.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_versions_of_one_number_with_a_threshold_each_halt_adoption() {
    common::init_tracing();
    let (mut fed, full) = federation(&["gt", "hn", "sv"], &["gt", "hn", "sv"]).await;
    let v1 = fed.roster().unwrap();
    let gt = fed.start("gt").await.unwrap();
    let hn = fed.start("hn").await.unwrap();
    // Two different versions 2, both approved by gt and hn (double
    // signing), all published while sv is down.
    let a = fed
        .compile_roster(
            &full.replace("Sandbox member gt", "Guatemala"),
            2,
            Some(v1.position.hash),
        )
        .unwrap();
    let b = fed
        .compile_roster(
            &full.replace("Sandbox member hn", "Honduras"),
            2,
            Some(v1.position.hash),
        )
        .unwrap();
    for v in [&a, &b] {
        publish_unchecked(
            &gt.components,
            Change::ProposeRoster(RosterProposal {
                version: v.bytes.to_vec(),
            }),
        )
        .await;
    }
    for (node, id) in [(&gt, "gt"), (&hn, "hn")] {
        let key = fed.governance_key(id).unwrap();
        let approvals: Vec<Change> = [&a, &b]
            .iter()
            .map(|v| Change::ApproveRoster(Approval::sign(&key, &v.hash())))
            .collect();
        for change in approvals {
            publish_unchecked(&node.components, change).await;
        }
    }
    // sv comes up and receives both with both thresholds.
    let sv = fed.start("sv").await.unwrap();
    eventually("sv detects the conflict", || async {
        let counted: std::collections::BTreeMap<_, _> =
            sv.components.governor.refused().into_iter().collect();
        (counted["conflict"] >= 1).then_some(())
    })
    .await;
    assert_eq!(sv.components.trust.roster().position.version, 1, "halted");
    let states: Vec<&'static str> = sv
        .components
        .governor
        .proposals()
        .iter()
        .map(|p| p.state.code())
        .collect();
    assert_eq!(states, vec!["conflict", "conflict"]);
    let evidence = dir::adopted_dir(&fed.member("sv").unwrap().data_dir()).join("evidence");
    let kept = std::fs::read_dir(&evidence).unwrap().count();
    assert_eq!(kept, 2, "both versions kept as evidence");
    assert!(
        entries(&sv.components, Action::RosterRefused)
            .iter()
            .any(|e| e.result.starts_with("conflict")),
    );
    for n in [gt, hn, sv] {
        n.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_offline_across_two_versions_adopts_both_in_order() {
    common::init_tracing();
    let (mut fed, full) = federation(&["gt", "hn", "sv"], &["gt", "hn", "sv"]).await;
    let v1 = fed.roster().unwrap();
    let gt = fed.start("gt").await.unwrap();
    let hn = fed.start("hn").await.unwrap();
    let mut g = fed.client("gt").await.unwrap();
    let mut h = fed.client("hn").await.unwrap();
    let v2 = fed
        .compile_roster(
            &full.replace("Sandbox member gt", "Guatemala"),
            2,
            Some(v1.position.hash),
        )
        .unwrap();
    propose(&mut g, &v2).await;
    approve(&mut g, &fed, "gt", &v2).await.unwrap();
    eventually("hn holds the proposal", || async {
        proposal(&mut h.clone(), &v2).await
    })
    .await;
    approve(&mut h, &fed, "hn", &v2).await.unwrap();
    adopted(&gt.components, &v2).await;
    let v3 = fed
        .compile_roster(
            &full
                .replace("Sandbox member gt", "Guatemala")
                .replace("Sandbox member hn", "Honduras"),
            3,
            Some(v2.hash()),
        )
        .unwrap();
    propose(&mut g, &v3).await;
    approve(&mut g, &fed, "gt", &v3).await.unwrap();
    adopted(&hn.components, &v2).await;
    eventually("hn holds version 3's proposal", || async {
        proposal(&mut h.clone(), &v3).await
    })
    .await;
    approve(&mut h, &fed, "hn", &v3).await.unwrap();
    adopted(&gt.components, &v3).await;

    // sv was never up: it starts on version 1 and walks 2, then 3.
    let sv = fed.start("sv").await.unwrap();
    adopted(&sv.components, &v3).await;
    let adoptions: Vec<String> = eventually("sv audits both adoptions", || async {
        let results: Vec<String> = entries(&sv.components, Action::RosterAdopted)
            .into_iter()
            .map(|e| e.result)
            .collect();
        (results.len() >= 2).then_some(results)
    })
    .await;
    assert_eq!(adoptions.len(), 2, "{adoptions:?}");
    assert!(adoptions[0].contains("version 2"), "{adoptions:?}");
    assert!(adoptions[1].contains("version 3"), "{adoptions:?}");
    let own = dir::adopted_dir(&fed.member("sv").unwrap().data_dir());
    for f in ["1.roster", "2.roster", "3.roster"] {
        assert!(own.join(f).exists(), "{f}");
    }

    // Stopped between persisting a version and bringing it into force
    // (what a kill then leaves): a restart comes up on it, consistent.
    sv.stop().await.unwrap();
    let v4 = fed.compile_roster(&full, 4, Some(v3.hash())).unwrap();
    let sealed = chain::seal(
        &v4,
        ["gt", "hn"]
            .iter()
            .map(|id| Approval::sign(&fed.governance_key(id).unwrap(), &v4.hash()))
            .collect(),
    );
    dir::write(&own, &sealed, dir::Access::OwnerOnly).unwrap();
    let sv = fed.start("sv").await.unwrap();
    assert_eq!(sv.components.trust.roster().position.hash, v4.hash());
    for n in [gt, hn, sv] {
        n.stop().await.unwrap();
    }
}

/// Waits until `client`'s node holds record `id`; returns its view.
async fn holds(client: &Client, id: &str) -> pb::RecordView {
    eventually(&format!("the node holds {id}"), || async {
        list_all(&mut client.clone())
            .await
            .into_iter()
            .find(|r| r.record_id == id)
    })
    .await
}

/// Proposes `version` at `proposer` and approves it with each of
/// `approvers`' governance keys through their own nodes.
async fn propose_and_approve(
    fed: &Sandbox,
    proposer: &mut Client,
    approvers: &mut [(&str, &mut Client)],
    version: &Version,
) {
    propose(proposer, version).await;
    for (id, client) in approvers.iter_mut() {
        eventually(&format!("{id} holds the proposal"), || async {
            proposal(&mut client.clone(), version).await
        })
        .await;
        approve(client, fed, id, version).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_key_is_rotated_and_a_member_removed_by_quorum() {
    common::init_tracing();
    let members = ["gt", "hn", "sv", "cr"];
    let (mut fed, full) = federation(&members, &members).await;
    let v1 = fed.roster().unwrap();
    let gt = fed.start("gt").await.unwrap();
    let hn = fed.start("hn").await.unwrap();
    let cr = fed.start("cr").await.unwrap();
    let mut g = fed.client("gt").await.unwrap();
    let mut h = fed.client("hn").await.unwrap();
    let mut c = fed.client("cr").await.unwrap();
    // cr publishes under its first key; sv is down.
    let old = publish(&mut c, "antes de la rotación", &[]).await.record_id;
    assert_eq!(holds(&g, &old).await.key_id, "cr-sandbox-1");

    // Version 2: cr's second key, the first one bounded to now (records
    // made until now still verify under it).
    let (new_key, pem) = enlace::records::crypto::SigningKey::generate("cr-2").unwrap();
    let cr_dir = fed.member("cr").unwrap().dir.clone();
    enlace::records::crypto::write_private_file(
        &cr_dir.join("signing-2.key"),
        pem.as_bytes(),
        false,
    )
    .unwrap();
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (before, after) = full.split_once("key_id = \"cr-sandbox-1\"\n").unwrap();
    let (old_pk_line, rest) = after.split_once('\n').unwrap();
    let rotated = format!(
        "{before}key_id = \"cr-sandbox-1\"\n{old_pk_line}\nvalid_until = \"{now}\"\n\n[[members.signing_keys]]\nkey_id = \"cr-2\"\npublic_key = \"{}\"\n{rest}",
        enlace::records::crypto::encode_public_key(new_key.public_key())
    );
    let v2 = fed
        .compile_roster(&rotated, 2, Some(v1.position.hash))
        .unwrap();
    propose_and_approve(
        &fed,
        &mut g.clone(),
        &mut [("gt", &mut g), ("hn", &mut h), ("cr", &mut c)],
        &v2,
    )
    .await;
    for n in [&gt, &hn, &cr] {
        adopted(&n.components, &v2).await;
    }
    // cr's operator moves the node to the new key (a restart).
    cr.stop().await.unwrap();
    let config = fed.member("cr").unwrap().config_path();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "key = \"signing.key\"\nkey_id = \"cr-sandbox-1\"",
        "key = \"signing-2.key\"\nkey_id = \"cr-2\"",
    );
    std::fs::write(&config, text).unwrap();
    let cr = fed.start("cr").await.unwrap();
    let mut c = fed.client("cr").await.unwrap();
    let new = publish(&mut c, "después de la rotación", &[])
        .await
        .record_id;
    assert_eq!(holds(&g, &new).await.key_id, "cr-2");

    // sv, down through all of it, adopts version 2 and accepts cr's
    // records under both keys.
    let sv = fed.start("sv").await.unwrap();
    let s = fed.client("sv").await.unwrap();
    adopted(&sv.components, &v2).await;
    assert_eq!(holds(&s, &old).await.key_id, "cr-sandbox-1");
    assert_eq!(holds(&s, &new).await.key_id, "cr-2");

    // Version 3 removes sv (gt, hn and cr approve: 3 of version 2's 4).
    let v3_text = Sandbox::without_member(&rotated, "sv");
    let v3 = fed.compile_roster(&v3_text, 3, Some(v2.hash())).unwrap();
    propose_and_approve(
        &fed,
        &mut g.clone(),
        &mut [("gt", &mut g), ("hn", &mut h), ("cr", &mut c)],
        &v3,
    )
    .await;
    for n in [&gt, &hn, &cr] {
        adopted(&n.components, &v3).await;
    }
    // Its connections are cut and it is no longer replicated from.
    eventually("gt no longer replicates from sv", || async {
        let peers = g
            .clone()
            .list_peers(pb::ListPeersRequest {})
            .await
            .unwrap()
            .into_inner()
            .peers;
        (!peers.iter().any(|p| p.node_id == "sv")).then_some(())
    })
    .await;
    // What it publishes now reaches no one; what gt publishes now reaches
    // hn and cr, not sv, whose pulls are refused.
    let mut s = s;
    let from_sv = publish(&mut s, "después de la salida", &[]).await.record_id;
    let to_all = publish(&mut g, "a los miembros", &[]).await.record_id;
    holds(&h, &to_all).await;
    holds(&c, &to_all).await;
    eventually("sv's pull from gt is refused", || async {
        let peers = s
            .clone()
            .list_peers(pb::ListPeersRequest {})
            .await
            .unwrap()
            .into_inner()
            .peers;
        peers
            .iter()
            .find(|p| p.node_id == "gt")
            .filter(|p| !p.connected && !p.last_error.is_empty())
            .map(|_| ())
    })
    .await;
    for client in [&g, &h, &c] {
        let held = list_all(&mut client.clone()).await;
        assert!(
            !held.iter().any(|r| r.record_id == from_sv),
            "sv's record refused"
        );
    }
    assert!(
        !list_all(&mut s.clone())
            .await
            .iter()
            .any(|r| r.record_id == to_all),
        "sv receives nothing new"
    );
    for n in [gt, hn, sv, cr] {
        n.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_approvals_under_another_members_key_cannot_veto_a_change() {
    common::init_tracing();
    let (mut fed, full) = federation(&["gt", "hn", "sv"], &["gt", "hn", "sv"]).await;
    let v1 = fed.roster().unwrap();
    let gt = fed.start("gt").await.unwrap();
    let hn = fed.start("hn").await.unwrap();
    let sv = fed.start("sv").await.unwrap();
    let mut g = fed.client("gt").await.unwrap();
    let mut h = fed.client("hn").await.unwrap();
    let v2 = fed
        .compile_roster(
            &full.replace("Sandbox member sv", "El Salvador"),
            2,
            Some(v1.position.hash),
        )
        .unwrap();
    propose(&mut g, &v2).await;
    approve(&mut g, &fed, "gt", &v2).await.unwrap();
    // A compromised gt publishes more forged approvals under hn's key than
    // a key gets tries, before hn approves.
    let hn_key = Approval::sign(&fed.governance_key("hn").unwrap(), &v2.hash()).governance_key;
    for i in 0..6u8 {
        let forged = Approval {
            roster_sha256: v2.hash(),
            governance_key: hn_key,
            signature: vec![i; 64],
        };
        publish_unchecked(&gt.components, Change::ApproveRoster(forged)).await;
    }
    eventually("hn refuses the forged approvals", || async {
        let counted: std::collections::BTreeMap<_, _> =
            hn.components.governor.refused().into_iter().collect();
        (counted["bad_signature"] >= 1).then_some(())
    })
    .await;
    // hn's real approval is still published and counted: every node adopts.
    let mine = approve(&mut h, &fed, "hn", &v2).await.unwrap();
    assert!(mine.approved_by.contains(&"hn".to_owned()), "{mine:?}");
    for n in [&gt, &hn, &sv] {
        adopted(&n.components, &v2).await;
    }
    for n in [gt, hn, sv] {
        n.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_member_refuses_a_chain_that_does_not_reach_its_anchor_and_asks_the_next_peer() {
    use prost::Message;
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn", "sv", "cr"])
        .await
        .unwrap();
    let full = fed.found(&["gt", "hn", "sv"]).unwrap();
    std::fs::write(fed.dir.join("federation.toml"), &full).unwrap();
    let v2 = fed.next_roster_version(&["gt", "hn", "cr"]).unwrap();
    let hn = fed.start("hn").await.unwrap();
    assert_eq!(
        hn.components.trust.roster().position.hash,
        v2.version.hash()
    );
    // gt is compromised: it serves version 1 and a doctored version 2
    // (cr's signing key swapped for one it holds), with the real
    // approvals, and says its head is 2.
    let mut doctored = pb::RosterVersion::decode(v2.version.bytes.as_slice()).unwrap();
    let cr = doctored.members.iter_mut().find(|m| m.id == "cr").unwrap();
    cr.signing_keys[0].public_key = vec![7; 32];
    let chain: Vec<pb::SignedRoster> = dir::read(&fed.chain_dir())
        .unwrap()
        .into_iter()
        .map(|(_, s)| pb::SignedRoster::decode(s.encode().as_slice()).unwrap())
        .collect();
    let v1_served = chain
        .into_iter()
        .find(|s| s.version != v2.version.bytes.as_slice())
        .unwrap();
    let doctored = pb::SignedRoster {
        version: doctored.encode_to_vec(),
        approvals: v2.approvals.iter().map(|a| a.to_pb()).collect(),
    };
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    common::standin::serve(
        &mut fed,
        "gt",
        common::standin::StandIn {
            chain: Some(pb::RosterChainResponse {
                versions: vec![v1_served, doctored],
                head: 2,
            }),
            ..Default::default()
        },
        stop_rx,
    );
    // cr knows only version 2's hash, and two peers: gt (asked first) and
    // hn. gt's chain does not reach the anchor; hn's does.
    fed.anchor_only("cr", &v2.version.hash(), "gt").unwrap();
    let hn_addr = fed.member("hn").unwrap().peer_addr;
    fed.set_peer_endpoint("cr", "hn", hn_addr).unwrap();
    let cr = fed.start("cr").await.unwrap();
    assert_eq!(
        cr.components.trust.roster().position.hash,
        v2.version.hash()
    );
    let cr_key = cr
        .components
        .trust
        .roster()
        .member(&enlace::records::model::NodeId::parse("cr").unwrap())
        .unwrap()
        .signing_keys[0]
        .public_key;
    assert_ne!(cr_key, [7; 32], "the doctored key was not taken");
    cr.stop().await.unwrap();
    hn.stop().await.unwrap();
}
