use serde_json::Value;

use super::*;
use crate::cli::stats::fixtures::{self, ADULT, F, NATIONAL, SEXUAL, T};

fn objects(s: &str) -> Vec<Value> {
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Array(a)) => a,
        other => panic!("not a JSON array: {other:?}"),
    }
}

#[test]
fn text_regional_shows_members_bounds_and_rates() {
    let out = text_regional(&fixtures::regional());
    assert!(out.contains("Víctimas de trata de personas detectadas / Victims"));
    assert!(out.contains("Mujer / Female"));
    assert!(out.contains("cr (CR): redondeo a múltiplos de 5 / rounded to multiples of 5"));
    assert!(out.contains("hn (HN): supresión de celdas de 1 a 2"));
    // The grand total line: cr 15, gt 26, hn s*, regional ≥ 41.
    let total = out
        .lines()
        .find(|l| l.starts_with("Total") && l.contains("≥ 41"))
        .expect("grand total line");
    assert!(total.contains("15") && total.contains("26") && total.contains("s*"));
    // The primary cell and the legend.
    assert!(
        out.lines()
            .any(|l| l.contains("Menor de 18 / Child under 18")
                && l.trim_end().ends_with("≥ 0")
                && l.contains(" s "))
    );
    assert!(out.contains("s = suprimida (primaria) / suppressed (primary)"));
    // SDG 16.2.2: cr 0.30 (rounded), gt 0.13, hn not computable; 41 / 35 M... over cr and gt only: 41 - hn → (15 + 26) / 25 M = 0.164.
    assert!(out.contains("ODS 16.2.2"));
    assert!(out.contains("≈ 0.30"));
    assert!(out.contains("0.13"));
    assert!(out.contains("n/c (suppressed_secondary)"));
    assert!(out.contains("≈ 0.16"));
    assert!(out.contains("10000000 (2025, INE <HN> & co)"));
    assert!(out.contains(
        "Tasa total / Overall rate: incluidos / included: cr, gt; excluidos / excluded: hn"
    ));
}

#[test]
fn text_member_has_method_and_suppressions() {
    let m = &fixtures::members()[0];
    let out = text_member(m);
    assert!(out.contains("Miembro / Member: hn (HN)"));
    assert!(out.contains("Método / Method: supresión"));
    assert!(
        out.lines()
            .any(|l| l.starts_with("Total") && l.trim_end().ends_with("s*"))
    );
}

#[test]
fn json_member_contract() {
    let m = &fixtures::members()[0];
    let a = objects(&json_member(m));
    assert_eq!(a.len(), m.report.table.cells.len());
    let first = &a[0];
    assert_eq!(
        first,
        &serde_json::json!({
            "table": "victims", "period": "2026", "member": "hn",
            "sex": "female", "age_group": "child", "exploitation": "sexual",
            "citizenship": "national", "value": null, "suppressed": "primary"
        })
    );
    // No stage in the victims table; the foreign subtotal is named.
    assert!(a.iter().all(|o| o.get("stage").is_none()));
    assert!(a.iter().any(|o| o["citizenship"] == "foreign"));
    let last = a.last().expect("cells");
    assert_eq!(last["sex"], "total");
    assert_eq!(last["suppressed"], "secondary");
}

#[test]
fn json_regional_has_all_with_bounds() {
    let a = objects(&json_regional(&fixtures::regional()));
    let spec = TableKind::Victims.spec();
    assert_eq!(a.len(), spec.all_keys().len() * 4);
    let n = a.len();
    assert_eq!(a[n - 1]["member"], "all");
    assert_eq!(a[n - 1]["value"], 41);
    assert_eq!(a[n - 1]["bound"], "at_least");
    assert_eq!(a[n - 2]["member"], "hn");
    assert_eq!(a[n - 2]["value"], Value::Null);
    assert_eq!(a[n - 4]["member"], "cr");
    assert_eq!(a[n - 4]["value"], 15);
    // An exact-or-rounded total has no bound.
    let key = [F, ADULT, SEXUAL, NATIONAL];
    let i = spec
        .all_keys()
        .iter()
        .position(|k| k[..] == key[..])
        .expect("key");
    assert_eq!(a[i * 4 + 3]["value"], 37);
    assert!(a[i * 4 + 3].get("bound").is_none());
    let _ = T;
}

#[test]
fn csv_long_format() {
    let out = csv_regional(&fixtures::regional());
    let lines: Vec<&str> = out.split("\r\n").collect();
    assert_eq!(
        lines[0],
        "country,member,year,period,table,indicator,sex,age_group,exploitation,citizenship,stage,value,flag"
    );
    assert!(lines.contains(
        &"CR,cr,2026,2026,victims,victims_detected,total,total,total,total,,15,rounded_base_5"
    ));
    assert!(lines.contains(
        &"HN,hn,2026,2026,victims,victims_detected,total,total,total,total,,,suppressed_secondary"
    ));
    assert!(lines.contains(
        &",all,2026,2026,victims,victims_detected,total,total,total,total,,41,lower_bound"
    ));
    assert!(lines.contains(&"HN,hn,2026,2026,victims,victims_detected,female,child,sexual,national,,,suppressed_primary"));
    assert!(
        lines.contains(
            &"GT,gt,2026,2026,victims,victims_detected,female,adult,sexual,national,,20,"
        )
    );
    let member = csv_member(&fixtures::members()[1]);
    assert!(
        member
            .ends_with("GT,gt,2026,2026,victims,victims_detected,total,total,total,total,,26,\r\n")
    );
}

#[test]
fn csv_quotes() {
    assert_eq!(field("a,b"), "\"a,b\"");
    assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_eq!(field("plain"), "plain");
}

/// A zero table of another kind: the dimensions it lacks are absent.
#[test]
fn persons_table_has_stage_and_no_age() {
    use enlace::stats::{
        Cell, Counts, MemberReport, Method, Period, ProtectedTable, StatisticalReport, assemble,
    };
    let c = Counts::zero(TableKind::Persons, Period::Quarter(2026, 2));
    let table = ProtectedTable {
        kind: c.kind,
        period: c.period,
        method: Method::Suppression { threshold: 3 },
        cells: c
            .kind
            .spec()
            .all_keys()
            .into_iter()
            .map(|key| Cell {
                value: Some(c.value(&key)),
                key,
                suppressed: None,
            })
            .collect(),
    };
    let m = MemberReport {
        member: "sv".into(),
        country: "SV".into(),
        report: StatisticalReport {
            table,
            population: None,
            correction: None,
            expires_at_ms: 1_900_000_000_000,
        },
    };
    let a = objects(&json_member(&m));
    assert!(
        a.iter()
            .all(|o| o.get("age_group").is_none() && o.get("exploitation").is_none())
    );
    assert_eq!(a[0]["stage"], "suspected");
    assert_eq!(a[0]["period"], "2026-Q2");
    let t = assemble(TableKind::Persons, Period::Quarter(2026, 2), &[m]).expect("assembles");
    let csv = csv_regional(&t);
    assert!(
        csv.contains(
            "\r\n,all,2026,2026-Q2,persons,persons_trafficking,total,,,total,total,0,\r\n"
        )
    );
    let text = text_regional(&t);
    assert!(!text.contains("ODS 16.2.2"));
    assert!(text.contains("Etapa / Stage"));
    let html = crate::cli::stats::html::html_regional(&t);
    assert_eq!(html.matches("<svg").count(), 3);
}
