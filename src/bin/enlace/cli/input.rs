//! What a person or a file says about a record, before it becomes a
//! request: the flags of `enlace alert publish` and the lines of
//! `enlace alert import` share these structs, so both accept exactly the
//! same vocabulary codes and report the same precise errors.
//!
//! Every field is optional here; the node applies its defaults and its
//! rules, and answers with every problem at once.
//!
//! An import line may also be a line of `alert list --json` or `case-ref
//! list --json` ([`import_line`]): the fields that describe a record as
//! this node holds it (`record_id`, `created_at`, `position`, …) are
//! ignored, `distribution` becomes `to`, and a listed selector (hashed:
//! `kind`, `epoch`, `token`) is sent as it is. Any other unknown field is
//! still an error that names it: a typo must not drop a field silently.

use std::fmt::Display;

use anyhow::anyhow;
use serde::Deserialize;

use enlace::records::vocabulary::{
    AlertType, CaseStage, Exploitation, HandlingCode, InformationAccuracy, MlaStatus, Offence,
    SelectorKind, SourceReliability, SubjectCategory, Tlp, TraffickingAct, TraffickingMeans,
    Urgency,
};
use enlace::wire::pb::v1 as pb;

/// A selector in clear text, `{"kind": "passport", "value": "X1234567"}`,
/// or hashed as `list --json` shows it, `{"kind", "epoch", "token"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectorInput {
    pub kind: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub epoch: Option<u32>,
    /// 64 hex digits.
    #[serde(default)]
    pub token: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    pub unit: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub phone: String,
}

/// An alert as given on the command line or in a JSON line.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertInput {
    #[serde(rename = "type")]
    pub alert_type: Option<String>,
    pub offence: Option<String>,
    pub exploitation: Vec<String>,
    pub acts: Vec<String>,
    pub means: Vec<String>,
    pub child_no_means_required: bool,
    pub material_benefit: Option<bool>,
    pub life_endangered: bool,
    pub inhuman_treatment: bool,
    pub subject_category: Option<String>,
    pub origin_countries: Vec<String>,
    pub transit_countries: Vec<String>,
    pub destination_countries: Vec<String>,
    /// Two characters, source then information: "B2".
    pub evaluation: Option<String>,
    pub handling: Option<String>,
    pub handling_condition: Option<String>,
    pub tlp: Option<String>,
    pub urgency: Option<String>,
    /// RFC 3339 time or date (YYYY-MM-DD).
    pub expires_at: Option<String>,
    pub review_at: Option<String>,
    pub summary: Option<String>,
    pub language: Option<String>,
    pub selectors: Vec<SelectorInput>,
    pub contact: Option<ContactInput>,
    pub to: Vec<String>,
}

/// A case reference as given on the command line or in a JSON line.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaseInput {
    pub case_ref: Option<String>,
    pub offence: Option<String>,
    pub stage: Option<String>,
    pub competent_authority: Option<String>,
    pub mla_status: Option<String>,
    pub linked_alerts: Vec<String>,
    pub exploitation: Vec<String>,
    pub acts: Vec<String>,
    pub means: Vec<String>,
    pub child_no_means_required: bool,
    pub material_benefit: Option<bool>,
    pub life_endangered: bool,
    pub inhuman_treatment: bool,
    pub handling: Option<String>,
    pub handling_condition: Option<String>,
    pub tlp: Option<String>,
    pub expires_at: Option<String>,
    pub review_at: Option<String>,
    pub summary: Option<String>,
    pub language: Option<String>,
    pub contact: Option<ContactInput>,
    pub to: Vec<String>,
}

/// One line of an import file: `"kind"` selects the record kind
/// (default "alert"); the other fields are those of the kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ImportLine {
    Alert(AlertInput),
    CaseReference(CaseInput),
}

/// Fields of a `list --json` line that describe the record as the node
/// holds it, not its content: accepted on import and ignored (the node
/// that publishes the line gives the new record its own).
const HELD_FIELDS: &[&str] = &[
    "record_id",
    "origin",
    "seq",
    "series_id",
    "version",
    "status",
    "created_at",
    "key_id",
    "position",
    "withdrawal_reason",
    "expired_at",
];

/// One import line, given as JSON: an input line or a line of `list
/// --json` (see the module docs). Every problem is returned as `field:
/// rule`.
pub fn import_line(value: serde_json::Value) -> Result<ImportLine, Vec<String>> {
    use serde_json::Value;
    let Value::Object(mut map) = value else {
        return Err(vec![
            "the line must be a JSON object (one record per line)".into(),
        ]);
    };
    let mut problems = Vec::new();
    for f in HELD_FIELDS {
        map.remove(*f);
    }
    let kind = match map.remove("kind") {
        None => "alert".to_owned(),
        Some(Value::String(k)) => match k.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "alert" => "alert".to_owned(),
            "case_reference" => "case_reference".to_owned(),
            "withdrawal" => {
                problems.push(
                    "kind: a withdrawal cannot be imported; withdraw with `alert withdraw ID`"
                        .to_owned(),
                );
                "alert".to_owned()
            }
            _ => {
                problems.push(format!(
                    "kind: unknown kind {k:?}; one of: alert, case-reference"
                ));
                "alert".to_owned()
            }
        },
        Some(other) => {
            problems.push(format!(
                "kind: must be a string (alert or case-reference), not {other}"
            ));
            "alert".to_owned()
        }
    };
    if let Some(d) = map.remove("distribution") {
        match distribution_to(&d) {
            Ok(to) if map.contains_key("to") => {
                if map.get("to") != Some(&serde_json::json!(to)) {
                    problems.push("distribution: differs from to; give one of them".to_owned());
                }
            }
            Ok(to) => {
                map.insert("to".into(), serde_json::json!(to));
            }
            Err(rule) => problems.push(format!("distribution: {rule}")),
        }
    }
    map.insert("kind".into(), Value::String(kind));
    match serde_json::from_value::<ImportLine>(Value::Object(map)) {
        Ok(line) if problems.is_empty() => Ok(line),
        Ok(_) => Err(problems),
        Err(e) => {
            problems.push(e.to_string());
            Err(problems)
        }
    }
}

/// The recipients of a listed `distribution`: `{"scope": "all", "members":
/// []}` or `{"scope": "named", "members": [..]}` (and the older `"all"` or
/// `[..]`).
fn distribution_to(d: &serde_json::Value) -> Result<Vec<String>, String> {
    use serde_json::Value;
    let names = |v: &Value| -> Result<Vec<String>, String> {
        v.as_array()
            .ok_or_else(|| format!("members must be a list of node ids, not {v}"))?
            .iter()
            .map(|m| {
                m.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("a member must be a node id, not {m}"))
            })
            .collect()
    };
    match d {
        Value::String(s) if s == "all" => Ok(Vec::new()),
        Value::Array(_) => names(d),
        Value::Object(o) => match o.get("scope").and_then(Value::as_str) {
            Some("all") => Ok(Vec::new()),
            Some("named") => names(o.get("members").unwrap_or(&Value::Null)),
            _ => Err(format!("scope must be \"all\" or \"named\", in {d}")),
        },
        other => Err(format!(
            "expected {{\"scope\": \"all\"|\"named\", \"members\": [..]}}, not {other}"
        )),
    }
}

/// Every problem of one input, reported at once (`"type: …; tlp: …"`).
#[derive(Debug, Default, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct Problems(pub Vec<String>);

impl Problems {
    fn code<T, E: Display>(
        &mut self,
        field: &str,
        v: &Option<String>,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Option<T> {
        let v = v.as_deref()?;
        match parse(v) {
            Ok(t) => Some(t),
            Err(e) => {
                self.0.push(format!("{field}: {e}"));
                None
            }
        }
    }

    fn codes<T, E: Display>(
        &mut self,
        field: &str,
        vs: &[String],
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Vec<T> {
        vs.iter()
            .filter_map(|v| match parse(v) {
                Ok(t) => Some(t),
                Err(e) => {
                    self.0.push(format!("{field}: {e}"));
                    None
                }
            })
            .collect()
    }

    fn time(&mut self, field: &str, v: &Option<String>) -> i64 {
        match v.as_deref().map(parse_time) {
            None => 0,
            Some(Ok(ms)) => ms,
            Some(Err(e)) => {
                self.0.push(format!("{field}: {e}"));
                0
            }
        }
    }

    /// `Ok` if there was no problem.
    pub fn finish(self) -> Result<(), Problems> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

/// Parses an RFC 3339 time, or a date (midnight UTC), into ms since the epoch.
pub fn parse_time(s: &str) -> anyhow::Result<i64> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &fmt)
        .map(|d| d.midnight().assume_utc().unix_timestamp() * 1000)
        .map_err(|_| anyhow!("{s:?} is not a date (YYYY-MM-DD) or an RFC 3339 time"))
}

fn evaluation(p: &mut Problems, v: &Option<String>) -> Option<pb::Evaluation> {
    let v = v.as_deref()?;
    let mut chars = v.chars();
    let (Some(s), Some(i), None) = (chars.next(), chars.next(), chars.next()) else {
        p.0.push(format!(
            "evaluation: {v:?} must be a source letter and an information digit, e.g. B2"
        ));
        return None;
    };
    let source =
        SourceReliability::parse(&s.to_string()).map_err(|e| p.0.push(format!("evaluation: {e}")));
    let information = InformationAccuracy::parse(&i.to_string())
        .map_err(|e| p.0.push(format!("evaluation: {e}")));
    Some(pb::Evaluation {
        source: source.ok()?.wire(),
        information: information.ok()?.wire(),
    })
}

fn elements(
    p: &mut Problems,
    offence: Option<Offence>,
    exploitation: &[String],
    acts: &[String],
    means: &[String],
    child: bool,
) -> Option<pb::TraffickingElements> {
    let exploitation = p.codes("exploitation", exploitation, Exploitation::parse);
    let acts = p.codes("act", acts, TraffickingAct::parse);
    let means = p.codes("means", means, TraffickingMeans::parse);
    let any = !exploitation.is_empty() || !acts.is_empty() || !means.is_empty() || child;
    (any || offence == Some(Offence::Trafficking)).then(|| pb::TraffickingElements {
        acts: acts.iter().map(|v| v.wire()).collect(),
        means: means.iter().map(|v| v.wire()).collect(),
        child_no_means_required: child,
        exploitation: exploitation.iter().map(|v| v.wire()).collect(),
    })
}

fn smuggling(
    offence: Option<Offence>,
    material_benefit: Option<bool>,
    life_endangered: bool,
    inhuman_treatment: bool,
) -> Option<pb::SmugglingElements> {
    // Smuggling is, by definition, for a material benefit: say so unless
    // told otherwise.
    let benefit = material_benefit.unwrap_or(offence == Some(Offence::Smuggling));
    (benefit || life_endangered || inhuman_treatment || offence == Some(Offence::Smuggling))
        .then_some(pb::SmugglingElements {
            material_benefit: benefit,
            life_endangered,
            inhuman_treatment,
        })
}

fn handling(
    p: &mut Problems,
    code: &Option<String>,
    condition: &Option<String>,
) -> Option<pb::Handling> {
    let code = p.code("handling", code, HandlingCode::parse)?;
    Some(pb::Handling {
        code: code.wire(),
        condition: condition.clone().unwrap_or_default(),
    })
}

fn contact(c: &Option<ContactInput>) -> Option<pb::ContactPoint> {
    c.as_ref().map(|c| pb::ContactPoint {
        unit: c.unit.clone(),
        email: c.email.clone(),
        phone: c.phone.clone(),
    })
}

impl AlertInput {
    /// The wire alert and the clear selectors; every problem at once.
    pub fn to_pb(&self) -> Result<(pb::Alert, Vec<pb::SelectorValue>), Problems> {
        let mut p = Problems::default();
        let offence = p.code("offence", &self.offence, Offence::parse);
        let alert = pb::Alert {
            summary: self.summary.clone().unwrap_or_default(),
            language: self.language.clone().unwrap_or_else(|| "es".into()),
            r#type: p
                .code("type", &self.alert_type, AlertType::parse)
                .map_or(0, |v| v.wire()),
            offence: offence.map_or(0, |v| v.wire()),
            trafficking: elements(
                &mut p,
                offence,
                &self.exploitation,
                &self.acts,
                &self.means,
                self.child_no_means_required,
            ),
            smuggling: smuggling(
                offence,
                self.material_benefit,
                self.life_endangered,
                self.inhuman_treatment,
            ),
            subject_category: p
                .code(
                    "subject_category",
                    &self.subject_category,
                    SubjectCategory::parse,
                )
                .map_or(0, |v| v.wire()),
            origin_countries: self
                .origin_countries
                .iter()
                .map(|c| c.to_ascii_uppercase())
                .collect(),
            transit_countries: self
                .transit_countries
                .iter()
                .map(|c| c.to_ascii_uppercase())
                .collect(),
            destination_countries: self
                .destination_countries
                .iter()
                .map(|c| c.to_ascii_uppercase())
                .collect(),
            evaluation: evaluation(&mut p, &self.evaluation),
            handling: handling(&mut p, &self.handling, &self.handling_condition),
            tlp: p.code("tlp", &self.tlp, Tlp::parse).map_or(0, |v| v.wire()),
            urgency: p
                .code("urgency", &self.urgency, Urgency::parse)
                .map_or(0, |v| v.wire()),
            expires_at_ms: p.time("expires_at", &self.expires_at),
            review_at_ms: p.time("review_at", &self.review_at),
            selectors: Vec::new(),
            contact: contact(&self.contact),
        };
        let mut alert = alert;
        let mut values = Vec::new();
        for s in &self.selectors {
            let kind = match SelectorKind::parse(&s.kind) {
                Ok(kind) => kind.wire(),
                Err(e) => {
                    p.0.push(format!("selector: {e}"));
                    continue;
                }
            };
            match (&s.value, &s.token) {
                (Some(value), None) => values.push(pb::SelectorValue {
                    kind,
                    value: value.clone(),
                }),
                (None, Some(token)) => match hex::decode(token) {
                    Ok(token) => alert.selectors.push(pb::Selector {
                        kind,
                        epoch: s.epoch.unwrap_or(0),
                        token,
                    }),
                    Err(e) => p.0.push(format!("selector.token: not hex: {e}")),
                },
                _ => p.0.push(
                    "selector: give value (in clear) or token (hashed, as listed), one of them"
                        .to_owned(),
                ),
            }
        }
        p.finish()?;
        Ok((alert, values))
    }
}

impl CaseInput {
    pub fn to_pb(&self) -> Result<pb::CaseReference, Problems> {
        let mut p = Problems::default();
        let offence = p.code("offence", &self.offence, Offence::parse);
        let case = pb::CaseReference {
            case_ref: self.case_ref.clone().unwrap_or_default(),
            offence: offence.map_or(0, |v| v.wire()),
            stage: p
                .code("stage", &self.stage, CaseStage::parse)
                .map_or(0, |v| v.wire()),
            competent_authority: self.competent_authority.clone().unwrap_or_default(),
            contact: contact(&self.contact),
            mla_status: p
                .code("mla_status", &self.mla_status, MlaStatus::parse)
                .map_or(0, |v| v.wire()),
            linked_alerts: self.linked_alerts.clone(),
            handling: handling(&mut p, &self.handling, &self.handling_condition),
            tlp: p.code("tlp", &self.tlp, Tlp::parse).map_or(0, |v| v.wire()),
            expires_at_ms: p.time("expires_at", &self.expires_at),
            review_at_ms: p.time("review_at", &self.review_at),
            summary: self.summary.clone().unwrap_or_default(),
            language: if self.summary.is_some() {
                self.language.clone().unwrap_or_else(|| "es".into())
            } else {
                String::new()
            },
            trafficking: elements(
                &mut p,
                None,
                &self.exploitation,
                &self.acts,
                &self.means,
                self.child_no_means_required,
            ),
            smuggling: smuggling(
                offence,
                self.material_benefit,
                self.life_endangered,
                self.inhuman_treatment,
            ),
        };
        p.finish()?;
        Ok(case)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_example_becomes_a_complete_alert() {
        let input = AlertInput {
            alert_type: Some("possible-victim".into()),
            offence: Some("trafficking".into()),
            exploitation: vec!["sexual".into()],
            origin_countries: vec!["hn".into()],
            destination_countries: vec!["GT".into()],
            tlp: Some("amber".into()),
            handling: Some("H1".into()),
            summary: Some("texto".into()),
            selectors: vec![SelectorInput {
                kind: "passport".into(),
                value: Some("X1234567".into()),
                epoch: None,
                token: None,
            }],
            ..Default::default()
        };
        let (alert, values) = input.to_pb().unwrap();
        assert_eq!(alert.r#type, AlertType::PossibleVictim.wire());
        assert_eq!(
            alert.trafficking.unwrap().exploitation,
            vec![Exploitation::Sexual.wire()]
        );
        assert_eq!(alert.origin_countries, vec!["HN"]);
        assert_eq!(alert.handling.unwrap().code, HandlingCode::H1.wire());
        assert!(alert.smuggling.is_none());
        assert_eq!(values.len(), 1);
    }

    #[test]
    fn every_bad_code_is_reported() {
        let input = AlertInput {
            alert_type: Some("victim".into()),
            offence: Some("trata".into()),
            tlp: Some("purple".into()),
            evaluation: Some("Z9".into()),
            expires_at: Some("tomorrow".into()),
            ..Default::default()
        };
        let err = input.to_pb().unwrap_err().to_string();
        for field in ["type:", "offence:", "tlp:", "evaluation:", "expires_at:"] {
            assert!(err.contains(field), "{field} in {err}");
        }
    }

    #[test]
    fn import_lines_name_their_kind_and_refuse_unknown_fields() {
        let line: ImportLine =
            serde_json::from_str(r#"{"kind":"alert","type":"wanted","offence":"smuggling"}"#)
                .unwrap();
        assert!(matches!(line, ImportLine::Alert(_)));
        let err =
            serde_json::from_str::<ImportLine>(r#"{"kind":"alert","tipo":"wanted"}"#).unwrap_err();
        assert!(err.to_string().contains("tipo"), "{err}");
        let smuggling = AlertInput {
            offence: Some("smuggling".into()),
            ..Default::default()
        };
        assert!(
            smuggling
                .to_pb()
                .unwrap()
                .0
                .smuggling
                .unwrap()
                .material_benefit
        );
        assert_eq!(parse_time("2026-01-02").unwrap(), 1_767_312_000_000);
    }
}
