//! Properties of the record wire format and the verification gate, over
//! generated records that satisfy every rule of the record model.
//!
//! - A signed record survives encoding, the envelope and [`verify`]
//!   unchanged.
//! - Any single flipped bit, in the body or in the signature, is refused.
//! - A member's key cannot sign a record in another member's name.
//! - No input makes the decoders panic, and whatever `decode_body` accepts
//!   is a valid record.
//!
//! The federation is real: a roster loaded from TOML with a CA file made by
//! `enlace::trust::pki`, and Ed25519 keys from `enlace::records::crypto`.

use std::borrow::Cow;
use std::ops::RangeInclusive;
use std::sync::LazyLock;

use enlace::records::crypto::{SigningKey, encode_public_key};
use enlace::records::model::{
    Alert, CaseReference, ContactPoint, Content, Distribution, Evaluation, Handling, NodeId,
    RecordBody, RecordKind, SmugglingElements, TraffickingElements, Update, Withdrawal,
    new_record_id,
};
use enlace::records::selector::Token;
use enlace::records::vocabulary::{
    AlertType, CaseStage, Exploitation, HandlingCode, InformationAccuracy, MlaStatus, Offence,
    SelectorKind, SourceReliability, SubjectCategory, Tlp, TraffickingAct, TraffickingMeans,
    Urgency,
};
use enlace::trust::roster::Roster;
use enlace::trust::verify::{Rejection, verify};
use enlace::wire::{self, Envelope};
use proptest::collection::{btree_set, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{Index, select, subsequence};
use proptest::test_runner::FileFailurePersistence;

/// Key ids in the roster.
const GT_KEY: &str = "gt-2026";
const HN_KEY: &str = "hn-2026";

/// Most selectors on one alert (`model::content::MAX_SELECTORS`).
const MAX_SELECTORS: usize = 32;
/// Most countries in one list (`model::content::MAX_COUNTRIES`).
const MAX_COUNTRIES: usize = 20;
/// 2100-01-01, in ms: a generous upper bound for generated times.
const YEAR_2100_MS: i64 = 4_102_444_800_000;

/// A three-member federation: gt and hn sign, sv only receives.
struct Federation {
    roster: Roster,
    gt: SigningKey,
    hn: SigningKey,
}

static FEDERATION: LazyLock<Federation> = LazyLock::new(|| {
    let (gt, _) = SigningKey::generate(GT_KEY).expect("generate gt's key");
    let (hn, _) = SigningKey::generate(HN_KEY).expect("generate hn's key");
    let ca = enlace::trust::pki::new_ca("Property test CA", None, 1).expect("make a CA");
    // The roster reads the CA file while it loads; the directory can go after.
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("ca.crt"), &ca.cert_pem).expect("write the CA");
    let text = format!(
        r#"
federation = "enlace-properties"

[[members]]
id = "gt"
name = "Guatemala — Ministerio Público"
country = "GT"
ca = ["ca.crt"]
governance_keys = ["{gt_governance}"]

[[members.signing_keys]]
key_id = "{GT_KEY}"
public_key = "{gt_public}"

[[members]]
id = "hn"
name = "Honduras — Ministerio Público"
country = "HN"
ca = ["ca.crt"]
governance_keys = ["{hn_governance}"]

[[members.signing_keys]]
key_id = "{HN_KEY}"
public_key = "{hn_public}"

[[members]]
id = "sv"
name = "El Salvador — Fiscalía General"
country = "SV"
role = "observer"
ca = ["ca.crt"]
"#,
        gt_public = encode_public_key(gt.public_key()),
        hn_public = encode_public_key(hn.public_key()),
        gt_governance = encode_public_key(SigningKey::generate("g").expect("a key").0.public_key()),
        hn_governance = encode_public_key(SigningKey::generate("g").expect("a key").0.public_key()),
    );
    let (_, roster) = enlace::trust::roster::RosterSource::parse(
        &text,
        dir.path(),
        &dir.path().join("federation.toml"),
    )
    .and_then(|s| s.compile(1, None, enlace::clock::now_ms()))
    .expect("the test roster is valid");
    Federation { roster, gt, hn }
});

fn gt() -> NodeId {
    NodeId::parse("gt").expect("valid node id")
}

fn sign(key: &SigningKey, body: Vec<u8>) -> Envelope {
    Envelope {
        signature: key.sign_record(&body),
        key_id: key.key_id().to_owned(),
        body,
    }
}

// Strategies. Each builds values that satisfy the rules of
// `RecordBody::validate` by construction, so that a failure is the wire's
// or the gate's, never the generator's.

/// Every character but the controls (Unicode category Cc) and the
/// bidirectional embeddings, overrides and isolates (U+202A–U+202E,
/// U+2066–U+2069), which no text field may hold; other format characters
/// such as U+200F and U+FEFF stay in.
const NOT_CONTROL: &[RangeInclusive<char>] = &[
    ' '..='~',
    '\u{a0}'..='\u{2029}',
    '\u{202f}'..='\u{2065}',
    '\u{206a}'..=char::MAX,
];

/// 1 to `max` characters, none a control character, not all blank.
fn text(max: usize) -> impl Strategy<Value = String> {
    let any_text = || proptest::char::ranges(Cow::Borrowed(NOT_CONTROL));
    // NOTE: mapped rather than filtered, so that no case is ever rejected.
    let visible = any_text().prop_map(|c| if c.is_whitespace() { '¿' } else { c });
    (visible, vec(any_text(), 0..max))
        .prop_map(|(first, rest)| std::iter::once(first).chain(rest).collect())
}

/// Distinct values of a vocabulary, at least `min`, in any order.
fn distinct<T: Clone + std::fmt::Debug + 'static>(
    all: &'static [T],
    min: usize,
) -> impl Strategy<Value = Vec<T>> {
    subsequence(all, min..=all.len()).prop_shuffle()
}

fn language() -> impl Strategy<Value = String> {
    const TAGS: &[&str] = &["es", "en", "en-US", "es-419", "pt-BR", "fr"];
    select(TAGS).prop_map(str::to_owned)
}

fn countries() -> impl Strategy<Value = Vec<String>> {
    const REGION: &[&str] = &[
        "BZ", "CR", "SV", "GT", "HN", "NI", "PA", "DO", "MX", "US", "CO", "EC",
    ];
    subsequence(REGION, 0..=REGION.len().min(MAX_COUNTRIES))
        .prop_shuffle()
        .prop_map(|codes| codes.into_iter().map(str::to_owned).collect())
}

/// Trafficking elements; with `exploitation`, at least one form of it.
fn trafficking(exploitation: bool) -> impl Strategy<Value = TraffickingElements> {
    (
        distinct(TraffickingAct::ALL, 0),
        any::<bool>(),
        distinct(TraffickingMeans::ALL, 0),
        distinct(Exploitation::ALL, usize::from(exploitation)),
    )
        .prop_map(|(acts, child, means, exploitation)| TraffickingElements {
            acts,
            // Means and "child: no means required" exclude each other.
            means: if child { Vec::new() } else { means },
            child_no_means_required: child,
            exploitation,
        })
}

/// Smuggling elements; with `benefit`, the material benefit is stated.
fn smuggling(benefit: bool) -> impl Strategy<Value = SmugglingElements> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(move |(b, life, inhuman)| {
        SmugglingElements {
            material_benefit: benefit || b,
            life_endangered: life,
            inhuman_treatment: inhuman,
        }
    })
}

type Elements = (Option<TraffickingElements>, Option<SmugglingElements>);

/// The elements that go with `offence`. An alert must state those of
/// trafficking and smuggling (`required`); a case reference may leave them out.
fn elements(offence: Offence, required: bool) -> BoxedStrategy<Elements> {
    match offence {
        Offence::Trafficking if required => trafficking(true).prop_map(|t| (Some(t), None)).boxed(),
        Offence::Trafficking => option::of(trafficking(true))
            .prop_map(|t| (t, None))
            .boxed(),
        Offence::Smuggling if required => smuggling(true).prop_map(|s| (None, Some(s))).boxed(),
        Offence::Smuggling => option::of(smuggling(true)).prop_map(|s| (None, s)).boxed(),
        Offence::Undetermined => {
            (option::of(trafficking(false)), option::of(smuggling(false))).boxed()
        }
        Offence::IllegalStay | Offence::DocumentFraud => Just((None, None)).boxed(),
    }
}

/// The subject categories an alert type allows.
fn subject(alert_type: AlertType) -> BoxedStrategy<Option<SubjectCategory>> {
    match alert_type {
        AlertType::PossibleVictim => Just(Some(SubjectCategory::Victim)).boxed(),
        AlertType::Wanted => {
            const WANTED: &[SubjectCategory] =
                &[SubjectCategory::Suspect, SubjectCategory::Convicted];
            select(WANTED).prop_map(Some).boxed()
        }
        AlertType::PersonOfInterest => select(SubjectCategory::ALL).prop_map(Some).boxed(),
        _ => option::of(select(SubjectCategory::ALL)).boxed(),
    }
}

/// A victim alert is never TLP:CLEAR or TLP:GREEN.
fn tlp(victim: bool) -> impl Strategy<Value = Tlp> {
    const FOR_VICTIMS: &[Tlp] = &[Tlp::Amber, Tlp::AmberStrict, Tlp::Red];
    if victim {
        select(FOR_VICTIMS)
    } else {
        select(Tlp::ALL)
    }
}

fn handling() -> impl Strategy<Value = Handling> {
    select(HandlingCode::ALL).prop_flat_map(|code| {
        // Only H3 takes a condition, and H3 must state one.
        let condition = if code == HandlingCode::H3 {
            text(200).prop_map(Some).boxed()
        } else {
            Just(None).boxed()
        };
        condition.prop_map(move |condition| Handling { code, condition })
    })
}

/// Expiry, and a review date no later than it.
fn validity() -> impl Strategy<Value = (i64, Option<i64>)> {
    (1..YEAR_2100_MS).prop_flat_map(|expires| (Just(expires), option::of(1..=expires)))
}

fn selectors() -> impl Strategy<Value = Vec<Token>> {
    btree_set(
        (select(SelectorKind::ALL), 1..=u32::MAX, any::<[u8; 32]>()),
        0..=MAX_SELECTORS,
    )
    .prop_map(|set| {
        set.into_iter()
            .map(|(kind, epoch, token)| Token { kind, epoch, token })
            .collect()
    })
}

fn contact() -> impl Strategy<Value = ContactPoint> {
    (
        text(200),
        prop_oneof![Just(String::new()), "[a-z0-9.]{1,12}@[a-z]{1,12}\\.example"],
        prop_oneof![Just(String::new()), "\\+[1-9][0-9]{1,3} [0-9]{4} [0-9]{4}"],
    )
        .prop_map(|(unit, email, phone)| ContactPoint { unit, email, phone })
}

fn evaluation() -> impl Strategy<Value = Evaluation> {
    (
        select(SourceReliability::ALL),
        select(InformationAccuracy::ALL),
    )
        .prop_map(|(source, information)| Evaluation {
            source,
            information,
        })
}

fn alert() -> impl Strategy<Value = Alert> {
    let category = (select(AlertType::ALL), select(Offence::ALL))
        .prop_flat_map(|(t, o)| (Just(t), Just(o), subject(t), elements(o, true)))
        .prop_flat_map(|(t, o, s, e)| {
            let victim = s == Some(SubjectCategory::Victim);
            (Just((t, o, s, e)), tlp(victim))
        });
    let places = (countries(), countries(), countries());
    let rest = (
        text(200),
        language(),
        option::of(evaluation()),
        handling(),
        select(Urgency::ALL),
        validity(),
        selectors(),
        option::of(contact()),
    );
    (category, places, rest).prop_map(
        |(
            ((alert_type, offence, subject, (trafficking, smuggling)), tlp),
            (origin_countries, transit_countries, destination_countries),
            (summary, language, evaluation, handling, urgency, validity, selectors, contact),
        )| Alert {
            summary,
            language,
            alert_type,
            offence,
            trafficking,
            smuggling,
            subject,
            origin_countries,
            transit_countries,
            destination_countries,
            evaluation,
            handling,
            tlp,
            urgency,
            expires_at_ms: validity.0,
            review_at_ms: validity.1,
            selectors,
            contact,
        },
    )
}

fn record_id(origin: &'static str) -> impl Strategy<Value = String> {
    any::<[u8; 8]>().prop_map(move |random| {
        new_record_id(&NodeId::parse(origin).expect("valid node id"), random)
    })
}

fn case_reference() -> impl Strategy<Value = CaseReference> {
    let what = select(Offence::ALL).prop_flat_map(|o| (Just(o), elements(o, false)));
    let case = (
        text(200),
        select(CaseStage::ALL),
        text(200),
        option::of(contact()),
        select(MlaStatus::ALL),
        vec(prop_oneof![record_id("gt"), record_id("hn")], 0..8),
    );
    let rest = (
        handling(),
        select(Tlp::ALL),
        validity(),
        option::of(text(200)),
        language(),
    );
    (what, case, rest).prop_map(
        |(
            (offence, (trafficking, smuggling)),
            (case_ref, stage, competent_authority, contact, mla_status, linked_alerts),
            (handling, tlp, validity, summary, language),
        )| CaseReference {
            case_ref,
            offence,
            stage,
            competent_authority,
            contact,
            mla_status,
            linked_alerts,
            handling,
            tlp,
            expires_at_ms: validity.0,
            review_at_ms: validity.1,
            summary,
            language,
            trafficking,
            smuggling,
        },
    )
}

/// Named recipients among the roster's members; all members only where
/// the TLP allows it.
fn distribution(tlp: Option<Tlp>) -> impl Strategy<Value = Distribution> {
    const MEMBERS: &[&str] = &["gt", "hn", "sv"];
    let named = subsequence(MEMBERS, 1..=MEMBERS.len()).prop_map(|ids| {
        Distribution::Named(
            ids.into_iter()
                .map(|id| NodeId::parse(id).expect("valid node id"))
                .collect(),
        )
    });
    if tlp.is_some_and(Tlp::requires_named_recipients) {
        named.boxed()
    } else {
        prop_oneof![Just(Distribution::AllMembers), named].boxed()
    }
}

/// A valid record of gt's: mostly first alerts, also case references,
/// updates and withdrawals.
fn body() -> impl Strategy<Value = RecordBody> {
    let content = prop_oneof![
        alert().prop_map(Content::Alert),
        case_reference().prop_map(Content::CaseReference),
    ];
    let kind = prop_oneof![
        4 => alert().prop_map(RecordKind::Alert),
        2 => case_reference().prop_map(RecordKind::CaseReference),
        1 => (record_id("gt"), 2..=u32::MAX, content).prop_map(|(target, version, content)| {
            RecordKind::Update(Update { target, version, content })
        }),
        1 => (record_id("gt"), text(500)).prop_map(|(target, reason)| {
            RecordKind::Withdrawal(Withdrawal { target, reason })
        }),
    ];
    (kind, 1..=u64::MAX, record_id("gt"), 0..YEAR_2100_MS)
        .prop_flat_map(|(kind, seq, record_id, created_at_ms)| {
            let tlp = kind.content().map(|c| c.tlp());
            (
                Just((kind, seq, record_id, created_at_ms)),
                distribution(tlp),
            )
        })
        .prop_map(
            |((kind, seq, record_id, created_at_ms), distribution)| RecordBody {
                origin: gt(),
                seq,
                record_id,
                created_at_ms,
                distribution,
                kind,
            },
        )
}

fn flip(bytes: &mut [u8], bit: Index) {
    let bit = bit.index(bytes.len() * 8);
    bytes[bit / 8] ^= 1 << (bit % 8);
}

/// A change to encoded bytes, as a faulty link or a hostile peer makes.
#[derive(Debug, Clone)]
enum Damage {
    Flip(Index),
    Set(Index, u8),
    Insert(Index, u8),
    Remove(Index),
    Truncate(Index),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<Index>().prop_map(Damage::Flip),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Set(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Insert(i, b)),
        any::<Index>().prop_map(Damage::Remove),
        any::<Index>().prop_map(Damage::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, damage: &[Damage]) {
    for d in damage {
        if bytes.is_empty() {
            return;
        }
        match d {
            Damage::Flip(bit) => flip(bytes, *bit),
            Damage::Set(i, b) => {
                let i = i.index(bytes.len());
                bytes[i] = *b;
            }
            Damage::Insert(i, b) => {
                let i = i.index(bytes.len() + 1);
                bytes.insert(i, *b);
            }
            Damage::Remove(i) => {
                let i = i.index(bytes.len());
                bytes.remove(i);
            }
            Damage::Truncate(i) => {
                let i = i.index(bytes.len());
                bytes.truncate(i);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        // NOTE: next to this file; the default looks for a lib.rs beside it.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::with_cases(64)
    })]

    #[test]
    fn signed_records_survive_the_wire(body in body()) {
        prop_assert_eq!(body.validate(), Ok(()), "the generator made an invalid body");
        let fed = &*FEDERATION;
        let envelope = sign(&fed.gt, wire::encode_body(&body));
        let bytes = envelope.encode();

        let received = Envelope::decode(&bytes).expect("our own envelope decodes");
        prop_assert_eq!(&received, &envelope);
        let verified = verify(&fed.roster, &received).expect("a valid record verifies");
        prop_assert_eq!(&verified.body, &body);
        prop_assert_eq!(verified.key_id, GT_KEY);
        prop_assert_eq!(verified.envelope, bytes);
    }

    #[test]
    fn a_flipped_bit_is_refused(
        body in body(),
        in_signature in any::<bool>(),
        bit in any::<Index>(),
    ) {
        let fed = &*FEDERATION;
        let mut envelope = sign(&fed.gt, wire::encode_body(&body));
        if in_signature {
            flip(&mut envelope.signature, bit);
        } else {
            flip(&mut envelope.body, bit);
        }
        let received = Envelope::decode(&envelope.encode()).expect("the envelope still decodes");
        prop_assert_eq!(
            verify(&fed.roster, &received).map(|v| v.body),
            Err(Rejection::BadSignature(GT_KEY.to_owned()))
        );
    }

    #[test]
    fn a_member_cannot_sign_for_another(body in body()) {
        let fed = &*FEDERATION;
        let bytes = wire::encode_body(&body);

        // hn signs gt's record with its own key, and names it.
        let envelope = sign(&fed.hn, bytes.clone());
        prop_assert_eq!(
            verify(&fed.roster, &envelope).map(|v| v.body),
            Err(Rejection::OriginMismatch {
                claimed: "gt".into(),
                key_id: HN_KEY.into(),
                owner: NodeId::parse("hn").expect("valid node id"),
            })
        );

        // hn signs with its own key but names gt's.
        let envelope = Envelope { key_id: GT_KEY.into(), ..envelope };
        prop_assert_eq!(
            verify(&fed.roster, &envelope).map(|v| v.body),
            Err(Rejection::BadSignature(GT_KEY.to_owned()))
        );

        // A key the roster does not hold.
        let envelope = Envelope { key_id: "gt-2027".into(), ..sign(&fed.gt, bytes) };
        prop_assert_eq!(
            verify(&fed.roster, &envelope).map(|v| v.body),
            Err(Rejection::UnknownKey("gt-2027".into()))
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in vec(any::<u8>(), 0..1024)) {
        let _ = Envelope::decode(&bytes);
        if let Ok(body) = wire::decode_body(&bytes) {
            prop_assert_eq!(body.validate(), Ok(()));
        }
        // Signed by a member, the same bytes reach the body decoder in the gate.
        let fed = &*FEDERATION;
        if let Ok(v) = verify(&fed.roster, &sign(&fed.gt, bytes)) {
            prop_assert_eq!(v.body.validate(), Ok(()));
            prop_assert_eq!(v.body.origin, gt());
        }
    }

    #[test]
    fn damaged_records_never_panic_and_never_decode_invalid(
        body in body(),
        damage in vec(damage(), 1..4),
    ) {
        let fed = &*FEDERATION;
        let mut bytes = wire::encode_body(&body);
        apply(&mut bytes, &damage);
        if let Ok(decoded) = wire::decode_body(&bytes) {
            prop_assert_eq!(decoded.validate(), Ok(()));
        }

        let mut envelope = sign(&fed.gt, wire::encode_body(&body)).encode();
        apply(&mut envelope, &damage);
        if let Ok(received) = Envelope::decode(&envelope) {
            // Verified only if it still carries the signed body unchanged.
            if let Ok(v) = verify(&fed.roster, &received) {
                prop_assert_eq!(v.body, body);
            }
        }
    }
}
