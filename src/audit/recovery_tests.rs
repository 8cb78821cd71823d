//! Unit tests of recovery statements: what a witness refuses, and where a
//! lost log may resume.

use super::*;
use crate::audit::checkpoint::BookKey;

fn id(s: &str) -> NodeId {
    NodeId::parse(s).unwrap()
}

struct Keys {
    gt: SigningKey,
    hn: SigningKey,
    book: KeyBook,
}

fn keys() -> Keys {
    let (gt, _) = SigningKey::generate("gt-k").unwrap();
    let (hn, _) = SigningKey::generate("hn-k").unwrap();
    let mut book = KeyBook::default();
    for (node, k) in [("gt", &gt), ("hn", &hn)] {
        book.0.insert(
            k.key_id().to_owned(),
            BookKey {
                node: id(node),
                public_key: k.public_key().to_vec(),
                valid_from_ms: None,
                valid_until_ms: None,
            },
        );
    }
    Keys { gt, hn, book }
}

fn checkpoint(k: &SigningKey, node: &str, size: u64, head: u8) -> (Checkpoint, SignedCheckpoint) {
    let cp = Checkpoint {
        node: id(node),
        size,
        head: [head; 32],
        time_ms: 1_000,
    };
    let signed = cp.sign(k);
    (cp, signed)
}

fn statement(k: &Keys, size: u64, head: u8, time_ms: i64) -> Recovery {
    let (resumes, resumes_signed) = checkpoint(&k.gt, "gt", size, head);
    Recovery {
        node: id("gt"),
        resumes,
        resumes_signed,
        time_ms,
        reason: "disk lost".into(),
        cause: ResumeCause::Lost,
    }
}

#[test]
fn a_statement_round_trips_and_a_changed_byte_breaks_it() {
    let k = keys();
    let r = statement(&k, 8, 7, 50_000);
    let signed = r.sign(&k.gt);
    assert_eq!(open(&signed, &k.book).unwrap(), r);

    let mut tampered = signed.clone();
    let last = tampered.body.len() - 1;
    tampered.body[last] ^= 1;
    assert!(open(&tampered, &k.book).is_err());

    // Signed by another member's key: not gt's statement.
    let by_hn = r.sign(&k.hn);
    assert!(matches!(
        open(&by_hn, &k.book),
        Err(CheckpointError::WrongOwner { .. })
    ));
}

#[test]
fn a_statement_cannot_resume_from_another_members_checkpoint() {
    let k = keys();
    let (resumes, resumes_signed) = checkpoint(&k.hn, "hn", 8, 7);
    let r = Recovery {
        node: id("gt"),
        resumes,
        resumes_signed,
        time_ms: 50_000,
        reason: String::new(),
        cause: ResumeCause::Lost,
    };
    assert!(matches!(
        open(&r.sign(&k.gt), &k.book),
        Err(CheckpointError::Foreign { .. })
    ));
}

#[test]
fn a_countersignature_binds_the_statement_and_the_witness() {
    let k = keys();
    let signed = statement(&k, 8, 7, 50_000).sign(&k.gt);
    let w = countersign(&signed, &id("hn"), 60_000, &k.hn);
    let opened = open_witness(&w, &k.book).unwrap();
    assert_eq!(opened.witness, id("hn"));
    assert_eq!(opened.recovery.resumes.size, 8);

    let mut other = w.clone();
    other.witnessed_at_ms += 1;
    assert!(open_witness(&other, &k.book).is_err());
    let mut claimed = w;
    claimed.witness = "gt".into();
    assert!(open_witness(&claimed, &k.book).is_err());
}

#[test]
fn a_witness_refuses_what_contradicts_what_it_saw() {
    let k = keys();
    let now = 1_000_000;
    let r = statement(&k, 8, 7, now);
    // Nothing witnessed yet, or a smaller log: countersigned.
    assert_eq!(judge(&r, None, None, now), Ok(()));
    assert_eq!(judge(&r, Some((5, [1; 32])), None, now), Ok(()));
    // The same checkpoint it witnessed: countersigned.
    assert_eq!(judge(&r, Some((8, [7; 32])), None, now), Ok(()));
    // A larger log witnessed: the statement would hide entries.
    assert!(matches!(
        judge(&r, Some((9, [1; 32])), None, now),
        Err(RecoveryRefusal::Behind { witnessed: 9, .. })
    ));
    // Another head at the same size.
    assert!(matches!(
        judge(&r, Some((8, [6; 32])), None, now),
        Err(RecoveryRefusal::Forked { size: 8, .. })
    ));
    // Old, or dated in the future.
    assert!(matches!(
        judge(&r, None, None, now + MAX_SKEW_MS + 1),
        Err(RecoveryRefusal::Stale { .. })
    ));
    assert!(matches!(
        judge(&r, None, None, now - MAX_SKEW_MS - 1),
        Err(RecoveryRefusal::Stale { .. })
    ));
    // An earlier point than one already countersigned; the same point
    // restated is fine.
    assert!(matches!(
        judge(&r, None, Some(9), now),
        Err(RecoveryRefusal::Superseded { held: 9, .. })
    ));
    assert_eq!(judge(&r, None, Some(8), now), Ok(()));
}

#[test]
fn a_lost_log_resumes_after_the_largest_witnessed_checkpoint() {
    let k = keys();
    let gt = id("gt");
    let witnessed = |size: u64, head: u8, by: &str, key: &SigningKey| {
        let (_, signed) = checkpoint(&k.gt, "gt", size, head);
        crate::audit::checkpoint::countersign(&signed, &id(by), 2_000, key)
    };
    assert_eq!(resume_point(&gt, &[], &k.book), Ok(None));
    assert_eq!(resume_point(&gt, &[(id("hn"), vec![])], &k.book), Ok(None));

    let answers = vec![(
        id("hn"),
        vec![witnessed(3, 1, "hn", &k.hn), witnessed(8, 7, "hn", &k.hn)],
    )];
    let (_, cp, by) = resume_point(&gt, &answers, &k.book).unwrap().unwrap();
    assert_eq!((cp.size, cp.head, by), (8, [7; 32], vec![id("hn")]));

    // A witness relayed by another peer than its signer proves nothing.
    let relayed = vec![(id("gt"), vec![witnessed(20, 9, "hn", &k.hn)])];
    assert_eq!(resume_point(&gt, &relayed, &k.book), Ok(None));

    // Two heads at one size: the log forked; no resumption.
    let mut forked = answers.clone();
    forked[0].1.push(witnessed(8, 6, "hn", &k.hn));
    let err = resume_point(&gt, &forked, &k.book).unwrap_err();
    assert!(err.contains("forked"), "{err}");
}

const DAY_MS: i64 = 86_400_000;

#[test]
fn a_retention_statement_is_countersigned_only_for_entries_seen_long_enough_ago() {
    let k = keys();
    let now = 100 * DAY_MS;
    let r = Recovery {
        cause: ResumeCause::Retention,
        ..statement(&k, 8, 7, now)
    };
    let min = i64::from(crate::limits::MIN_AUDIT_RETENTION_DAYS) * DAY_MS;
    // Seen exactly the minimum ago, at the same head: countersigned.
    assert_eq!(
        judge_retention(&r, Some([7; 32]), Some(now - min), now),
        Ok(())
    );
    // Seen later than a larger checkpoint shows, with no checkpoint at
    // exactly that size: judged by when it first reached the entry.
    assert_eq!(judge_retention(&r, None, Some(now - min - 1), now), Ok(()));
    // A day too young (a clock set ahead at the node, or a tool).
    let young = judge_retention(&r, None, Some(now - min + DAY_MS), now).unwrap_err();
    assert!(
        matches!(young, RecoveryRefusal::TooYoung { age_days, .. } if age_days == i64::from(crate::limits::MIN_AUDIT_RETENTION_DAYS) - 1),
        "{young:?}"
    );
    assert!(young.to_string().contains("never pruned"), "{young}");
    // Never seen that far.
    assert!(matches!(
        judge_retention(&r, None, None, now),
        Err(RecoveryRefusal::Unseen { size: 8, .. })
    ));
    // Another head at that size.
    assert!(matches!(
        judge_retention(&r, Some([6; 32]), Some(0), now),
        Err(RecoveryRefusal::Forked { size: 8, .. })
    ));
    // Made under a clock 40 days ahead of the witness's.
    assert!(matches!(
        judge_retention(&r, None, Some(0), now - 40 * DAY_MS),
        Err(RecoveryRefusal::Stale { .. })
    ));
}

#[test]
fn the_cause_is_signed_and_an_unknown_one_is_refused() {
    let k = keys();
    let lost = statement(&k, 8, 7, 50_000);
    let retention = Recovery {
        cause: ResumeCause::Retention,
        ..lost.clone()
    };
    let a = lost.sign(&k.gt);
    let b = retention.sign(&k.gt);
    assert_ne!(a.body, b.body, "the cause is part of the signed bytes");
    assert_eq!(open(&b, &k.book).unwrap().cause, ResumeCause::Retention);
    let mut body = RecoveryBody::decode(&a.body).unwrap();
    body.cause = 9;
    let unknown = SignedRecovery {
        signature: k.gt.sign_in(RECOVERY_SIGNATURE_CONTEXT, &body.encode()),
        body: body.encode(),
        key_id: a.key_id.clone(),
    };
    let e = open(&unknown, &k.book).unwrap_err();
    assert!(e.to_string().contains("cause 9"), "{e}");
}
