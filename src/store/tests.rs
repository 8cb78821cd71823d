use super::audit_log::{Anchor, RawEntry};
use super::meta::LOG_END_KEY;
use super::*;

fn id(s: &str) -> NodeId {
    NodeId::parse(s).unwrap()
}

fn no_audit(_: &[&NewRecord], _: &Applied) -> Vec<Vec<u8>> {
    Vec::new()
}

fn head(origin: &str, seq: u64, position: u64, record_id: &str, v2: bool) -> record_log::Head {
    record_log::Head {
        origin: id(origin),
        seq,
        position,
        record_id: record_id.into(),
        expires_at_ms: None,
        series_state: None,
        v2,
    }
}

/// What the store holds for the record with id `rid`, which must be held.
fn content(store: &Store, rid: &str) -> Content {
    store.records().get_by_id(rid).unwrap().unwrap().content
}

fn rec(seq: u64, bytes: Vec<u8>) -> NewRecord {
    NewRecord {
        seq,
        record_id: format!("gt-{seq:016x}"),
        content: Content::Envelope(bytes),
        expires_at_ms: None,
        series: None,
        publish_key: None,
    }
}

#[tokio::test]
async fn own_log_is_gapless_and_survives_reopen() {
    let dir = private_tempdir();
    {
        let store = Store::open(dir.path(), &id("gt")).unwrap();
        for i in 1..=3u64 {
            let r = store
                .records()
                .append_own(|seq| Ok::<_, ()>((rec(seq, vec![i as u8]), b"published".to_vec())))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(r.seq, i);
        }
        assert_eq!(
            store.watermark(),
            Watermark {
                arrival: 3,
                own_seq: 3,
                audit: 3
            }
        );
    }
    let store = Store::open(dir.path(), &id("gt")).unwrap();
    assert_eq!(store.watermark().own_seq, 3);
    let r = store
        .records()
        .append_own(|seq| Ok::<_, ()>((rec(seq, vec![4]), b"published".to_vec())))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((r.seq, r.position), (4, 4));
    assert_eq!(
        content(&store, "gt-0000000000000002"),
        Content::Envelope(vec![2])
    );
}

#[tokio::test]
async fn a_store_refuses_another_node() {
    let dir = private_tempdir();
    drop(Store::open(dir.path(), &id("gt")).unwrap());
    let err = Store::open(dir.path(), &id("hn")).unwrap_err();
    assert!(err.to_string().contains("belongs to node gt"), "{err}");
}

#[test]
fn a_store_held_open_is_reported_locked_and_opens_once_released() {
    let dir = private_tempdir();
    let held = Store::open(dir.path(), &id("gt")).unwrap();
    let err = Store::open(dir.path(), &id("gt")).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
    drop(held);
    // sled releases its lock a moment after the last handle goes; the
    // open waits for that rather than failing.
    Store::open(dir.path(), &id("gt")).unwrap();
}

#[tokio::test]
async fn received_records_are_idempotent_and_conflicts_detected() {
    let dir = private_tempdir();
    let store = Store::open(dir.path(), &id("hn")).unwrap();
    let gt = id("gt");
    let recs: Vec<NewRecord> = (1..=3).map(|s| rec(s, vec![s as u8; 4])).collect();
    let a = store
        .records()
        .apply_received(&gt, &recs, 5, no_audit)
        .await
        .unwrap();
    assert_eq!(a.stored, 3);
    assert_eq!(store.records().cursor(&gt).unwrap(), 5);
    let again = store
        .records()
        .apply_received(&gt, &recs, 2, no_audit)
        .await
        .unwrap();
    assert_eq!((again.stored, again.duplicates), (0, 3));
    assert_eq!(
        store.records().cursor(&gt).unwrap(),
        5,
        "cursor never moves back"
    );
    let mut forged = rec(2, vec![9]);
    forged.record_id = "gt-ffffffffffffffff".into();
    let c = store
        .records()
        .apply_received(&gt, &[forged], 5, no_audit)
        .await
        .unwrap();
    assert_eq!(c.conflicts, vec![2]);
    let (listed, last) = store.records().list(0, 100, None).unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(last, 3);
    assert_eq!(store.records().of_origin(&gt, 1, 3, 10).unwrap().len(), 2);
}

#[tokio::test]
async fn series_state_is_written_with_its_record_and_expiry_purges_content() {
    let dir = private_tempdir();
    let store = Store::open(dir.path(), &id("hn")).unwrap();
    let gt = id("gt");
    let mut r = rec(1, b"secret content".to_vec());
    r.expires_at_ms = Some(1_000);
    r.series = Some(SeriesWrite {
        series_id: r.record_id.clone(),
        state: b"v1".to_vec(),
    });
    let mut later = rec(2, b"later".to_vec());
    later.expires_at_ms = Some(5_000);
    store
        .records()
        .apply_received(&gt, &[r, later], 2, no_audit)
        .await
        .unwrap();
    assert_eq!(
        store
            .series()
            .state("gt-0000000000000001")
            .unwrap()
            .as_deref(),
        Some(&b"v1"[..])
    );

    assert!(store.records().expired(999, 10).unwrap().is_empty());
    let due = store.records().expired(1_000, 10).unwrap();
    assert_eq!(due.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1]);
    store
        .records()
        .purge(&gt, 1, 1_000, b"tombstone".to_vec(), b"purged".to_vec())
        .await
        .unwrap();
    assert!(
        store.records().expired(1_000, 10).unwrap().is_empty(),
        "expiry entry removed"
    );
    assert_eq!(
        content(&store, "gt-0000000000000001"),
        Content::Tombstone(b"tombstone".to_vec())
    );
    // Re-delivery of a purged record is a duplicate, not a conflict.
    let again = store
        .records()
        .apply_received(&gt, &[rec(1, b"secret content".to_vec())], 2, no_audit)
        .await
        .unwrap();
    assert_eq!(again.duplicates, 1);
    assert!(again.conflicts.is_empty());
}

#[tokio::test]
async fn combined_appends_skip_failed_makers_without_gaps() {
    let dir = private_tempdir();
    let store = Store::open(dir.path(), &id("gt")).unwrap();
    let makers: Vec<_> = (0..5u8)
        .map(|i| {
            move |seq: u64| {
                if i == 1 || i == 3 {
                    Err(format!("maker {i} refused"))
                } else {
                    Ok((rec(seq, vec![i]), format!("entry {i}").into_bytes()))
                }
            }
        })
        .collect();
    let out = store.records().append_own_many(makers).await.unwrap();
    let seqs: Vec<Result<u64, String>> = out.into_iter().map(|r| r.map(|s| s.seq)).collect();
    assert_eq!(
        seqs,
        vec![
            Ok(1),
            Err("maker 1 refused".into()),
            Ok(2),
            Err("maker 3 refused".into()),
            Ok(3)
        ]
    );
    assert_eq!(
        store.watermark(),
        Watermark {
            arrival: 3,
            own_seq: 3,
            audit: 3
        }
    );
    let entries = store.audit().entries(0, 10).unwrap();
    let bodies: Vec<&[u8]> = entries.iter().map(|e| e.body.as_slice()).collect();
    assert_eq!(bodies, vec![&b"entry 0"[..], b"entry 2", b"entry 4"]);
    assert!(entries.iter().all(RawEntry::hash_holds));
    assert_eq!(
        content(&store, "gt-0000000000000002"),
        Content::Envelope(vec![2])
    );
}

#[tokio::test]
async fn a_bulk_append_is_gapless_and_durable_at_once() {
    let dir = private_tempdir();
    let store = Store::open(dir.path(), &id("gt")).unwrap();
    store
        .records()
        .append_own(|seq| Ok::<_, ()>((rec(seq, vec![1]), b"published".to_vec())))
        .await
        .unwrap()
        .unwrap();
    let seqs = store
        .records()
        .append_own_batch(
            100,
            |seq| Ok::<_, ()>(rec(seq, vec![seq as u8])),
            |_| vec![b"bulk".to_vec()],
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seqs, (2..=101).collect::<Vec<u64>>());
    assert_eq!(
        store.watermark(),
        Watermark {
            arrival: 101,
            own_seq: 101,
            audit: 2
        }
    );
    drop(store);
    let store = Store::open(dir.path(), &id("gt")).unwrap();
    assert_eq!(store.records().last_seq(&id("gt")).unwrap(), 101);
    assert_eq!(store.records().list(0, 1000, None).unwrap().0.len(), 101);
}

// ---------------------------------------------------------------------------
// The record log under the store.

fn log_path(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join(record_log::FILE_NAME)
}

/// A store of `hn` holding three of gt's records and two of its own.
async fn filled(dir: &tempfile::TempDir) -> Store {
    let store = Store::open(dir.path(), &id("hn")).unwrap();
    let recs: Vec<NewRecord> = [1u64, 2, 5]
        .iter()
        .map(|&s| rec(s, format!("envelope of gt#{s}").into_bytes()))
        .collect();
    store
        .records()
        .apply_received(&id("gt"), &recs, 5, no_audit)
        .await
        .unwrap();
    for i in 0..2u8 {
        store
            .records()
            .append_own(|seq| {
                let mut r = rec(seq, vec![b'h', i]);
                r.record_id = format!("hn-{seq:016x}");
                Ok::<_, ()>((r, b"published".to_vec()))
            })
            .await
            .unwrap()
            .unwrap();
    }
    store
}

/// Everything the record reads show, to compare before and after a reopen.
fn snapshot(store: &Store) -> String {
    let gt = id("gt");
    let (listed, last) = store.records().list(0, 100, None).unwrap();
    format!(
        "{listed:?} {last} {:?} {:?} {} {} {} {} {} {:?}",
        store.records().of_origin(&gt, 0, 10, 10).unwrap(),
        store.records().get_by_id("gt-0000000000000005").unwrap(),
        store.records().count(&gt),
        store.records().last_seq(&gt).unwrap(),
        store.records().last_seq(&id("hn")).unwrap(),
        store.records().contains(&gt, 3).unwrap(),
        store.records().len(),
        store.watermark(),
    )
}

#[tokio::test]
async fn reopening_rebuilds_the_indexes_from_the_log() {
    let dir = private_tempdir();
    let store = filled(&dir).await;
    let before = snapshot(&store);
    assert_eq!(
        store
            .records()
            .of_origin(&id("gt"), 0, 10, 10)
            .unwrap()
            .len(),
        3
    );
    assert!(
        !store.records().contains(&id("gt"), 3).unwrap(),
        "a hole stays a hole"
    );
    drop(store);
    let store = Store::open(dir.path(), &id("hn")).unwrap();
    assert_eq!(snapshot(&store), before);
    let r = store
        .records()
        .append_own(|seq| {
            let mut r = rec(seq, vec![3]);
            r.record_id = format!("hn-{seq:016x}");
            Ok::<_, ()>((r, b"published".to_vec()))
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!((r.seq, r.position), (3, 6));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(log_path(&dir))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the log is owner-only");
    }
}

#[tokio::test]
async fn a_tail_past_the_committed_end_is_cut_at_open() {
    let dir = private_tempdir();
    let before = {
        let store = filled(&dir).await;
        snapshot(&store)
    };
    let committed = std::fs::metadata(log_path(&dir)).unwrap().len();
    // A batch appended and synced whose transaction never committed: a
    // whole frame, then half of one.
    let frame = record_log::encode(
        &head("gt", 6, 6, "gt-0000000000000006", false),
        &Content::Envelope(b"never acknowledged".to_vec()),
    )
    .unwrap();
    let mut tail = frame.clone();
    tail.extend_from_slice(&frame[..frame.len() / 2]);
    let mut bytes = std::fs::read(log_path(&dir)).unwrap();
    bytes.extend_from_slice(&tail);
    std::fs::write(log_path(&dir), &bytes).unwrap();

    let store = Store::open(dir.path(), &id("hn")).unwrap();
    assert_eq!(std::fs::metadata(log_path(&dir)).unwrap().len(), committed);
    assert_eq!(snapshot(&store), before);
    assert!(!store.records().contains(&id("gt"), 6).unwrap());
    // The slot is free for the record when it really arrives.
    let a = store
        .records()
        .apply_received(&id("gt"), &[rec(6, b"real".to_vec())], 6, no_audit)
        .await
        .unwrap();
    assert_eq!(a.stored, 1);
    assert_eq!(
        content(&store, "gt-0000000000000006"),
        Content::Envelope(b"real".to_vec())
    );
}

#[tokio::test]
async fn a_flipped_byte_in_the_committed_log_is_corrupt() {
    let dir = private_tempdir();
    let second_frame = {
        let store = filled(&dir).await;
        let index = store.index.read().unwrap();
        index.arrival(2).unwrap()
    };
    let mut bytes = std::fs::read(log_path(&dir)).unwrap();
    let at = second_frame as usize + 30;
    bytes[at] ^= 0x40;
    std::fs::write(log_path(&dir), &bytes).unwrap();
    let err = Store::open(dir.path(), &id("hn")).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert!(
        err.to_string().contains(&format!("offset {second_frame}")),
        "names the frame: {err}"
    );
}

fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A store with one expiring record, purged; returns the log before the purge.
async fn purged(dir: &tempfile::TempDir, tombstone: &[u8]) -> (Store, Vec<u8>) {
    let store = Store::open(dir.path(), &id("hn")).unwrap();
    let mut r = rec(1, b"SECRET-CONTENT-OF-THE-ALERT".to_vec());
    r.expires_at_ms = Some(1_000);
    store
        .records()
        .apply_received(&id("gt"), &[r, rec(2, b"kept".to_vec())], 2, no_audit)
        .await
        .unwrap();
    let before = std::fs::read(log_path(dir)).unwrap();
    assert!(contains_bytes(&before, b"SECRET-CONTENT-OF-THE-ALERT"));
    store
        .records()
        .purge(&id("gt"), 1, 1_000, tombstone.to_vec(), b"purged".to_vec())
        .await
        .unwrap();
    (store, before)
}

#[tokio::test]
async fn a_purge_overwrites_the_content_on_disk() {
    let dir = private_tempdir();
    let (store, before) = purged(&dir, b"TOMB").await;
    let after = std::fs::read(log_path(&dir)).unwrap();
    assert_eq!(after.len(), before.len(), "rewritten in place");
    assert!(!contains_bytes(&after, b"SECRET-CONTENT-OF-THE-ALERT"));
    assert!(contains_bytes(&after, b"TOMB"));
    let got = |s: &Store| content(s, "gt-0000000000000001");
    assert_eq!(got(&store), Content::Tombstone(b"TOMB".to_vec()));
    assert!(store.records().expired(5_000, 10).unwrap().is_empty());
    drop(store);
    let store = Store::open(dir.path(), &id("hn")).unwrap();
    assert_eq!(got(&store), Content::Tombstone(b"TOMB".to_vec()));
    assert_eq!(
        content(&store, "gt-0000000000000002"),
        Content::Envelope(b"kept".to_vec())
    );
}

#[tokio::test]
async fn a_tombstone_longer_than_the_record_is_kept_in_sled() {
    let dir = private_tempdir();
    let long = vec![b'T'; 200];
    let (store, _) = purged(&dir, &long).await;
    let after = std::fs::read(log_path(&dir)).unwrap();
    assert!(!contains_bytes(&after, b"SECRET-CONTENT-OF-THE-ALERT"));
    drop(store);
    let store = Store::open(dir.path(), &id("hn")).unwrap();
    assert_eq!(
        content(&store, "gt-0000000000000001"),
        Content::Tombstone(long)
    );
}

#[tokio::test]
async fn a_purge_interrupted_by_a_crash_is_finished_at_open() {
    for torn in [false, true] {
        let dir = private_tempdir();
        let (store, before) = purged(&dir, b"TOMB").await;
        drop(store);
        // The crash came after the sled transaction was durable but before
        // the frame's rewrite reached the disk: all of it, or half.
        let mut bytes = std::fs::read(log_path(&dir)).unwrap();
        // Frame 1 is at offset 0; its content starts at byte 66.
        let range = if torn { 60..80 } else { 0..before.len() };
        bytes[range.clone()].copy_from_slice(&before[range]);
        std::fs::write(log_path(&dir), &bytes).unwrap();
        assert!(contains_bytes(&bytes, b"SECRET-CONTE"));

        let store = Store::open(dir.path(), &id("hn")).unwrap();
        let after = std::fs::read(log_path(&dir)).unwrap();
        assert!(!contains_bytes(&after, b"SECRET"), "torn: {torn}");
        assert_eq!(
            content(&store, "gt-0000000000000001"),
            Content::Tombstone(b"TOMB".to_vec())
        );
        // The next purge drops sled's copy of the finished one.
        store
            .records()
            .purge(&id("gt"), 2, 0, b"T2".to_vec(), b"purged".to_vec())
            .await
            .unwrap();
        assert!(
            store
                .trees
                .tombstones
                .get(keys::record_key("gt", 1))
                .unwrap()
                .is_none()
        );
    }
}

#[tokio::test]
async fn a_version_1_store_is_refused() {
    let dir = private_tempdir();
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("schema_version", &1u32.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let err = Store::open(dir.path(), &id("hn")).unwrap_err();
    assert!(
        err.to_string()
            .contains("has schema version 1; this enlace reads version 3"),
        "{err}"
    );
}

#[tokio::test]
async fn a_log_without_its_sled_store_is_not_erased() {
    let dir = private_tempdir();
    drop(filled(&dir).await);
    let log = std::fs::read(log_path(&dir)).unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name() != Some(std::ffi::OsStr::new(record_log::FILE_NAME)) {
            if path.is_dir() {
                std::fs::remove_dir_all(&path).unwrap();
            } else {
                std::fs::remove_file(&path).unwrap();
            }
        }
    }
    let err = Store::open(dir.path(), &id("hn")).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert_eq!(
        std::fs::read(log_path(&dir)).unwrap(),
        log,
        "left as it was"
    );
}

#[tokio::test]
async fn nothing_in_sled_grows_with_each_new_record() {
    // A record's expiry and the state of the series it opens are in its
    // frame: sled's memory grows with its entries, so they must not be
    // there. Later states of a series are few and stay in sled.
    let dir = private_tempdir();
    let gt = id("gt");
    {
        let store = Store::open(dir.path(), &id("hn")).unwrap();
        let recs: Vec<NewRecord> = (1..=50u64)
            .map(|s| {
                let mut r = rec(s, format!("alert {s}").into_bytes());
                r.expires_at_ms = Some(10_000 + s as i64);
                r.series = Some(SeriesWrite {
                    series_id: r.record_id.clone(),
                    state: format!("state of {s} v1").into_bytes(),
                });
                r
            })
            .collect();
        store
            .records()
            .apply_received(&gt, &recs, 50, no_audit)
            .await
            .unwrap();
        // An update of series 3, carried by record 51.
        let mut update = rec(51, b"update".to_vec());
        update.series = Some(SeriesWrite {
            series_id: "gt-0000000000000003".into(),
            state: b"state of 3 v2".to_vec(),
        });
        store
            .records()
            .apply_received(&gt, &[update], 51, no_audit)
            .await
            .unwrap();
        assert_eq!(
            store.trees.series.len(),
            1,
            "only the later state is in sled"
        );
        assert_eq!(store.trees.expiries.len(), 0);
        assert_eq!(
            store
                .series()
                .state("gt-0000000000000003")
                .unwrap()
                .as_deref(),
            Some(&b"state of 3 v2"[..]),
            "the later state wins"
        );
        // A purge keeps the state: the series outlives its content.
        let due = store.records().expired(10_002, 100).unwrap();
        assert_eq!(due.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2]);
        for r in due {
            let at = 10_000 + r.seq as i64;
            store
                .records()
                .purge(&gt, r.seq, at, b"T".to_vec(), b"purged".to_vec())
                .await
                .unwrap();
        }
    }
    let store = Store::open(dir.path(), &id("hn")).unwrap();
    assert_eq!(
        store
            .series()
            .state("gt-0000000000000001")
            .unwrap()
            .as_deref(),
        Some(&b"state of 1 v1"[..]),
        "kept through purge and reopen"
    );
    assert_eq!(
        store
            .series()
            .state("gt-0000000000000003")
            .unwrap()
            .as_deref(),
        Some(&b"state of 3 v2"[..])
    );
    assert_eq!(store.series().state("gt-0000000000000051").unwrap(), None);
    assert_eq!(store.series().state("no-such-series").unwrap(), None);
    // Expiries are rebuilt from the frames, without those purged.
    let due = store.records().expired(10_005, 100).unwrap();
    assert_eq!(due.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![3, 4, 5]);
    assert_eq!(store.records().expired(i64::MAX, 1000).unwrap().len(), 48);
}

#[tokio::test]
async fn a_version_2_store_is_upgraded_in_place() {
    // A store as schema version 2 wrote it: frames without expiry or
    // series state, both of which are in sled.
    let dir = private_tempdir();
    let gt = id("gt");
    {
        let db = sled::open(dir.path()).unwrap();
        let meta = db.open_tree("meta").unwrap();
        meta.insert("schema_version", &2u32.to_be_bytes()).unwrap();
        meta.insert("node_id", "hn").unwrap();
        let mut log = Vec::new();
        for seq in 1..=3u64 {
            let rid = format!("gt-{seq:016x}");
            log.extend(
                record_log::encode(
                    &head("gt", seq, seq, &rid, true),
                    &Content::Envelope(format!("OLD-SECRET-{seq}").into_bytes()),
                )
                .unwrap(),
            );
            db.open_tree("series")
                .unwrap()
                .insert(rid.as_bytes(), format!("old state {seq}").as_bytes())
                .unwrap();
            db.open_tree("expiries")
                .unwrap()
                .insert(
                    keys::expiry_key(1_000 * seq as i64, &keys::record_key("gt", seq)),
                    &[],
                )
                .unwrap();
        }
        meta.insert(LOG_END_KEY, &keys::u64_be(log.len() as u64))
            .unwrap();
        db.open_tree("cursors")
            .unwrap()
            .insert("gt", &keys::u64_be(3))
            .unwrap();
        // 40 audit entries, one sled entry each; the move into groups was
        // interrupted once: the first 10 are in their group already.
        let mut prev = audit_log::GENESIS;
        let legacy = db.open_tree("audit").unwrap();
        let mut old = Vec::new();
        for n in 1..=40u64 {
            let e = RawEntry::chained(n, prev, format!("old entry {n}").into_bytes());
            prev = e.hash;
            legacy.insert(keys::u64_be(n), e.encode()).unwrap();
            old.push(e);
        }
        let (k, v) = &audit_log::encode_groups(&old[..10])[0];
        db.open_tree("audit_log")
            .unwrap()
            .insert(k, v.as_slice())
            .unwrap();
        std::fs::write(log_path(&dir), &log).unwrap();
        db.flush().unwrap();
    }
    {
        let store = Store::open(dir.path(), &id("hn")).unwrap();
        assert_eq!(store.records().len(), 3);
        assert_eq!(store.records().cursor(&gt).unwrap(), 3);
        let audit = store.audit().entries(0, 100).unwrap();
        assert_eq!(audit.len(), 40, "each entry once");
        assert!(
            audit
                .iter()
                .enumerate()
                .all(|(i, e)| e.n == i as u64 + 1 && e.hash_holds())
        );
        assert_eq!(
            store.audit().entry(33).unwrap().unwrap().body,
            b"old entry 33"
        );
        assert_eq!(store.watermark().audit, 40);
        assert!(store.trees.db.open_tree("audit").unwrap().is_empty());
        assert_eq!(
            store
                .series()
                .state("gt-0000000000000002")
                .unwrap()
                .as_deref(),
            Some(&b"old state 2"[..])
        );
        let due = store.records().expired(2_000, 10).unwrap();
        assert_eq!(due.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2]);
        store
            .records()
            .purge(&gt, 1, 1_000, b"TOMB".to_vec(), b"purged".to_vec())
            .await
            .unwrap();
        assert_eq!(store.trees.expiries.len(), 2, "the old entry is removed");
        // New records are written in the new layout beside the old ones.
        let mut r = rec(4, b"new".to_vec());
        r.expires_at_ms = Some(4_000);
        r.series = Some(SeriesWrite {
            series_id: r.record_id.clone(),
            state: b"new state".to_vec(),
        });
        store
            .records()
            .apply_received(&gt, &[r], 4, |_, _| vec![b"new entry".to_vec()])
            .await
            .unwrap();
    }
    let store = Store::open(dir.path(), &id("hn")).unwrap();
    let version = store.trees.meta.get("schema_version").unwrap().unwrap();
    assert_eq!(version.as_ref(), &SCHEMA_VERSION.to_be_bytes());
    let log = std::fs::read(log_path(&dir)).unwrap();
    assert!(!contains_bytes(&log, b"OLD-SECRET-1"));
    assert!(contains_bytes(&log, b"OLD-SECRET-2"));
    assert_eq!(
        content(&store, "gt-0000000000000001"),
        Content::Tombstone(b"TOMB".to_vec())
    );
    let due = store.records().expired(i64::MAX, 10).unwrap();
    assert_eq!(due.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2, 3, 4]);
    assert_eq!(
        store
            .series()
            .state("gt-0000000000000004")
            .unwrap()
            .as_deref(),
        Some(&b"new state"[..])
    );
    assert_eq!(
        store
            .series()
            .state("gt-0000000000000003")
            .unwrap()
            .as_deref(),
        Some(&b"old state 3"[..])
    );
    // The chain goes on from the moved entries (the purge wrote entry 41).
    let audit = store.audit().entries(39, 100).unwrap();
    assert_eq!(
        audit.iter().map(|e| e.n).collect::<Vec<_>>(),
        vec![40, 41, 42]
    );
    assert_eq!(audit[1].prev, audit[0].hash);
    assert_eq!(audit[2].body, b"new entry");
}

#[tokio::test]
async fn compaction_drops_the_padding_of_purges_and_keeps_every_record() {
    let dir = private_tempdir();
    let gt = id("gt");
    let before = {
        let store = filled(&dir).await;
        // Two of gt's records with big content, then purged: one tombstone
        // fits its frame, one is too long for it and is kept in sled.
        let mut big = rec(6, vec![b'S'; 4000]);
        big.expires_at_ms = Some(1_000);
        let mut small = rec(7, b"tiny".to_vec());
        small.expires_at_ms = Some(1_000);
        small.series = Some(SeriesWrite {
            series_id: small.record_id.clone(),
            state: b"state of 7".to_vec(),
        });
        store
            .records()
            .apply_received(&gt, &[big, small], 7, no_audit)
            .await
            .unwrap();
        store
            .records()
            .purge(&gt, 7, 1_000, vec![b'L'; 300], b"purged".to_vec())
            .await
            .unwrap();
        store
            .records()
            .purge(&gt, 6, 1_000, b"T6".to_vec(), b"purged".to_vec())
            .await
            .unwrap();
        assert_eq!(
            store.trees.tombstones.len(),
            2,
            "a finished purge and one elsewhere"
        );
        let before = snapshot(&store);
        let usage = store.log_usage();
        drop(store);
        // The figure is rebuilt at open as it was kept by the purges.
        let store = Store::open(dir.path(), &id("hn")).unwrap();
        assert_eq!(store.log_usage(), usage);
        let done = store.compact().await.unwrap();
        assert_eq!(done.before, usage.bytes);
        assert_eq!(
            usage.bytes - usage.reclaimable,
            done.after - 300,
            "all the slack is reclaimed; the tombstone kept in sled comes in"
        );
        assert_eq!(done.frames, 7);
        // 4000 bytes of padding go; the 300-byte tombstone kept in sled
        // comes into its frame.
        assert!(
            done.before - done.after > 3500,
            "the 4000-byte record's padding is gone: {done:?}"
        );
        assert_eq!(
            std::fs::metadata(dir.path().join("records.1.log"))
                .unwrap()
                .len(),
            done.after
        );
        before
    };
    assert!(!log_path(&dir).exists(), "the old log is removed");
    let store = Store::open(dir.path(), &id("hn")).unwrap();
    assert_eq!(snapshot(&store), before);
    assert_eq!(store.log_usage().reclaimable, 0);
    assert_eq!(
        store.trees.tombstones.len(),
        0,
        "both tombstones are in their frames"
    );
    assert_eq!(
        content(&store, "gt-0000000000000007"),
        Content::Tombstone(vec![b'L'; 300])
    );
    assert_eq!(
        content(&store, "gt-0000000000000006"),
        Content::Tombstone(b"T6".to_vec())
    );
    assert_eq!(
        store
            .series()
            .state("gt-0000000000000007")
            .unwrap()
            .as_deref(),
        Some(&b"state of 7"[..])
    );
    // Writing goes on in the new file, and survives another reopen.
    store
        .records()
        .apply_received(&gt, &[rec(8, b"after".to_vec())], 8, no_audit)
        .await
        .unwrap();
    drop(store);
    let store = Store::open(dir.path(), &id("hn")).unwrap();
    assert_eq!(
        content(&store, "gt-0000000000000008"),
        Content::Envelope(b"after".to_vec())
    );
    assert_eq!(store.records().len(), 8);
}

#[tokio::test]
async fn a_compaction_cut_short_leaves_nothing_behind() {
    let dir = private_tempdir();
    let before = {
        let store = filled(&dir).await;
        let before = snapshot(&store);
        store.compact().await.unwrap();
        before
    };
    // A crash after the commit, before the old file was removed; and one of
    // a later compaction before its commit: both files are left over.
    std::fs::write(log_path(&dir), b"old frames").unwrap();
    std::fs::write(dir.path().join("records.2.log"), b"half a new log").unwrap();
    // Not a name a compaction writes: left alone.
    std::fs::write(dir.path().join("records.02.log"), b"someone's file").unwrap();
    let store = Store::open(dir.path(), &id("hn")).unwrap();
    assert_eq!(snapshot(&store), before);
    assert!(!log_path(&dir).exists());
    assert!(!dir.path().join("records.2.log").exists());
    assert!(dir.path().join("records.02.log").exists());
    assert!(dir.path().join("records.1.log").exists());
}

#[test]
fn log_file_names_have_one_spelling_per_number() {
    for n in [0, 1, 2, 10, 12345] {
        assert_eq!(record_log::file_number(&record_log::file_name(n)), Some(n));
    }
    for name in [
        "records.0.log",
        "records.01.log",
        "records.-1.log",
        "records..log",
        "records.1.log.tmp",
        "x.log",
    ] {
        assert_eq!(record_log::file_number(name), None, "{name}");
    }
}

#[tokio::test]
async fn audit_entries_are_read_across_groups_and_after_pruning() {
    let dir = private_tempdir();
    let body = |n: usize| {
        // Now and then a big one (a receipt listing a batch's ids).
        let len = if n.is_multiple_of(10) { 9_000 } else { 40 };
        vec![b'a' + (n % 26) as u8; len]
    };
    {
        let store = Store::open(dir.path(), &id("hn")).unwrap();
        for chunk in (1..=100).collect::<Vec<usize>>().chunks(7) {
            store
                .audit()
                .append(chunk.iter().map(|&n| body(n)).collect())
                .await
                .unwrap();
        }
        let all = store.audit().entries(0, 1000).unwrap();
        assert_eq!(all.len(), 100);
        assert!(
            all.iter()
                .zip(1..)
                .all(|(e, n)| e.n == n && e.body == body(n as usize))
        );
        assert!(all.windows(2).all(|w| w[1].prev == w[0].hash));
        assert_eq!(
            store
                .audit()
                .entries(57, 5)
                .unwrap()
                .iter()
                .map(|e| e.n)
                .collect::<Vec<_>>(),
            vec![58, 59, 60, 61, 62]
        );
        assert!(
            store.trees.audit.len() < 20,
            "{} groups for 100 entries",
            store.trees.audit.len()
        );
        let anchor = Anchor {
            n: 45,
            hash: all[44].hash,
            checkpoint: b"signed".to_vec(),
        };
        assert_eq!(store.audit().prune(&anchor, None).await.unwrap(), 45);
        assert_eq!(store.audit().entry(45).unwrap(), None);
        assert_eq!(store.audit().entry(46).unwrap().unwrap(), all[45]);
        assert_eq!(store.audit().entries(0, 3).unwrap()[0].n, 46);
        store.audit().append(vec![b"after".to_vec()]).await.unwrap();
    }
    let store = Store::open(dir.path(), &id("hn")).unwrap();
    let all = store.audit().entries(0, 1000).unwrap();
    assert_eq!(
        all.iter().map(|e| e.n).collect::<Vec<_>>(),
        (46..=101).collect::<Vec<_>>()
    );
    assert_eq!(all.last().unwrap().body, b"after");
    assert_eq!(all[all.len() - 1].prev, all[all.len() - 2].hash);
}

#[tokio::test]
async fn a_compaction_that_would_grow_the_log_leaves_it_as_it_is() {
    let dir = private_tempdir();
    let gt = id("gt");
    let (before, usage) = {
        let store = filled(&dir).await;
        // A tiny record whose tombstone is too long for its frame: the
        // tombstone is kept in sled, and the frame has almost no padding.
        let mut tiny = rec(6, b"tiny".to_vec());
        tiny.expires_at_ms = Some(1_000);
        store
            .records()
            .apply_received(&gt, &[tiny], 6, no_audit)
            .await
            .unwrap();
        store
            .records()
            .purge(&gt, 6, 1_000, vec![b'L'; 300], b"purged".to_vec())
            .await
            .unwrap();
        (snapshot(&store), store.log_usage())
    };
    let store = Store::open(dir.path(), &id("hn")).unwrap();
    let done = store.compact().await.unwrap();
    assert!(!done.rewritten, "{done:?}");
    assert_eq!((done.before, done.after), (usage.bytes, usage.bytes));
    let store = Store::open(dir.path(), &id("hn")).unwrap();
    assert_eq!(store.log_usage(), usage, "the log is unchanged");
    assert_eq!(snapshot(&store), before, "every record as it was");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("records"))
        .collect();
    assert_eq!(names.len(), 1, "no second log file left: {names:?}");
}

/// A temporary directory that only its owner may enter, as the store
/// requires of its data directory (`tempfile` makes them 0755).
fn private_tempdir() -> tempfile::TempDir {
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o700));
    }
    builder.tempdir().unwrap()
}
