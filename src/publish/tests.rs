//! The publisher on its own: a real store and keys from a sandbox, no
//! node running, the clock set by the test.

use std::sync::Arc;

use super::{Change, OwnLog, PublishError};
use crate::audit::Entry;
use crate::clock::ManualClock;
use crate::records::model::fixtures::sample_alert;
use crate::records::model::{Content, MlaRequest, NodeId};
use crate::records::vocabulary::Urgency;
use crate::store::Store;
use crate::testing::Sandbox;
use crate::wire;

/// 2026-05-28: the sample alert (expiring 2027-01-15) is valid then.
const NOW: i64 = 1_780_000_000_000;

/// gt and hn, hn's ports shut: gt's start check is answered at once.
async fn sandbox() -> Sandbox {
    let mut s = Sandbox::create("publish-test", &["gt", "hn"])
        .await
        .expect("sandbox");
    s.clock = Arc::new(ManualClock::starting_at(NOW));
    drop(s.take_listeners("hn"));
    s
}

/// gt's components, declared a new member's first start and checked: the
/// publisher is open although no peer could confirm gt's empty log.
async fn gt(sandbox: &Sandbox) -> crate::node::Components {
    let gt = sandbox.components("gt").unwrap();
    gt.publisher.declare_new_log();
    assert_eq!(gt.publisher.check_own_log().await, OwnLog::Unconfirmed);
    gt
}

fn audit_log(store: &Store) -> Vec<Entry> {
    store
        .audit()
        .entries(0, 1000)
        .expect("audit entries")
        .iter()
        .map(|e| Entry::decode(&e.body).expect("entry"))
        .collect()
}

fn publish(content: Content) -> Change {
    Change::Publish {
        content,
        recipients: Vec::new(),
        key: None,
    }
}

#[tokio::test]
async fn a_publication_is_signed_stored_and_audited_in_one_step() {
    let sandbox = sandbox().await;
    let gt = gt(&sandbox).await;
    let published = gt
        .publisher
        .apply_change(
            publish(Content::Alert(sample_alert())),
            false,
            "gt-operator",
        )
        .await
        .expect("published")
        .expect("not a dry run");
    assert_eq!(published.stored.seq, 1);
    assert_eq!(gt.store.watermark().own_seq, 1);

    let envelope = published.stored.content.envelope().expect("content held");
    let (envelope, body) = wire::open_stored(envelope).expect("decodes");
    assert_eq!(body, published.body);
    assert_eq!(
        body.created_at_ms, NOW,
        "the publisher reads the node's clock"
    );
    let roster = gt.trust.roster();
    let key = roster
        .member(&gt.id)
        .and_then(|m| m.signing_keys.iter().find(|k| k.key_id == envelope.key_id))
        .expect("signed with a key the roster lists for gt");
    assert!(
        crate::records::crypto::verify_record(
            &key.public_key,
            &envelope.key_id,
            &envelope.body,
            &envelope.signature
        )
        .is_ok(),
        "the signature verifies"
    );

    let log = audit_log(&gt.store);
    let entry = log.last().expect("an entry");
    assert_eq!(entry.action, "record_published");
    assert_eq!(entry.actor, "gt-operator");
    assert_eq!(entry.counterparts, vec!["hn".to_string()]);
    assert!(entry.ids.contains(&body.record_id));
    let series = gt
        .store
        .series()
        .decoded(body.series_id())
        .unwrap()
        .expect("series state written with the record");
    assert_eq!(series.version, 1);
}

#[tokio::test]
async fn a_dry_run_checks_everything_and_writes_nothing() {
    let sandbox = sandbox().await;
    let gt = gt(&sandbox).await;
    let audit_before = gt.store.watermark().audit;
    let ok = gt
        .publisher
        .apply_change(publish(Content::Alert(sample_alert())), true, "gt-operator")
        .await
        .expect("valid");
    assert!(ok.is_none());

    let mut expired = sample_alert();
    expired.expires_at_ms = NOW - 1;
    let refused = gt
        .publisher
        .apply_change(publish(Content::Alert(expired)), true, "gt-operator")
        .await
        .expect_err("expired");
    match refused {
        PublishError::Invalid(e) => assert!(
            e.to_string().contains("alert.expires_at"),
            "names the field: {e}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(gt.store.watermark().own_seq, 0);
    assert_eq!(gt.store.watermark().audit, audit_before);
}

#[tokio::test]
async fn updates_follow_the_series_and_unknown_targets_are_refused() {
    let sandbox = sandbox().await;
    let gt = gt(&sandbox).await;
    let missing = crate::records::model::new_record_id(&gt.id, [1; 8]);
    let refused = gt
        .publisher
        .apply_change(
            Change::Update {
                target: missing,
                content: Content::Alert(sample_alert()),
            },
            false,
            "gt-operator",
        )
        .await
        .expect_err("no such record");
    assert!(matches!(refused, PublishError::NotFound(_)), "{refused:?}");
    assert_eq!(gt.store.watermark().own_seq, 0, "nothing written");

    let first = gt
        .publisher
        .apply_change(
            publish(Content::Alert(sample_alert())),
            false,
            "gt-operator",
        )
        .await
        .unwrap()
        .unwrap();
    let mut changed = sample_alert();
    changed.summary = "Ruta por El Carmen".into();
    let second = gt
        .publisher
        .apply_change(
            Change::Update {
                target: first.body.record_id.clone(),
                content: Content::Alert(changed),
            },
            false,
            "gt-operator",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.stored.seq, 2);
    assert_eq!(second.body.series_id(), first.body.series_id());
    assert_eq!(second.body.version(), 2);
    let series = gt
        .store
        .series()
        .decoded(first.body.series_id())
        .unwrap()
        .unwrap();
    assert_eq!(series.version, 2);
}

#[tokio::test]
async fn only_a_request_addressed_here_and_not_yet_acknowledged_is_acknowledged() {
    let sandbox = sandbox().await;
    let gt = gt(&sandbox).await;
    let case = gt
        .publisher
        .apply_change(
            publish(Content::CaseReference(case_reference("MP-7"))),
            false,
            "gt-operator",
        )
        .await
        .unwrap()
        .unwrap();
    let sent = gt
        .publisher
        .apply_change(
            Change::SendMla(MlaRequest {
                to: NodeId::parse("hn").unwrap(),
                case_refs: vec![case.body.record_id.clone()],
                query_id: String::new(),
                legal_basis: "UNTOC Art. 18".into(),
                measures: "Información bancaria".into(),
                urgency: Urgency::Urgent,
                deadline_ms: None,
            }),
            false,
            "gt-operator",
        )
        .await
        .expect("sent")
        .expect("not a dry run");
    let request_id = sent.body.record_id.clone();
    let state = gt.store.series().mla(&request_id).unwrap().expect("state");
    assert_eq!(state.to, "hn");
    assert!(state.ack.is_none());

    // A request this node sent is for hn to acknowledge, not for gt; and
    // an unknown one is nobody's.
    gt.publisher.acknowledge_mla(&request_id).await;
    gt.publisher.acknowledge_mla("mla-unknown").await;
    gt.publisher.acknowledge_pending_mla().await;
    assert_eq!(gt.store.watermark().own_seq, 2, "nothing acknowledged");
    assert!(
        gt.store
            .series()
            .mla(&request_id)
            .unwrap()
            .unwrap()
            .ack
            .is_none()
    );
}

#[tokio::test]
async fn an_empty_store_that_no_peer_confirmed_publishes_nothing_and_says_what_to_do() {
    let sandbox = sandbox().await;
    let gt = sandbox.components("gt").unwrap();
    assert_eq!(gt.publisher.own_log(), OwnLog::Unchecked);
    assert_eq!(gt.publisher.check_own_log().await, OwnLog::Unconfirmed);
    let refused = gt
        .publisher
        .apply_change(
            publish(Content::Alert(sample_alert())),
            false,
            "gt-operator",
        )
        .await
        .expect_err("unconfirmed, empty");
    assert!(
        matches!(refused, PublishError::OwnLogUnconfirmed),
        "{refused:?}"
    );
    let said = refused.to_string();
    assert!(
        said.contains("enlace node recover") && said.contains("--new-log"),
        "{said}"
    );
    assert_eq!(gt.store.watermark().own_seq, 0);
    // A dry run checks the request only: it is not a publication.
    assert!(
        gt.publisher
            .apply_change(publish(Content::Alert(sample_alert())), true, "gt-operator")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_peer_that_never_answers_does_not_hold_up_every_publication() {
    // hn's listeners stay bound but nobody serves them: a connection to
    // hn hangs as behind a firewall that drops packets, and each question
    // waits out CHECK_TIMEOUT.
    let mut sandbox = Sandbox::create("publish-test", &["gt", "hn"])
        .await
        .expect("sandbox");
    sandbox.clock = Arc::new(ManualClock::starting_at(NOW));
    let gt = gt(&sandbox).await;
    assert_eq!(gt.publisher.gate.checks(), 1);
    for i in 0..4 {
        gt.publisher
            .apply_change(
                publish(Content::Alert(sample_alert())),
                false,
                &format!("gt-operator-{i}"),
            )
            .await
            .expect("published: the new log was declared");
    }
    assert_eq!(gt.store.watermark().own_seq, 4);
    // One more question at the first publication, none for the next ones
    // within the recheck interval.
    assert_eq!(gt.publisher.gate.checks(), 2);
    assert_eq!(gt.publisher.own_log(), OwnLog::Unconfirmed);
}

#[tokio::test]
async fn a_federation_of_one_has_nobody_to_ask() {
    let mut sandbox = Sandbox::create("publish-test", &["gt"]).await.unwrap();
    sandbox.clock = Arc::new(ManualClock::starting_at(NOW));
    let gt = sandbox.components("gt").unwrap();
    assert_eq!(gt.publisher.check_own_log().await, OwnLog::Confirmed);
    gt.publisher
        .apply_change(
            publish(Content::Alert(sample_alert())),
            false,
            "gt-operator",
        )
        .await
        .expect("published");
}

fn case_reference(case_ref: &str) -> crate::records::model::CaseReference {
    use crate::records::vocabulary::{CaseStage, HandlingCode, MlaStatus, Offence, Tlp};
    crate::records::model::CaseReference {
        case_ref: case_ref.into(),
        offence: Offence::Trafficking,
        stage: CaseStage::Investigation,
        competent_authority: "Fiscalía contra la Trata de Personas".into(),
        contact: None,
        mla_status: MlaStatus::Planned,
        linked_alerts: Vec::new(),
        handling: crate::records::model::Handling {
            code: HandlingCode::H2,
            condition: None,
        },
        tlp: Tlp::Amber,
        expires_at_ms: NOW + 86_400_000,
        review_at_ms: None,
        summary: None,
        language: "es".into(),
        trafficking: None,
        smuggling: None,
    }
}

#[tokio::test]
async fn an_mla_request_cites_only_case_references_its_recipient_holds() {
    let mut sandbox = Sandbox::create("publish-test", &["gt", "hn", "sv"])
        .await
        .unwrap();
    sandbox.clock = Arc::new(ManualClock::starting_at(NOW));
    drop(sandbox.take_listeners("hn"));
    drop(sandbox.take_listeners("sv"));
    let gt = gt(&sandbox).await;
    let put = |content: Content, to: &[&str]| Change::Publish {
        content,
        recipients: to.iter().map(|s| s.to_string()).collect(),
        key: None,
    };
    let mut ids = Vec::new();
    for change in [
        put(Content::Alert(sample_alert()), &[]),
        put(Content::CaseReference(case_reference("MP-1")), &["sv"]),
        put(Content::CaseReference(case_reference("MP-2")), &[]),
    ] {
        let p = gt
            .publisher
            .apply_change(change, false, "gt-operator")
            .await
            .unwrap()
            .unwrap();
        ids.push(p.body.record_id);
    }
    let (alert, for_sv, for_all) = (ids[0].clone(), ids[1].clone(), ids[2].clone());
    let missing = crate::records::model::new_record_id(&gt.id, [3; 8]);
    let request = |case_refs: Vec<String>| {
        Change::SendMla(MlaRequest {
            to: NodeId::parse("hn").unwrap(),
            case_refs,
            query_id: String::new(),
            legal_basis: "UNTOC Art. 18".into(),
            measures: "Información bancaria".into(),
            urgency: Urgency::Urgent,
            deadline_ms: None,
        })
    };
    let refused = gt
        .publisher
        .apply_change(
            request(vec![
                missing.clone(),
                alert.clone(),
                for_sv.clone(),
                for_all.clone(),
            ]),
            false,
            "gt-operator",
        )
        .await
        .expect_err("three bad references");
    let said = refused.to_string();
    for expected in [
        format!("mla_request.case_refs[0]: {missing} is not a record held by this node"),
        format!("mla_request.case_refs[1]: {alert} is not a case reference (its kind: alert)"),
        format!("mla_request.case_refs[2]: {for_sv} is not disclosed to hn"),
    ] {
        assert!(said.contains(&expected), "{expected:?} in {said}");
    }
    assert!(!said.contains("case_refs[3]"), "{said}");
    assert_eq!(gt.store.watermark().own_seq, 3, "nothing sent");
    gt.publisher
        .apply_change(request(vec![for_all]), false, "gt-operator")
        .await
        .expect("a case reference hn holds");
}

#[tokio::test]
async fn a_case_reference_links_only_alerts_all_its_recipients_hold() {
    let mut sandbox = Sandbox::create("publish-test", &["gt", "hn", "sv"])
        .await
        .unwrap();
    sandbox.clock = Arc::new(ManualClock::starting_at(NOW));
    drop(sandbox.take_listeners("hn"));
    drop(sandbox.take_listeners("sv"));
    let gt = gt(&sandbox).await;
    let put = |content: Content, to: &[&str]| Change::Publish {
        content,
        recipients: to.iter().map(|s| s.to_string()).collect(),
        key: None,
    };
    let mut ids = Vec::new();
    for change in [
        put(Content::Alert(sample_alert()), &[]),
        put(Content::Alert(sample_alert()), &["sv"]),
        put(Content::CaseReference(case_reference("MP-1")), &[]),
    ] {
        let p = gt
            .publisher
            .apply_change(change, false, "gt-operator")
            .await
            .unwrap()
            .unwrap();
        ids.push(p.body.record_id);
    }
    let (for_all, for_sv, case) = (ids[0].clone(), ids[1].clone(), ids[2].clone());
    let missing = crate::records::model::new_record_id(&gt.id, [4; 8]);
    let linking = |links: &[&String]| {
        let mut c = case_reference("MP-2");
        c.linked_alerts = links.iter().map(|s| s.to_string()).collect();
        Content::CaseReference(c)
    };
    let refused = gt
        .publisher
        .apply_change(
            put(linking(&[&missing, &for_sv, &case, &for_all]), &["hn"]),
            false,
            "gt-operator",
        )
        .await
        .expect_err("three bad links");
    let said = refused.to_string();
    for expected in [
        format!("case_reference.linked_alerts[0]: {missing} is not a record held by this node"),
        format!("case_reference.linked_alerts[1]: {for_sv} is not disclosed to hn"),
        format!("case_reference.linked_alerts[2]: {case} is not an alert"),
    ] {
        assert!(said.contains(&expected), "{expected:?} in {said}");
    }
    assert!(!said.contains("linked_alerts[3]"), "{said}");
    assert_eq!(gt.store.watermark().own_seq, 3, "nothing published");

    // An update is held to the same rule, against the series' recipients.
    let refused = gt
        .publisher
        .apply_change(
            Change::Update {
                target: case.clone(),
                content: linking(&[&for_sv]),
            },
            false,
            "gt-operator",
        )
        .await
        .expect_err("hn is among the case reference's recipients");
    assert!(
        refused.to_string().contains("not disclosed to hn"),
        "{refused}"
    );

    for (links, to) in [
        (&[&for_all][..], &["hn"][..]),
        (&[&for_sv][..], &["sv"][..]),
    ] {
        gt.publisher
            .apply_change(put(linking(links), to), false, "gt-operator")
            .await
            .expect("links alerts its recipients hold");
    }
}

#[tokio::test]
async fn a_keyed_publication_is_stored_once_however_often_it_is_sent() {
    use super::PublishKey;
    let sandbox = sandbox().await;
    let gt = gt(&sandbox).await;
    let keyed = |k: &str| Change::Publish {
        content: Content::Alert(sample_alert()),
        recipients: Vec::new(),
        key: Some(PublishKey::parse(k).expect("a valid key")),
    };
    // A retry racing its first try: both wait in the same queue.
    let (a, b) = tokio::join!(
        gt.publisher
            .apply_change(keyed("line-1"), false, "gt-operator"),
        gt.publisher
            .apply_change(keyed("line-1"), false, "gt-operator"),
    );
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    assert_eq!(a.body.record_id, b.body.record_id);
    assert!(a.already != b.already, "one stored, one answered with it");
    assert_eq!(gt.store.watermark().own_seq, 1);
    // A dry run of it says so too, and another key is another record.
    let dry = gt
        .publisher
        .apply_change(keyed("line-1"), true, "gt-operator")
        .await
        .unwrap()
        .expect("the earlier record");
    assert!(dry.already && dry.body.record_id == a.body.record_id);
    gt.publisher
        .apply_change(keyed("line-2"), false, "gt-operator")
        .await
        .unwrap();
    assert_eq!(gt.store.watermark().own_seq, 2);
    let id = a.body.record_id.clone();
    drop((a, b, dry, gt));

    // The key was durable with the record: after a restart, still one.
    let gt = sandbox.components("gt").unwrap();
    gt.publisher.declare_new_log();
    let again = gt
        .publisher
        .apply_change(keyed("line-1"), false, "gt-operator")
        .await
        .unwrap()
        .unwrap();
    assert!(again.already && again.body.record_id == id);
    // Once the record has expired its key no longer holds it.
    let expires = crate::records::lifecycle::expires_at(&again.body).unwrap();
    assert!(
        gt.store
            .publish_keys()
            .get(b"line-1", expires)
            .unwrap()
            .is_none()
    );
    assert_eq!(gt.store.publish_keys().prune(expires).await.unwrap(), 2);
    // Not a key: refused with its rule.
    assert!(PublishKey::parse("a b").unwrap_err().contains("' '"));
}
