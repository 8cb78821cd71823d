//! Conversions between generated protobuf messages and the domain types of
//! [`crate::records::model`], each collecting every problem it finds with
//! the field it concerns.

use std::collections::BTreeSet;

use super::pb::v1 as pb;
use crate::records::model::{
    Alert, CaseReference, ContactPoint, Distribution, Errors, Evaluation, FieldError, Handling,
    MlaRequest, NodeId, SmugglingElements, TraffickingElements, ValidationErrors,
};
use crate::records::selector::Token;
use crate::records::vocabulary::{
    AlertType, CaseStage, Exploitation, HandlingCode, InformationAccuracy, MlaStatus, Offence,
    SelectorKind, SourceReliability, SubjectCategory, Tlp, TraffickingAct, TraffickingMeans,
    Urgency,
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

pub(super) use req;

/// Converts a wire MLA request, collecting every problem.
pub(crate) fn mla_request_from_pb(r: pb::MlaRequest, errors: &mut Errors) -> Option<MlaRequest> {
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
pub(super) fn required<T>(
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
pub(crate) fn contact_from_pb(c: Option<pb::ContactPoint>) -> Option<ContactPoint> {
    c.map(|c| ContactPoint {
        unit: c.unit,
        email: c.email,
        phone: c.phone,
    })
}

/// A contact point for the wire.
pub(crate) fn contact_to_pb(c: &ContactPoint) -> pb::ContactPoint {
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
pub(crate) fn selectors_from_pb(v: Vec<pb::Selector>, at: &str, errors: &mut Errors) -> Vec<Token> {
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

pub(crate) fn alert_to_pb(a: &Alert) -> pb::Alert {
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
pub(crate) fn case_ref_from_pb(
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

pub(crate) fn case_ref_to_pb(c: &CaseReference) -> pb::CaseReference {
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

pub(crate) fn distribution_to_pb(d: &Distribution) -> pb::Distribution {
    let scope = match d {
        Distribution::AllMembers => pb::distribution::Scope::AllMembers(pb::AllMembers {}),
        Distribution::Named(m) => pb::distribution::Scope::Named(pb::NamedMembers {
            members: m.iter().map(ToString::to_string).collect(),
        }),
    };
    pb::Distribution { scope: Some(scope) }
}

pub(crate) fn distribution_from_pb(
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
