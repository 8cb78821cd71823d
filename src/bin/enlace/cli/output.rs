//! How records are printed: for programs, one JSON object per line with
//! machine codes; for people, a few lines per record with the vocabulary's
//! Spanish and English labels.
//!
//! One shape per field, whatever the record: every code in JSON output is
//! kebab-case ([`kebab`]; the vocabulary's stored codes are snake_case, and
//! every input accepts both), and `distribution` is always an object,
//! `{"scope": "all", "members": []}` or `{"scope": "named", "members":
//! ["hn"]}`, so that a program reads it one way.

use serde_json::{Value, json};

use enlace::records::vocabulary::{
    AlertType, CaseStage, Exploitation, HandlingCode, InformationAccuracy, MlaStatus, Offence,
    SelectorKind, SourceReliability, SubjectCategory, Tlp, TraffickingAct, TraffickingMeans,
    Urgency, country,
};
use enlace::wire::pb::v1 as pb;

/// RFC 3339 text of ms since the epoch.
pub fn time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

fn opt_time(ms: i64) -> Value {
    if ms == 0 {
        Value::Null
    } else {
        json!(time(ms))
    }
}

/// A machine code as JSON output shows it: kebab-case.
pub fn kebab(code: &str) -> String {
    code.replace('_', "-")
}

fn code<T>(v: i32, from: impl Fn(i32) -> Option<T>, code: impl Fn(T) -> &'static str) -> Value {
    from(v).map_or(Value::Null, |t| json!(kebab(code(t))))
}

fn codes<T>(
    vs: &[i32],
    from: impl Fn(i32) -> Option<T>,
    code: impl Fn(T) -> &'static str,
) -> Value {
    json!(
        vs.iter()
            .filter_map(|v| from(*v))
            .map(|t| kebab(code(t)))
            .collect::<Vec<_>>()
    )
}

fn status_code(s: i32) -> &'static str {
    match pb::RecordStatus::try_from(s) {
        Ok(pb::RecordStatus::Active) => "active",
        Ok(pb::RecordStatus::Superseded) => "superseded",
        Ok(pb::RecordStatus::Withdrawn) => "withdrawn",
        Ok(pb::RecordStatus::Expired) => "expired",
        _ => "unknown",
    }
}

/// The named recipients, or `None` for all members.
fn named(d: &Option<pb::Distribution>) -> Option<&[String]> {
    match d.as_ref().and_then(|d| d.scope.as_ref()) {
        Some(pb::distribution::Scope::Named(n)) => Some(&n.members),
        _ => None,
    }
}

fn distribution_json(d: &Option<pb::Distribution>) -> Value {
    match named(d) {
        Some(members) => json!({"scope": "named", "members": members}),
        None => json!({"scope": "all", "members": []}),
    }
}

fn handling_json(h: &Option<pb::Handling>) -> (Value, Value) {
    match h {
        Some(h) => (
            code(h.code, HandlingCode::from_wire, |c| c.code()),
            if h.condition.is_empty() {
                Value::Null
            } else {
                json!(h.condition)
            },
        ),
        None => (Value::Null, Value::Null),
    }
}

fn contact_json(c: &Option<pb::ContactPoint>) -> Value {
    c.as_ref().map_or(
        Value::Null,
        |c| json!({"unit": c.unit, "email": c.email, "phone": c.phone}),
    )
}

fn elements_json(
    v: &mut Value,
    t: &Option<pb::TraffickingElements>,
    s: &Option<pb::SmugglingElements>,
) {
    if let Some(t) = t {
        v["exploitation"] = codes(&t.exploitation, Exploitation::from_wire, |c| c.code());
        v["acts"] = codes(&t.acts, TraffickingAct::from_wire, |c| c.code());
        v["means"] = codes(&t.means, TraffickingMeans::from_wire, |c| c.code());
        v["child_no_means_required"] = json!(t.child_no_means_required);
    }
    if let Some(s) = s {
        v["material_benefit"] = json!(s.material_benefit);
        v["life_endangered"] = json!(s.life_endangered);
        v["inhuman_treatment"] = json!(s.inhuman_treatment);
    }
}

/// The JSON form of a record: one object, stable field names, codes.
pub fn record_json(r: &pb::RecordView) -> Value {
    let mut v = json!({
        "record_id": r.record_id,
        "origin": r.origin,
        "seq": r.seq,
        "kind": kebab(&r.kind_name),
        "series_id": r.series_id,
        "version": r.version,
        "status": status_code(r.status),
        "created_at": time(r.created_at_ms),
        "key_id": r.key_id,
        "position": r.position,
        "distribution": distribution_json(&r.distribution),
    });
    if !r.withdrawal_reason.is_empty() {
        v["withdrawal_reason"] = json!(r.withdrawal_reason);
    }
    if r.expired_at_ms != 0 {
        v["expired_at"] = json!(time(r.expired_at_ms));
    }
    match &r.kind {
        Some(pb::record_view::Kind::Alert(a)) => {
            v["type"] = code(a.r#type, AlertType::from_wire, |c| c.code());
            v["offence"] = code(a.offence, Offence::from_wire, |c| c.code());
            elements_json(&mut v, &a.trafficking, &a.smuggling);
            v["subject_category"] =
                code(a.subject_category, SubjectCategory::from_wire, |c| c.code());
            v["origin_countries"] = json!(a.origin_countries);
            v["transit_countries"] = json!(a.transit_countries);
            v["destination_countries"] = json!(a.destination_countries);
            v["evaluation"] = a.evaluation.as_ref().map_or(Value::Null, |e| {
                let s = SourceReliability::from_wire(e.source)
                    .map(|c| c.code().to_uppercase())
                    .unwrap_or_default();
                let i = InformationAccuracy::from_wire(e.information)
                    .map(|c| c.code())
                    .unwrap_or_default();
                json!(format!("{s}{i}"))
            });
            let (h, hc) = handling_json(&a.handling);
            v["handling"] = h;
            v["handling_condition"] = hc;
            v["tlp"] = code(a.tlp, Tlp::from_wire, |c| c.code());
            v["urgency"] = code(a.urgency, Urgency::from_wire, |c| c.code());
            v["expires_at"] = opt_time(a.expires_at_ms);
            v["review_at"] = opt_time(a.review_at_ms);
            v["summary"] = json!(a.summary);
            v["language"] = json!(a.language);
            v["selectors"] = json!(
                a.selectors
                    .iter()
                    .map(|s| json!({
                        "kind": kebab(SelectorKind::from_wire(s.kind).map(|k| k.code()).unwrap_or("unknown")),
                        "epoch": s.epoch,
                        "token": hex::encode(&s.token),
                    }))
                    .collect::<Vec<_>>()
            );
            v["contact"] = contact_json(&a.contact);
        }
        Some(pb::record_view::Kind::CaseReference(c)) => {
            v["case_ref"] = json!(c.case_ref);
            v["offence"] = code(c.offence, Offence::from_wire, |x| x.code());
            v["stage"] = code(c.stage, CaseStage::from_wire, |x| x.code());
            v["competent_authority"] = json!(c.competent_authority);
            v["mla_status"] = code(c.mla_status, MlaStatus::from_wire, |x| x.code());
            v["linked_alerts"] = json!(c.linked_alerts);
            elements_json(&mut v, &c.trafficking, &c.smuggling);
            let (h, hc) = handling_json(&c.handling);
            v["handling"] = h;
            v["handling_condition"] = hc;
            v["tlp"] = code(c.tlp, Tlp::from_wire, |x| x.code());
            v["expires_at"] = opt_time(c.expires_at_ms);
            v["review_at"] = opt_time(c.review_at_ms);
            if !c.summary.is_empty() {
                v["summary"] = json!(c.summary);
                v["language"] = json!(c.language);
            }
            v["contact"] = contact_json(&c.contact);
        }
        Some(pb::record_view::Kind::Withdrawal(w)) => {
            v["target_record_id"] = json!(w.target_record_id);
            v["reason"] = json!(w.reason);
        }
        // The cells themselves: `enlace stats regional`.
        Some(pb::record_view::Kind::StatisticalReport(s)) => {
            v["table"] =
                json!(enlace::stats::TableKind::from_wire(s.table).map_or("unknown", |t| t.code()));
            v["period"] = json!(s.period);
            v["cells"] = json!(s.cells.len());
            v["expires_at"] = opt_time(s.expires_at_ms);
            if let Some(c) = enlace::stats::CorrectionReason::from_wire(s.correction) {
                v["correction"] = json!(c.code());
            }
        }
        None => {}
    }
    v
}

fn label<T>(v: i32, from: impl Fn(i32) -> Option<T>, label: impl Fn(T) -> String) -> String {
    from(v).map(label).unwrap_or_else(|| "—".into())
}

fn labels<T>(vs: &[i32], from: impl Fn(i32) -> Option<T>, label: impl Fn(T) -> String) -> String {
    vs.iter()
        .filter_map(|v| from(*v))
        .map(label)
        .collect::<Vec<_>>()
        .join("; ")
}

fn countries(list: &[String]) -> String {
    list.iter()
        .map(|c| country(c).map_or(c.clone(), |k| format!("{} {}", c, k.es)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A record for people: a header line, then labelled lines.
pub fn record_text(r: &pb::RecordView) -> String {
    let status = status_code(r.status).to_uppercase();
    let mut out = format!(
        "{}  [{}] v{}  {}#{}  {}  to:{}",
        r.record_id,
        status,
        r.version,
        r.origin,
        r.seq,
        time(r.created_at_ms),
        named(&r.distribution).map_or_else(|| "all".into(), |m| m.join(","))
    );
    let mut line = |k: &str, v: String| {
        if !v.is_empty() && v != "—" {
            out.push_str(&format!("\n    {k:<32} {v}"));
        }
    };
    if !r.withdrawal_reason.is_empty() {
        line("Retirada / Withdrawn:", r.withdrawal_reason.clone());
    }
    if r.expired_at_ms != 0 {
        line(
            "Vencida / Expired:",
            format!(
                "{} (contenido purgado / content purged)",
                time(r.expired_at_ms)
            ),
        );
    }
    match &r.kind {
        Some(pb::record_view::Kind::Alert(a)) => {
            line(
                "Alerta / Alert:",
                label(a.r#type, AlertType::from_wire, |t| t.label()),
            );
            line(
                "Delito / Offence:",
                label(a.offence, Offence::from_wire, |t| t.label()),
            );
            if let Some(t) = &a.trafficking {
                line(
                    "Fines / Exploitation:",
                    labels(&t.exploitation, Exploitation::from_wire, |t| t.label()),
                );
                line(
                    "Actos / Acts:",
                    labels(&t.acts, TraffickingAct::from_wire, |t| t.label()),
                );
                line(
                    "Medios / Means:",
                    labels(&t.means, TraffickingMeans::from_wire, |t| t.label()),
                );
                if t.child_no_means_required {
                    line("", "Niña, niño o adolescente: no se requieren medios / Child: no means required".into());
                }
            }
            if let Some(s) = &a.smuggling {
                let mut e = Vec::new();
                if s.material_benefit {
                    e.push("beneficio material / material benefit");
                }
                if s.life_endangered {
                    e.push("vida en peligro / life endangered");
                }
                if s.inhuman_treatment {
                    e.push("trato inhumano / inhuman treatment");
                }
                line("Elementos / Elements:", e.join("; "));
            }
            line(
                "Sujeto / Subject:",
                label(a.subject_category, SubjectCategory::from_wire, |t| {
                    t.label()
                }),
            );
            line("Origen / Origin:", countries(&a.origin_countries));
            line("Tránsito / Transit:", countries(&a.transit_countries));
            line(
                "Destino / Destination:",
                countries(&a.destination_countries),
            );
            if let Some(e) = &a.evaluation {
                line(
                    "Evaluación / Evaluation:",
                    format!(
                        "{} · {}",
                        label(e.source, SourceReliability::from_wire, |t| format!(
                            "{} {}",
                            t.code().to_uppercase(),
                            t.label()
                        )),
                        label(e.information, InformationAccuracy::from_wire, |t| format!(
                            "{} {}",
                            t.code(),
                            t.label()
                        ))
                    ),
                );
            }
            line(
                "Urgencia / Urgency:",
                label(a.urgency, Urgency::from_wire, |t| t.label()),
            );
            handling_lines(&mut line, &a.handling, a.tlp);
            line(
                "Vence / Expires:",
                if a.expires_at_ms == 0 {
                    String::new()
                } else {
                    time(a.expires_at_ms)
                },
            );
            line(
                "Revisión / Review:",
                if a.review_at_ms == 0 {
                    String::new()
                } else {
                    time(a.review_at_ms)
                },
            );
            if !a.selectors.is_empty() {
                line(
                    "Selectores / Selectors:",
                    a.selectors
                        .iter()
                        .map(|s| {
                            let kind =
                                SelectorKind::from_wire(s.kind).map_or("unknown", |k| k.code());
                            let hex: String =
                                s.token.iter().take(6).map(|b| format!("{b:02x}")).collect();
                            format!("{kind} {hex}… (e{})", s.epoch)
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                );
            }
            contact_line(&mut line, &a.contact);
            line(
                &format!("Resumen / Summary ({}):", a.language),
                a.summary.clone(),
            );
        }
        Some(pb::record_view::Kind::CaseReference(c)) => {
            line("Referencia de caso / Case reference:", c.case_ref.clone());
            line(
                "Delito / Offence:",
                label(c.offence, Offence::from_wire, |t| t.label()),
            );
            line(
                "Etapa / Stage:",
                label(c.stage, CaseStage::from_wire, |t| t.label()),
            );
            line("Autoridad / Authority:", c.competent_authority.clone());
            line(
                "Asistencia judicial / MLA:",
                label(c.mla_status, MlaStatus::from_wire, |t| t.label()),
            );
            line("Alertas vinculadas / Linked:", c.linked_alerts.join(", "));
            handling_lines(&mut line, &c.handling, c.tlp);
            line(
                "Vence / Expires:",
                if c.expires_at_ms == 0 {
                    String::new()
                } else {
                    time(c.expires_at_ms)
                },
            );
            contact_line(&mut line, &c.contact);
            if !c.summary.is_empty() {
                line(
                    &format!("Resumen / Summary ({}):", c.language),
                    c.summary.clone(),
                );
            }
        }
        Some(pb::record_view::Kind::Withdrawal(w)) => {
            line("Retira / Withdraws:", w.target_record_id.clone());
            line("Motivo / Reason:", w.reason.clone());
        }
        Some(pb::record_view::Kind::StatisticalReport(s)) => {
            line(
                "Cuadro / Table:",
                enlace::stats::TableKind::from_wire(s.table)
                    .map_or("?".into(), |t| t.label().label()),
            );
            line("Periodo / Period:", s.period.clone());
            if let Some(c) = enlace::stats::CorrectionReason::from_wire(s.correction) {
                line("Corrección / Correction:", c.code().into());
            }
            line(
                "",
                "cifras: enlace stats regional / figures: enlace stats regional".into(),
            );
        }
        None => {}
    }
    out
}

fn handling_lines(line: &mut impl FnMut(&str, String), h: &Option<pb::Handling>, tlp: i32) {
    line(
        "TLP:",
        label(tlp, Tlp::from_wire, |t| {
            format!("{} — {}", t.tlp_name(), t.label())
        }),
    );
    if let Some(h) = h {
        let code = label(h.code, HandlingCode::from_wire, |t| {
            format!("{} — {}", t.code().to_uppercase(), t.label())
        });
        if h.condition.is_empty() {
            line("Manejo / Handling:", code);
        } else {
            line("Manejo / Handling:", format!("{code}: {}", h.condition));
        }
    }
}

fn contact_line(line: &mut impl FnMut(&str, String), c: &Option<pb::ContactPoint>) {
    if let Some(c) = c {
        let parts: Vec<&str> = [c.unit.as_str(), c.email.as_str(), c.phone.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        line("Contacto / Contact:", parts.join(" · "));
    }
}

/// Indents a block of lines under the demo's timestamps.
pub(super) fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("            {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
