//! A member loses its disk: `enlace node recover` asks its peers for the
//! records it published, stores them verified, and raises its own sequence
//! above every number the peers saw, so that its next publication is
//! accepted everywhere instead of clashing with a record already out there.

use crate::common;

use std::process::Command;

use common::{eventually, list_all, publish};
use enlace::records::model::NodeId;
use enlace::testing::Sandbox;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_own_log_is_recovered_from_the_peers() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn", "sv"])
        .await
        .unwrap();
    let gt = fed.start("gt").await.unwrap();
    let hn = fed.start("hn").await.unwrap();
    let sv = fed.start("sv").await.unwrap();
    let mut g = fed.client("gt").await.unwrap();
    // gt's first record is its (empty) match filter, to all members.
    eventually("gt's filter published", || async {
        gt.components
            .store
            .filters()
            .own_complete(1)
            .ok()
            .filter(|c| *c)
    })
    .await;
    // Then two for everyone, one for hn only, one for sv only.
    let mut published = Vec::new();
    for (summary, to) in [
        ("para todos 1", &[][..]),
        ("solo para hn", &["hn"][..]),
        ("solo para sv", &["sv"][..]),
        ("para todos 2", &[][..]),
    ] {
        published.push(publish(&mut g, summary, to).await);
    }
    let gt_id = NodeId::parse("gt").unwrap();
    for (peer, node) in [("hn", &hn), ("sv", &sv)] {
        eventually(&format!("{peer} holds what is for it"), || async {
            (node.components.store.records().count(&gt_id) == 4).then_some(())
        })
        .await;
    }
    gt.stop().await.unwrap();

    // The disk is lost. Started on an empty store, gt learns from its
    // peers, which hand back its own signed records, that they hold more
    // of its log, and publishes nothing: each record would clash.
    let data_dir = fed.member("gt").unwrap().data_dir();
    std::fs::remove_dir_all(&data_dir).unwrap();
    // Meanwhile hn asks gt for assistance: gt's node would acknowledge it
    // by itself, a publication of its own.
    let mut h = fed.client("hn").await.unwrap();
    let request_id = mla_to_gt(&mut h).await;
    let lost = fed.start("gt").await.unwrap();
    eventually("the empty gt holds hn's request", || async {
        lost.components
            .store
            .series()
            .mla(&request_id)
            .ok()
            .flatten()
            .map(|_| ())
    })
    .await;
    // The acknowledgment was tried and held back: no record of gt's leaves
    // an empty store.
    eventually("the acknowledgment held back", || async {
        let (_, metrics) = common::scrape(&fed, "gt", "/metrics").await.ok()?;
        (common::sample(
            &common::samples(&metrics),
            "enlace_publications_held_back_total",
        )? >= 1.0)
            .then_some(())
    })
    .await;
    assert_eq!(lost.components.store.watermark().own_seq, 0);
    let mut g = fed.client("gt").await.unwrap();
    let refused = g
        .publish_alert(enlace::wire::pb::v1::PublishAlertRequest {
            alert: Some(enlace::testing::sample_alert("sobre un disco vacío")),
            ..Default::default()
        })
        .await
        .expect_err("gt's store lost its log");
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("enlace node recover"),
        "names the remedy: {}",
        refused.message()
    );
    let (_, metrics) = common::scrape(&fed, "gt", "/metrics").await.unwrap();
    assert_eq!(
        common::sample(&common::samples(&metrics), "enlace_own_log_behind"),
        Some(1.0)
    );
    lost.stop().await.unwrap();
    assert_eq!(
        hn.components.store.records().count(&gt_id),
        4,
        "nothing of the empty store reached hn"
    );

    // sv is down while gt recovers.
    sv.stop().await.unwrap();
    let config = fed.member("gt").unwrap().config_path();
    let (ok, report) = recover(&config).await;
    assert!(!ok, "sv could not be asked: {report}");
    assert_eq!(report["audit"]["resumed"], true, "{report}");
    assert_eq!(
        report["audit"]["countersigned_by"],
        serde_json::json!(["hn"]),
        "{report}"
    );
    // hn hands back 1, 2, 3 and 5, and had seen gt's log up to 5 (4 was
    // not for it): the next publication already follows 5; 4 is a hole.
    assert_eq!(report["stored"], 4, "{report}");
    assert_eq!(report["next_after"], 5, "{report}");
    assert_eq!(report["holes"], 1, "{report}");

    // Once sv is back, a second run adds what only sv held.
    let sv = fed.start("sv").await.unwrap();
    let (ok, report) = recover(&config).await;
    assert!(ok, "{report}");
    assert_eq!(report["stored"], 5, "{report}");
    assert_eq!(report["highest"], 5, "{report}");
    assert_eq!(report["next_after"], 5, "{report}");
    assert_eq!(report["holes"], 0, "{report}");
    for p in report["peers"].as_array().unwrap() {
        assert_eq!(
            p["records"], 4,
            "each peer hands back what it holds: {report}"
        );
    }
    // The audit log was resumed by the first run, with hn's
    // countersignature; the second leaves it alone.
    assert_eq!(report["audit"]["resumed"], false, "{report}");

    // The audit log was lost with the disk. It resumed after what the
    // peers witnessed, and `audit verify` reports the incident instead of
    // accusing the node of removing entries.
    let (code, verdict) = verify(&config).await;
    assert_eq!(code, 0, "{verdict}");
    let incident = verdict["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "recovery of a lost log")
        .unwrap_or_else(|| panic!("the incident is reported: {verdict}"));
    let detail = incident["detail"].as_str().unwrap();
    assert!(
        detail.contains("were lost") && detail.contains("countersigned by hn"),
        "{detail}"
    );
    // hn keeps its own record of the incident, out of gt's reach.
    assert!(
        common::audit_log(&hn.components)
            .iter()
            .any(|e| e.action == "recovery_witnessed" && e.actor == "gt"),
        "hn's audit log records the recovery it countersigned"
    );

    // Back up: the same records, and the next publication follows seq 5,
    // which both peers take (it would be a conflict with seq 1 otherwise).
    let gt = fed.start("gt").await.unwrap();
    let mut g = fed.client("gt").await.unwrap();
    let mine: Vec<String> = list_all(&mut g)
        .await
        .into_iter()
        .filter(|r| r.origin == "gt")
        .map(|r| r.record_id)
        .collect();
    for p in &published {
        assert!(mine.contains(&p.record_id), "{} recovered", p.record_id);
    }
    let next = publish(&mut g, "después de la recuperación", &[]).await;
    // 6 to 8: this, gt's acknowledgment of hn's request, which goes out
    // now, and its match filter published again (its identifiers were on
    // the lost disk), in any order.
    assert!((6..=8).contains(&next.seq), "{next:?}");
    eventually("hn has gt's acknowledgment", || async {
        hn.components
            .store
            .series()
            .mla(&request_id)
            .ok()
            .flatten()
            .filter(|s| s.ack.is_some())
            .map(|_| ())
    })
    .await;
    for (peer, node) in [("hn", &hn), ("sv", &sv)] {
        eventually(&format!("{peer} takes gt's next record"), || async {
            node.components
                .store
                .records()
                .get_by_id(&next.record_id)
                .ok()
                .flatten()
                .map(|_| ())
        })
        .await;
    }
    // The handing back is on record at the peers, as any disclosure.
    let at_hn = common::audit_log(&hn.components);
    assert!(
        at_hn
            .iter()
            .any(|e| e.action == "records_disclosed" && e.result.contains("handed back")),
        "hn's audit log records what it handed back"
    );
    sv.stop().await.unwrap();
    hn.stop().await.unwrap();
    gt.stop().await.unwrap();
}

/// hn publishes a case reference for gt and asks gt for assistance on it:
/// the request's id.
async fn mla_to_gt(
    h: &mut enlace::wire::pb::v1::agency_client::AgencyClient<tonic::transport::Channel>,
) -> String {
    use enlace::records::vocabulary::{CaseStage, HandlingCode, Offence, Tlp};
    use enlace::wire::pb::v1 as pb;
    let case = h
        .publish_case_reference(pb::PublishCaseReferenceRequest {
            case_reference: Some(pb::CaseReference {
                case_ref: "MP-HN-2026-0099".into(),
                offence: Offence::Trafficking.wire(),
                stage: CaseStage::Investigation.wire(),
                competent_authority: "Fiscalía Especial contra la Trata".into(),
                handling: Some(pb::Handling {
                    code: HandlingCode::H1.wire(),
                    condition: String::new(),
                }),
                tlp: Tlp::Amber.wire(),
                ..Default::default()
            }),
            to: vec!["gt".into()],
            ..Default::default()
        })
        .await
        .expect("case reference")
        .into_inner();
    h.send_mla(pb::SendMlaRequest {
        request: Some(pb::MlaRequest {
            to: "gt".into(),
            case_refs: vec![case.record_id],
            legal_basis: "Convención de Palermo, art. 18".into(),
            measures: "Confirmar identidad".into(),
            ..Default::default()
        }),
    })
    .await
    .expect("MLA request")
    .into_inner()
    .record_id
}

/// Runs `enlace audit verify --json` on a stopped member: exit code,
/// report.
async fn verify(config: &std::path::Path) -> (i32, Value) {
    let config = config.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_enlace"))
            .args(["audit", "verify", "--json", "--config"])
            .arg(&config)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let report = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|_| panic!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), report)
}

/// Runs `enlace node recover --json` on a stopped member: success, report.
async fn recover(config: &std::path::Path) -> (bool, Value) {
    let config = config.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_enlace"))
            .args(["node", "recover", "--json", "--config"])
            .arg(&config)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let report = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|_| panic!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.success(), report)
}
