use super::*;

/// Version `n` of a one-member roster whose signing keys are `keys`
/// (key id, key, valid_until).
fn one_member_version(
    dir: &std::path::Path,
    n: u64,
    previous: Option<[u8; 32]>,
    keys: &[(&str, &SigningKey, Option<&str>)],
) -> crate::trust::roster::Roster {
    let (gov, _) = SigningKey::generate("governance").unwrap();
    let mut text = format!(
        "federation = \"t\"\n[[members]]\nid = \"gt\"\nname = \"gt\"\ncountry = \"GT\"\nrole = \"member\"\nca = [\"ca.crt\"]\ngovernance_keys = [\"{}\"]\n",
        crypto::encode_public_key(gov.public_key())
    );
    for (id, key, until) in keys {
        text.push_str(&format!(
            "[[members.signing_keys]]\nkey_id = \"{id}\"\npublic_key = \"{}\"\n{}",
            crypto::encode_public_key(key.public_key()),
            until.map_or(String::new(), |u| format!("valid_until = \"{u}\"\n"))
        ));
    }
    let source =
        crate::trust::roster::RosterSource::parse(&text, dir, &dir.join("f.toml")).unwrap();
    source.compile(n, previous, 1_800_000_000_000).unwrap().1
}

#[test]
fn a_chain_key_book_keeps_rotated_keys_with_their_windows() {
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::trust::pki::new_ca("gt CA", None, 30).unwrap();
    std::fs::write(dir.path().join("ca.crt"), ca.cert_pem).unwrap();
    let (a, _) = SigningKey::generate("gt-a").unwrap();
    let (b, _) = SigningKey::generate("gt-b").unwrap();
    let (c, _) = SigningKey::generate("gt-c").unwrap();
    let v1 = one_member_version(dir.path(), 1, None, &[("gt-a", &a, None)]);
    // Version 2 adds b and drops a; version 3 bounds b and adds c.
    let v2 = one_member_version(dir.path(), 2, Some(v1.position.hash), &[("gt-b", &b, None)]);
    let v3 = one_member_version(
        dir.path(),
        3,
        Some(v2.position.hash),
        &[
            ("gt-b", &b, Some("2027-01-01T00:00:00Z")),
            ("gt-c", &c, None),
        ],
    );
    let head_only = KeyBook::from_roster(&v3);
    assert!(
        !head_only.0.contains_key("gt-a"),
        "the head alone forgets a"
    );
    let book = KeyBook::from_chain([&v1, &v2, &v3]);
    assert_eq!(
        book.0["gt-a"].valid_until_ms, None,
        "a dropped key keeps the window its last version gave it"
    );
    assert_eq!(book.0["gt-b"].valid_until_ms, Some(1_798_761_600_000));
    assert_eq!(book.0["gt-c"].valid_until_ms, None);
    assert_eq!(book.0["gt-a"].public_key, a.public_key().to_vec());
}

fn book(keys: &[(&str, &SigningKey)]) -> KeyBook {
    KeyBook(
        keys.iter()
            .map(|(node, k)| {
                (
                    k.key_id().to_owned(),
                    BookKey {
                        node: NodeId::parse(node).unwrap(),
                        public_key: k.public_key().to_vec(),
                        valid_from_ms: None,
                        valid_until_ms: None,
                    },
                )
            })
            .collect(),
    )
}

#[test]
fn checkpoints_and_witnesses_verify_and_any_change_breaks_them() {
    let (gt_key, _) = SigningKey::generate("gt-2026").unwrap();
    let (hn_key, _) = SigningKey::generate("hn-2026").unwrap();
    let keys = book(&[("gt", &gt_key), ("hn", &hn_key)]);
    let cp = Checkpoint {
        node: NodeId::parse("gt").unwrap(),
        size: 12,
        head: [7; HASH_LEN],
        time_ms: 1_700_000_000_000,
    };
    let signed = cp.sign(&gt_key);
    assert_eq!(open(&signed, &keys).unwrap(), cp);

    let hn = NodeId::parse("hn").unwrap();
    let w = countersign(&signed, &hn, 1_700_000_000_500, &hn_key);
    let seen = open_witness(&w, &keys).unwrap();
    assert_eq!(seen.checkpoint, cp);
    assert_eq!(seen.witness, hn);

    // A different size under the same signature.
    let mut forged = signed.clone();
    forged.body = Checkpoint {
        size: 11,
        ..cp.clone()
    }
    .encode();
    assert!(matches!(
        open(&forged, &keys),
        Err(CheckpointError::BadSignature(_))
    ));
    // gt cannot sign as hn's witness.
    let mut fake = countersign(&signed, &hn, 1, &gt_key);
    fake.key_id = gt_key.key_id().to_owned();
    assert!(matches!(
        open_witness(&fake, &keys),
        Err(CheckpointError::WrongOwner { .. })
    ));
    // A moved witness time.
    let mut moved = w.clone();
    moved.witnessed_at_ms += 1;
    assert!(matches!(
        open_witness(&moved, &keys),
        Err(CheckpointError::BadSignature(_))
    ));
    // A record signature is not a checkpoint signature.
    let mut as_record = signed.clone();
    as_record.signature = gt_key.sign_record(&signed.body);
    assert!(open(&as_record, &keys).is_err());
}

fn stamp(version: u64, byte: u8) -> RosterStamp {
    RosterStamp {
        version,
        sha256: [byte; 32],
    }
}

fn gt_at_12() -> Checkpoint {
    Checkpoint {
        node: NodeId::parse("gt").unwrap(),
        size: 12,
        head: [7; HASH_LEN],
        time_ms: 1_700_000_000_000,
    }
}

#[test]
fn a_checkpoint_made_before_the_roster_fields_decodes_and_verifies_as_before() {
    // The exact bytes of a body as nodes wrote it before checkpoints
    // carried the roster: fields 1 to 4, nothing else.
    let mut old = vec![0x0a, 2, b'g', b't', 0x10, 12, 0x1a, 32];
    old.extend_from_slice(&[7; HASH_LEN]);
    old.push(0x20);
    let mut t = 1_700_000_000_000_u64;
    while t >= 0x80 {
        old.push((t as u8 & 0x7f) | 0x80);
        t >>= 7;
    }
    old.push(t as u8);
    assert_eq!(old, gt_at_12().encode(), "no roster: the old bytes");

    let stamped = Stamped::decode(&old).unwrap();
    assert_eq!(stamped, gt_at_12().under(None));
    assert_eq!(Checkpoint::decode(&old).unwrap(), gt_at_12());

    let (gt_key, _) = SigningKey::generate("gt-2026").unwrap();
    let (hn_key, _) = SigningKey::generate("hn-2026").unwrap();
    let keys = book(&[("gt", &gt_key), ("hn", &hn_key)]);
    let signed = SignedCheckpoint {
        signature: gt_key.sign_in(CHECKPOINT_SIGNATURE_CONTEXT, &old),
        key_id: gt_key.key_id().to_owned(),
        body: old,
    };
    assert_eq!(signed, gt_at_12().sign(&gt_key), "signed as before");
    assert_eq!(open_stamped(&signed, &keys).unwrap().roster, None);
    let hn = NodeId::parse("hn").unwrap();
    let w = countersign(&signed, &hn, 1_700_000_000_500, &hn_key);
    let seen = open_witness(&w, &keys).unwrap();
    assert_eq!((seen.checkpoint, seen.roster), (gt_at_12(), None));
}

#[test]
fn the_roster_a_checkpoint_was_made_under_round_trips_and_is_signed() {
    let (gt_key, _) = SigningKey::generate("gt-2026").unwrap();
    let (hn_key, _) = SigningKey::generate("hn-2026").unwrap();
    let keys = book(&[("gt", &gt_key), ("hn", &hn_key)]);
    let stamped = gt_at_12().under(Some(stamp(3, 0xab)));
    let body = stamped.encode();
    assert_eq!(Stamped::decode(&body).unwrap(), stamped);
    assert_eq!(Checkpoint::decode(&body).unwrap(), gt_at_12());
    let wire = CheckpointBody::decode(&body).unwrap();
    assert_eq!(
        (wire.roster_version, wire.roster_sha256),
        (3, vec![0xab; 32])
    );

    let signed = stamped.sign(&gt_key);
    assert_eq!(open_stamped(&signed, &keys).unwrap(), stamped);
    assert_eq!(open(&signed, &keys).unwrap(), gt_at_12());
    let hn = NodeId::parse("hn").unwrap();
    let seen = open_witness(&countersign(&signed, &hn, 1, &hn_key), &keys).unwrap();
    assert_eq!(seen.roster, Some(stamp(3, 0xab)));

    // Another roster under the same signature does not verify, nor
    // does the same checkpoint with its roster left out.
    for other in [Some(stamp(4, 0xab)), Some(stamp(3, 0xac)), None] {
        let mut forged = signed.clone();
        forged.body = gt_at_12().under(other).encode();
        assert!(
            matches!(
                open_stamped(&forged, &keys),
                Err(CheckpointError::BadSignature(_))
            ),
            "{other:?}"
        );
    }
    // Version 0 (a roster not yet made a version) still says so.
    let zero = gt_at_12().under(Some(stamp(0, 1)));
    assert_eq!(Stamped::decode(&zero.encode()).unwrap(), zero);
}

#[test]
fn a_roster_version_without_its_hash_or_a_short_hash_is_malformed() {
    let mut body = CheckpointBody::decode(&gt_at_12().encode()).unwrap();
    body.roster_version = 2;
    assert_eq!(
        Stamped::decode(&body.encode()),
        Err(CheckpointError::RosterHashLength { version: 2, len: 0 })
    );
    body.roster_sha256 = vec![1; 31];
    assert_eq!(
        Checkpoint::decode(&body.encode()),
        Err(CheckpointError::RosterHashLength {
            version: 2,
            len: 31
        })
    );
}

#[test]
fn the_largest_checkpoint_body_stays_under_the_limit_a_witness_allows() {
    let largest = Stamped {
        checkpoint: Checkpoint {
            node: NodeId::parse(&"g".repeat(32)).unwrap(),
            size: u64::MAX,
            head: [0xff; HASH_LEN],
            time_ms: i64::MIN,
        },
        roster: Some(stamp(u64::MAX, 0xff)),
    };
    let len = largest.encode().len();
    assert!(len < crate::limits::MAX_CHECKPOINT_BODY, "{len} bytes");
    assert!(len <= 140, "{len} bytes");
}

#[test]
fn a_witness_judges_the_roster_a_checkpoint_was_made_under() {
    let hn = NodeId::parse("hn").unwrap();
    let chain = [stamp(1, 1), stamp(2, 2), stamp(3, 3)];
    let in_force = stamp(3, 3);
    let judge = |made| judge_roster(&hn, made, in_force, &chain, false);

    // Absent (made before checkpoints carried it): witnessed as before;
    // but not from a node that named its roster before.
    assert_eq!(judge(None), Ok(()));
    assert_eq!(
        judge_roster(&hn, None, in_force, &chain, true),
        Err(RosterRefusal::Unstamped { node: hn.clone() })
    );
    // The version in force.
    assert_eq!(judge(Some(stamp(3, 3))), Ok(()));
    // Newer than the version in force: this witness lags, and cannot
    // judge a version it has not verified.
    assert_eq!(judge(Some(stamp(4, 9))), Ok(()));
    // Superseded.
    let superseded = judge(Some(stamp(2, 2))).unwrap_err();
    assert_eq!(
        superseded,
        RosterRefusal::Superseded {
            node: hn.clone(),
            made: 2,
            in_force,
        }
    );
    let text = superseded.to_string();
    assert!(
        text.starts_with(
            "superseded: made under roster version 2, version 3 is in force here (sha256 0303"
        ),
        "{text}"
    );
    assert!(text.ends_with("hn has not adopted it yet"), "{text}");
    // Below the start of the chain (a node started from an anchor):
    // still superseded.
    let anchored = judge_roster(&hn, Some(stamp(1, 7)), in_force, &chain[2..], false);
    assert!(
        matches!(anchored, Err(RosterRefusal::Superseded { made: 1, .. })),
        "{anchored:?}"
    );
    // Conflicting: the chain holds that number with another hash, at
    // the version in force or before it (a conflict says more than
    // superseded).
    for (version, held) in [(3, 3), (2, 2)] {
        let conflicting = judge(Some(stamp(version, 9))).unwrap_err();
        assert_eq!(
            conflicting,
            RosterRefusal::Conflicting {
                node: hn.clone(),
                version,
                made: [9; 32],
                held: [held; 32],
            }
        );
        let text = conflicting.to_string();
        assert!(
            text.starts_with(&format!(
                "conflicting: made under roster version {version} with sha256 0909"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "but version {version} here has sha256 {held:02x}{held:02x}"
            )),
            "{text}"
        );
    }
}
