//! The content of shared records — alerts, case references and statistical
//! reports — and the
//! rules that keep them minimal, comparable and safe for the people they
//! concern.
//!
//! The rules encode the Palermo protocols so that trafficking in persons
//! and smuggling of migrants cannot be confused: trafficking needs a purpose
//! of exploitation, smuggling a material benefit and no exploitation, and
//! each set of elements goes only with its own offence. Victims are
//! protected: a victim alert is never TLP:CLEAR or TLP:GREEN, and (in the
//! series rules) never turns into another category. docs/vocabulary.md
//! lists every code and rule with its source.

use std::collections::BTreeSet;

use super::{Errors, MAX_SUMMARY_CHARS, check_language_tag, check_record_id_format};
use crate::records::selector::Token;
use crate::records::stats::{StatisticalReport, TableKind};
use crate::records::vocabulary::{
    AlertType, CaseStage, Exploitation, HandlingCode, InformationAccuracy, MlaStatus, Offence,
    SourceReliability, SubjectCategory, Tlp, TraffickingAct, TraffickingMeans, Urgency,
    parse_country,
};

/// Most countries in each of origin, transit, destination.
pub const MAX_COUNTRIES: usize = 20;
/// Most selectors on one alert.
pub const MAX_SELECTORS: usize = 32;
/// Most linked alerts on one case reference.
pub(crate) const MAX_LINKED: usize = 64;
/// Longest short text field (unit, authority, H3 condition, case reference).
pub(crate) const MAX_SHORT_CHARS: usize = 200;

/// The Palermo trafficking protocol's elements (Art. 3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraffickingElements {
    pub acts: Vec<TraffickingAct>,
    pub means: Vec<TraffickingMeans>,
    /// The victim is a child: no means are required.
    pub child_no_means_required: bool,
    pub exploitation: Vec<Exploitation>,
}

/// The Palermo smuggling protocol's elements (Art. 3 and 6).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmugglingElements {
    pub material_benefit: bool,
    pub life_endangered: bool,
    pub inhuman_treatment: bool,
}

/// 4x4 evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evaluation {
    pub source: SourceReliability,
    pub information: InformationAccuracy,
}

/// Handling code, with the condition an H3 states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handling {
    pub code: HandlingCode,
    pub condition: Option<String>,
}

/// Whom to contact: a unit, never a named person.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContactPoint {
    pub unit: String,
    pub email: String,
    pub phone: String,
}

/// An alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub summary: String,
    pub language: String,
    pub alert_type: AlertType,
    pub offence: Offence,
    pub trafficking: Option<TraffickingElements>,
    pub smuggling: Option<SmugglingElements>,
    pub subject: Option<SubjectCategory>,
    pub origin_countries: Vec<String>,
    pub transit_countries: Vec<String>,
    pub destination_countries: Vec<String>,
    pub evaluation: Option<Evaluation>,
    pub handling: Handling,
    pub tlp: Tlp,
    pub urgency: Urgency,
    pub expires_at_ms: i64,
    pub review_at_ms: Option<i64>,
    pub selectors: Vec<Token>,
    pub contact: Option<ContactPoint>,
}

/// A reference to a case the origin holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseReference {
    pub case_ref: String,
    pub offence: Offence,
    pub stage: CaseStage,
    pub competent_authority: String,
    pub contact: Option<ContactPoint>,
    pub mla_status: MlaStatus,
    pub linked_alerts: Vec<String>,
    pub handling: Handling,
    pub tlp: Tlp,
    pub expires_at_ms: i64,
    pub review_at_ms: Option<i64>,
    pub summary: Option<String>,
    pub language: String,
    pub trafficking: Option<TraffickingElements>,
    pub smuggling: Option<SmugglingElements>,
}

/// The content of a first record or an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Alert(Alert),
    CaseReference(CaseReference),
    StatisticalReport(StatisticalReport),
}

/// A borrowed [`Content`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentRef<'a> {
    Alert(&'a Alert),
    CaseReference(&'a CaseReference),
    StatisticalReport(&'a StatisticalReport),
}

impl Content {
    pub fn as_ref(&self) -> ContentRef<'_> {
        match self {
            Content::Alert(a) => ContentRef::Alert(a),
            Content::CaseReference(c) => ContentRef::CaseReference(c),
            Content::StatisticalReport(r) => ContentRef::StatisticalReport(r),
        }
    }
}

impl ContentRef<'_> {
    pub fn tlp(&self) -> Tlp {
        match self {
            ContentRef::Alert(a) => a.tlp,
            ContentRef::CaseReference(c) => c.tlp,
            // Counts for the federation's members, not for the public.
            ContentRef::StatisticalReport(_) => Tlp::Green,
        }
    }

    pub fn offence(&self) -> Offence {
        match self {
            ContentRef::Alert(a) => a.offence,
            ContentRef::CaseReference(c) => c.offence,
            ContentRef::StatisticalReport(r) => match r.kind() {
                TableKind::Victims | TableKind::Persons => Offence::Trafficking,
                TableKind::Smuggled | TableKind::SmugglingPersons => Offence::Smuggling,
            },
        }
    }

    pub fn expires_at_ms(&self) -> i64 {
        match self {
            ContentRef::Alert(a) => a.expires_at_ms,
            ContentRef::CaseReference(c) => c.expires_at_ms,
            ContentRef::StatisticalReport(r) => r.expires_at_ms,
        }
    }

    pub fn review_at_ms(&self) -> Option<i64> {
        match self {
            ContentRef::Alert(a) => a.review_at_ms,
            ContentRef::CaseReference(c) => c.review_at_ms,
            ContentRef::StatisticalReport(_) => None,
        }
    }

    /// Whether the content is about a victim (and so under the victim rules).
    pub(crate) fn is_victim(&self) -> bool {
        matches!(self, ContentRef::Alert(a) if a.subject == Some(SubjectCategory::Victim))
    }

    /// "alert", "case_reference" or "statistical_report".
    pub fn kind_name(&self) -> &'static str {
        match self {
            ContentRef::Alert(_) => "alert",
            ContentRef::CaseReference(_) => "case_reference",
            ContentRef::StatisticalReport(_) => "statistical_report",
        }
    }

    /// All countries named (origin, transit, destination).
    pub fn countries(&self) -> Vec<&str> {
        match self {
            ContentRef::Alert(a) => a
                .origin_countries
                .iter()
                .chain(&a.transit_countries)
                .chain(&a.destination_countries)
                .map(String::as_str)
                .collect(),
            ContentRef::CaseReference(_) | ContentRef::StatisticalReport(_) => Vec::new(),
        }
    }
}

/// Checks a free-text field: non-empty when `required`, at most `max`
/// characters, no control characters but newline and tab.
pub fn check_text(errors: &mut Errors, field: &str, text: &str, max: usize, required: bool) {
    if required && text.trim().is_empty() {
        errors.push(field, "must not be empty");
    }
    let chars = text.chars().count();
    errors.check(
        chars <= max,
        field,
        format!("must be at most {max} characters (got {chars})"),
    );
    errors.check(
        !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        field,
        "must not contain control characters other than newline and tab",
    );
    // Bidirectional embeddings, overrides and isolates make text display
    // in another order than it is stored (and read by a machine): a name
    // or a summary could show one thing to an analyst and say another.
    if let Some(c) = text.chars().find(|c| is_bidi_control(*c)) {
        errors.push(
            field,
            format!(
                "must not contain bidirectional control characters (found U+{:04X})",
                u32::from(c)
            ),
        );
    }
}

/// U+202A–U+202E and U+2066–U+2069: the characters that reorder how text
/// is displayed (Unicode TR9; CVE-2021-42574).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn check_unique<T: Ord + Copy + std::fmt::Display>(errors: &mut Errors, field: &str, items: &[T]) {
    let mut seen = BTreeSet::new();
    for item in items {
        if !seen.insert(*item) {
            errors.push(field, format!("{item} is listed twice"));
        }
    }
}

fn check_elements(
    errors: &mut Errors,
    at: &str,
    offence: Offence,
    trafficking: Option<&TraffickingElements>,
    smuggling: Option<&SmugglingElements>,
    require: bool,
) {
    match trafficking {
        Some(t) => {
            errors.check(
                matches!(offence, Offence::Trafficking | Offence::Undetermined),
                format!("{at}.trafficking"),
                format!(
                    "trafficking elements go only with offence trafficking or undetermined (offence is {offence}); smuggling and trafficking are different crimes"
                ),
            );
            if offence == Offence::Trafficking {
                errors.check(
                    !t.exploitation.is_empty(),
                    format!("{at}.trafficking.exploitation"),
                    "trafficking requires at least one form of exploitation (Palermo protocol Art. 3: the purpose)",
                );
            }
            errors.check(
                !t.child_no_means_required || t.means.is_empty(),
                format!("{at}.trafficking.means"),
                "means and \"child: no means required\" are mutually exclusive",
            );
            check_unique(errors, &format!("{at}.trafficking.acts"), &t.acts);
            check_unique(errors, &format!("{at}.trafficking.means"), &t.means);
            check_unique(errors, &format!("{at}.trafficking.exploitation"), &t.exploitation);
        }
        None => errors.check(
            !(require && offence == Offence::Trafficking),
            format!("{at}.trafficking.exploitation"),
            "trafficking requires at least one form of exploitation (Palermo protocol Art. 3: the purpose)",
        ),
    }
    match smuggling {
        Some(s) => {
            errors.check(
                matches!(offence, Offence::Smuggling | Offence::Undetermined),
                format!("{at}.smuggling"),
                format!(
                    "smuggling elements go only with offence smuggling or undetermined (offence is {offence}); smuggling and trafficking are different crimes"
                ),
            );
            errors.check(
                offence != Offence::Smuggling || s.material_benefit,
                format!("{at}.smuggling.material_benefit"),
                "smuggling of migrants requires a financial or other material benefit (Protocol Art. 3); without one, use offence undetermined",
            );
        }
        None => errors.check(
            !(require && offence == Offence::Smuggling),
            format!("{at}.smuggling.material_benefit"),
            "smuggling of migrants requires a financial or other material benefit (Protocol Art. 3); without one, use offence undetermined",
        ),
    }
}

fn check_handling(errors: &mut Errors, at: &str, h: &Handling) {
    match (&h.code, &h.condition) {
        (HandlingCode::H3, None) => errors.push(
            format!("{at}.handling.condition"),
            "H3 requires its condition (the restriction, stated)",
        ),
        (HandlingCode::H3, Some(c)) => check_text(
            errors,
            &format!("{at}.handling.condition"),
            c,
            MAX_SHORT_CHARS,
            true,
        ),
        (code, Some(_)) => errors.push(
            format!("{at}.handling.condition"),
            format!(
                "only H3 takes a condition (handling is {})",
                code.code().to_uppercase()
            ),
        ),
        (_, None) => {}
    }
}

fn check_validity(errors: &mut Errors, at: &str, expires_at_ms: i64, review_at_ms: Option<i64>) {
    errors.check(expires_at_ms > 0, format!("{at}.expires_at"), "is required");
    if let Some(r) = review_at_ms {
        errors.check(
            r > 0 && r <= expires_at_ms,
            format!("{at}.review_at"),
            "must not fall after the record expires",
        );
    }
}

/// Checks a contact point under `at`.
pub fn check_contact(errors: &mut Errors, at: &str, c: &ContactPoint) {
    check_text(
        errors,
        &format!("{at}.contact.unit"),
        &c.unit,
        MAX_SHORT_CHARS,
        true,
    );
    if !c.email.is_empty() {
        let ok = c.email.len() <= 254
            && c.email.split('@').count() == 2
            && c.email.split('@').all(|p| !p.is_empty())
            && !c.email.chars().any(char::is_whitespace);
        errors.check(
            ok,
            format!("{at}.contact.email"),
            "must be an e-mail address (a unit's functional mailbox)",
        );
    }
    if !c.phone.is_empty() {
        let digits = c.phone.chars().filter(char::is_ascii_digit).count();
        let ok = c.phone.starts_with('+')
            && (8..=15).contains(&digits)
            && c.phone[1..]
                .chars()
                .all(|ch| ch.is_ascii_digit() || " -().".contains(ch));
        errors.check(
            ok,
            format!("{at}.contact.phone"),
            "must be an international number starting with + (E.164)",
        );
    }
}

fn check_countries(errors: &mut Errors, field: &str, list: &[String]) {
    errors.check(
        list.len() <= MAX_COUNTRIES,
        field,
        format!("at most {MAX_COUNTRIES} countries"),
    );
    let mut seen = BTreeSet::new();
    for (i, c) in list.iter().enumerate() {
        match parse_country(c) {
            Ok(code) if code == c => {
                if !seen.insert(code) {
                    errors.push(format!("{field}[{i}]"), format!("{code} is listed twice"));
                }
            }
            Ok(code) => errors.push(
                format!("{field}[{i}]"),
                format!("must be upper case: {code}"),
            ),
            Err(rule) => errors.push(format!("{field}[{i}]"), rule),
        }
    }
}

impl Alert {
    /// Checks every rule of an alert, reporting all that fail under `at`.
    pub fn check(&self, at: &str, errors: &mut Errors) {
        check_text(
            errors,
            &format!("{at}.summary"),
            &self.summary,
            MAX_SUMMARY_CHARS,
            true,
        );
        if let Err(rule) = check_language_tag(&self.language) {
            errors.push(format!("{at}.language"), rule);
        }
        check_elements(
            errors,
            at,
            self.offence,
            self.trafficking.as_ref(),
            self.smuggling.as_ref(),
            true,
        );
        let subject = format!("{at}.subject_category");
        match (self.alert_type, self.subject) {
            (AlertType::PossibleVictim, s) => errors.check(
                s == Some(SubjectCategory::Victim),
                subject,
                "an alert of type possible_victim is about a victim: subject category must be victim",
            ),
            (AlertType::Wanted, s) => errors.check(
                matches!(s, Some(SubjectCategory::Suspect | SubjectCategory::Convicted)),
                subject,
                "an alert of type wanted is about a suspect or a convicted person",
            ),
            (AlertType::PersonOfInterest, s) => errors.check(
                s.is_some(),
                subject,
                "an alert of type person_of_interest must say which category the person is in",
            ),
            _ => {}
        }
        if self.subject == Some(SubjectCategory::Victim) {
            errors.check(
                !matches!(self.tlp, Tlp::Clear | Tlp::Green),
                format!("{at}.tlp"),
                "an alert about a victim is never TLP:CLEAR or TLP:GREEN; use AMBER, AMBER+STRICT or RED",
            );
        }
        check_countries(
            errors,
            &format!("{at}.origin_countries"),
            &self.origin_countries,
        );
        check_countries(
            errors,
            &format!("{at}.transit_countries"),
            &self.transit_countries,
        );
        check_countries(
            errors,
            &format!("{at}.destination_countries"),
            &self.destination_countries,
        );
        check_handling(errors, at, &self.handling);
        check_validity(errors, at, self.expires_at_ms, self.review_at_ms);
        errors.check(
            self.selectors.len() <= MAX_SELECTORS,
            format!("{at}.selectors"),
            format!("at most {MAX_SELECTORS} selectors"),
        );
        let mut tokens = BTreeSet::new();
        for (i, s) in self.selectors.iter().enumerate() {
            errors.check(
                s.epoch >= 1,
                format!("{at}.selectors[{i}].epoch"),
                "must be at least 1",
            );
            errors.check(
                tokens.insert((s.kind, s.epoch, s.token)),
                format!("{at}.selectors[{i}]"),
                "the same selector is listed twice",
            );
        }
        if let Some(c) = &self.contact {
            check_contact(errors, at, c);
        }
    }
}

impl CaseReference {
    /// Checks every rule of a case reference, reporting all that fail under `at`.
    pub fn check(&self, at: &str, errors: &mut Errors) {
        check_text(
            errors,
            &format!("{at}.case_ref"),
            &self.case_ref,
            MAX_SHORT_CHARS,
            true,
        );
        check_text(
            errors,
            &format!("{at}.competent_authority"),
            &self.competent_authority,
            MAX_SHORT_CHARS,
            true,
        );
        if let Some(summary) = &self.summary {
            check_text(
                errors,
                &format!("{at}.summary"),
                summary,
                MAX_SUMMARY_CHARS,
                true,
            );
            if let Err(rule) = check_language_tag(&self.language) {
                errors.push(format!("{at}.language"), rule);
            }
        }
        check_elements(
            errors,
            at,
            self.offence,
            self.trafficking.as_ref(),
            self.smuggling.as_ref(),
            false,
        );
        errors.check(
            self.linked_alerts.len() <= MAX_LINKED,
            format!("{at}.linked_alerts"),
            format!("at most {MAX_LINKED} linked alerts"),
        );
        for (i, id) in self.linked_alerts.iter().enumerate() {
            if let Err(rule) = check_record_id_format(id) {
                errors.push(format!("{at}.linked_alerts[{i}]"), rule);
            }
        }
        if let Some(c) = &self.contact {
            check_contact(errors, at, c);
        }
        check_handling(errors, at, &self.handling);
        check_validity(errors, at, self.expires_at_ms, self.review_at_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_refuses_bidirectional_overrides_and_keeps_other_scripts() {
        let mut errors = Errors::default();
        check_text(&mut errors, "summary", "pago a \u{202E}txe.exe", 100, true);
        let said = errors.finish().unwrap_err().to_string();
        assert!(
            said.contains("summary") && said.contains("U+202E"),
            "{said}"
        );
        let mut errors = Errors::default();
        check_text(&mut errors, "summary", "\u{2067}oculto\u{2069}", 100, true);
        assert!(errors.finish().is_err());
        // Right-to-left scripts themselves are text, not controls.
        let mut errors = Errors::default();
        check_text(
            &mut errors,
            "summary",
            "Caso de Fátima العربية ñ",
            100,
            true,
        );
        assert!(errors.finish().is_ok());
    }
}
