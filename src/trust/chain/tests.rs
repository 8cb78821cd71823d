//! The chain rules, each with the attack it stops.

use prost::Message;

use super::*;
use crate::trust::pki;

/// A federation's keys, for versions made in tests.
struct Keys {
    ca_der: Vec<u8>,
    governance: Vec<(String, SigningKey)>,
    signing: Vec<(String, SigningKey)>,
}

impl Keys {
    fn new(ids: &[&str]) -> Self {
        let ca = pki::new_ca("test CA", None, 30).unwrap();
        let ca_der = rustls_pki_types::CertificateDer::from_pem_slice(ca.cert_pem.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec();
        let mut keys = Self {
            ca_der,
            governance: Vec::new(),
            signing: Vec::new(),
        };
        for id in ids {
            keys.add(id);
        }
        keys
    }

    fn add(&mut self, id: &str) {
        self.governance
            .push((id.into(), SigningKey::generate("g").unwrap().0));
        self.signing.push((
            id.into(),
            SigningKey::generate(&format!("{id}-1")).unwrap().0,
        ));
    }

    fn gov(&self, id: &str) -> &SigningKey {
        &self.governance.iter().find(|(i, _)| i == id).unwrap().1
    }

    fn member(&self, id: &str) -> pb::RosterMember {
        pb::RosterMember {
            id: id.into(),
            name: format!("member {id}"),
            country: "GT".into(),
            role: pb::RosterRole::Member as i32,
            endpoint: "127.0.0.1:1".into(),
            ca_certificates: vec![self.ca_der.clone()],
            signing_keys: self
                .signing
                .iter()
                .filter(|(i, _)| i == id)
                .map(|(_, k)| pb::RosterSigningKey {
                    key_id: k.key_id().into(),
                    public_key: k.public_key().to_vec(),
                    valid_from_ms: 0,
                    valid_until_ms: 0,
                })
                .collect(),
            governance_keys: self
                .governance
                .iter()
                .filter(|(i, _)| i == id)
                .map(|(_, k)| k.public_key().to_vec())
                .collect(),
            oprf_keys: Vec::new(),
        }
    }

    /// Version `n` of `ids` after `previous`, with `threshold`.
    fn version(&self, n: u64, previous: Option<&Version>, ids: &[&str], threshold: u32) -> Version {
        self.version_with_oprf(n, previous, ids, threshold, &[])
    }

    /// Version `n` as [`Keys::version`], where each member named in `oprf`
    /// lists those OPRF keys.
    fn version_with_oprf(
        &self,
        n: u64,
        previous: Option<&Version>,
        ids: &[&str],
        threshold: u32,
        oprf: &[(&str, &[&pb::RosterOprfKey])],
    ) -> Version {
        let members = ids
            .iter()
            .map(|id| {
                let mut m = self.member(id);
                if let Some((_, keys)) = oprf.iter().find(|(i, _)| i == id) {
                    m.oprf_keys = keys.iter().map(|k| (*k).clone()).collect();
                }
                m
            })
            .collect();
        let v = pb::RosterVersion {
            federation: "test".into(),
            version: n,
            previous: previous.map(|p| p.hash().to_vec()).unwrap_or_default(),
            expires_at_ms: NOW + 86_400_000,
            threshold,
            members,
            proposed_at_ms: NOW - 1,
        };
        Version::parse(v.encode_to_vec()).unwrap()
    }

    fn approve(&self, v: &Version, by: &[&str]) -> Signed {
        Signed {
            version: v.clone(),
            approvals: by
                .iter()
                .map(|id| Approval::sign(self.gov(id), &v.hash()))
                .collect(),
        }
    }
}

use rustls_pki_types::pem::PemObject;

const NOW: i64 = 1_800_000_000_000;

#[test]
fn a_majority_of_the_old_and_of_the_new_members_adds_a_member() {
    let mut k = Keys::new(&["gt", "hn", "sv"]);
    let v1 = k.version(1, None, &["gt", "hn", "sv"], 2);
    k.add("cr");
    let v2 = k.version(2, Some(&v1), &["gt", "hn", "sv", "cr"], 3);
    // Two of the three old members, and three of the four new ones.
    let signed = k.approve(&v2, &["gt", "hn", "cr"]);
    let tally = verify_successor(&v1.roster, &signed, Some(NOW)).unwrap();
    assert_eq!(tally.current.len(), 2);
    assert_eq!(tally.next.len(), 3);
    // Two old members are a threshold of v1 but not of v2 (3 of 4).
    let signed = k.approve(&v2, &["gt", "hn"]);
    let refused = verify_successor(&v1.roster, &signed, Some(NOW)).unwrap_err();
    assert_eq!(refused.reason(), "below_threshold", "{refused}");
    assert!(refused.to_string().contains("needs 3"), "{refused}");
    // The new member and one old one are not a threshold of v1.
    let signed = k.approve(&v2, &["cr", "hn", "sv"]);
    assert!(verify_successor(&v1.roster, &signed, Some(NOW)).is_ok());
    let signed = k.approve(&v2, &["cr", "hn"]);
    let refused = verify_successor(&v1.roster, &signed, Some(NOW)).unwrap_err();
    assert!(
        matches!(refused, Refusal::BelowThreshold { of: 1, have: 1, .. }),
        "{refused}"
    );
}

#[test]
fn one_member_approving_twice_counts_once() {
    let k = Keys::new(&["gt", "hn", "sv"]);
    let v1 = k.version(1, None, &["gt", "hn", "sv"], 2);
    let v2 = k.version(2, Some(&v1), &["gt", "hn", "sv"], 2);
    // The same approval twice (tough CVE-2020-15093).
    let signed = k.approve(&v2, &["gt", "gt"]);
    let refused = verify_successor(&v1.roster, &signed, Some(NOW)).unwrap_err();
    assert_eq!(refused.reason(), "below_threshold");
    let tally = Tally::count(Some(&v1.roster), &v2.roster, &signed.approvals);
    assert_eq!(tally.current.len(), 1);
    assert!(
        tally
            .ignored
            .iter()
            .any(|r| r.reason() == "duplicate_signer")
    );
}

#[test]
fn two_keys_of_one_member_count_once() {
    let mut k = Keys::new(&["gt", "hn", "sv"]);
    // gt holds a second governance key in v2.
    k.governance
        .push(("gt".into(), SigningKey::generate("g2").unwrap().0));
    let v1 = k.version(1, None, &["gt", "hn", "sv"], 2);
    let v2 = k.version(2, Some(&v1), &["gt", "hn", "sv"], 2);
    let second = Approval::sign(&k.governance[3].1, &v2.hash());
    let mut signed = k.approve(&v2, &["gt"]);
    signed.approvals.push(second);
    let refused = verify_successor(&v1.roster, &signed, Some(NOW)).unwrap_err();
    assert_eq!(refused.reason(), "below_threshold", "{refused}");
    let tally = Tally::count(Some(&v1.roster), &v2.roster, &signed.approvals);
    assert_eq!(tally.next.len(), 1);
    assert_eq!(tally.ignored[0].reason(), "duplicate_signer");
}

#[test]
fn skips_rollbacks_replays_and_wrong_previous_are_refused() {
    let k = Keys::new(&["gt", "hn", "sv"]);
    let all = ["gt", "hn", "sv"];
    let v1 = k.version(1, None, &all, 2);
    let v2 = k.version(2, Some(&v1), &all, 2);
    let v3 = k.version(3, Some(&v2), &all, 2);
    // A skip (tough CVE-2025-2885): v3 straight after v1.
    let r = verify_successor(&v1.roster, &k.approve(&v3, &all), Some(NOW)).unwrap_err();
    assert_eq!(r.reason(), "version_skip", "{r}");
    // A replay of v1 on a node at v2.
    let r = verify_successor(&v2.roster, &k.approve(&v1, &all), Some(NOW)).unwrap_err();
    assert_eq!(r.reason(), "rollback", "{r}");
    // A v2 that does not name v1.
    let other1 = k.version(1, None, &["gt", "hn"], 2);
    let stray = k.version(2, Some(&other1), &all, 2);
    let r = verify_successor(&v1.roster, &k.approve(&stray, &all), Some(NOW)).unwrap_err();
    assert_eq!(r.reason(), "wrong_previous", "{r}");
}

#[test]
fn an_expired_version_is_not_adopted_but_may_be_walked_through() {
    let k = Keys::new(&["gt", "hn", "sv"]);
    let all = ["gt", "hn", "sv"];
    let v1 = k.version(1, None, &all, 2);
    let v2 = k.version(2, Some(&v1), &all, 2);
    let later = NOW + 2 * 86_400_000;
    let r = verify_successor(&v1.roster, &k.approve(&v2, &all), Some(later)).unwrap_err();
    assert_eq!(r.reason(), "expired", "{r}");
    assert!(verify_successor(&v1.roster, &k.approve(&v2, &all), None).is_ok());
}

#[test]
fn approvals_by_keys_outside_both_versions_do_not_count() {
    let k = Keys::new(&["gt", "hn", "sv"]);
    let all = ["gt", "hn", "sv"];
    let v1 = k.version(1, None, &all, 2);
    let v2 = k.version(2, Some(&v1), &all, 2);
    let outsider = SigningKey::generate("x").unwrap().0;
    let mut signed = k.approve(&v2, &["gt"]);
    signed.approvals.push(Approval::sign(&outsider, &v2.hash()));
    let r = verify_successor(&v1.roster, &signed, Some(NOW)).unwrap_err();
    assert_eq!(r.reason(), "below_threshold");
    let tally = Tally::count(Some(&v1.roster), &v2.roster, &signed.approvals);
    assert_eq!(tally.ignored[0].reason(), "unknown_key");
    // A record-signing key is not a governance key.
    let (_, record_key) = &k.signing[1];
    let tally = Tally::count(
        Some(&v1.roster),
        &v2.roster,
        &[Approval::sign(record_key, &v2.hash())],
    );
    assert_eq!(tally.ignored[0].reason(), "unknown_key");
}

#[test]
fn a_forged_or_misdirected_approval_does_not_count() {
    let k = Keys::new(&["gt", "hn", "sv"]);
    let all = ["gt", "hn", "sv"];
    let v1 = k.version(1, None, &all, 2);
    let v2 = k.version(2, Some(&v1), &all, 2);
    let mut forged = Approval::sign(k.gov("hn"), &v2.hash());
    forged.signature[0] ^= 1;
    let tally = Tally::count(Some(&v1.roster), &v2.roster, &[forged]);
    assert_eq!(tally.ignored[0].reason(), "bad_signature");
    // An approval of v1 carried with v2.
    let tally = Tally::count(
        Some(&v1.roster),
        &v2.roster,
        &[Approval::sign(k.gov("hn"), &v1.hash())],
    );
    assert_eq!(tally.ignored[0].reason(), "wrong_version");
    // The signature is over the hash under the approval context, not
    // under the record context.
    let as_record = k.gov("hn").sign_record(&v2.hash());
    let approval = Approval {
        roster_sha256: v2.hash(),
        governance_key: k.gov("hn").public_key().try_into().unwrap(),
        signature: as_record,
    };
    assert!(!approval.signature_verifies());
}

#[test]
fn a_removed_member_cannot_block_or_make_a_change_alone() {
    let k = Keys::new(&["gt", "hn", "sv"]);
    let v1 = k.version(1, None, &["gt", "hn", "sv"], 2);
    // sv removed: gt and hn are a threshold of v1 and all of v2.
    let v2 = k.version(2, Some(&v1), &["gt", "hn"], 2);
    assert!(verify_successor(&v1.roster, &k.approve(&v2, &["gt", "hn"]), Some(NOW)).is_ok());
    // sv alone, plus keys it does not hold, gets nowhere afterwards.
    let v3 = k.version(3, Some(&v2), &["gt", "hn", "sv"], 2);
    let r = verify_successor(&v2.roster, &k.approve(&v3, &["sv"]), Some(NOW)).unwrap_err();
    assert!(
        matches!(r, Refusal::BelowThreshold { of: 2, have: 0, .. }),
        "{r}"
    );
}

#[test]
fn a_chain_verifies_from_version_one_or_from_an_anchor() {
    let k = Keys::new(&["gt", "hn", "sv"]);
    let all = ["gt", "hn", "sv"];
    let v1 = k.version(1, None, &all, 2);
    let v2 = k.version(2, Some(&v1), &all, 2);
    let v3 = k.version(3, Some(&v2), &all, 2);
    let chain = vec![
        k.approve(&v3, &["hn", "sv"]),
        k.approve(&v1, &["gt", "hn"]),
        k.approve(&v2, &["gt", "sv"]),
    ];
    let verified = verify_chain(chain.clone(), None).unwrap();
    assert_eq!(verified.chain.len(), 3);
    assert!(verified.stopped.is_none());
    assert_eq!(verified.head().version.hash(), v3.hash());
    let from_anchor = verify_chain(chain.clone(), Some(&v2.hash())).unwrap();
    assert_eq!(from_anchor.chain.len(), 2);
    // An anchor that is not in the chain.
    let (_, r) = verify_chain(chain.clone(), Some(&[7; 32])).unwrap_err();
    assert_eq!(r.reason(), "anchor_mismatch");
    // Version 1 with one approval of three.
    let weak = vec![k.approve(&v1, &["gt"]), k.approve(&v2, &all)];
    let (at, r) = verify_chain(weak, None).unwrap_err();
    assert_eq!((at, r.reason()), (1, "below_threshold"));
    // A hole: v1 then v3.
    let hole = vec![k.approve(&v1, &all), k.approve(&v3, &all)];
    let walk = verify_chain(hole, None).unwrap();
    assert_eq!(walk.chain.len(), 1);
    let (at, r) = walk.stopped.unwrap();
    assert_eq!((at, r.reason()), (3, "version_skip"));
}

#[test]
fn two_valid_versions_with_one_number_are_a_conflict() {
    let k = Keys::new(&["gt", "hn", "sv"]);
    let all = ["gt", "hn", "sv"];
    let v1 = k.version(1, None, &all, 2);
    let a = k.version(2, Some(&v1), &all, 2);
    let b = k.version(2, Some(&v1), &["gt", "hn"], 2);
    let chain = vec![
        k.approve(&v1, &all),
        k.approve(&a, &["gt", "hn"]),
        k.approve(&b, &["hn", "sv", "gt"]),
    ];
    let walk = verify_chain(chain, None).unwrap();
    assert_eq!(walk.chain.len(), 1, "neither v2 is adopted");
    let (at, r) = walk.stopped.unwrap();
    assert_eq!((at, r.reason()), (2, "conflict"), "{r}");
    assert_eq!(walk.conflict.len(), 2);
    // A second v2 without a threshold is noise, not a conflict.
    let chain = vec![
        k.approve(&v1, &all),
        k.approve(&a, &["gt", "hn"]),
        k.approve(&b, &["sv"]),
    ];
    assert_eq!(verify_chain(chain, None).unwrap().chain.len(), 2);
}

#[test]
fn a_threshold_must_be_a_strict_majority_of_voting_members() {
    let k = Keys::new(&["gt", "hn", "sv", "cr"]);
    let mut v = pb::RosterVersion {
        federation: "test".into(),
        version: 1,
        previous: vec![],
        expires_at_ms: NOW,
        threshold: 2,
        members: ["gt", "hn", "sv", "cr"]
            .iter()
            .map(|i| k.member(i))
            .collect(),
        proposed_at_ms: 0,
    };
    // 2 of 4 is not a strict majority: two halves could each sign a v2.
    let e = Roster::from_version(&v.encode_to_vec()).unwrap_err();
    assert!(e.problems[0].starts_with("threshold:"), "{e}");
    v.threshold = 5;
    assert!(Roster::from_version(&v.encode_to_vec()).is_err());
    v.threshold = 3;
    assert!(Roster::from_version(&v.encode_to_vec()).is_ok());
    // An observer does not vote: 3 members and an observer need 2.
    let mut observer = k.member("cr");
    observer.role = pb::RosterRole::Observer as i32;
    observer.signing_keys.clear();
    observer.governance_keys.clear();
    v.members[3] = observer;
    v.threshold = 2;
    assert!(Roster::from_version(&v.encode_to_vec()).is_ok());
}

#[test]
fn one_governance_key_cannot_speak_for_two_members() {
    let k = Keys::new(&["gt", "hn", "sv"]);
    let mut hn = k.member("hn");
    hn.governance_keys = k.member("gt").governance_keys;
    let v = pb::RosterVersion {
        federation: "test".into(),
        version: 1,
        previous: vec![],
        expires_at_ms: NOW,
        threshold: 2,
        members: vec![k.member("gt"), hn, k.member("sv")],
        proposed_at_ms: 0,
    };
    let e = Roster::from_version(&v.encode_to_vec()).unwrap_err();
    assert!(
        e.problems
            .iter()
            .any(|p| p.contains("already a governance key of member gt")),
        "{e}"
    );
}

#[test]
fn a_signed_roster_round_trips_byte_for_byte() {
    let k = Keys::new(&["gt", "hn", "sv"]);
    let v1 = k.version(1, None, &["gt", "hn", "sv"], 2);
    let signed = k.approve(&v1, &["gt", "hn"]);
    let back = Signed::decode(&signed.encode()).unwrap();
    assert_eq!(back.version.bytes, v1.bytes);
    assert_eq!(back.approvals, signed.approvals);
    assert!(verify_start(&back, None, Some(NOW)).is_ok());
    assert_eq!(
        Signed::decode(b"\x0a\x03abc").unwrap_err().reason(),
        "invalid"
    );
}

/// A fresh OPRF key's roster entry for `epoch`.
fn oprf_key(epoch: u32) -> pb::RosterOprfKey {
    let (key, _) = crate::records::oprf::SecretKey::generate(epoch).unwrap();
    pb::RosterOprfKey {
        epoch,
        public_key: key.public().key.to_vec(),
    }
}

/// Whether `next`, approved by all of gt, hn and sv, may follow `current`.
fn follows(k: &Keys, current: &Version, next: &Version) -> Result<Tally, Refusal> {
    verify_successor(
        &current.roster,
        &k.approve(next, &["gt", "hn", "sv"]),
        Some(NOW),
    )
}

#[test]
fn an_oprf_epoch_keeps_its_key() {
    let k = Keys::new(&["gt", "hn", "sv"]);
    let all = ["gt", "hn", "sv"];
    let (one, other_one, two) = (oprf_key(1), oprf_key(1), oprf_key(2));
    let v1 = k.version_with_oprf(1, None, &all, 2, &[("gt", &[&one, &two])]);
    // Filters built under epoch 1's key mean nothing under another key.
    let v2 = k.version_with_oprf(2, Some(&v1), &all, 2, &[("gt", &[&other_one, &two])]);
    let r = follows(&k, &v1, &v2).unwrap_err();
    assert_eq!(r.reason(), "oprf_epoch", "{r}");
    assert!(Refusal::REASONS.contains(&r.reason()));
    assert_eq!(
        r,
        Refusal::OprfEpoch {
            version: 2,
            member: NodeId::parse("gt").unwrap(),
            epoch: 1,
            rule: OprfEpochRule::KeepsKey { latest: 2 },
        }
    );
    let text = r.to_string();
    for part in [
        "version 2",
        "member gt's oprf_keys, epoch 1",
        "rule: an epoch keeps its key",
        "under a new epoch, greater than 2",
    ] {
        assert!(text.contains(part), "{part:?} not in {text}");
    }
}

#[test]
fn a_retired_oprf_epoch_never_comes_back() {
    let k = Keys::new(&["gt", "hn", "sv"]);
    let all = ["gt", "hn", "sv"];
    let (one, two) = (oprf_key(1), oprf_key(2));
    let v1 = k.version_with_oprf(1, None, &all, 2, &[("hn", &[&one, &two])]);
    let v2 = k.version_with_oprf(2, Some(&v1), &all, 2, &[("hn", &[&two])]);
    follows(&k, &v1, &v2).unwrap();
    // Epoch 1 is retired at v2: nodes dropped what they held of it.
    let v3 = k.version_with_oprf(3, Some(&v2), &all, 2, &[("hn", &[&one, &two])]);
    let r = follows(&k, &v2, &v3).unwrap_err();
    assert_eq!(
        r,
        Refusal::OprfEpoch {
            version: 3,
            member: NodeId::parse("hn").unwrap(),
            epoch: 1,
            rule: OprfEpochRule::Forward { latest: 2 },
        }
    );
    assert!(
        r.to_string()
            .contains("rule: a new epoch is greater than every epoch listed before"),
        "{r}"
    );
    // A walk stops before the version, whatever its approvals.
    let chain = vec![
        k.approve(&v1, &all),
        k.approve(&v2, &all),
        k.approve(&v3, &all),
    ];
    let walk = verify_chain(chain, None).unwrap();
    assert_eq!(walk.chain.len(), 2);
    let (at, r) = walk.stopped.unwrap();
    assert_eq!((at, r.reason()), (3, "oprf_epoch"), "{r}");
    // An epoch skipped below the latest is retired too: it cannot be
    // filled in later, even under a fresh key.
    let three = oprf_key(3);
    let v1 = k.version_with_oprf(1, None, &all, 2, &[("hn", &[&one, &three])]);
    let v2 = k.version_with_oprf(2, Some(&v1), &all, 2, &[("hn", &[&one, &two, &three])]);
    let r = follows(&k, &v1, &v2).unwrap_err();
    assert!(
        matches!(
            r,
            Refusal::OprfEpoch {
                epoch: 2,
                rule: OprfEpochRule::Forward { latest: 3 },
                ..
            }
        ),
        "{r}"
    );
}

#[test]
fn a_member_keeps_its_latest_oprf_epoch_listed() {
    let k = Keys::new(&["gt", "hn", "sv"]);
    let all = ["gt", "hn", "sv"];
    let two = oprf_key(2);
    let v1 = k.version_with_oprf(1, None, &all, 2, &[("sv", &[&two])]);
    // Without this rule, v2 dropping every key and v3 listing epoch 1
    // would each follow their neighbour.
    let v2 = k.version(2, Some(&v1), &all, 2);
    let r = follows(&k, &v1, &v2).unwrap_err();
    assert_eq!(
        r,
        Refusal::OprfEpoch {
            version: 2,
            member: NodeId::parse("sv").unwrap(),
            epoch: 2,
            rule: OprfEpochRule::KeepsLatest,
        }
    );
    assert!(
        r.to_string()
            .contains("rule: a member's latest epoch stays listed"),
        "{r}"
    );
    // Nor may it fall back to a lower epoch it still lists: {1,2,3} →
    // {1,3} retires 2; → {1} and then → {1,2} would bring 2 back.
    let (one, three) = (oprf_key(1), oprf_key(3));
    let w1 = k.version_with_oprf(1, None, &all, 2, &[("sv", &[&one, &two, &three])]);
    let w2 = k.version_with_oprf(2, Some(&w1), &all, 2, &[("sv", &[&one, &three])]);
    let w3 = k.version_with_oprf(3, Some(&w2), &all, 2, &[("sv", &[&one])]);
    follows(&k, &w1, &w2).unwrap();
    let r = follows(&k, &w2, &w3).unwrap_err();
    assert!(
        matches!(
            r,
            Refusal::OprfEpoch {
                version: 3,
                epoch: 3,
                rule: OprfEpochRule::KeepsLatest,
                ..
            }
        ),
        "{r}"
    );
}

#[test]
fn an_oprf_key_rotation_moves_forward() {
    let k = Keys::new(&["gt", "hn", "sv"]);
    let all = ["gt", "hn", "sv"];
    let (one, two) = (oprf_key(1), oprf_key(2));
    let v1 = k.version_with_oprf(1, None, &all, 2, &[("gt", &[&one])]);
    let v2 = k.version_with_oprf(2, Some(&v1), &all, 2, &[("gt", &[&one, &two])]);
    let v3 = k.version_with_oprf(3, Some(&v2), &all, 2, &[("gt", &[&two])]);
    // A member that listed no OPRF key may list any epoch.
    let v4 = k.version_with_oprf(4, Some(&v3), &all, 2, &[("gt", &[&two]), ("hn", &[&one])]);
    follows(&k, &v1, &v2).unwrap();
    follows(&k, &v2, &v3).unwrap();
    follows(&k, &v3, &v4).unwrap();
    let chain = [&v1, &v2, &v3, &v4].map(|v| k.approve(v, &all)).to_vec();
    let walk = verify_chain(chain, None).unwrap();
    assert!(walk.stopped.is_none(), "{:?}", walk.stopped);
    assert_eq!(walk.chain.len(), 4);
}

#[test]
fn a_new_member_lists_any_oprf_epochs() {
    let mut k = Keys::new(&["gt", "hn", "sv"]);
    let (one, three, five) = (oprf_key(1), oprf_key(3), oprf_key(5));
    let v1 = k.version_with_oprf(1, None, &["gt", "hn", "sv"], 2, &[("gt", &[&five])]);
    k.add("cr");
    let four = ["gt", "hn", "sv", "cr"];
    let v2 = k.version_with_oprf(
        2,
        Some(&v1),
        &four,
        3,
        &[("gt", &[&five]), ("cr", &[&one, &three])],
    );
    verify_successor(&v1.roster, &k.approve(&v2, &four), Some(NOW)).unwrap();
}
