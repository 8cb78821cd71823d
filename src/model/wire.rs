//! The record wire format: protobuf `RecordBody` inside a `SignedRecord`.
//!
//! The encoded body bytes are what the origin signs and what every node
//! stores and forwards unchanged, so this is the only place outside the
//! service edge that touches generated types. Decoding is strict: a body
//! that decodes but breaks a rule ([`RecordBody::validate`]) is rejected.

use std::collections::BTreeSet;

use prost::Message;

use super::{
    Alert, CaseReference, ContactPoint, Content, Distribution, Errors, Evaluation, FieldError,
    Handling, MlaAck, MlaRequest, MlaResponse, NodeId, RecordBody, RecordKind, SmugglingElements,
    TraffickingElements, Update, ValidationErrors, Withdrawal,
};
use crate::pb::v1 as pb;
use crate::selector::Token;
use crate::vocabulary::{
    AlertType, CaseStage, Exploitation, HandlingCode, InformationAccuracy, MlaOutcome, MlaStatus,
    Offence, SelectorKind, SourceReliability, SubjectCategory, Tlp, TraffickingAct,
    TraffickingMeans, Urgency,
};

macro_rules! req {
    ($ty:ty, $v:expr, $field:expr, $errors:expr) => {
        required(
            $v,
            <$ty>::from_wire,
            $field,
            <$ty>::ALL,
            |t| t.code(),
            $errors,
        )
    };
}

/// Why bytes from the wire or the store are not a valid record.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("record envelope does not decode: {0}")]
    Envelope(prost::DecodeError),
    #[error("record body does not decode: {0}")]
    Body(prost::DecodeError),
    #[error("record body is invalid: {0}")]
    Invalid(ValidationErrors),
}

/// The envelope as it travels: body bytes, key id, signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub body: Vec<u8>,
    pub key_id: String,
    pub signature: Vec<u8>,
}

impl Envelope {
    pub fn encode(&self) -> Vec<u8> {
        self.to_pb().encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let pb = pb::SignedRecord::decode(bytes).map_err(WireError::Envelope)?;
        Ok(Self::from_pb(pb))
    }

    pub fn to_pb(&self) -> pb::SignedRecord {
        pb::SignedRecord {
            body: self.body.clone(),
            key_id: self.key_id.clone(),
            signature: self.signature.clone(),
        }
    }

    pub fn from_pb(pb: pb::SignedRecord) -> Self {
        Self {
            body: pb.body,
            key_id: pb.key_id,
            signature: pb.signature,
        }
    }
}

/// Encodes a body for signing. Deterministic for a given value, but no
/// receiver relies on that: signatures cover the bytes as sent.
pub fn encode_body(body: &RecordBody) -> Vec<u8> {
    let kind = match &body.kind {
        RecordKind::Alert(a) => pb::record_body::Kind::Alert(alert_to_pb(a)),
        RecordKind::CaseReference(c) => pb::record_body::Kind::CaseReference(case_ref_to_pb(c)),
        RecordKind::Update(u) => pb::record_body::Kind::Update(pb::Update {
            target_record_id: u.target.clone(),
            version: u.version,
            content: Some(match &u.content {
                Content::Alert(a) => pb::update::Content::Alert(alert_to_pb(a)),
                Content::CaseReference(c) => pb::update::Content::CaseReference(case_ref_to_pb(c)),
            }),
        }),
        RecordKind::Withdrawal(w) => pb::record_body::Kind::Withdrawal(pb::Withdrawal {
            target_record_id: w.target.clone(),
            reason: w.reason.clone(),
        }),
        RecordKind::MlaRequest(r) => pb::record_body::Kind::MlaRequest(pb::MlaRequest {
            to: r.to.to_string(),
            case_refs: r.case_refs.clone(),
            query_id: r.query_id.clone(),
            legal_basis: r.legal_basis.clone(),
            measures: r.measures.clone(),
            urgency: r.urgency.wire(),
            deadline_ms: r.deadline_ms.unwrap_or(0),
        }),
        RecordKind::MlaAck(a) => pb::record_body::Kind::MlaAck(pb::MlaAck {
            request_id: a.request_id.clone(),
        }),
        RecordKind::MlaResponse(r) => pb::record_body::Kind::MlaResponse(pb::MlaResponse {
            request_id: r.request_id.clone(),
            outcome: r.outcome.wire(),
            text: r.text.clone(),
        }),
    };
    pb::RecordBody {
        origin: body.origin.to_string(),
        seq: body.seq,
        record_id: body.record_id.clone(),
        created_at_ms: body.created_at_ms,
        distribution: Some(distribution_to_pb(&body.distribution)),
        kind: Some(kind),
    }
    .encode_to_vec()
}

/// Decodes and validates a body.
pub fn decode_body(bytes: &[u8]) -> Result<RecordBody, WireError> {
    let pb = pb::RecordBody::decode(bytes).map_err(WireError::Body)?;
    let mut errors = Errors::default();
    let origin = NodeId::parse(&pb.origin)
        .map_err(|rule| errors.push("origin", rule))
        .ok();
    let distribution = match pb.distribution {
        Some(d) => distribution_from_pb(d, "distribution")
            .map_err(|e| errors.extend(e))
            .ok(),
        None => {
            errors.push("distribution", "is required");
            None
        }
    };
    let kind = match pb.kind {
        Some(pb::record_body::Kind::Alert(a)) => {
            alert_from_pb(a, "alert", &mut errors).map(RecordKind::Alert)
        }
        Some(pb::record_body::Kind::CaseReference(c)) => {
            case_ref_from_pb(c, "case_reference", &mut errors).map(RecordKind::CaseReference)
        }
        Some(pb::record_body::Kind::Update(u)) => {
            let content = match u.content {
                Some(pb::update::Content::Alert(a)) => {
                    alert_from_pb(a, "update.alert", &mut errors).map(Content::Alert)
                }
                Some(pb::update::Content::CaseReference(c)) => {
                    case_ref_from_pb(c, "update.case_reference", &mut errors)
                        .map(Content::CaseReference)
                }
                None => {
                    errors.push("update.content", "is required");
                    None
                }
            };
            content.map(|content| {
                RecordKind::Update(Update {
                    target: u.target_record_id,
                    version: u.version,
                    content,
                })
            })
        }
        Some(pb::record_body::Kind::Withdrawal(w)) => Some(RecordKind::Withdrawal(Withdrawal {
            target: w.target_record_id,
            reason: w.reason,
        })),
        Some(pb::record_body::Kind::MlaRequest(r)) => {
            mla_request_from_pb(r, &mut errors).map(RecordKind::MlaRequest)
        }
        Some(pb::record_body::Kind::MlaAck(a)) => Some(RecordKind::MlaAck(MlaAck {
            request_id: a.request_id,
        })),
        Some(pb::record_body::Kind::MlaResponse(r)) => req!(
            MlaOutcome,
            r.outcome,
            "mla_response.outcome".to_string(),
            &mut errors
        )
        .map(|outcome| {
            RecordKind::MlaResponse(MlaResponse {
                request_id: r.request_id,
                outcome,
                text: r.text,
            })
        }),
        None => {
            errors.push("kind", "is required (unknown or missing record kind)");
            None
        }
    };
    match (origin, distribution, kind) {
        (Some(origin), Some(distribution), Some(kind)) if errors.is_empty() => {
            let body = RecordBody {
                origin,
                seq: pb.seq,
                record_id: pb.record_id,
                created_at_ms: pb.created_at_ms,
                distribution,
                kind,
            };
            body.validate().map_err(WireError::Invalid)?;
            Ok(body)
        }
        _ => Err(WireError::Invalid(ValidationErrors(errors.0))),
    }
}

/// Converts a wire MLA request, collecting every problem.
pub fn mla_request_from_pb(r: pb::MlaRequest, errors: &mut Errors) -> Option<MlaRequest> {
    let to = NodeId::parse(&r.to)
        .map_err(|rule| errors.push("mla_request.to", rule))
        .ok();
    let urgency = req!(
        Urgency,
        r.urgency,
        "mla_request.urgency".to_string(),
        errors
    );
    Some(MlaRequest {
        to: to?,
        case_refs: r.case_refs,
        query_id: r.query_id,
        legal_basis: r.legal_basis,
        measures: r.measures,
        urgency: urgency?,
        deadline_ms: (r.deadline_ms != 0).then_some(r.deadline_ms),
    })
}

/// A required vocabulary value from its wire number.
fn required<T>(
    v: i32,
    from: impl Fn(i32) -> Option<T>,
    field: String,
    all: &[T],
    code: impl Fn(&T) -> &'static str,
    errors: &mut Errors,
) -> Option<T> {
    match from(v) {
        Some(t) => Some(t),
        None => {
            let codes: Vec<&str> = all.iter().map(code).collect();
            if v == 0 {
                errors.push(field, format!("is required; one of: {}", codes.join(", ")));
            } else {
                errors.push(
                    field,
                    format!("unknown value {v}; one of: {}", codes.join(", ")),
                );
            }
            None
        }
    }
}

/// An optional vocabulary value: 0 means absent.
fn optional<T>(
    v: i32,
    from: impl Fn(i32) -> Option<T>,
    field: String,
    errors: &mut Errors,
) -> Option<T> {
    if v == 0 {
        return None;
    }
    let t = from(v);
    if t.is_none() {
        errors.push(field, format!("unknown value {v}"));
    }
    t
}

fn list<T>(
    vs: &[i32],
    from: impl Fn(i32) -> Option<T>,
    field: &str,
    errors: &mut Errors,
) -> Vec<T> {
    let mut out = Vec::with_capacity(vs.len());
    for (i, v) in vs.iter().enumerate() {
        match from(*v) {
            Some(t) => out.push(t),
            None => errors.push(format!("{field}[{i}]"), format!("unknown value {v}")),
        }
    }
    out
}

fn trafficking_from_pb(
    t: pb::TraffickingElements,
    at: &str,
    errors: &mut Errors,
) -> TraffickingElements {
    TraffickingElements {
        acts: list(
            &t.acts,
            TraffickingAct::from_wire,
            &format!("{at}.trafficking.acts"),
            errors,
        ),
        means: list(
            &t.means,
            TraffickingMeans::from_wire,
            &format!("{at}.trafficking.means"),
            errors,
        ),
        child_no_means_required: t.child_no_means_required,
        exploitation: list(
            &t.exploitation,
            Exploitation::from_wire,
            &format!("{at}.trafficking.exploitation"),
            errors,
        ),
    }
}

fn trafficking_to_pb(t: &TraffickingElements) -> pb::TraffickingElements {
    pb::TraffickingElements {
        acts: t.acts.iter().map(|v| v.wire()).collect(),
        means: t.means.iter().map(|v| v.wire()).collect(),
        child_no_means_required: t.child_no_means_required,
        exploitation: t.exploitation.iter().map(|v| v.wire()).collect(),
    }
}

fn smuggling_from_pb(s: pb::SmugglingElements) -> SmugglingElements {
    SmugglingElements {
        material_benefit: s.material_benefit,
        life_endangered: s.life_endangered,
        inhuman_treatment: s.inhuman_treatment,
    }
}

fn smuggling_to_pb(s: &SmugglingElements) -> pb::SmugglingElements {
    pb::SmugglingElements {
        material_benefit: s.material_benefit,
        life_endangered: s.life_endangered,
        inhuman_treatment: s.inhuman_treatment,
    }
}

fn handling_from_pb(h: Option<pb::Handling>, at: &str, errors: &mut Errors) -> Option<Handling> {
    let Some(h) = h else {
        errors.push(
            format!("{at}.handling"),
            "is required; one of: h0, h1, h2, h3",
        );
        return None;
    };
    let code = req!(HandlingCode, h.code, format!("{at}.handling.code"), errors)?;
    Some(Handling {
        code,
        condition: (!h.condition.is_empty()).then_some(h.condition),
    })
}

fn handling_to_pb(h: &Handling) -> pb::Handling {
    pb::Handling {
        code: h.code.wire(),
        condition: h.condition.clone().unwrap_or_default(),
    }
}

/// A wire contact point, if any.
pub fn contact_from_pb(c: Option<pb::ContactPoint>) -> Option<ContactPoint> {
    c.map(|c| ContactPoint {
        unit: c.unit,
        email: c.email,
        phone: c.phone,
    })
}

/// A contact point for the wire.
pub fn contact_to_pb(c: &ContactPoint) -> pb::ContactPoint {
    pb::ContactPoint {
        unit: c.unit.clone(),
        email: c.email.clone(),
        phone: c.phone.clone(),
    }
}

fn evaluation_from_pb(
    e: Option<pb::Evaluation>,
    at: &str,
    errors: &mut Errors,
) -> Option<Evaluation> {
    let e = e?;
    let source = req!(
        SourceReliability,
        e.source,
        format!("{at}.evaluation.source"),
        errors
    );
    let information = req!(
        InformationAccuracy,
        e.information,
        format!("{at}.evaluation.information"),
        errors
    );
    Some(Evaluation {
        source: source?,
        information: information?,
    })
}

/// Converts wire selectors, collecting every problem under `at`.
pub fn selectors_from_pb(v: Vec<pb::Selector>, at: &str, errors: &mut Errors) -> Vec<Token> {
    let mut out = Vec::with_capacity(v.len());
    for (i, s) in v.into_iter().enumerate() {
        let kind = req!(
            SelectorKind,
            s.kind,
            format!("{at}.selectors[{i}].kind"),
            errors
        );
        let token: Option<[u8; 32]> = s.token.as_slice().try_into().ok();
        if token.is_none() {
            errors.push(
                format!("{at}.selectors[{i}].token"),
                format!("must be 32 bytes (got {})", s.token.len()),
            );
        }
        if let (Some(kind), Some(token)) = (kind, token) {
            out.push(Token {
                kind,
                epoch: s.epoch,
                token,
            });
        }
    }
    out
}

pub fn selector_to_pb(t: &Token) -> pb::Selector {
    pb::Selector {
        kind: t.kind.wire(),
        epoch: t.epoch,
        token: t.token.to_vec(),
    }
}

fn opt_ms(v: i64) -> Option<i64> {
    (v != 0).then_some(v)
}

/// Converts a wire alert, collecting every problem under `at`. The result
/// still has to pass [`Alert::check`].
pub fn alert_from_pb(a: pb::Alert, at: &str, errors: &mut Errors) -> Option<Alert> {
    let alert_type = req!(AlertType, a.r#type, format!("{at}.type"), errors);
    let offence = req!(Offence, a.offence, format!("{at}.offence"), errors);
    let subject = optional(
        a.subject_category,
        SubjectCategory::from_wire,
        format!("{at}.subject_category"),
        errors,
    );
    let tlp = req!(Tlp, a.tlp, format!("{at}.tlp"), errors);
    let urgency = req!(Urgency, a.urgency, format!("{at}.urgency"), errors);
    let handling = handling_from_pb(a.handling, at, errors);
    let evaluation = evaluation_from_pb(a.evaluation, at, errors);
    let trafficking = a.trafficking.map(|t| trafficking_from_pb(t, at, errors));
    let selectors = selectors_from_pb(a.selectors, at, errors);
    Some(Alert {
        summary: a.summary,
        language: a.language,
        alert_type: alert_type?,
        offence: offence?,
        trafficking,
        smuggling: a.smuggling.map(smuggling_from_pb),
        subject,
        origin_countries: a.origin_countries,
        transit_countries: a.transit_countries,
        destination_countries: a.destination_countries,
        evaluation,
        handling: handling?,
        tlp: tlp?,
        urgency: urgency?,
        expires_at_ms: a.expires_at_ms,
        review_at_ms: opt_ms(a.review_at_ms),
        selectors,
        contact: contact_from_pb(a.contact),
    })
}

pub fn alert_to_pb(a: &Alert) -> pb::Alert {
    pb::Alert {
        summary: a.summary.clone(),
        language: a.language.clone(),
        r#type: a.alert_type.wire(),
        offence: a.offence.wire(),
        trafficking: a.trafficking.as_ref().map(trafficking_to_pb),
        smuggling: a.smuggling.as_ref().map(smuggling_to_pb),
        subject_category: a.subject.map_or(0, |s| s.wire()),
        origin_countries: a.origin_countries.clone(),
        transit_countries: a.transit_countries.clone(),
        destination_countries: a.destination_countries.clone(),
        evaluation: a.evaluation.map(|e| pb::Evaluation {
            source: e.source.wire(),
            information: e.information.wire(),
        }),
        handling: Some(handling_to_pb(&a.handling)),
        tlp: a.tlp.wire(),
        urgency: a.urgency.wire(),
        expires_at_ms: a.expires_at_ms,
        review_at_ms: a.review_at_ms.unwrap_or(0),
        selectors: a.selectors.iter().map(selector_to_pb).collect(),
        contact: a.contact.as_ref().map(contact_to_pb),
    }
}

/// Converts a wire case reference, collecting every problem under `at`.
pub fn case_ref_from_pb(
    c: pb::CaseReference,
    at: &str,
    errors: &mut Errors,
) -> Option<CaseReference> {
    let offence = req!(Offence, c.offence, format!("{at}.offence"), errors);
    let stage = req!(CaseStage, c.stage, format!("{at}.stage"), errors);
    let mla_status = req!(MlaStatus, c.mla_status, format!("{at}.mla_status"), errors);
    let tlp = req!(Tlp, c.tlp, format!("{at}.tlp"), errors);
    let handling = handling_from_pb(c.handling, at, errors);
    let trafficking = c.trafficking.map(|t| trafficking_from_pb(t, at, errors));
    Some(CaseReference {
        case_ref: c.case_ref,
        offence: offence?,
        stage: stage?,
        competent_authority: c.competent_authority,
        contact: contact_from_pb(c.contact),
        mla_status: mla_status?,
        linked_alerts: c.linked_alerts,
        handling: handling?,
        tlp: tlp?,
        expires_at_ms: c.expires_at_ms,
        review_at_ms: opt_ms(c.review_at_ms),
        summary: (!c.summary.is_empty()).then_some(c.summary),
        language: c.language,
        trafficking,
        smuggling: c.smuggling.map(smuggling_from_pb),
    })
}

pub fn case_ref_to_pb(c: &CaseReference) -> pb::CaseReference {
    pb::CaseReference {
        case_ref: c.case_ref.clone(),
        offence: c.offence.wire(),
        stage: c.stage.wire(),
        competent_authority: c.competent_authority.clone(),
        contact: c.contact.as_ref().map(contact_to_pb),
        mla_status: c.mla_status.wire(),
        linked_alerts: c.linked_alerts.clone(),
        handling: Some(handling_to_pb(&c.handling)),
        tlp: c.tlp.wire(),
        expires_at_ms: c.expires_at_ms,
        review_at_ms: c.review_at_ms.unwrap_or(0),
        summary: c.summary.clone().unwrap_or_default(),
        language: c.language.clone(),
        trafficking: c.trafficking.as_ref().map(trafficking_to_pb),
        smuggling: c.smuggling.as_ref().map(smuggling_to_pb),
    }
}

pub fn distribution_to_pb(d: &Distribution) -> pb::Distribution {
    let scope = match d {
        Distribution::AllMembers => pb::distribution::Scope::AllMembers(pb::AllMembers {}),
        Distribution::Named(m) => pb::distribution::Scope::Named(pb::NamedMembers {
            members: m.iter().map(ToString::to_string).collect(),
        }),
    };
    pb::Distribution { scope: Some(scope) }
}

pub fn distribution_from_pb(
    d: pb::Distribution,
    field: &str,
) -> Result<Distribution, ValidationErrors> {
    match d.scope {
        Some(pb::distribution::Scope::AllMembers(_)) => Ok(Distribution::AllMembers),
        Some(pb::distribution::Scope::Named(n)) => {
            if n.members.is_empty() {
                return Err(ValidationErrors(vec![FieldError::new(
                    format!("{field}.named.members"),
                    "must name at least one member",
                )]));
            }
            match Distribution::from_recipients(&format!("{field}.named.members"), &n.members)? {
                Distribution::Named(m) => Ok(Distribution::Named(m)),
                Distribution::AllMembers => Ok(Distribution::Named(BTreeSet::new())),
            }
        }
        None => Err(ValidationErrors(vec![FieldError::new(
            field,
            "must be either all_members or named",
        )])),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid alert about a possible victim of trafficking, for tests.
    pub(crate) fn sample_alert() -> Alert {
        Alert {
            summary: "Ruta por Tecún Umán".into(),
            language: "es".into(),
            alert_type: AlertType::PossibleVictim,
            offence: Offence::Trafficking,
            trafficking: Some(TraffickingElements {
                acts: vec![TraffickingAct::Recruitment],
                means: vec![TraffickingMeans::Deception],
                child_no_means_required: false,
                exploitation: vec![Exploitation::Sexual],
            }),
            smuggling: None,
            subject: Some(SubjectCategory::Victim),
            origin_countries: vec!["HN".into()],
            transit_countries: vec!["GT".into()],
            destination_countries: vec!["MX".into()],
            evaluation: Some(Evaluation {
                source: SourceReliability::B,
                information: InformationAccuracy::Two,
            }),
            handling: Handling {
                code: HandlingCode::H1,
                condition: None,
            },
            tlp: Tlp::Amber,
            urgency: Urgency::Urgent,
            expires_at_ms: 1_800_000_000_000,
            review_at_ms: Some(1_790_000_000_000),
            selectors: vec![Token {
                kind: SelectorKind::Passport,
                epoch: 1,
                token: [7; 32],
            }],
            contact: Some(ContactPoint {
                unit: "Unidad de Cooperación Internacional".into(),
                email: "cooperacion@mp.example".into(),
                phone: "+502 2411 9191".into(),
            }),
        }
    }

    pub(crate) fn body(kind: RecordKind) -> RecordBody {
        let gt = NodeId::parse("gt").unwrap();
        RecordBody {
            record_id: super::super::new_record_id(&gt, [9; 8]),
            origin: gt,
            seq: 7,
            created_at_ms: 1_700_000_000_000,
            distribution: Distribution::Named([NodeId::parse("hn").unwrap()].into_iter().collect()),
            kind,
        }
    }

    #[test]
    fn bodies_of_every_kind_round_trip() {
        let alert = sample_alert();
        let case = CaseReference {
            case_ref: "MP-2026-0042".into(),
            offence: Offence::Smuggling,
            stage: CaseStage::Investigation,
            competent_authority: "Fiscalía contra el Tráfico Ilícito de Migrantes".into(),
            contact: None,
            mla_status: MlaStatus::Requested,
            linked_alerts: vec!["hn-0102030405060708".into()],
            handling: Handling {
                code: HandlingCode::H3,
                condition: Some("solo para la fiscalía".into()),
            },
            tlp: Tlp::Red,
            expires_at_ms: 1_800_000_000_000,
            review_at_ms: None,
            summary: None,
            language: String::new(),
            trafficking: None,
            smuggling: Some(SmugglingElements {
                material_benefit: true,
                life_endangered: true,
                inhuman_treatment: false,
            }),
        };
        for kind in [
            RecordKind::Alert(alert.clone()),
            RecordKind::CaseReference(case.clone()),
            RecordKind::Update(Update {
                target: "gt-0000000000000001".into(),
                version: 2,
                content: Content::Alert(alert),
            }),
            RecordKind::Withdrawal(Withdrawal {
                target: "gt-0000000000000001".into(),
                reason: "duplicado".into(),
            }),
        ] {
            let b = body(kind);
            assert_eq!(decode_body(&encode_body(&b)).unwrap(), b);
        }
    }

    #[test]
    fn body_without_distribution_is_rejected() {
        let mut pb = pb::RecordBody::decode(
            encode_body(&body(RecordKind::Alert(sample_alert()))).as_slice(),
        )
        .unwrap();
        pb.distribution = None;
        let err = decode_body(&pb.encode_to_vec()).unwrap_err();
        assert!(
            err.to_string().contains("distribution: is required"),
            "{err}"
        );
    }

    #[test]
    fn missing_vocabulary_values_are_named() {
        let mut pb = pb::RecordBody::decode(
            encode_body(&body(RecordKind::Alert(sample_alert()))).as_slice(),
        )
        .unwrap();
        if let Some(pb::record_body::Kind::Alert(a)) = &mut pb.kind {
            a.r#type = 0;
            a.tlp = 99;
        }
        let err = decode_body(&pb.encode_to_vec()).unwrap_err().to_string();
        assert!(
            err.contains("alert.type: is required; one of: possible_victim"),
            "{err}"
        );
        assert!(err.contains("alert.tlp: unknown value 99"), "{err}");
    }

    #[test]
    fn garbage_does_not_decode() {
        assert!(decode_body(&[0xff, 0xff, 0xff]).is_err());
        assert!(Envelope::decode(&[0x0a, 0x10]).is_err());
    }
}
