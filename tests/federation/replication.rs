//! Two real nodes exchange signed alerts, and replication survives a
//! restart without loss or duplication.

use crate::common;

use std::collections::BTreeSet;

use common::{cursor, eventually, list_all, publish};
use enlace::records::crypto;
use enlace::testing::Sandbox;
use enlace::wire::Envelope;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_published_at_one_node_arrives_verified_at_the_other() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let hn = fed.start("hn").await.unwrap();
    let mut gt_client = fed.client("gt").await.unwrap();
    let hn_client = fed.client("hn").await.unwrap();
    // gt's first record is its match filter.
    assert_eq!(common::filter_published(&gt.components).await, 1);

    let published = publish(&mut gt_client, "Alerta de prueba", &[]).await;
    assert_eq!((published.origin.as_str(), published.seq), ("gt", 2));

    let seen = eventually("the alert at hn", || {
        let mut c = hn_client.clone();
        let id = published.record_id.clone();
        async move {
            list_all(&mut c)
                .await
                .into_iter()
                .find(|r| r.record_id == id)
        }
    })
    .await;
    assert_eq!(seen.origin, "gt");
    assert_eq!(seen.seq, 2);
    assert_eq!(seen.key_id, "gt-sandbox-1");

    // Independently of the node: the stored envelope's signature verifies
    // under the public key the roster lists for gt, and the body is the
    // one gt signed.
    let roster = fed.roster().unwrap();
    let stored = hn
        .components
        .store
        .records()
        .get_by_id(&published.record_id)
        .unwrap()
        .expect("stored at hn");
    let envelope = Envelope::decode(stored.content.envelope().unwrap()).unwrap();
    let (member, key) = roster.signing_key(&envelope.key_id).unwrap();
    assert_eq!(member.id.as_str(), "gt");
    crypto::verify_record(
        &key.public_key,
        &key.key_id,
        &envelope.body,
        &envelope.signature,
    )
    .unwrap();
    let mut tampered = envelope.body.clone();
    *tampered.last_mut().unwrap() ^= 1;
    assert!(
        crypto::verify_record(&key.public_key, &key.key_id, &tampered, &envelope.signature)
            .is_err()
    );

    hn.stop().await.unwrap();
    gt.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_resumes_from_its_cursor_without_loss_or_duplicates() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let hn = fed.start("hn").await.unwrap();
    let mut gt_client = fed.client("gt").await.unwrap();
    // gt's first record is its match filter (not listed); the alerts are
    // 2 to 13.
    assert_eq!(common::filter_published(&gt.components).await, 1);

    for i in 0..5 {
        publish(&mut gt_client, &format!("alerta {i}"), &[]).await;
    }
    let hn_client = fed.client("hn").await.unwrap();
    eventually("5 records at hn", || {
        let mut c = hn_client.clone();
        async move { (list_all(&mut c).await.len() == 5).then_some(()) }
    })
    .await;
    hn.stop().await.unwrap();

    // While hn is down, gt goes on publishing.
    for i in 5..12 {
        publish(&mut gt_client, &format!("alerta {i}"), &[]).await;
    }

    let hn = fed.start("hn").await.unwrap();
    let hn_client = fed.client("hn").await.unwrap();
    let all = eventually("12 records at hn after restart", || {
        let mut c = hn_client.clone();
        async move {
            let all = list_all(&mut c).await;
            (all.len() >= 12).then_some(all)
        }
    })
    .await;
    // Give a duplicate every chance to show up: wait until hn's cursor
    // has reached gt's head, then count again.
    eventually("hn's cursor at 13", || {
        let mut c = hn_client.clone();
        async move { (cursor(&mut c, "gt").await == 13).then_some(()) }
    })
    .await;
    let mut c = hn_client.clone();
    let again = list_all(&mut c).await;
    assert_eq!(again.len(), 12, "no record may be stored twice");
    let seqs: BTreeSet<u64> = all.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (2..=13).collect::<BTreeSet<u64>>(), "no gap, no loss");
    let gt_id = enlace::records::model::NodeId::parse("gt").unwrap();
    assert_eq!(hn.components.store.records().cursor(&gt_id).unwrap(), 13);

    hn.stop().await.unwrap();
    gt.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_for_named_members_is_not_disclosed_to_others() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn", "sv"])
        .await
        .unwrap();
    let nodes = vec![
        fed.start("gt").await.unwrap(),
        fed.start("hn").await.unwrap(),
        fed.start("sv").await.unwrap(),
    ];
    let mut gt = fed.client("gt").await.unwrap();
    let private = publish(&mut gt, "solo para hn", &["hn"]).await;
    let public = publish(&mut gt, "para todos", &[]).await;
    let sv = fed.client("sv").await.unwrap();
    let hn = fed.client("hn").await.unwrap();
    eventually("both records at hn", || {
        let mut c = hn.clone();
        async move { (list_all(&mut c).await.len() == 2).then_some(()) }
    })
    .await;
    // The cursor is committed a moment before the records are durable
    // (and listed): wait for both.
    let public_id = public.record_id.clone();
    let at_sv: Vec<String> = eventually("sv past gt's seq 2, holding it", || {
        let mut c = sv.clone();
        let public_id = public_id.clone();
        async move {
            let past = cursor(&mut c, "gt").await >= public.seq;
            let ids: Vec<String> = list_all(&mut c)
                .await
                .into_iter()
                .map(|r| r.record_id)
                .collect();
            (past && ids.contains(&public_id)).then_some(ids)
        }
    })
    .await;
    assert_eq!(at_sv, vec![public.record_id.clone()]);
    assert!(
        nodes[2]
            .components
            .store
            .records()
            .get_by_id(&private.record_id)
            .unwrap()
            .is_none()
    );
    for n in nodes {
        n.stop().await.unwrap();
    }
}
