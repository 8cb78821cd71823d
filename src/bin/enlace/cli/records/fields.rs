//! The flags of `enlace alert publish|update` and `enlace case-ref
//! publish|update`, and how they are laid over a record: a new one, or the
//! current version of the record being updated.

use anyhow::Context;
use clap::Args;

use super::super::input::{AlertInput, CaseInput, ContactInput, SelectorInput};
use super::super::output::time;
use enlace::records::vocabulary::{
    AlertType, CaseStage, Exploitation, HandlingCode, InformationAccuracy, MlaStatus, Offence,
    SourceReliability, SubjectCategory, Tlp, TraffickingAct, TraffickingMeans, Urgency,
};
use enlace::wire::pb::v1 as pb;

/// The fields of an alert, as flags. Codes are those of docs/vocabulary.md
/// (kebab or snake case).
#[derive(Debug, Args, Default)]
pub struct AlertFields {
    /// Alert type: possible-victim, wanted, person-of-interest,
    /// modus-operandi, fraudulent-document, warning, criminal-assets.
    #[arg(long = "type")]
    alert_type: Option<String>,
    /// Offence: trafficking, smuggling, illegal-stay, document-fraud, undetermined.
    #[arg(long)]
    offence: Option<String>,
    /// Form of exploitation (trafficking), repeatable or comma separated.
    #[arg(long, value_delimiter = ',')]
    exploitation: Vec<String>,
    /// Trafficking act (recruitment, transportation, transfer, harbouring, receipt).
    #[arg(long, value_delimiter = ',')]
    act: Vec<String>,
    /// Trafficking means (threat, force, coercion, abduction, fraud, deception, ...).
    #[arg(long, value_delimiter = ',')]
    means: Vec<String>,
    /// The victim is a child: no means are required.
    #[arg(long)]
    child: bool,
    /// Smuggling: there was no material benefit (rarely true; see the docs).
    #[arg(long)]
    no_material_benefit: bool,
    /// Smuggling: the migrants' lives or safety were endangered.
    #[arg(long)]
    life_endangered: bool,
    /// Smuggling: inhuman or degrading treatment.
    #[arg(long)]
    inhuman_treatment: bool,
    /// Subject category: suspect, convicted, victim, witness.
    #[arg(long)]
    subject: Option<String>,
    /// Country of origin (ISO 3166-1 alpha-2), repeatable.
    #[arg(long = "origin-country", value_delimiter = ',')]
    origin_country: Vec<String>,
    /// Country of transit, repeatable.
    #[arg(long = "transit-country", value_delimiter = ',')]
    transit_country: Vec<String>,
    /// Country of destination, repeatable.
    #[arg(long = "destination-country", value_delimiter = ',')]
    destination_country: Vec<String>,
    /// 4x4 evaluation, source and information: A1 … X4.
    #[arg(long)]
    evaluation: Option<String>,
    /// Handling code: H0, H1, H2, H3.
    #[arg(long)]
    handling: Option<String>,
    /// The condition of an H3 handling code.
    #[arg(long)]
    handling_condition: Option<String>,
    /// TLP: clear, green, amber, amber+strict, red.
    #[arg(long)]
    tlp: Option<String>,
    /// Urgency: routine (default), urgent, immediate.
    #[arg(long)]
    urgency: Option<String>,
    /// When the alert expires: a date (YYYY-MM-DD) or RFC 3339 time.
    /// Default: the node's default validity.
    #[arg(long)]
    expires: Option<String>,
    /// When the origin should review it.
    #[arg(long)]
    review: Option<String>,
    /// Short text, no personal data (at most 1000 characters).
    #[arg(long)]
    summary: Option<String>,
    /// Language of the summary (BCP 47); default es.
    #[arg(long)]
    language: Option<String>,
    /// An identifier KIND=VALUE (passport, national-id, name-dob, phone,
    /// email, vehicle-plate, bank-account, imei), repeatable. The node
    /// hashes it; the clear value is never stored or sent.
    #[arg(long = "selector")]
    selector: Vec<String>,
    /// Contact unit (not a person); default: the node's configured contact.
    #[arg(long)]
    contact_unit: Option<String>,
    #[arg(long)]
    contact_email: Option<String>,
    #[arg(long)]
    contact_phone: Option<String>,
}

/// The fields of a case reference, as flags.
#[derive(Debug, Args, Default)]
pub struct CaseFields {
    /// The agency's own case reference (file number).
    #[arg(long)]
    case_ref: Option<String>,
    #[arg(long)]
    offence: Option<String>,
    /// Stage: intelligence, investigation, prosecution, trial, convicted, closed.
    #[arg(long)]
    stage: Option<String>,
    /// The authority in charge, e.g. "Fiscalía contra la Trata de Personas".
    #[arg(long)]
    authority: Option<String>,
    /// MLA status: none (default), planned, requested, in-progress, executed, ...
    #[arg(long)]
    mla_status: Option<String>,
    /// A related alert's record id, repeatable.
    #[arg(long = "link", value_delimiter = ',')]
    link: Vec<String>,
    #[arg(long, value_delimiter = ',')]
    exploitation: Vec<String>,
    #[arg(long)]
    handling: Option<String>,
    #[arg(long)]
    handling_condition: Option<String>,
    #[arg(long)]
    tlp: Option<String>,
    #[arg(long)]
    expires: Option<String>,
    #[arg(long)]
    review: Option<String>,
    #[arg(long)]
    summary: Option<String>,
    #[arg(long)]
    language: Option<String>,
    #[arg(long)]
    contact_unit: Option<String>,
    #[arg(long)]
    contact_email: Option<String>,
    #[arg(long)]
    contact_phone: Option<String>,
}

fn contact(
    unit: &Option<String>,
    email: &Option<String>,
    phone: &Option<String>,
) -> Option<ContactInput> {
    unit.as_ref().map(|u| ContactInput {
        unit: u.clone(),
        email: email.clone().unwrap_or_default(),
        phone: phone.clone().unwrap_or_default(),
    })
}

fn selectors(args: &[String]) -> anyhow::Result<Vec<SelectorInput>> {
    args.iter()
        .map(|a| {
            let (kind, value) = a
                .split_once('=')
                .context("--selector: expected KIND=VALUE, e.g. passport=X1234567")?;
            Ok(SelectorInput {
                kind: kind.to_owned(),
                value: Some(value.to_owned()),
                epoch: None,
                token: None,
            })
        })
        .collect()
}

impl AlertFields {
    /// Lays the flags that were given over `base`.
    pub(super) fn apply(&self, base: &mut AlertInput) -> anyhow::Result<()> {
        macro_rules! set {
            ($($flag:ident => $field:ident),*) => {$(
                if self.$flag.is_some() { base.$field = self.$flag.clone(); }
            )*};
        }
        set!(alert_type => alert_type, offence => offence, subject => subject_category, evaluation => evaluation,
             handling => handling, handling_condition => handling_condition, tlp => tlp, urgency => urgency,
             expires => expires_at, review => review_at, summary => summary, language => language);
        macro_rules! set_list {
            ($($flag:ident => $field:ident),*) => {$(
                if !self.$flag.is_empty() { base.$field = self.$flag.clone(); }
            )*};
        }
        set_list!(exploitation => exploitation, act => acts, means => means, origin_country => origin_countries,
                  transit_country => transit_countries, destination_country => destination_countries);
        if self.child {
            base.child_no_means_required = true;
        }
        if self.no_material_benefit {
            base.material_benefit = Some(false);
        }
        base.life_endangered |= self.life_endangered;
        base.inhuman_treatment |= self.inhuman_treatment;
        if let Some(c) = contact(&self.contact_unit, &self.contact_email, &self.contact_phone) {
            base.contact = Some(c);
        }
        base.selectors = selectors(&self.selector)?;
        Ok(())
    }
}

impl CaseFields {
    pub(super) fn apply(&self, base: &mut CaseInput) {
        macro_rules! set {
            ($($flag:ident => $field:ident),*) => {$(
                if self.$flag.is_some() { base.$field = self.$flag.clone(); }
            )*};
        }
        set!(case_ref => case_ref, offence => offence, stage => stage, authority => competent_authority,
             mla_status => mla_status, handling => handling, handling_condition => handling_condition,
             tlp => tlp, expires => expires_at, review => review_at, summary => summary, language => language);
        if !self.link.is_empty() {
            base.linked_alerts = self.link.clone();
        }
        if !self.exploitation.is_empty() {
            base.exploitation = self.exploitation.clone();
        }
        if let Some(c) = contact(&self.contact_unit, &self.contact_email, &self.contact_phone) {
            base.contact = Some(c);
        }
    }
}

fn code_of<T>(
    v: i32,
    from: impl Fn(i32) -> Option<T>,
    code: impl Fn(T) -> &'static str,
) -> Option<String> {
    from(v).map(|t| code(t).to_owned())
}

fn codes_of<T>(
    vs: &[i32],
    from: impl Fn(i32) -> Option<T>,
    code: impl Fn(T) -> &'static str,
) -> Vec<String> {
    vs.iter()
        .filter_map(|v| from(*v))
        .map(|t| code(t).to_owned())
        .collect()
}

fn time_of(ms: i64) -> Option<String> {
    (ms != 0).then(|| time(ms))
}

/// The input that reproduces `a` (selectors aside: they are tokens).
pub(super) fn alert_input(a: &pb::Alert) -> AlertInput {
    let t = a.trafficking.clone().unwrap_or_default();
    let s = a.smuggling;
    AlertInput {
        alert_type: code_of(a.r#type, AlertType::from_wire, |c| c.code()),
        offence: code_of(a.offence, Offence::from_wire, |c| c.code()),
        exploitation: codes_of(&t.exploitation, Exploitation::from_wire, |c| c.code()),
        acts: codes_of(&t.acts, TraffickingAct::from_wire, |c| c.code()),
        means: codes_of(&t.means, TraffickingMeans::from_wire, |c| c.code()),
        child_no_means_required: t.child_no_means_required,
        material_benefit: s.as_ref().map(|s| s.material_benefit),
        life_endangered: s.as_ref().is_some_and(|s| s.life_endangered),
        inhuman_treatment: s.as_ref().is_some_and(|s| s.inhuman_treatment),
        subject_category: code_of(a.subject_category, SubjectCategory::from_wire, |c| c.code()),
        origin_countries: a.origin_countries.clone(),
        transit_countries: a.transit_countries.clone(),
        destination_countries: a.destination_countries.clone(),
        evaluation: a.evaluation.as_ref().and_then(|e| {
            let s = SourceReliability::from_wire(e.source)?;
            let i = InformationAccuracy::from_wire(e.information)?;
            Some(format!("{}{}", s.code(), i.code()))
        }),
        handling: a
            .handling
            .as_ref()
            .and_then(|h| code_of(h.code, HandlingCode::from_wire, |c| c.code())),
        handling_condition: a
            .handling
            .as_ref()
            .map(|h| h.condition.clone())
            .filter(|c| !c.is_empty()),
        tlp: code_of(a.tlp, Tlp::from_wire, |c| c.code()),
        urgency: code_of(a.urgency, Urgency::from_wire, |c| c.code()),
        expires_at: time_of(a.expires_at_ms),
        review_at: time_of(a.review_at_ms),
        summary: Some(a.summary.clone()),
        language: Some(a.language.clone()),
        selectors: Vec::new(),
        contact: a.contact.as_ref().map(|c| ContactInput {
            unit: c.unit.clone(),
            email: c.email.clone(),
            phone: c.phone.clone(),
        }),
        to: Vec::new(),
    }
}

pub(super) fn case_input(c: &pb::CaseReference) -> CaseInput {
    let t = c.trafficking.clone().unwrap_or_default();
    let s = c.smuggling;
    CaseInput {
        case_ref: Some(c.case_ref.clone()),
        offence: code_of(c.offence, Offence::from_wire, |x| x.code()),
        stage: code_of(c.stage, CaseStage::from_wire, |x| x.code()),
        competent_authority: Some(c.competent_authority.clone()),
        mla_status: code_of(c.mla_status, MlaStatus::from_wire, |x| x.code()),
        linked_alerts: c.linked_alerts.clone(),
        exploitation: codes_of(&t.exploitation, Exploitation::from_wire, |x| x.code()),
        acts: codes_of(&t.acts, TraffickingAct::from_wire, |x| x.code()),
        means: codes_of(&t.means, TraffickingMeans::from_wire, |x| x.code()),
        child_no_means_required: t.child_no_means_required,
        material_benefit: s.as_ref().map(|s| s.material_benefit),
        life_endangered: s.as_ref().is_some_and(|s| s.life_endangered),
        inhuman_treatment: s.as_ref().is_some_and(|s| s.inhuman_treatment),
        handling: c
            .handling
            .as_ref()
            .and_then(|h| code_of(h.code, HandlingCode::from_wire, |x| x.code())),
        handling_condition: c
            .handling
            .as_ref()
            .map(|h| h.condition.clone())
            .filter(|x| !x.is_empty()),
        tlp: code_of(c.tlp, Tlp::from_wire, |x| x.code()),
        expires_at: time_of(c.expires_at_ms),
        review_at: time_of(c.review_at_ms),
        summary: (!c.summary.is_empty()).then(|| c.summary.clone()),
        language: (!c.language.is_empty()).then(|| c.language.clone()),
        contact: c.contact.as_ref().map(|x| ContactInput {
            unit: x.unit.clone(),
            email: x.email.clone(),
            phone: x.phone.clone(),
        }),
        to: Vec::new(),
    }
}
