//! Unit tests of the verifier: each way a log, its checkpoints or its
//! witnesses can be wrong, and the verdict that must name it.

use super::*;
use crate::audit::Action;
use crate::audit::checkpoint::BookKey;
use crate::audit::recovery::{self, Recovery};
use crate::records::crypto::SigningKey;
use crate::wire::SignedRecovery;

fn log(n: u64) -> Vec<RawEntry> {
    let mut prev = GENESIS;
    (1..=n)
        .map(|i| {
            let body = Entry::new(Action::RecordPublished, "analyst")
                .id(format!("gt-{i}"))
                .encode();
            let e = RawEntry::chained(i, prev, body);
            prev = e.hash;
            e
        })
        .collect()
}

struct Fixture {
    gt: SigningKey,
    hn: SigningKey,
    keys: KeyBook,
}

fn fixture() -> Fixture {
    let (gt, _) = SigningKey::generate("gt-k").unwrap();
    let (hn, _) = SigningKey::generate("hn-k").unwrap();
    let mut keys = KeyBook::default();
    for (node, k) in [("gt", &gt), ("hn", &hn)] {
        keys.0.insert(
            k.key_id().to_owned(),
            BookKey {
                node: NodeId::parse(node).unwrap(),
                public_key: k.public_key().to_vec(),
                valid_from_ms: None,
                valid_until_ms: None,
            },
        );
    }
    Fixture { gt, hn, keys }
}

fn checkpoint_of(f: &Fixture, entries: &[RawEntry], size: u64) -> SignedCheckpoint {
    Checkpoint {
        node: NodeId::parse("gt").unwrap(),
        size,
        head: entries[size as usize - 1].hash,
        time_ms: 1_000,
    }
    .sign(&f.gt)
}

fn run(
    f: &Fixture,
    entries: &[RawEntry],
    own: Vec<SignedCheckpoint>,
    witnessed: Vec<Witness>,
) -> Report {
    let mut v = Verifier::new(Evidence {
        node: NodeId::parse("gt").unwrap(),
        anchor: None,
        own,
        peers: vec![(NodeId::parse("hn").unwrap(), Ok(witnessed))],
        keys: f.keys.clone(),
        recoveries: Vec::new(),
        retention: None,
        now_ms: crate::clock::now_ms(),
    });
    for e in entries {
        v.push(e);
    }
    v.finish()
}

#[test]
fn an_intact_log_holds() {
    let f = fixture();
    let entries = log(10);
    let cp = checkpoint_of(&f, &entries, 8);
    let w = checkpoint::countersign(&cp, &NodeId::parse("hn").unwrap(), 2_000, &f.hn);
    let r = run(&f, &entries, vec![cp], vec![w]);
    assert!(r.holds(), "{:?}", r.checks);
    assert_eq!((r.size, r.entries), (10, 10));
}

#[test]
fn the_report_names_the_roster_version_the_latest_checkpoints_were_made_under() {
    let f = fixture();
    let entries = log(10);
    let hn = NodeId::parse("hn").unwrap();
    let old = checkpoint_of(&f, &entries, 6);
    let stamped = Checkpoint::decode(&checkpoint_of(&f, &entries, 8).body)
        .unwrap()
        .under(Some(RosterStamp {
            version: 2,
            sha256: [0xab; 32],
        }))
        .sign(&f.gt);
    let witnesses = vec![
        checkpoint::countersign(&old, &hn, 2_000, &f.hn),
        checkpoint::countersign(&stamped, &hn, 3_000, &f.hn),
    ];
    let r = run(&f, &entries, vec![old.clone(), stamped], witnesses);
    assert!(r.holds(), "{:?}", r.checks);
    let detail = |name: &str| {
        r.checks
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.detail.clone())
            .unwrap()
    };
    let under_2 = "the latest covers 8 entries, made under roster version 2 (abababababababab)";
    assert!(
        detail("own checkpoints").contains(under_2),
        "{:?}",
        r.checks
    );
    assert!(
        detail("witnessed by hn").contains(under_2),
        "{:?}",
        r.checks
    );
    // Checkpoints made before they named their roster still verify, and
    // the report says they name none.
    let w = checkpoint::countersign(&old, &hn, 2_000, &f.hn);
    let r = run(&f, &entries, vec![old], vec![w]);
    assert!(r.holds(), "{:?}", r.checks);
    assert!(
        r.checks.iter().any(|c| c
            .detail
            .contains("made before checkpoints named their roster version")),
        "{:?}",
        r.checks
    );
}

#[test]
fn a_flipped_byte_names_its_entry() {
    let f = fixture();
    let mut entries = log(10);
    let last = entries[6].body.len() - 3;
    entries[6].body[last] ^= 0x20;
    let r = run(&f, &entries, vec![], vec![]);
    assert!(!r.holds());
    assert_eq!(r.first_bad, Some(7));
    assert!(r.checks[0].detail.contains("entry 7"), "{:?}", r.checks);
}

#[test]
fn a_removed_entry_is_found() {
    let f = fixture();
    let mut entries = log(10);
    entries.remove(3);
    let r = run(&f, &entries, vec![], vec![]);
    assert_eq!(r.first_bad, Some(4));
}

#[test]
fn a_truncated_tail_is_caught_by_a_witness() {
    let f = fixture();
    let entries = log(10);
    let cp = checkpoint_of(&f, &entries, 10);
    let w = checkpoint::countersign(&cp, &NodeId::parse("hn").unwrap(), 2_000, &f.hn);
    // The node drops its own checkpoint too: the witness remains.
    let r = run(&f, &entries[..7], vec![], vec![w]);
    assert!(!r.holds());
    assert_eq!(r.first_bad, Some(8));
    let hn = r
        .checks
        .iter()
        .find(|c| c.name == "witnessed by hn")
        .unwrap();
    assert!(
        hn.detail.contains("entries 8..10 were removed"),
        "{}",
        hn.detail
    );
}

#[test]
fn a_rewritten_tail_is_caught_by_a_witness_even_when_rehashed_and_resigned() {
    let f = fixture();
    let entries = log(10);
    let early = checkpoint_of(&f, &entries, 5);
    let late = checkpoint_of(&f, &entries, 10);
    let hn = NodeId::parse("hn").unwrap();
    let witnesses = vec![
        checkpoint::countersign(&early, &hn, 2_000, &f.hn),
        checkpoint::countersign(&late, &hn, 3_000, &f.hn),
    ];
    // Rewrite entries 7..10 consistently and re-sign a checkpoint.
    let mut forged = entries[..6].to_vec();
    let mut prev = forged[5].hash;
    for i in 7..=10u64 {
        let body = Entry::new(Action::RecordPublished, "nobody").encode();
        let e = RawEntry::chained(i, prev, body);
        prev = e.hash;
        forged.push(e);
    }
    let resigned = checkpoint_of(&f, &forged, 10);
    let r = run(&f, &forged, vec![resigned], witnesses);
    assert!(!r.holds());
    assert!(r.checks[0].ok, "the chain itself is consistent");
    assert_eq!(r.first_bad, Some(6), "bounded by the last agreeing witness");
    let hn = r
        .checks
        .iter()
        .find(|c| c.name == "witnessed by hn")
        .unwrap();
    assert!(hn.detail.contains("rewritten"), "{}", hn.detail);
}

#[test]
fn an_unreachable_peer_fails_the_verification() {
    let f = fixture();
    let entries = log(3);
    let mut v = Verifier::new(Evidence {
        node: NodeId::parse("gt").unwrap(),
        anchor: None,
        own: vec![],
        peers: vec![(
            NodeId::parse("hn").unwrap(),
            Err("connection refused".into()),
        )],
        keys: f.keys.clone(),
        recoveries: Vec::new(),
        retention: None,
        now_ms: crate::clock::now_ms(),
    });
    for e in &entries {
        v.push(e);
    }
    let r = v.finish();
    assert!(!r.holds());
    assert_eq!(r.first_bad, None);
}

/// A retention statement by gt that its log resumes after entry `size` of
/// `entries`, countersigned by hn unless `signed` is false.
fn retention(f: &Fixture, entries: &[RawEntry], size: u64, signed: bool) -> AuditRecovery {
    let resumes_signed = checkpoint_of(f, entries, size);
    let statement = Recovery {
        node: NodeId::parse("gt").unwrap(),
        resumes: Checkpoint::decode(&resumes_signed.body).unwrap(),
        resumes_signed,
        time_ms: 40_000,
        reason: "retention".into(),
        cause: ResumeCause::Retention,
    }
    .sign(&f.gt);
    let witnesses = if signed {
        vec![recovery::countersign(
            &statement,
            &NodeId::parse("hn").unwrap(),
            41_000,
            &f.hn,
        )]
    } else {
        vec![]
    };
    AuditRecovery {
        statement,
        witnesses,
    }
}

#[test]
fn a_pruned_log_verifies_from_its_anchor() {
    let f = fixture();
    let entries = log(10);
    let anchor_cp = checkpoint_of(&f, &entries, 4);
    let anchor = Anchor {
        n: 4,
        hash: entries[3].hash,
        checkpoint: anchor_cp.encode(),
    };
    let early = checkpoint::countersign(
        &checkpoint_of(&f, &entries, 2),
        &NodeId::parse("hn").unwrap(),
        1,
        &f.hn,
    );
    let evidence = |retention: Option<AuditRecovery>| Evidence {
        node: NodeId::parse("gt").unwrap(),
        anchor: Some(anchor.clone()),
        own: vec![],
        peers: vec![(NodeId::parse("hn").unwrap(), Ok(vec![early.clone()]))],
        keys: f.keys.clone(),
        recoveries: Vec::new(),
        retention,
        now_ms: crate::clock::now_ms(),
    };
    let verify = |retention| {
        let mut v = Verifier::new(evidence(retention));
        for e in &entries[4..] {
            v.push(e);
        }
        let r = v.finish();
        let anchor = r
            .checks
            .iter()
            .find(|c| c.name == "retention anchor")
            .cloned()
            .unwrap();
        (r, anchor)
    };
    // Countersigned by hn, at the anchor or beyond it: holds.
    for size in [4, 6] {
        let (r, anchor) = verify(Some(retention(&f, &entries, size, true)));
        assert!(r.holds(), "{:?}", r.checks);
        assert!(anchor.detail.contains("countersigned by hn"), "{anchor:?}");
    }
    // No statement (an operator's tool), one no peer countersigned, one
    // that allows fewer entries: the anchor does not hold.
    for (retention, why) in [
        (None, "no statement that a peer countersigned"),
        (
            Some(retention(&f, &entries, 4, false)),
            "no peer countersigned",
        ),
        (
            Some(retention(&f, &entries, 3, true)),
            "allows entries 1..3 only",
        ),
    ] {
        let (r, anchor) = verify(retention);
        assert!(!r.holds());
        assert!(!anchor.ok && anchor.detail.contains(why), "{anchor:?}");
    }
    // A lost log's statement kept as the retention statement.
    let mut lost = retention(&f, &entries, 4, true);
    let mut body = crate::wire::RecoveryBody::decode(&lost.statement.body).unwrap();
    body.cause = ResumeCause::Lost.code();
    lost.statement = SignedRecovery {
        signature: f.gt.sign_in(
            crate::records::crypto::RECOVERY_SIGNATURE_CONTEXT,
            &body.encode(),
        ),
        body: body.encode(),
        key_id: lost.statement.key_id.clone(),
    };
    let (_, check) = verify(Some(lost));
    assert!(!check.ok && check.detail.contains("cause"), "{check:?}");
    // A forged anchor hash breaks the link of the first kept entry.
    let mut v = Verifier::new(Evidence {
        node: NodeId::parse("gt").unwrap(),
        anchor: Some(Anchor {
            hash: [1; HASH_LEN],
            ..anchor.clone()
        }),
        own: vec![],
        peers: vec![],
        keys: f.keys.clone(),
        recoveries: Vec::new(),
        retention: Some(retention(&f, &entries, 4, true)),
        now_ms: crate::clock::now_ms(),
    });
    for e in &entries[4..] {
        v.push(e);
    }
    let r = v.finish();
    assert_eq!(r.first_bad, Some(4), "the anchor itself is named");
}

/// gt's log of `lost` entries was lost after hn witnessed a checkpoint at
/// `lost`; the new log resumes after it with `more` entries. The evidence,
/// the new entries, and the kept recovery (countersigned by hn if `signed`).
fn resumed(f: &Fixture, lost: u64, more: u64, signed: bool) -> (Evidence, Vec<RawEntry>) {
    let old = log(lost);
    let resumes_signed = checkpoint_of(f, &old, lost);
    let resumes = Checkpoint::decode(&resumes_signed.body).unwrap();
    let statement = Recovery {
        node: NodeId::parse("gt").unwrap(),
        resumes: resumes.clone(),
        resumes_signed: resumes_signed.clone(),
        time_ms: 90_000,
        reason: "disk lost".into(),
        cause: ResumeCause::Lost,
    }
    .sign(&f.gt);
    let hn = NodeId::parse("hn").unwrap();
    let witnesses = if signed {
        vec![recovery::countersign(&statement, &hn, 91_000, &f.hn)]
    } else {
        vec![]
    };
    let mut prev = resumes.head;
    let fresh: Vec<RawEntry> = (lost + 1..=lost + more)
        .map(|n| {
            let e = RawEntry::chained(n, prev, Entry::new(Action::RecordsReceived, "gt").encode());
            prev = e.hash;
            e
        })
        .collect();
    let new_cp = Checkpoint {
        node: NodeId::parse("gt").unwrap(),
        size: lost + more,
        head: prev,
        time_ms: 95_000,
    }
    .sign(&f.gt);
    let evidence = Evidence {
        node: NodeId::parse("gt").unwrap(),
        anchor: Some(Anchor {
            n: lost,
            hash: resumes.head,
            checkpoint: resumes_signed.encode(),
        }),
        own: vec![new_cp.clone()],
        peers: vec![(
            hn.clone(),
            Ok(vec![
                checkpoint::countersign(&checkpoint_of(f, &old, 3), &hn, 10, &f.hn),
                checkpoint::countersign(&resumes_signed, &hn, 20, &f.hn),
                checkpoint::countersign(&new_cp, &hn, 96_000, &f.hn),
            ]),
        )],
        keys: f.keys.clone(),
        recoveries: vec![AuditRecovery {
            statement,
            witnesses,
        }],
        retention: None,
        now_ms: 100_000,
    };
    (evidence, fresh)
}

#[test]
fn a_log_resumed_after_a_loss_verifies_and_reports_the_incident() {
    let f = fixture();
    let (evidence, fresh) = resumed(&f, 8, 4, true);
    let mut v = Verifier::new(evidence);
    for e in &fresh {
        v.push(e);
    }
    let r = v.finish();
    assert!(r.holds(), "{:?}", r.checks);
    let incident = r
        .checks
        .iter()
        .find(|c| c.name == "recovery of a lost log")
        .expect("the recovery is reported");
    assert!(
        incident.detail.contains("entries 1..8 were lost") && incident.detail.contains("hn at"),
        "{}",
        incident.detail
    );
    let hn = r
        .checks
        .iter()
        .find(|c| c.name == "witnessed by hn")
        .unwrap();
    assert!(hn.detail.contains("precede the anchor"), "{}", hn.detail);
}

#[test]
fn a_recovery_no_peer_countersigned_does_not_verify() {
    let f = fixture();
    let (evidence, fresh) = resumed(&f, 8, 4, false);
    let mut v = Verifier::new(evidence);
    for e in &fresh {
        v.push(e);
    }
    let r = v.finish();
    assert!(!r.holds());
    let incident = r
        .checks
        .iter()
        .find(|c| c.name == "recovery of a lost log")
        .unwrap();
    assert!(
        !incident.ok && incident.detail.contains("countersigned by no peer"),
        "{}",
        incident.detail
    );
}

#[test]
fn a_countersignature_of_another_statement_does_not_count() {
    let f = fixture();
    let (mut evidence, fresh) = resumed(&f, 8, 4, true);
    // hn's countersignature, moved onto a statement with another reason.
    let mut other = Recovery {
        reason: "something else".into(),
        ..recovery::open(&evidence.recoveries[0].statement, &f.keys).unwrap()
    }
    .sign(&f.gt);
    std::mem::swap(&mut evidence.recoveries[0].statement, &mut other);
    let mut v = Verifier::new(evidence);
    for e in &fresh {
        v.push(e);
    }
    let r = v.finish();
    assert!(!r.holds(), "{:?}", r.checks);
}

#[test]
fn an_anchor_signed_ahead_of_the_verifiers_clock_does_not_hold() {
    let f = fixture();
    let entries = log(10);
    let now = crate::clock::now_ms();
    let anchor_cp = Checkpoint {
        node: NodeId::parse("gt").unwrap(),
        size: 4,
        head: entries[3].hash,
        time_ms: now + 40 * 86_400_000,
    }
    .sign(&f.gt);
    let mut v = Verifier::new(Evidence {
        node: NodeId::parse("gt").unwrap(),
        anchor: Some(Anchor {
            n: 4,
            hash: entries[3].hash,
            checkpoint: anchor_cp.encode(),
        }),
        own: vec![],
        peers: vec![],
        keys: f.keys.clone(),
        recoveries: Vec::new(),
        retention: None,
        now_ms: now,
    });
    for e in &entries[4..] {
        v.push(e);
    }
    let r = v.finish();
    assert!(!r.holds());
    let anchor = r
        .checks
        .iter()
        .find(|c| c.name == "retention anchor")
        .unwrap();
    assert!(
        anchor.detail.contains("ahead of this verifier's clock"),
        "{}",
        anchor.detail
    );
}
