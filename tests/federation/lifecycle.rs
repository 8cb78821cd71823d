//! The record lifecycle across a federation of three real nodes: updates
//! and withdrawals reach every recipient, expiry purges content everywhere,
//! distribution is never widened, identifiers never appear in clear, and a
//! reader cannot publish.

use crate::common;

use common::{eventually, list_all};
use enlace::clock::Clock;
use enlace::records::model::NodeId;
use enlace::records::vocabulary::{SelectorKind, Urgency};
use enlace::store::Content;
use enlace::testing::{Sandbox, sample_alert};
use enlace::wire::pb::v1 as pb;
use enlace::wire::pb::v1::agency_client::AgencyClient;
use tonic::transport::Channel;

type Client = AgencyClient<Channel>;

async fn publish(
    c: &mut Client,
    alert: pb::Alert,
    to: &[&str],
    selectors: &[(SelectorKind, &str)],
) -> pb::PublishResponse {
    c.publish_alert(pb::PublishAlertRequest {
        alert: Some(alert),
        to: to.iter().map(|s| s.to_string()).collect(),
        selector_values: selectors
            .iter()
            .map(|(k, v)| pb::SelectorValue {
                kind: k.wire(),
                value: v.to_string(),
            })
            .collect(),
        validate_only: false,
        idempotency_key: String::new(),
    })
    .await
    .expect("publish")
    .into_inner()
}

/// The default view of `series_id` at a node: its current record.
async fn current(c: &Client, series_id: &str) -> Option<pb::RecordView> {
    let mut c = c.clone();
    let page = c
        .list_records(pb::ListRecordsRequest::default())
        .await
        .expect("list")
        .into_inner();
    page.records.into_iter().find(|r| r.series_id == series_id)
}

fn alert_of(v: &pb::RecordView) -> Option<&pb::Alert> {
    match &v.kind {
        Some(pb::record_view::Kind::Alert(a)) => Some(a),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_and_withdrawals_reach_every_recipient() {
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
    let peers = [
        fed.client("hn").await.unwrap(),
        fed.client("sv").await.unwrap(),
    ];

    let first = publish(&mut gt, sample_alert("versión 1"), &[], &[]).await;
    assert_eq!(
        (first.version, first.series_id.as_str()),
        (1, first.record_id.as_str())
    );

    let mut changed = sample_alert("versión 2: ruta confirmada");
    changed.urgency = Urgency::Immediate.wire();
    let update = gt
        .update_record(pb::UpdateRecordRequest {
            record_id: first.record_id.clone(),
            content: Some(pb::update_record_request::Content::Alert(changed)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(update.version, 2);
    assert_eq!(update.series_id, first.record_id);

    for peer in &peers {
        let v = eventually("version 2 at the peer", || async {
            current(peer, &first.record_id)
                .await
                .filter(|v| v.version == 2)
        })
        .await;
        assert_eq!(v.status, pb::RecordStatus::Active as i32);
        let a = alert_of(&v).unwrap();
        assert_eq!(a.summary, "versión 2: ruta confirmada");
        assert_eq!(a.urgency, Urgency::Immediate.wire());
        // The default view shows the current version only; all versions
        // show the first as superseded.
        let mut c = peer.clone();
        let all = list_all(&mut c).await;
        let v1 = all.iter().find(|r| r.record_id == first.record_id).unwrap();
        assert_eq!(v1.status, pb::RecordStatus::Superseded as i32);
    }

    // Updating an older version's id updates the series: version 3.
    let mut third = sample_alert("versión 3");
    third.urgency = Urgency::Urgent.wire();
    let v3 = gt
        .update_record(pb::UpdateRecordRequest {
            record_id: update.record_id.clone(),
            content: Some(pb::update_record_request::Content::Alert(third)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v3.version, 3);

    let withdrawn = gt
        .withdraw_record(pb::WithdrawRecordRequest {
            record_id: first.record_id.clone(),
            reason: "información errónea".into(),
            validate_only: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(withdrawn.series_id, first.record_id);
    for peer in &peers {
        let v = eventually("the withdrawal at the peer", || async {
            current(peer, &first.record_id)
                .await
                .filter(|v| v.status == pb::RecordStatus::Withdrawn as i32)
        })
        .await;
        assert_eq!(v.version, 3, "the current version, flagged");
        assert_eq!(v.withdrawal_reason, "información errónea");
    }

    // A withdrawn series takes no update, and nothing is stored for trying.
    let before = list_all(&mut gt).await.len();
    let err = gt
        .update_record(pb::UpdateRecordRequest {
            record_id: first.record_id.clone(),
            content: Some(pb::update_record_request::Content::Alert(sample_alert(
                "tarde",
            ))),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("was withdrawn"), "{}", err.message());
    assert_eq!(list_all(&mut gt).await.len(), before);

    // Only the origin can update: hn cannot update gt's record.
    let mut hn = peers[0].clone();
    let err = hn
        .update_record(pb::UpdateRecordRequest {
            record_id: update.record_id.clone(),
            content: Some(pb::update_record_request::Content::Alert(sample_alert(
                "ajeno",
            ))),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        err.message().contains("only its origin can update"),
        "{}",
        err.message()
    );

    for n in nodes {
        n.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_purges_content_at_every_node_and_keeps_a_tombstone() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn", "sv"])
        .await
        .unwrap();
    // The nodes read a clock the test moves: the record expires when the
    // test says so, not after a wait.
    let clock = enlace::clock::ManualClock::starting_now();
    fed.clock = std::sync::Arc::new(clock.clone());
    let nodes = vec![
        fed.start("gt").await.unwrap(),
        fed.start("hn").await.unwrap(),
        fed.start("sv").await.unwrap(),
    ];
    let mut gt = fed.client("gt").await.unwrap();
    let mut short = sample_alert("válida por poco tiempo");
    short.expires_at_ms = clock.now_ms() + 60_000;
    let lasting = publish(&mut gt, sample_alert("válida un año"), &[], &[]).await;
    let rec = publish(&mut gt, short, &[], &[]).await;
    // Every node holds it before it expires.
    for id in ["gt", "hn", "sv"] {
        let client = fed.client(id).await.unwrap();
        eventually("the record arrived", || async {
            let mut c = client.clone();
            c.get_record(pb::GetRecordRequest {
                record_id: rec.record_id.clone(),
            })
            .await
            .ok()
            .filter(|r| r.get_ref().status == pb::RecordStatus::Active as i32)
        })
        .await;
    }
    clock.advance(std::time::Duration::from_secs(61));

    for (node, id) in nodes.iter().zip(["gt", "hn", "sv"]) {
        let client = fed.client(id).await.unwrap();
        let v = eventually("the record expired", || async {
            let mut c = client.clone();
            let r = c
                .get_record(pb::GetRecordRequest {
                    record_id: rec.record_id.clone(),
                })
                .await
                .ok()?
                .into_inner();
            (r.status == pb::RecordStatus::Expired as i32).then_some(r)
        })
        .await;
        assert!(v.kind.is_none(), "{id}: an expired record shows no content");
        assert_eq!(v.kind_name, "alert");
        assert!(v.expired_at_ms > 0);
        // The purge replaces the stored content with a tombstone.
        eventually("the content purged from the store", || async {
            let stored = node
                .components
                .store
                .records()
                .get_by_id(&rec.record_id)
                .unwrap()?;
            matches!(stored.content, Content::Tombstone(_)).then_some(())
        })
        .await;
        // The other record is untouched.
        let other = node
            .components
            .store
            .records()
            .get_by_id(&lasting.record_id)
            .unwrap()
            .unwrap();
        assert!(matches!(other.content, Content::Envelope(_)), "{id}");
        let mut c = client.clone();
        let listed = list_all(&mut c).await;
        let tomb = listed
            .iter()
            .find(|r| r.record_id == rec.record_id)
            .unwrap();
        assert_eq!(tomb.status, pb::RecordStatus::Expired as i32);
    }
    // An expired record can no longer be updated.
    let err = gt
        .update_record(pb::UpdateRecordRequest {
            record_id: rec.record_id.clone(),
            content: Some(pb::update_record_request::Content::Alert(sample_alert(
                "revivir",
            ))),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("expired"), "{}", err.message());
    for n in nodes {
        n.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_for_hn_never_reaches_sv_not_even_in_its_pull_stream() {
    use enlace::trust::tls::{self, TlsIdentity};
    use enlace::wire::pb::v1::federation_client::FederationClient;
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
    let mut red = sample_alert("solo para hn");
    red.tlp = enlace::records::vocabulary::Tlp::Red.wire();
    let private = publish(&mut gt, red, &["hn"], &[]).await;
    let public = publish(&mut gt, sample_alert("para todos"), &[], &[]).await;

    // TLP:RED to all members is refused outright.
    let mut red_all = sample_alert("rojo para todos");
    red_all.tlp = enlace::records::vocabulary::Tlp::Red.wire();
    let err = gt
        .publish_alert(pb::PublishAlertRequest {
            alert: Some(red_all),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        err.message().contains("TLP:RED requires named recipients"),
        "{}",
        err.message()
    );

    // Pull gt's log directly as sv, over sv's own mTLS identity.
    let sv_dir = fed.member("sv").unwrap().dir.clone();
    let roster = fed.roster().unwrap();
    let sv_identity =
        TlsIdentity::load(&sv_dir.join("node.crt"), &sv_dir.join("node.key")).unwrap();
    let config =
        tls::peer_client_config(&roster, &sv_identity, &NodeId::parse("gt").unwrap()).unwrap();
    let port = fed.member("gt").unwrap().peer_addr.port();
    let mut pull = FederationClient::new(
        enlace::exchange::peers::peer_channel(config, "127.0.0.1", port).unwrap(),
    );
    let mut stream = pull
        .pull(pb::PullRequest {
            origin: "gt".into(),
            after_seq: 0,
            follow: false,
            max_batch: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    let mut high_water = 0;
    while let Some(batch) = stream.message().await.unwrap() {
        high_water = batch.high_water;
        for r in batch.records {
            let body = enlace::wire::decode_body(&r.body).unwrap();
            // gt's match filter goes to every member too.
            if !matches!(
                body.kind,
                enlace::records::model::RecordKind::MatchFilter(_)
            ) {
                seen.push(body.record_id);
            }
        }
    }
    assert_eq!(
        seen,
        vec![public.record_id.clone()],
        "sv's stream carries only what is addressed to sv"
    );
    assert_eq!(
        high_water, public.seq,
        "but its cursor may pass the record it may not see"
    );

    // hn gets both; sv stores only the public one.
    let hn = fed.client("hn").await.unwrap();
    eventually("both at hn", || async {
        let mut c = hn.clone();
        (list_all(&mut c).await.len() == 2).then_some(())
    })
    .await;
    let sv = fed.client("sv").await.unwrap();
    eventually("sv past seq 2", || async {
        let mut c = sv.clone();
        (common::cursor(&mut c, "gt").await >= public.seq).then_some(())
    })
    .await;
    assert!(
        nodes[2]
            .components
            .store
            .records()
            .get_by_id(&private.record_id)
            .unwrap()
            .is_none()
    );
    assert!(
        nodes[1]
            .components
            .store
            .records()
            .get_by_id(&private.record_id)
            .unwrap()
            .is_some()
    );
    for n in nodes {
        n.stop().await.unwrap();
    }
}

/// Every file under `dir`, recursively.
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_clear_identifier_is_stored_anywhere() {
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
    let clear = [
        (SelectorKind::Passport, "X9876543Q"),
        (SelectorKind::NameDob, "ZÚÑIGA QUETZAL, Xiomara|1994-03-21"),
        (SelectorKind::Email, "Xiomara.Quetzal@Example.ORG"),
        (SelectorKind::Phone, "+502 5987 6543"),
    ];
    let rec = publish(&mut gt, sample_alert("con selectores"), &[], &clear).await;
    for id in ["hn", "sv"] {
        let c = fed.client(id).await.unwrap();
        let v = eventually("the alert at the peer", || async {
            let mut c = c.clone();
            c.get_record(pb::GetRecordRequest {
                record_id: rec.record_id.clone(),
            })
            .await
            .ok()
        })
        .await
        .into_inner();
        assert_eq!(
            alert_of(&v).unwrap().selectors.len(),
            0,
            "the alert carries no selector"
        );
    }
    // The identifiers are at gt only, sealed, with their filter entries.
    let gt_node = &nodes[0].components;
    let sources = gt_node.store.filters().own_sources().unwrap();
    assert_eq!(sources.len(), 1, "the alert's identifiers");
    let entries = gt_node
        .store
        .filters()
        .own_entries_of(&sources[0].0)
        .unwrap();
    assert_eq!(entries.len(), 4, "one entry per identifier");
    // Close the stores so everything is on disk, then search every byte.
    for n in nodes {
        n.stop().await.unwrap();
    }
    let needles: Vec<String> = [
        "X9876543Q",
        "ZUNIGA",
        "ZÚÑIGA",
        "Xiomara",
        "XIOMARA",
        "QUETZAL",
        "xiomara.quetzal@example.org",
        "Xiomara.Quetzal@Example.ORG",
        "59876543",
        "1994-03-21",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let mut scanned = 0;
    for id in ["gt", "hn", "sv"] {
        for file in files(&fed.member(id).unwrap().data_dir()) {
            let bytes = std::fs::read(&file).unwrap();
            scanned += bytes.len();
            for needle in &needles {
                let found = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
                assert!(!found, "{needle:?} found in {}", file.display());
            }
        }
    }
    assert!(scanned > 0, "the data directories were scanned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_can_read_but_not_publish() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    // A second agency client, not listed in [agency.clients]: the default role, reader.
    let mut analyst = common::certs::unlisted_client(&fed, "gt", "analyst").await;

    analyst
        .list_records(pb::ListRecordsRequest::default())
        .await
        .expect("a reader lists");
    let err = analyst
        .publish_alert(pb::PublishAlertRequest {
            alert: Some(sample_alert("x")),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert!(
        err.message().contains("\"analyst\" has the reader role"),
        "{}",
        err.message()
    );
    let mut operator = fed.client("gt").await.unwrap();
    assert!(
        list_all(&mut operator).await.is_empty(),
        "nothing was published"
    );
    gt.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_started_before_its_peers_publishes_once_one_answers() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    // hn is not up: nobody can say how far gt's log went.
    eventually("gt's own log unconfirmed", || async {
        (gt.components.publisher.own_log() == enlace::publish::OwnLog::Unconfirmed).then_some(())
    })
    .await;
    let hn = fed.start("hn").await.unwrap();
    // The next publication asks again instead of refusing.
    let mut g = fed.client("gt").await.unwrap();
    let published = common::publish(&mut g, "después de que hn arrancó", &[]).await;
    // 1, or 2 after gt's match filter.
    assert!((1..=2).contains(&published.seq), "{published:?}");
    assert_eq!(
        gt.components.publisher.own_log(),
        enlace::publish::OwnLog::Confirmed
    );
    hn.stop().await.unwrap();
    gt.stop().await.unwrap();
}
