//! A peer that sends altered records: they are rejected, counted and not
//! stored, and replication carries on with the records after them.
//!
//! The stand-in peer is a real tonic `Federation` server on gt's address
//! with gt's real TLS identity and signing key; only its records are
//! doctored, as a compromised relay or a buggy origin would send them.

use crate::common::{self, eventually, list_all};
use common::standin::{self, StandIn};
use enlace::records::model::NodeId;
use enlace::testing::Sandbox;
use enlace::wire::pb::v1 as pb;
use enlace::wire::{self, Envelope};
use tokio::sync::watch;

fn record(settings: &enlace::trust::load::LoadedSettings, seq: u64) -> Envelope {
    let origin = NodeId::parse("gt").unwrap();
    standin::signed_alert(settings, &origin, seq, &format!("alerta número {seq}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_records_are_rejected_and_sync_carries_on() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt_settings =
        enlace::trust::load::settings(&fed.member("gt").unwrap().config_path(), None).unwrap();

    let mut records: Vec<Envelope> = (1..=6).map(|seq| record(&gt_settings, seq)).collect();
    // 2: one byte of the body changed after signing.
    let pos = records[1].body.len() - 3;
    records[1].body[pos] ^= 0x01;
    // 4: the signature changed.
    records[3].signature[10] ^= 0x80;
    // 6: signed by gt but naming hn as origin (a member signing in another's name).
    let origin_hn = {
        let mut body = wire::decode_body(&records[5].body).unwrap();
        body.origin = NodeId::parse("hn").unwrap();
        body.record_id = enlace::records::model::new_record_id(&body.origin, [6; 8]);
        let bytes = wire::encode_body(&body);
        Envelope {
            signature: gt_settings.signing.sign_record(&bytes),
            key_id: gt_settings.signing.key_id().into(),
            body: bytes,
        }
    };
    records[5] = origin_hn;
    let ids: Vec<String> = records
        .iter()
        .map(|e| {
            wire::decode_body(&e.body)
                .map(|b| b.record_id)
                .unwrap_or_default()
        })
        .collect();

    let (stop_tx, stop_rx) = watch::channel(false);
    let fake = StandIn {
        batch: Some(pb::PullBatch {
            records: records.iter().map(Envelope::to_pb).collect(),
            high_water: 6,
            head: 6,
        }),
        ..StandIn::default()
    };
    let server = standin::serve(&mut fed, "gt", fake, stop_rx);

    let hn = fed.start("hn").await.unwrap();
    let hn_client = fed.client("hn").await.unwrap();
    let held = eventually("records 1, 3 and 5 at hn", || {
        let mut c = hn_client.clone();
        async move {
            let all = list_all(&mut c).await;
            (all.len() >= 3).then_some(all)
        }
    })
    .await;
    let status = eventually("3 rejections counted", || {
        let mut c = hn_client.clone();
        async move {
            let peers = c
                .list_peers(pb::ListPeersRequest {})
                .await
                .unwrap()
                .into_inner();
            peers
                .peers
                .into_iter()
                .find(|p| p.node_id == "gt" && p.records_rejected >= 3)
        }
    })
    .await;
    let seqs: Vec<u64> = held.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs,
        vec![1, 3, 5],
        "only authentic records are stored, and those after a bad one still are"
    );
    for bad in [&ids[1], &ids[3], &ids[5]] {
        assert!(
            hn.components
                .store
                .records()
                .get_by_id(bad)
                .unwrap()
                .is_none(),
            "{bad} must not be stored"
        );
    }
    // The cursor stays before the first bad record, so it is asked for
    // again rather than skipped for ever.
    assert_eq!(status.cursor, 1);
    assert_eq!(status.records_received, 3);
    // Each refusal is in hn's audit log, with the peer and the reason.
    let refusals: Vec<_> = common::audit_log(&hn.components)
        .into_iter()
        .filter(|e| e.action == "record_rejected")
        .collect();
    assert!(refusals.len() >= 3, "{refusals:?}");
    assert!(
        refusals
            .iter()
            .all(|e| e.actor == "gt" && e.counterparts == ["gt"] && !e.result.is_empty())
    );
    // The metrics say why: two signatures that do not verify (a changed
    // body, a changed signature) and one record signed in another's name.
    let (code, text) = common::scrape(&fed, "hn", "/metrics").await.unwrap();
    assert_eq!(code, 200, "{text}");
    let metrics = common::samples(&text);
    let rejected = |reason: &str| {
        common::sample(
            &metrics,
            &format!("enlace_records_rejected_total{{peer=\"gt\",reason=\"{reason}\""),
        )
    };
    assert!(rejected("bad_signature") >= Some(2.0), "{text}");
    assert!(rejected("origin_mismatch") >= Some(1.0), "{text}");
    assert_eq!(
        common::sample(&metrics, "enlace_records_received_total{peer=\"gt\""),
        Some(3.0)
    );

    hn.stop().await.unwrap();
    let _ = stop_tx.send(true);
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authentic_record_refused_is_audited_with_its_seq_and_record_id() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn", "sv"])
        .await
        .unwrap();
    drop(fed.take_listeners("sv"));
    let gt_settings =
        enlace::trust::load::settings(&fed.member("gt").unwrap().config_path(), None).unwrap();
    // Seq 1 is for everyone; seq 2, authentic, is addressed to sv only:
    // hn is not entitled to it and must not keep it.
    let first = record(&gt_settings, 1);
    let second = {
        let mut body = wire::decode_body(&record(&gt_settings, 2).body).unwrap();
        body.distribution = enlace::records::model::Distribution::Named(
            [NodeId::parse("sv").unwrap()].into_iter().collect(),
        );
        let bytes = wire::encode_body(&body);
        Envelope {
            signature: gt_settings.signing.sign_record(&bytes),
            key_id: gt_settings.signing.key_id().into(),
            body: bytes,
        }
    };
    let second_id = wire::decode_body(&second.body).unwrap().record_id;
    let (stop_tx, stop_rx) = watch::channel(false);
    let fake = StandIn {
        batch: Some(pb::PullBatch {
            records: vec![first.to_pb(), second.to_pb()],
            high_water: 2,
            head: 2,
        }),
        ..StandIn::default()
    };
    let server = standin::serve(&mut fed, "gt", fake, stop_rx);
    let hn = fed.start("hn").await.unwrap();
    let refusal = eventually("the refusal on record at hn", || {
        let log = common::audit_log(&hn.components);
        async move {
            log.into_iter()
                .find(|e| e.action == "record_rejected" && e.result.starts_with("not_entitled"))
        }
    })
    .await;
    assert_eq!(
        refusal.ids,
        vec!["gt#2".to_string(), second_id.clone()],
        "{refusal:?}"
    );
    assert!(
        hn.components
            .store
            .records()
            .get_by_id(&second_id)
            .unwrap()
            .is_none()
    );
    hn.stop().await.unwrap();
    let _ = stop_tx.send(true);
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_log_shorter_than_its_peers_witnessed_is_reported_at_start() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let hn = fed.start("hn").await.unwrap();
    // Each node's match filter published and held by the other: nothing
    // more is written to gt's log on its own until the checkpoint.
    let (gt_id, hn_id) = (
        enlace::records::model::NodeId::parse("gt").unwrap(),
        enlace::records::model::NodeId::parse("hn").unwrap(),
    );
    for (node, peer) in [(&gt, &hn_id), (&hn, &gt_id)] {
        common::filter_published(&node.components).await;
        eventually("the peer's filter held", || async {
            node.components.cases.filter_epoch(peer).await.ok()?
        })
        .await;
    }
    let mut g = fed.client("gt").await.unwrap();
    common::publish(&mut g, "antes de la pérdida", &[]).await;
    assert!(
        gt.components.audit.send_checkpoint().await.is_empty(),
        "hn witnessed gt's checkpoint"
    );
    let witnessed = gt.components.store.watermark().audit;
    assert_eq!(gt.components.audit.lost_entries(), 0);
    gt.stop().await.unwrap();

    // The store rolls back to nothing (here: it is lost).
    std::fs::remove_dir_all(fed.member("gt").unwrap().data_dir()).unwrap();
    let gt = fed.start("gt").await.unwrap();
    let lost = eventually("gt to compare its log with hn's witnesses", || {
        let lost = gt.components.audit.lost_entries();
        async move { (lost > 0).then_some(lost) }
    })
    .await;
    let held = gt.components.store.watermark().audit;
    assert!(
        lost >= witnessed - held.min(witnessed) && lost <= witnessed,
        "lost {lost}, witnessed {witnessed}, held {held}"
    );
    let (_, text) = common::scrape(&fed, "gt", "/metrics").await.unwrap();
    assert_eq!(
        common::sample(&common::samples(&text), "enlace_audit_lost_entries"),
        Some(lost as f64)
    );
    gt.stop().await.unwrap();
    hn.stop().await.unwrap();
}
