//! Table tests of the record rules: every rule of [`RecordBody::validate`]
//! (and so of [`Alert::check`] and [`CaseReference::check`]) broken once on
//! an otherwise valid record, with the field it must name and the words its
//! message must contain.
//!
//! Each broken body also travels the wire (`encode_body` → `decode_body`):
//! a peer's record that breaks a rule must be refused with exactly the
//! errors the origin's own check gives, so no rule is enforced on one side
//! only. Rules on wire numbers (missing or unknown enum values) have their
//! own table, and series rules (versions, the victim rule across updates)
//! are tested in `lifecycle`.

use crate::records::model::content::{MAX_COUNTRIES, MAX_LINKED, MAX_SELECTORS, MAX_SHORT_CHARS};
use crate::records::model::fixtures::{body, sample_alert};
use crate::records::model::*;
use crate::records::selector::Token;
use crate::records::vocabulary::{
    AlertType, CaseStage, Exploitation, HandlingCode, MlaStatus, Offence, SelectorKind,
    SubjectCategory, Tlp, TraffickingAct, TraffickingMeans, all_countries,
};
use crate::wire::pb::v1 as pb;
use crate::wire::{self, WireError};
use prost::Message;

/// One rule, broken by `mutate` on a valid base body.
struct Rule {
    name: &'static str,
    mutate: fn(&mut RecordBody),
    field: &'static str,
    message: &'static str,
}

/// Shorthand for a table row.
fn rule(
    name: &'static str,
    mutate: fn(&mut RecordBody),
    field: &'static str,
    message: &'static str,
) -> Rule {
    Rule {
        name,
        mutate,
        field,
        message,
    }
}

/// A valid case reference about smuggling, with every optional part set so
/// that each can be broken.
fn sample_case() -> CaseReference {
    CaseReference {
        case_ref: "MP-2026-0042".into(),
        offence: Offence::Smuggling,
        stage: CaseStage::Investigation,
        competent_authority: "Fiscalía contra el Tráfico Ilícito de Migrantes".into(),
        contact: Some(ContactPoint {
            unit: "Fiscalía de Sección".into(),
            email: "fiscalia@mp.example".into(),
            phone: "+502 2411 9191".into(),
        }),
        mla_status: MlaStatus::Requested,
        linked_alerts: vec!["hn-0102030405060708".into()],
        handling: Handling {
            code: HandlingCode::H3,
            condition: Some("solo para la fiscalía".into()),
        },
        tlp: Tlp::Red,
        expires_at_ms: 1_800_000_000_000,
        review_at_ms: Some(1_790_000_000_000),
        summary: Some("Red de transporte por Petén".into()),
        language: "es".into(),
        trafficking: None,
        smuggling: Some(SmugglingElements {
            material_benefit: true,
            life_endangered: true,
            inhuman_treatment: false,
        }),
    }
}

fn alert_body() -> RecordBody {
    body(RecordKind::Alert(sample_alert()))
}

fn case_body() -> RecordBody {
    body(RecordKind::CaseReference(sample_case()))
}

/// The alert a body carries, first or updated.
fn alert(b: &mut RecordBody) -> &mut Alert {
    match &mut b.kind {
        RecordKind::Alert(a) => a,
        RecordKind::Update(Update {
            content: Content::Alert(a),
            ..
        }) => a,
        other => panic!("not an alert body: {other:?}"),
    }
}

/// The case reference a body carries, first or updated.
fn case(b: &mut RecordBody) -> &mut CaseReference {
    match &mut b.kind {
        RecordKind::CaseReference(c) => c,
        RecordKind::Update(Update {
            content: Content::CaseReference(c),
            ..
        }) => c,
        other => panic!("not a case reference body: {other:?}"),
    }
}

fn trafficking(b: &mut RecordBody) -> &mut TraffickingElements {
    alert(b)
        .trafficking
        .as_mut()
        .expect("the sample alert has trafficking elements")
}

fn contact(b: &mut RecordBody) -> &mut ContactPoint {
    alert(b)
        .contact
        .as_mut()
        .expect("the sample alert has a contact")
}

fn smuggling_with_benefit() -> Option<SmugglingElements> {
    Some(SmugglingElements {
        material_benefit: true,
        life_endangered: false,
        inhuman_treatment: false,
    })
}

fn exploitation_only() -> Option<TraffickingElements> {
    Some(TraffickingElements {
        exploitation: vec![Exploitation::ForcedLabour],
        ..Default::default()
    })
}

/// A non-victim alert: the victim rules do not apply to it.
fn make_witness(b: &mut RecordBody) {
    let a = alert(b);
    a.alert_type = AlertType::PersonOfInterest;
    a.subject = Some(SubjectCategory::Witness);
}

fn codes(n: usize) -> Vec<String> {
    all_countries()[..n]
        .iter()
        .map(|c| c.code.to_owned())
        .collect()
}

fn selectors(n: usize) -> Vec<Token> {
    (0..n)
        .map(|i| Token {
            kind: SelectorKind::Phone,
            epoch: 1,
            token: [u8::try_from(i).expect("fewer than 256 selectors"); 32],
        })
        .collect()
}

fn linked(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("hn-{i:016x}")).collect()
}

fn named(n: usize) -> Distribution {
    Distribution::Named(
        (0..n)
            .map(|i| NodeId::parse(&format!("m{i}")).expect("valid node id"))
            .collect(),
    )
}

fn update_of(content: Content) -> RecordKind {
    RecordKind::Update(Update {
        target: "gt-0000000000000001".into(),
        version: 2,
        content,
    })
}

fn withdrawal(target: &str, reason: &str) -> RecordKind {
    RecordKind::Withdrawal(Withdrawal {
        target: target.into(),
        reason: reason.into(),
    })
}

/// The errors a peer's copy of `b` is refused with.
fn wire_errors(b: &RecordBody) -> Vec<FieldError> {
    match wire::decode_body(&wire::encode_body(b)) {
        Err(WireError::Invalid(errors)) => errors.0,
        other => panic!("expected the wire to refuse the body, got {other:?}"),
    }
}

/// Breaks each rule on `base` and checks it is reported, alone, the same
/// way by the origin's check and by a peer's decoder.
fn assert_refused(base: fn() -> RecordBody, rules: &[Rule]) {
    for r in rules {
        let mut b = base();
        (r.mutate)(&mut b);
        let errors = match b.validate() {
            Err(e) => e.0,
            Ok(()) => panic!("{}: the body was accepted", r.name),
        };
        assert_eq!(
            errors.len(),
            1,
            "{}: exactly one rule should be broken: {errors:?}",
            r.name
        );
        assert_eq!(errors[0].field, r.field, "{}: field", r.name);
        assert!(
            errors[0].rule.contains(r.message),
            "{}: message {:?} does not contain {:?}",
            r.name,
            errors[0].rule,
            r.message
        );
        assert_eq!(
            wire_errors(&b),
            errors,
            "{}: a peer's record is refused the same way",
            r.name
        );
    }
}

/// A named change to a valid body that must leave it valid.
type Variant = (&'static str, fn(&mut RecordBody));

/// Checks that each variant of `base` is valid and survives the wire.
fn assert_valid(base: fn() -> RecordBody, variants: &[Variant]) {
    for (name, mutate) in variants {
        let mut b = base();
        mutate(&mut b);
        if let Err(e) = b.validate() {
            panic!("{name}: a valid body was refused: {e}");
        }
        let decoded = wire::decode_body(&wire::encode_body(&b))
            .unwrap_or_else(|e| panic!("{name}: a peer refused a valid body: {e}"));
        assert_eq!(decoded, b, "{name}: the wire changed the body");
    }
}

#[test]
fn bases_and_boundaries_are_valid() {
    assert_valid(
        alert_body,
        &[
            ("the sample alert", |_| {}),
            ("summary of exactly 1000 characters", |b| {
                alert(b).summary = "é".repeat(MAX_SUMMARY_CHARS);
            }),
            ("summary with newline and tab", |b| {
                alert(b).summary = "Ruta:\n\tTecún Umán".into();
            }),
            ("language with a region", |b| {
                alert(b).language = "es-419".into()
            }),
            ("victim under TLP:AMBER+STRICT", |b| {
                alert(b).tlp = Tlp::AmberStrict;
            }),
            ("victim under TLP:RED", |b| alert(b).tlp = Tlp::Red),
            ("victim under TLP:AMBER to all members", |b| {
                b.distribution = Distribution::AllMembers;
            }),
            ("non-victim under TLP:CLEAR to all members", |b| {
                make_witness(b);
                alert(b).tlp = Tlp::Clear;
                b.distribution = Distribution::AllMembers;
            }),
            ("wanted convicted person", |b| {
                let a = alert(b);
                a.alert_type = AlertType::Wanted;
                a.subject = Some(SubjectCategory::Convicted);
            }),
            ("modus operandi about no one", |b| {
                let a = alert(b);
                a.alert_type = AlertType::ModusOperandi;
                a.subject = None;
            }),
            ("child: no means required, no means", |b| {
                let t = trafficking(b);
                t.means.clear();
                t.child_no_means_required = true;
            }),
            ("smuggling with material benefit", |b| {
                let a = alert(b);
                a.offence = Offence::Smuggling;
                a.trafficking = None;
                a.smuggling = smuggling_with_benefit();
            }),
            ("undetermined with both sets of elements, incomplete", |b| {
                let a = alert(b);
                a.offence = Offence::Undetermined;
                a.trafficking = Some(TraffickingElements::default());
                a.smuggling = Some(SmugglingElements::default());
            }),
            ("document fraud without elements", |b| {
                let a = alert(b);
                a.offence = Offence::DocumentFraud;
                a.trafficking = None;
            }),
            ("20 countries in each list", |b| {
                let a = alert(b);
                a.origin_countries = codes(MAX_COUNTRIES);
                a.transit_countries = codes(MAX_COUNTRIES);
                a.destination_countries = codes(MAX_COUNTRIES);
            }),
            ("review at the moment of expiry", |b| {
                let a = alert(b);
                a.review_at_ms = Some(a.expires_at_ms);
            }),
            ("no review date", |b| alert(b).review_at_ms = None),
            ("32 selectors", |b| {
                alert(b).selectors = selectors(MAX_SELECTORS)
            }),
            ("same token under two epochs", |b| {
                let mut s = selectors(1);
                s.push(Token { epoch: 2, ..s[0] });
                alert(b).selectors = s;
            }),
            ("contact with a unit only", |b| {
                alert(b).contact = Some(ContactPoint {
                    unit: "Unidad".into(),
                    ..Default::default()
                });
            }),
            ("no contact", |b| alert(b).contact = None),
            ("64 named recipients", |b| {
                b.distribution = named(MAX_RECIPIENTS)
            }),
            ("an update", |b| {
                b.kind = update_of(Content::Alert(sample_alert()))
            }),
            ("a withdrawal to all members", |b| {
                b.kind = withdrawal("gt-0000000000000001", "duplicado");
                b.distribution = Distribution::AllMembers;
            }),
        ],
    );
    assert_valid(
        case_body,
        &[
            ("the sample case reference", |_| {}),
            ("64 linked alerts", |b| {
                case(b).linked_alerts = linked(MAX_LINKED)
            }),
            ("no summary, so no language", |b| {
                let c = case(b);
                c.summary = None;
                c.language = String::new();
            }),
            ("trafficking without elements", |b| {
                let c = case(b);
                c.offence = Offence::Trafficking;
                c.smuggling = None;
            }),
            ("trafficking with exploitation", |b| {
                let c = case(b);
                c.offence = Offence::Trafficking;
                c.smuggling = None;
                c.trafficking = exploitation_only();
            }),
            ("an update", |b| {
                b.kind = update_of(Content::CaseReference(sample_case()))
            }),
        ],
    );
}

#[test]
fn alert_rules() {
    assert_refused(
        alert_body,
        &[
            // Summary and language.
            rule(
                "empty summary",
                |b| alert(b).summary.clear(),
                "alert.summary",
                "must not be empty",
            ),
            rule(
                "blank summary",
                |b| alert(b).summary = " \n\t ".into(),
                "alert.summary",
                "must not be empty",
            ),
            rule(
                "summary of 1001 characters",
                |b| alert(b).summary = "é".repeat(MAX_SUMMARY_CHARS + 1),
                "alert.summary",
                "must be at most 1000 characters (got 1001)",
            ),
            rule(
                "summary with a bell",
                |b| alert(b).summary = "Ruta\u{7}".into(),
                "alert.summary",
                "must not contain control characters other than newline and tab",
            ),
            rule(
                "summary with a carriage return",
                |b| alert(b).summary = "Ruta\r\nTecún".into(),
                "alert.summary",
                "must not contain control characters",
            ),
            rule(
                "summary with a C1 control",
                |b| alert(b).summary = "Ruta\u{85}".into(),
                "alert.summary",
                "must not contain control characters",
            ),
            rule(
                "language not a tag",
                |b| alert(b).language = "español".into(),
                "alert.language",
                "must be a BCP 47 language tag",
            ),
            rule(
                "language missing",
                |b| alert(b).language.clear(),
                "alert.language",
                "must be a BCP 47 language tag",
            ),
            rule(
                "language with an empty subtag",
                |b| alert(b).language = "es--GT".into(),
                "alert.language",
                "must be a BCP 47 language tag",
            ),
            // Trafficking elements.
            rule(
                "trafficking elements on smuggling",
                |b| {
                    let a = alert(b);
                    a.offence = Offence::Smuggling;
                    a.smuggling = smuggling_with_benefit();
                },
                "alert.trafficking",
                "trafficking elements go only with offence trafficking or undetermined (offence is smuggling)",
            ),
            rule(
                "trafficking elements on illegal stay",
                |b| alert(b).offence = Offence::IllegalStay,
                "alert.trafficking",
                "(offence is illegal_stay)",
            ),
            rule(
                "trafficking elements on document fraud",
                |b| alert(b).offence = Offence::DocumentFraud,
                "alert.trafficking",
                "(offence is document_fraud)",
            ),
            rule(
                "trafficking without exploitation",
                |b| trafficking(b).exploitation.clear(),
                "alert.trafficking.exploitation",
                "trafficking requires at least one form of exploitation",
            ),
            rule(
                "trafficking without any elements",
                |b| alert(b).trafficking = None,
                "alert.trafficking.exploitation",
                "trafficking requires at least one form of exploitation",
            ),
            rule(
                "means and child: no means required",
                |b| trafficking(b).child_no_means_required = true,
                "alert.trafficking.means",
                "means and \"child: no means required\" are mutually exclusive",
            ),
            rule(
                "exploitation listed twice",
                |b| {
                    trafficking(b).exploitation = vec![
                        Exploitation::Sexual,
                        Exploitation::Begging,
                        Exploitation::Sexual,
                    ];
                },
                "alert.trafficking.exploitation",
                "sexual is listed twice",
            ),
            rule(
                "act listed twice",
                |b| trafficking(b).acts.push(TraffickingAct::Recruitment),
                "alert.trafficking.acts",
                "recruitment is listed twice",
            ),
            rule(
                "means listed twice",
                |b| trafficking(b).means.push(TraffickingMeans::Deception),
                "alert.trafficking.means",
                "deception is listed twice",
            ),
            // Smuggling elements.
            rule(
                "smuggling elements on trafficking",
                |b| alert(b).smuggling = smuggling_with_benefit(),
                "alert.smuggling",
                "smuggling elements go only with offence smuggling or undetermined (offence is trafficking)",
            ),
            rule(
                "smuggling elements on document fraud",
                |b| {
                    let a = alert(b);
                    a.offence = Offence::DocumentFraud;
                    a.trafficking = None;
                    a.smuggling = smuggling_with_benefit();
                },
                "alert.smuggling",
                "(offence is document_fraud)",
            ),
            rule(
                "smuggling without material benefit",
                |b| {
                    let a = alert(b);
                    a.offence = Offence::Smuggling;
                    a.trafficking = None;
                    a.smuggling = Some(SmugglingElements {
                        material_benefit: false,
                        life_endangered: true,
                        inhuman_treatment: true,
                    });
                },
                "alert.smuggling.material_benefit",
                "smuggling of migrants requires a financial or other material benefit",
            ),
            rule(
                "smuggling without any elements",
                |b| {
                    let a = alert(b);
                    a.offence = Offence::Smuggling;
                    a.trafficking = None;
                },
                "alert.smuggling.material_benefit",
                "without one, use offence undetermined",
            ),
            // Alert type and subject category.
            rule(
                "possible victim about a witness",
                |b| alert(b).subject = Some(SubjectCategory::Witness),
                "alert.subject_category",
                "an alert of type possible_victim is about a victim",
            ),
            rule(
                "possible victim about no one",
                |b| alert(b).subject = None,
                "alert.subject_category",
                "subject category must be victim",
            ),
            rule(
                "wanted victim",
                |b| alert(b).alert_type = AlertType::Wanted,
                "alert.subject_category",
                "an alert of type wanted is about a suspect or a convicted person",
            ),
            rule(
                "wanted witness",
                |b| {
                    let a = alert(b);
                    a.alert_type = AlertType::Wanted;
                    a.subject = Some(SubjectCategory::Witness);
                },
                "alert.subject_category",
                "about a suspect or a convicted person",
            ),
            rule(
                "wanted no one",
                |b| {
                    let a = alert(b);
                    a.alert_type = AlertType::Wanted;
                    a.subject = None;
                },
                "alert.subject_category",
                "about a suspect or a convicted person",
            ),
            rule(
                "person of interest without category",
                |b| {
                    let a = alert(b);
                    a.alert_type = AlertType::PersonOfInterest;
                    a.subject = None;
                },
                "alert.subject_category",
                "an alert of type person_of_interest must say which category",
            ),
            // The victim's TLP.
            rule(
                "victim under TLP:CLEAR",
                |b| alert(b).tlp = Tlp::Clear,
                "alert.tlp",
                "an alert about a victim is never TLP:CLEAR or TLP:GREEN",
            ),
            rule(
                "victim under TLP:GREEN",
                |b| alert(b).tlp = Tlp::Green,
                "alert.tlp",
                "never TLP:CLEAR or TLP:GREEN",
            ),
            rule(
                "victim of a modus operandi alert under TLP:GREEN",
                |b| {
                    let a = alert(b);
                    a.alert_type = AlertType::ModusOperandi;
                    a.tlp = Tlp::Green;
                },
                "alert.tlp",
                "never TLP:CLEAR or TLP:GREEN",
            ),
            // Countries.
            rule(
                "unassigned country code",
                |b| alert(b).origin_countries = vec!["XX".into()],
                "alert.origin_countries[0]",
                "\"XX\" is not an ISO 3166-1 alpha-2 country code",
            ),
            rule(
                "country name instead of code",
                |b| alert(b).origin_countries.push("Guatemala".into()),
                "alert.origin_countries[1]",
                "is not an ISO 3166-1 alpha-2 country code",
            ),
            rule(
                "lower-case country",
                |b| alert(b).transit_countries = vec!["hn".into()],
                "alert.transit_countries[0]",
                "must be upper case: HN",
            ),
            rule(
                "country listed twice",
                |b| alert(b).destination_countries = vec!["MX".into(), "US".into(), "MX".into()],
                "alert.destination_countries[2]",
                "MX is listed twice",
            ),
            rule(
                "21 origin countries",
                |b| alert(b).origin_countries = codes(MAX_COUNTRIES + 1),
                "alert.origin_countries",
                "at most 20 countries",
            ),
            rule(
                "21 transit countries",
                |b| alert(b).transit_countries = codes(MAX_COUNTRIES + 1),
                "alert.transit_countries",
                "at most 20 countries",
            ),
            rule(
                "21 destination countries",
                |b| alert(b).destination_countries = codes(MAX_COUNTRIES + 1),
                "alert.destination_countries",
                "at most 20 countries",
            ),
            // Handling.
            rule(
                "H3 without its condition",
                |b| alert(b).handling.code = HandlingCode::H3,
                "alert.handling.condition",
                "H3 requires its condition",
            ),
            rule(
                "H3 with a blank condition",
                |b| {
                    alert(b).handling = Handling {
                        code: HandlingCode::H3,
                        condition: Some("  ".into()),
                    };
                },
                "alert.handling.condition",
                "must not be empty",
            ),
            rule(
                "H3 with an overlong condition",
                |b| {
                    alert(b).handling = Handling {
                        code: HandlingCode::H3,
                        condition: Some("x".repeat(MAX_SHORT_CHARS + 1)),
                    };
                },
                "alert.handling.condition",
                "must be at most 200 characters (got 201)",
            ),
            rule(
                "condition on H1",
                |b| alert(b).handling.condition = Some("solo fiscalía".into()),
                "alert.handling.condition",
                "only H3 takes a condition (handling is H1)",
            ),
            rule(
                "condition on H0",
                |b| {
                    alert(b).handling = Handling {
                        code: HandlingCode::H0,
                        condition: Some("solo fiscalía".into()),
                    };
                },
                "alert.handling.condition",
                "only H3 takes a condition (handling is H0)",
            ),
            // Validity.
            rule(
                "no expiry",
                |b| {
                    let a = alert(b);
                    a.expires_at_ms = 0;
                    a.review_at_ms = None;
                },
                "alert.expires_at",
                "is required",
            ),
            rule(
                "expiry before 1970",
                |b| {
                    let a = alert(b);
                    a.expires_at_ms = -1;
                    a.review_at_ms = None;
                },
                "alert.expires_at",
                "is required",
            ),
            rule(
                "review after expiry",
                |b| {
                    let a = alert(b);
                    a.review_at_ms = Some(a.expires_at_ms + 1);
                },
                "alert.review_at",
                "must not fall after the record expires",
            ),
            rule(
                "review before 1970",
                |b| alert(b).review_at_ms = Some(-1),
                "alert.review_at",
                "must not fall after the record expires",
            ),
            // Selectors.
            rule(
                "33 selectors",
                |b| alert(b).selectors = selectors(MAX_SELECTORS + 1),
                "alert.selectors",
                "at most 32 selectors",
            ),
            rule(
                "selector listed twice",
                |b| {
                    let a = alert(b);
                    a.selectors.push(a.selectors[0]);
                },
                "alert.selectors[1]",
                "the same selector is listed twice",
            ),
            rule(
                "selector of epoch 0",
                |b| alert(b).selectors[0].epoch = 0,
                "alert.selectors[0].epoch",
                "must be at least 1",
            ),
            // Contact point.
            rule(
                "contact without a unit",
                |b| contact(b).unit.clear(),
                "alert.contact.unit",
                "must not be empty",
            ),
            rule(
                "contact unit of 201 characters",
                |b| contact(b).unit = "u".repeat(MAX_SHORT_CHARS + 1),
                "alert.contact.unit",
                "must be at most 200 characters (got 201)",
            ),
            rule(
                "e-mail without @",
                |b| contact(b).email = "cooperacion.mp.example".into(),
                "alert.contact.email",
                "must be an e-mail address (a unit's functional mailbox)",
            ),
            rule(
                "e-mail with two @",
                |b| contact(b).email = "a@b@mp.example".into(),
                "alert.contact.email",
                "must be an e-mail address",
            ),
            rule(
                "e-mail with a space",
                |b| contact(b).email = "coop eracion@mp.example".into(),
                "alert.contact.email",
                "must be an e-mail address",
            ),
            rule(
                "e-mail without local part",
                |b| contact(b).email = "@mp.example".into(),
                "alert.contact.email",
                "must be an e-mail address",
            ),
            rule(
                "phone without +",
                |b| contact(b).phone = "502 2411 9191".into(),
                "alert.contact.phone",
                "must be an international number starting with + (E.164)",
            ),
            rule(
                "phone with 00 instead of +",
                |b| contact(b).phone = "00502 2411 9191".into(),
                "alert.contact.phone",
                "starting with +",
            ),
            rule(
                "phone too short",
                |b| contact(b).phone = "+502 241".into(),
                "alert.contact.phone",
                "starting with +",
            ),
            rule(
                "phone with letters",
                |b| contact(b).phone = "+502 2411 FISCAL".into(),
                "alert.contact.phone",
                "starting with +",
            ),
            // Distribution against the TLP.
            rule(
                "TLP:RED to all members",
                |b| {
                    alert(b).tlp = Tlp::Red;
                    b.distribution = Distribution::AllMembers;
                },
                "to",
                "TLP:RED requires named recipients",
            ),
            rule(
                "TLP:AMBER+STRICT to all members",
                |b| {
                    alert(b).tlp = Tlp::AmberStrict;
                    b.distribution = Distribution::AllMembers;
                },
                "to",
                "TLP:AMBER+STRICT requires named recipients",
            ),
        ],
    );
}

#[test]
fn case_reference_rules() {
    assert_refused(
        case_body,
        &[
            rule(
                "empty case reference",
                |b| case(b).case_ref.clear(),
                "case_reference.case_ref",
                "must not be empty",
            ),
            rule(
                "case reference of 201 characters",
                |b| case(b).case_ref = "9".repeat(MAX_SHORT_CHARS + 1),
                "case_reference.case_ref",
                "must be at most 200 characters (got 201)",
            ),
            rule(
                "case reference with a control character",
                |b| case(b).case_ref = "MP\u{1b}[2J".into(),
                "case_reference.case_ref",
                "must not contain control characters",
            ),
            rule(
                "empty competent authority",
                |b| case(b).competent_authority = " ".into(),
                "case_reference.competent_authority",
                "must not be empty",
            ),
            rule(
                "linked alert that is not a record id",
                |b| case(b).linked_alerts = vec!["nope".into()],
                "case_reference.linked_alerts[0]",
                "\"nope\" is not a record id (\"<origin>-<16 hex digits>\")",
            ),
            rule(
                "linked alert with upper-case hex",
                |b| case(b).linked_alerts.push("hn-0102030405060A08".into()),
                "case_reference.linked_alerts[1]",
                "must be \"hn-\" followed by 16 lower-case hex digits",
            ),
            rule(
                "linked alert with a bad origin",
                |b| case(b).linked_alerts = vec!["HN-0102030405060708".into()],
                "case_reference.linked_alerts[0]",
                "is not a record id",
            ),
            rule(
                "65 linked alerts",
                |b| case(b).linked_alerts = linked(MAX_LINKED + 1),
                "case_reference.linked_alerts",
                "at most 64 linked alerts",
            ),
            rule(
                "summary with a bad language",
                |b| case(b).language = "castellano".into(),
                "case_reference.language",
                "must be a BCP 47 language tag",
            ),
            rule(
                "summary without a language",
                |b| case(b).language.clear(),
                "case_reference.language",
                "must be a BCP 47 language tag",
            ),
            rule(
                "blank summary",
                |b| case(b).summary = Some("   ".into()),
                "case_reference.summary",
                "must not be empty",
            ),
            rule(
                "summary of 1001 characters",
                |b| case(b).summary = Some("ñ".repeat(MAX_SUMMARY_CHARS + 1)),
                "case_reference.summary",
                "must be at most 1000 characters (got 1001)",
            ),
            rule(
                "trafficking elements on a smuggling case",
                |b| case(b).trafficking = exploitation_only(),
                "case_reference.trafficking",
                "(offence is smuggling)",
            ),
            rule(
                "smuggling case without material benefit",
                |b| {
                    if let Some(s) = &mut case(b).smuggling {
                        s.material_benefit = false;
                    }
                },
                "case_reference.smuggling.material_benefit",
                "requires a financial or other material benefit",
            ),
            rule(
                "trafficking case with elements but no exploitation",
                |b| {
                    let c = case(b);
                    c.offence = Offence::Trafficking;
                    c.smuggling = None;
                    c.trafficking = Some(TraffickingElements {
                        acts: vec![TraffickingAct::Harbouring],
                        ..Default::default()
                    });
                },
                "case_reference.trafficking.exploitation",
                "trafficking requires at least one form of exploitation",
            ),
            rule(
                "smuggling elements on a trafficking case",
                |b| {
                    let c = case(b);
                    c.offence = Offence::Trafficking;
                    c.trafficking = exploitation_only();
                },
                "case_reference.smuggling",
                "(offence is trafficking)",
            ),
            rule(
                "H3 without its condition",
                |b| case(b).handling.condition = None,
                "case_reference.handling.condition",
                "H3 requires its condition",
            ),
            rule(
                "condition on H2",
                |b| case(b).handling.code = HandlingCode::H2,
                "case_reference.handling.condition",
                "only H3 takes a condition (handling is H2)",
            ),
            rule(
                "no expiry",
                |b| {
                    let c = case(b);
                    c.expires_at_ms = 0;
                    c.review_at_ms = None;
                },
                "case_reference.expires_at",
                "is required",
            ),
            rule(
                "review after expiry",
                |b| case(b).review_at_ms = Some(i64::MAX),
                "case_reference.review_at",
                "must not fall after the record expires",
            ),
            rule(
                "contact e-mail without domain",
                |b| {
                    if let Some(c) = &mut case(b).contact {
                        c.email = "fiscalia@".into();
                    }
                },
                "case_reference.contact.email",
                "must be an e-mail address",
            ),
            rule(
                "contact without a unit",
                |b| {
                    if let Some(c) = &mut case(b).contact {
                        c.unit.clear();
                    }
                },
                "case_reference.contact.unit",
                "must not be empty",
            ),
            rule(
                "TLP:RED case to all members",
                |b| b.distribution = Distribution::AllMembers,
                "to",
                "TLP:RED requires named recipients",
            ),
        ],
    );
}

#[test]
fn record_rules() {
    assert_refused(
        alert_body,
        &[
            rule("seq 0", |b| b.seq = 0, "seq", "must be at least 1"),
            rule(
                "record id of another origin",
                |b| b.record_id = "hn-0909090909090909".into(),
                "record_id",
                "must be \"gt-\" followed by 16 lower-case hex digits (got \"hn-0909090909090909\")",
            ),
            rule(
                "record id of an origin that extends ours",
                |b| b.record_id = "gt-mp-0909090909090909".into(),
                "record_id",
                "must be \"gt-\" followed by 16 lower-case hex digits",
            ),
            rule(
                "record id with upper-case hex",
                |b| b.record_id = "gt-090909090909090A".into(),
                "record_id",
                "16 lower-case hex digits",
            ),
            rule(
                "record id too short",
                |b| b.record_id = "gt-09090909".into(),
                "record_id",
                "16 lower-case hex digits",
            ),
            rule(
                "no named recipient",
                |b| b.distribution = Distribution::Named(Default::default()),
                "distribution.named.members",
                "must name at least one member",
            ),
            rule(
                "65 named recipients",
                |b| b.distribution = named(MAX_RECIPIENTS + 1),
                "distribution.named.members",
                "at most 64 recipients",
            ),
            rule(
                "update to version 1",
                |b| {
                    b.kind = RecordKind::Update(Update {
                        target: "gt-0000000000000001".into(),
                        version: 1,
                        content: Content::Alert(sample_alert()),
                    });
                },
                "update.version",
                "must be at least 2 (the first record is version 1)",
            ),
            rule(
                "update to version 0",
                |b| {
                    b.kind = RecordKind::Update(Update {
                        target: "gt-0000000000000001".into(),
                        version: 0,
                        content: Content::Alert(sample_alert()),
                    });
                },
                "update.version",
                "must be at least 2",
            ),
            rule(
                "update of something that is not a record id",
                |b| {
                    b.kind = RecordKind::Update(Update {
                        target: "nope".into(),
                        version: 2,
                        content: Content::Alert(sample_alert()),
                    });
                },
                "update.target_record_id",
                "\"nope\" is not a record id",
            ),
            rule(
                "update of an id with a bad suffix",
                |b| {
                    b.kind = RecordKind::Update(Update {
                        target: "gt-xyz".into(),
                        version: 2,
                        content: Content::Alert(sample_alert()),
                    });
                },
                "update.target_record_id",
                "must be \"gt-\" followed by 16 lower-case hex digits",
            ),
            rule(
                "update whose alert breaks a rule",
                |b| {
                    b.kind = update_of(Content::Alert(sample_alert()));
                    alert(b).summary.clear();
                },
                "update.alert.summary",
                "must not be empty",
            ),
            rule(
                "update whose victim alert goes green",
                |b| {
                    b.kind = update_of(Content::Alert(sample_alert()));
                    alert(b).tlp = Tlp::Green;
                },
                "update.alert.tlp",
                "never TLP:CLEAR or TLP:GREEN",
            ),
            rule(
                "update whose case reference breaks a rule",
                |b| {
                    b.kind = update_of(Content::CaseReference(sample_case()));
                    case(b).competent_authority.clear();
                },
                "update.case_reference.competent_authority",
                "must not be empty",
            ),
            rule(
                "update to TLP:RED for all members",
                |b| {
                    b.kind = update_of(Content::CaseReference(sample_case()));
                    b.distribution = Distribution::AllMembers;
                },
                "to",
                "TLP:RED requires named recipients",
            ),
            rule(
                "withdrawal without a reason",
                |b| b.kind = withdrawal("gt-0000000000000001", ""),
                "withdrawal.reason",
                "must not be empty",
            ),
            rule(
                "withdrawal with a blank reason",
                |b| b.kind = withdrawal("gt-0000000000000001", " \n "),
                "withdrawal.reason",
                "must not be empty",
            ),
            rule(
                "withdrawal reason of 501 characters",
                |b| b.kind = withdrawal("gt-0000000000000001", &"r".repeat(MAX_REASON_CHARS + 1)),
                "withdrawal.reason",
                "must be at most 500 characters (got 501)",
            ),
            rule(
                "withdrawal reason with a control character",
                |b| b.kind = withdrawal("gt-0000000000000001", "duplicado\u{0}"),
                "withdrawal.reason",
                "must not contain control characters",
            ),
            rule(
                "withdrawal of something that is not a record id",
                |b| b.kind = withdrawal("gt_0000000000000001", "duplicado"),
                "withdrawal.target_record_id",
                "is not a record id",
            ),
        ],
    );
}

#[test]
fn every_broken_rule_is_reported_at_once() {
    let mut b = alert_body();
    b.seq = 0;
    b.distribution = Distribution::AllMembers;
    let a = alert(&mut b);
    a.summary.clear();
    a.language = "x".into();
    a.alert_type = AlertType::Wanted;
    a.trafficking = None;
    a.smuggling = smuggling_with_benefit();
    a.tlp = Tlp::Red;
    a.origin_countries = vec!["hn".into(), "XX".into()];
    a.handling.code = HandlingCode::H3;
    a.expires_at_ms = 0;
    a.selectors[0].epoch = 0;
    if let Some(c) = &mut a.contact {
        c.phone = "2411 9191".into();
    }

    let errors = b.validate().expect_err("many rules are broken").0;
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "seq",
            "alert.summary",
            "alert.language",
            "alert.trafficking.exploitation",
            "alert.smuggling",
            "alert.subject_category",
            "alert.origin_countries[0]",
            "alert.origin_countries[1]",
            "alert.handling.condition",
            "alert.expires_at",
            "alert.review_at",
            "alert.selectors[0].epoch",
            "alert.contact.phone",
            "to",
        ],
        "{errors:?}"
    );
    assert_eq!(wire_errors(&b), errors, "a peer reports the same problems");

    // The message lists them all, field by field.
    let text = ValidationErrors(errors).to_string();
    assert!(
        text.starts_with("seq: must be at least 1; alert.summary: "),
        "{text}"
    );
    let last = "to: TLP:RED requires named recipients: \
                name them (e.g. --to hn,sv) instead of sending to all members";
    assert!(text.ends_with(last), "{text}");
}

/// A peer's body as protobuf, to break what the domain types cannot hold.
fn pb_body(b: &RecordBody) -> pb::RecordBody {
    pb::RecordBody::decode(wire::encode_body(b).as_slice()).expect("our own encoding decodes")
}

fn pb_alert(b: &mut pb::RecordBody) -> &mut pb::Alert {
    match &mut b.kind {
        Some(pb::record_body::Kind::Alert(a)) => a,
        other => panic!("not an alert: {other:?}"),
    }
}

fn pb_case(b: &mut pb::RecordBody) -> &mut pb::CaseReference {
    match &mut b.kind {
        Some(pb::record_body::Kind::CaseReference(c)) => c,
        other => panic!("not a case reference: {other:?}"),
    }
}

/// One wire-level rule: `mutate` breaks the protobuf of `base`.
struct WireRule {
    name: &'static str,
    base: fn() -> RecordBody,
    mutate: fn(&mut pb::RecordBody),
    field: &'static str,
    message: &'static str,
}

#[test]
fn wire_values_are_required_and_known() {
    let rules = [
        WireRule {
            name: "alert type unset",
            base: alert_body,
            mutate: |b| pb_alert(b).r#type = 0,
            field: "alert.type",
            message: "is required; one of: possible_victim, wanted, person_of_interest, modus_operandi, fraudulent_document, warning, criminal_assets",
        },
        WireRule {
            name: "alert type unknown",
            base: alert_body,
            mutate: |b| pb_alert(b).r#type = 8,
            field: "alert.type",
            message: "unknown value 8; one of: possible_victim,",
        },
        WireRule {
            name: "TLP 99",
            base: alert_body,
            mutate: |b| pb_alert(b).tlp = 99,
            field: "alert.tlp",
            message: "unknown value 99; one of: clear, green, amber, amber_strict, red",
        },
        WireRule {
            name: "TLP unset",
            base: alert_body,
            mutate: |b| pb_alert(b).tlp = 0,
            field: "alert.tlp",
            message: "is required; one of: clear, green, amber, amber_strict, red",
        },
        WireRule {
            name: "handling missing",
            base: alert_body,
            mutate: |b| pb_alert(b).handling = None,
            field: "alert.handling",
            message: "is required; one of: h0, h1, h2, h3",
        },
        WireRule {
            name: "handling code unset",
            base: alert_body,
            mutate: |b| {
                if let Some(h) = &mut pb_alert(b).handling {
                    h.code = 0;
                }
            },
            field: "alert.handling.code",
            message: "is required; one of: h0, h1, h2, h3",
        },
        WireRule {
            name: "offence unset",
            base: alert_body,
            mutate: |b| pb_alert(b).offence = 0,
            field: "alert.offence",
            message: "is required; one of: trafficking, smuggling, illegal_stay, document_fraud, undetermined",
        },
        WireRule {
            name: "urgency negative",
            base: alert_body,
            mutate: |b| pb_alert(b).urgency = -1,
            field: "alert.urgency",
            message: "unknown value -1; one of: routine, urgent, immediate",
        },
        WireRule {
            name: "subject category unknown",
            base: alert_body,
            mutate: |b| pb_alert(b).subject_category = 9,
            field: "alert.subject_category",
            message: "unknown value 9",
        },
        WireRule {
            name: "evaluation source unset",
            base: alert_body,
            mutate: |b| {
                if let Some(e) = &mut pb_alert(b).evaluation {
                    e.source = 0;
                }
            },
            field: "alert.evaluation.source",
            message: "is required; one of: a, b, c, x",
        },
        WireRule {
            name: "evaluation information unknown",
            base: alert_body,
            mutate: |b| {
                if let Some(e) = &mut pb_alert(b).evaluation {
                    e.information = 5;
                }
            },
            field: "alert.evaluation.information",
            message: "unknown value 5; one of: 1, 2, 3, 4",
        },
        WireRule {
            name: "trafficking act unknown",
            base: alert_body,
            mutate: |b| {
                if let Some(t) = &mut pb_alert(b).trafficking {
                    t.acts.push(42);
                }
            },
            field: "alert.trafficking.acts[1]",
            message: "unknown value 42",
        },
        WireRule {
            name: "trafficking means unset",
            base: alert_body,
            mutate: |b| {
                if let Some(t) = &mut pb_alert(b).trafficking {
                    t.means = vec![0];
                }
            },
            field: "alert.trafficking.means[0]",
            message: "unknown value 0",
        },
        WireRule {
            name: "exploitation unknown",
            base: alert_body,
            mutate: |b| {
                if let Some(t) = &mut pb_alert(b).trafficking {
                    t.exploitation = vec![11];
                }
            },
            field: "alert.trafficking.exploitation[0]",
            message: "unknown value 11",
        },
        WireRule {
            name: "selector kind unset",
            base: alert_body,
            mutate: |b| pb_alert(b).selectors[0].kind = 0,
            field: "alert.selectors[0].kind",
            message: "is required; one of: passport, national_id, name_dob, phone, email, vehicle_plate, bank_account, imei",
        },
        WireRule {
            name: "selector token of 31 bytes",
            base: alert_body,
            mutate: |b| {
                pb_alert(b).selectors[0].token.pop();
            },
            field: "alert.selectors[0].token",
            message: "must be 32 bytes (got 31)",
        },
        WireRule {
            name: "case stage unset",
            base: case_body,
            mutate: |b| pb_case(b).stage = 0,
            field: "case_reference.stage",
            message: "is required; one of: intelligence, investigation, prosecution, trial, convicted, closed",
        },
        WireRule {
            name: "MLA status unknown",
            base: case_body,
            mutate: |b| pb_case(b).mla_status = 9,
            field: "case_reference.mla_status",
            message: "unknown value 9; one of: none, planned, requested,",
        },
        WireRule {
            name: "case handling missing",
            base: case_body,
            mutate: |b| pb_case(b).handling = None,
            field: "case_reference.handling",
            message: "is required; one of: h0, h1, h2, h3",
        },
        WireRule {
            name: "origin not a node id",
            base: alert_body,
            mutate: |b| b.origin = "GT".into(),
            field: "origin",
            message: "must start with a lower-case letter",
        },
        WireRule {
            name: "distribution missing",
            base: alert_body,
            mutate: |b| b.distribution = None,
            field: "distribution",
            message: "is required",
        },
        WireRule {
            name: "distribution without scope",
            base: alert_body,
            mutate: |b| b.distribution = Some(pb::Distribution { scope: None }),
            field: "distribution",
            message: "must be either all_members or named",
        },
        WireRule {
            name: "named recipient not a node id",
            base: alert_body,
            mutate: |b| {
                b.distribution = Some(pb::Distribution {
                    scope: Some(pb::distribution::Scope::Named(pb::NamedMembers {
                        members: vec!["hn".into(), "Sv".into()],
                    })),
                });
            },
            field: "distribution.named.members[1]",
            message: "node id \"Sv\" must start with a lower-case letter",
        },
        WireRule {
            name: "named recipient listed twice",
            base: alert_body,
            mutate: |b| {
                b.distribution = Some(pb::Distribution {
                    scope: Some(pb::distribution::Scope::Named(pb::NamedMembers {
                        members: vec!["hn".into(), "hn".into()],
                    })),
                });
            },
            field: "distribution.named.members[1]",
            message: "recipient hn is listed twice",
        },
        WireRule {
            name: "no kind",
            base: alert_body,
            mutate: |b| b.kind = None,
            field: "kind",
            message: "is required (unknown or missing record kind)",
        },
        WireRule {
            name: "update without content",
            base: alert_body,
            mutate: |b| {
                b.kind = Some(pb::record_body::Kind::Update(pb::Update {
                    target_record_id: "gt-0000000000000001".into(),
                    version: 2,
                    content: None,
                }));
            },
            field: "update.content",
            message: "is required",
        },
        WireRule {
            name: "updated alert with TLP unset",
            base: || body(update_of(Content::Alert(sample_alert()))),
            mutate: |b| {
                if let Some(pb::record_body::Kind::Update(pb::Update {
                    content: Some(pb::update::Content::Alert(a)),
                    ..
                })) = &mut b.kind
                {
                    a.tlp = 0;
                }
            },
            field: "update.alert.tlp",
            message: "is required; one of: clear,",
        },
    ];
    for r in &rules {
        let mut b = pb_body(&(r.base)());
        (r.mutate)(&mut b);
        let errors = match wire::decode_body(&b.encode_to_vec()) {
            Err(WireError::Invalid(e)) => e.0,
            other => panic!("{}: expected the body to be refused, got {other:?}", r.name),
        };
        assert_eq!(
            errors.len(),
            1,
            "{}: exactly one problem: {errors:?}",
            r.name
        );
        assert_eq!(errors[0].field, r.field, "{}: field", r.name);
        assert!(
            errors[0].rule.contains(r.message),
            "{}: message {:?} does not contain {:?}",
            r.name,
            errors[0].rule,
            r.message
        );
    }
}

#[test]
fn bytes_that_are_not_a_body_do_not_decode() {
    for bytes in [&[0xff, 0xff, 0xff][..], &[0x0a, 0x05, b'g'], &[0x10]] {
        assert!(
            matches!(wire::decode_body(bytes), Err(WireError::Body(_))),
            "{bytes:?}"
        );
    }
}

/// protobuf 3 has no presence for strings and numbers: an empty condition,
/// summary or a review time of 0 reads as absent. So the origin's check of
/// the value it holds is stricter than a peer's, and the publisher must run
/// [`RecordBody::validate`] on what it holds, not only on what it sends.
#[test]
fn empty_optional_values_read_as_absent_on_the_wire() {
    let mut b = alert_body();
    alert(&mut b).handling.condition = Some(String::new());
    alert(&mut b).review_at_ms = Some(0);
    let errors = b.validate().expect_err("refused as held").0;
    assert_eq!(errors.len(), 2, "{errors:?}");
    let mut decoded = wire::decode_body(&wire::encode_body(&b)).expect("accepted as sent");
    assert_eq!(alert(&mut decoded).handling.condition, None);
    assert_eq!(alert(&mut decoded).review_at_ms, None);

    let mut c = case_body();
    case(&mut c).summary = Some(String::new());
    assert!(c.validate().is_err());
    let mut decoded = wire::decode_body(&wire::encode_body(&c)).expect("accepted as sent");
    assert_eq!(case(&mut decoded).summary, None);
}

/// NOTE: not enforced yet. An update or withdrawal names the series it
/// changes, and only the series' origin may change it (`Update` says "of
/// the same origin"; the publisher refuses it for local changes), but
/// neither `validate` nor `verify` nor the recipient's `lifecycle::next`
/// compares the target's origin with the record's, so a member could
/// withdraw or update another member's series at every recipient.
#[test]
fn only_the_origin_changes_its_series() {
    for kind in [
        RecordKind::Update(Update {
            target: "hn-0000000000000001".into(),
            version: 2,
            content: Content::Alert(sample_alert()),
        }),
        withdrawal("hn-0000000000000001", "no es nuestro"),
    ] {
        let b = body(kind);
        let errors = b.validate().expect_err("gt cannot change hn's series").0;
        assert!(
            errors
                .iter()
                .any(|e| e.field.ends_with(".target_record_id")),
            "{errors:?}"
        );
    }
}
