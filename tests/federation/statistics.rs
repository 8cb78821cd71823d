//! Statistics between real nodes: three members count their own cases,
//! protect and publish their tables, and one of them assembles the region.
//! The expected tables are computed by hand in the comments.

use std::collections::BTreeMap;

use crate::common::{self, eventually};
use enlace::records::vocabulary::{AgeGroup, CaseStage, Exploitation, Offence, Sex};
use enlace::stats::{
    Coord, CorrectionReason, MemberReport, Period, Rate, StatisticalReport, Suppression, TableKind,
    Total, assemble, key_code,
};
use enlace::testing::Sandbox;
use enlace::wire::pb::v1 as pb;
use enlace::wire::pb::v1::agency_client::AgencyClient;
use tonic::transport::Channel;

type Client = AgencyClient<Channel>;

/// 2026-03-01T00:00:00Z and 2025-06-01T00:00:00Z.
const MARCH_2026: i64 = 1_772_323_200_000;
const JUNE_2025: i64 = 1_748_736_000_000;

fn victims(
    n: usize,
    sex: Sex,
    age: AgeGroup,
    forms: &[Exploitation],
    from: &str,
) -> Vec<pb::Victim> {
    (0..n)
        .map(|_| pb::Victim {
            sex: sex.wire(),
            age_group: age.wire(),
            exploitation: forms.iter().map(|e| e.wire()).collect(),
            citizenship: from.into(),
        })
        .collect()
}

struct Case {
    number: &'static str,
    offence: Offence,
    stage: CaseStage,
    at_ms: i64,
    victims: Vec<pb::Victim>,
    offenders: Vec<pb::Offender>,
}

async fn register(c: &mut Client, case: Case) {
    c.register_case(pb::RegisterCaseRequest {
        case: Some(pb::LocalCase {
            case_number: case.number.into(),
            offence: case.offence.wire(),
            stage: case.stage.wire(),
            victims: case.victims,
            offenders: case.offenders,
            stage_reached_at_ms: case.at_ms,
            ..Default::default()
        }),
        selector_values: vec![pb::SelectorValue {
            kind: enlace::records::vocabulary::SelectorKind::Passport.wire(),
            value: format!("P{}", case.number),
        }],
    })
    .await
    .expect("register case");
}

fn smuggling(number: &'static str, victims: Vec<pb::Victim>) -> Case {
    Case {
        number,
        offence: Offence::Smuggling,
        stage: CaseStage::Investigation,
        at_ms: MARCH_2026,
        victims,
        offenders: Vec::new(),
    }
}

async fn publish(
    c: &mut Client,
    period: &str,
    correction: Option<CorrectionReason>,
) -> Result<pb::PublishStatisticsResponse, tonic::Status> {
    c.publish_statistics(pb::PublishStatisticsRequest {
        period: period.into(),
        tables: Vec::new(),
        correction: correction.map_or(0, CorrectionReason::wire),
        validate_only: false,
    })
    .await
    .map(tonic::Response::into_inner)
}

async fn regional(c: &mut Client, table: TableKind) -> Vec<(String, u32, StatisticalReport)> {
    c.regional_statistics(pb::StatisticsRequest {
        period: "2026".into(),
        tables: vec![table.wire()],
    })
    .await
    .expect("regional statistics")
    .into_inner()
    .reports
    .into_iter()
    .map(|m| {
        let mut errors = enlace::records::model::Errors::default();
        let report =
            enlace::wire::report_from_pb(m.report.expect("a report"), "report", &mut errors)
                .expect("a valid report");
        (m.member, m.version, report)
    })
    .collect()
}

/// A table's cells by their codes: value, or the suppression.
fn cells(r: &StatisticalReport) -> BTreeMap<String, Result<u64, Suppression>> {
    r.table
        .cells
        .iter()
        .map(|c| {
            let v = match (c.value, c.suppressed) {
                (Some(v), None) => Ok(v),
                (_, Some(s)) => Err(s),
                (None, None) => panic!("a cell with neither value nor suppression"),
            };
            (key_code(r.kind(), &c.key), v)
        })
        .collect()
}

/// `expected` non-zero cells; every other cell of the table is published 0.
fn assert_cells(who: &str, r: &StatisticalReport, expected: &[(&str, Result<u64, Suppression>)]) {
    let got = cells(r);
    let want: BTreeMap<String, Result<u64, Suppression>> =
        expected.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    for (k, v) in &got {
        let w = want.get(k).copied().unwrap_or(Ok(0));
        assert_eq!(*v, w, "{who}: cell {k}");
    }
    for k in want.keys() {
        assert!(got.contains_key(k), "{who}: no cell {k}");
    }
}

/// Reports as the regional assembly reads them.
fn members(reports: &[(String, u32, StatisticalReport)]) -> Vec<MemberReport> {
    reports
        .iter()
        .map(|(m, _, r)| MemberReport {
            member: m.clone(),
            country: m.to_ascii_uppercase(),
            report: r.clone(),
        })
        .collect()
}

fn of<'a>(reports: &'a [(String, u32, StatisticalReport)], member: &str) -> &'a StatisticalReport {
    &reports
        .iter()
        .find(|(m, _, _)| m == member)
        .unwrap_or_else(|| panic!("no report from {member}"))
        .2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_publish_protected_tables_and_the_region_assembles_them() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn", "sv"])
        .await
        .unwrap();
    let extra = [
        (
            "gt",
            "\n[statistics]\nthreshold = 5\n\n[[statistics.population]]\nyear = 2026\ncount = 18000000\nsource = \"INE Guatemala, proyecciones de población\"\n",
        ),
        (
            "hn",
            "\n[statistics]\nmethod = \"rounding\"\nrounding_base = 5\n",
        ),
        ("sv", ""),
    ];
    for (id, toml) in extra {
        let path = fed.member(id).unwrap().config_path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(toml);
        std::fs::write(&path, text).unwrap();
    }
    let nodes = [
        fed.start("gt").await.unwrap(),
        fed.start("hn").await.unwrap(),
        fed.start("sv").await.unwrap(),
    ];
    let mut gt = fed.client("gt").await.unwrap();
    let mut hn = fed.client("hn").await.unwrap();
    let mut sv = fed.client("sv").await.unwrap();
    use AgeGroup::{Adult, Child};
    use Sex::{Female, Male};

    // gt: 5 women and 6 men smuggled; 10 women trafficked for sexual
    // exploitation (Guatemalan), one man prosecuted; a 2025 case that the
    // 2026 tables must not count.
    let mut smuggled = victims(5, Female, Adult, &[], "HN");
    smuggled.extend(victims(6, Male, Adult, &[], "SV"));
    register(&mut gt, smuggling("MP-GT-SMUG-0001", smuggled)).await;
    register(
        &mut gt,
        Case {
            number: "MP-GT-TRATA-0001",
            offence: Offence::Trafficking,
            stage: CaseStage::Prosecution,
            at_ms: MARCH_2026,
            victims: victims(10, Female, Adult, &[Exploitation::Sexual], "GT"),
            offenders: vec![pb::Offender {
                sex: Male.wire(),
                citizenship: "GT".into(),
            }],
        },
    )
    .await;
    register(
        &mut gt,
        Case {
            at_ms: JUNE_2025,
            ..smuggling("MP-GT-SMUG-2025", victims(3, Female, Child, &[], "HN"))
        },
    )
    .await;
    // hn: 3 girls and 7 men smuggled.
    let mut hn_smuggled = victims(3, Female, Child, &[], "HN");
    hn_smuggled.extend(victims(7, Male, Adult, &[], "HN"));
    register(&mut hn, smuggling("MP-HN-0001", hn_smuggled)).await;
    // sv: 2 girls and 6 women smuggled.
    let mut sv_smuggled = victims(2, Female, Child, &[], "SV");
    sv_smuggled.extend(victims(6, Female, Adult, &[], "SV"));
    register(&mut sv, smuggling("MP-SV-0001", sv_smuggled)).await;

    for c in [&mut gt, &mut hn, &mut sv] {
        let answer = publish(c, "2026", None).await.expect("publish statistics");
        assert_eq!(answer.reports.len(), TableKind::ALL.len());
        assert!(
            answer
                .reports
                .iter()
                .all(|r| r.outcome == "published" && !r.record_id.is_empty())
        );
    }

    let reports = eventually("gt holds the three smuggled-migrants reports", || {
        let mut gt = gt.clone();
        async move {
            let r = regional(&mut gt, TableKind::Smuggled).await;
            (r.len() == 3).then_some(r)
        }
    })
    .await;

    // gt publishes everything: no cell is 1 .. 4.
    assert_cells(
        "gt",
        of(&reports, "gt"),
        &[
            ("female/adult", Ok(5)),
            ("male/adult", Ok(6)),
            ("female/total", Ok(5)),
            ("male/total", Ok(6)),
            ("total/adult", Ok(11)),
            ("total/total", Ok(11)),
        ],
    );
    // hn rounds to 5: 3 → 5, 7 → 5; margins are sums of rounded cells.
    assert_cells(
        "hn",
        of(&reports, "hn"),
        &[
            ("female/child", Ok(5)),
            ("male/adult", Ok(5)),
            ("female/total", Ok(5)),
            ("male/total", Ok(5)),
            ("total/child", Ok(5)),
            ("total/adult", Ok(5)),
            ("total/total", Ok(10)),
        ],
    );
    // sv: the 2 girls (and the child total, also 2) are primary. The women
    // (6) would give the girls away through the female total (8), so they
    // are suppressed too, and then the adult total (6) would give the
    // women away: suppressed. Published: female 8 and the grand total 8,
    // from which the girls lie anywhere in 0 .. 8.
    assert_cells(
        "sv",
        of(&reports, "sv"),
        &[
            ("female/child", Err(Suppression::Primary)),
            ("total/child", Err(Suppression::Primary)),
            ("female/adult", Err(Suppression::Secondary)),
            ("total/adult", Err(Suppression::Secondary)),
            ("female/total", Ok(8)),
            ("total/total", Ok(8)),
        ],
    );
    for (member, _, r) in &reports {
        enlace::stats::check(&r.table, 5).unwrap_or_else(|e| panic!("{member}: {e}"));
    }

    // The region: a column per member and a total that never pretends.
    let smuggled_members = members(&reports);
    let region = assemble(TableKind::Smuggled, Period::Year(2026), &smuggled_members).unwrap();
    let key =
        |sex: u8, age: Option<u8>| vec![Coord::Value(sex), age.map_or(Coord::Total, Coord::Value)];
    // Women: gt 5, hn rounded 0, sv hidden: at least 5.
    assert_eq!(
        region.row(&key(0, Some(1))).unwrap().total,
        Total::AtLeast(5)
    );
    // All women: 5 + 5 (rounded) + 8 = 18, a sum of rounded figures.
    assert_eq!(region.row(&key(0, None)).unwrap().total.value(), 18);
    assert!(!region.row(&key(0, None)).unwrap().total.is_bound());
    // Men: 6 + 5 (rounded) + 0.
    assert_eq!(region.row(&key(1, Some(1))).unwrap().total.value(), 11);

    // Trafficking and smuggling never mix: gt's victims table counts the
    // ten trafficked women only, and its SDG rate is 10 per 18 million.
    let victims_reports = regional(&mut gt, TableKind::Victims).await;
    let gt_victims = of(&victims_reports, "gt");
    let total = vec![Coord::Total; 4];
    assert_eq!(gt_victims.cell(&total).and_then(|c| c.value), Some(10));
    assert_eq!(
        gt_victims.population.as_ref().map(|p| (p.count, p.year)),
        Some((18_000_000, 2026))
    );
    let victims_members = members(&victims_reports);
    let rates = assemble(TableKind::Victims, Period::Year(2026), &victims_members)
        .unwrap()
        .rates
        .expect("the victims table has SDG 16.2.2 rates");
    // 10 victims per 18 000 000 inhabitants: 0.0556 per 100 000. hn and sv
    // gave no population: not computable, and left out of the region's.
    let gt_col = rates
        .overall
        .members
        .iter()
        .zip(["gt", "hn", "sv"])
        .find(|(_, m)| *m == "gt")
        .map(|(r, _)| r.clone())
        .unwrap();
    match gt_col {
        Rate::Computed {
            victims, per_100k, ..
        } => {
            assert_eq!(victims, 10);
            assert!((per_100k - 10.0 / 180.0).abs() < 1e-9, "{per_100k}");
        }
        other => panic!("gt's rate: {other:?}"),
    }
    assert_eq!(rates.overall.regional.included, vec!["gt".to_string()]);
    let persons = regional(&mut gt, TableKind::Persons).await;
    let gt_persons = cells(of(&persons, "gt"));
    assert_eq!(
        gt_persons.get("prosecuted/male/national"),
        Some(&Err(Suppression::Primary)),
        "one prosecuted man is a small cell"
    );

    // What travelled: counts only. No case number, selector or contact in
    // the reports hn holds of gt.
    let tokens: Vec<Vec<u8>> = gt
        .list_cases(pb::ListCasesRequest {
            include_closed: true,
        })
        .await
        .unwrap()
        .into_inner()
        .cases
        .iter()
        .flat_map(|c| c.selectors.iter().map(|s| s.token.clone()))
        .collect();
    assert_eq!(tokens.len(), 3, "one passport per case");
    let records = common::list_all(&mut hn).await;
    let report_ids: Vec<&pb::RecordView> = records
        .iter()
        .filter(|r| r.origin == "gt" && r.kind_name == "statistical_report")
        .collect();
    assert_eq!(report_ids.len(), TableKind::ALL.len());
    for view in report_ids {
        let bytes = prost::Message::encode_to_vec(view);
        for needle in [
            "MP-GT",
            "SMUG",
            "TRATA",
            "Unidad de Cooperación",
            "cooperacion@",
            "PMP-",
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle:?} in report {}",
                view.record_id
            );
        }
        for token in &tokens {
            assert!(!bytes.windows(token.len()).any(|w| w == token.as_slice()));
        }
    }

    // The assembly was audited at gt, the reports' receipt at hn.
    let gt_audit = common::audit_log(&nodes[0].components);
    assert!(
        gt_audit
            .iter()
            .any(|e| e.action == "statistics_assembled"
                && e.counterparts.contains(&"sv".to_string()))
    );
    assert_eq!(
        gt_audit
            .iter()
            .filter(|e| e.action == "statistics_published")
            .count(),
        TableKind::ALL.len()
    );
    eventually("hn audits gt's reports as received", || {
        let n = common::audit_log(&nodes[1].components)
            .iter()
            .filter(|e| e.action == "statistics_received" && e.actor == "gt")
            .count();
        async move { (n == TableKind::ALL.len()).then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correction_keeps_what_the_first_version_suppressed() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["sv", "gt"]).await.unwrap();
    let sv_node = fed.start("sv").await.unwrap();
    let _gt_node = fed.start("gt").await.unwrap();
    let mut sv = fed.client("sv").await.unwrap();
    let gt = fed.client("gt").await.unwrap();
    use AgeGroup::{Adult, Child};
    use Sex::Female;
    let mut first = victims(2, Female, Child, &[], "SV");
    first.extend(victims(6, Female, Adult, &[], "SV"));
    register(&mut sv, smuggling("MP-SV-0001", first)).await;

    // Bad input changes nothing and says which field.
    let bad = publish(&mut sv, "2026-Q5", None).await.unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("period"), "{}", bad.message());

    publish(&mut sv, "2026", None).await.expect("first version");
    // Three more girls are recorded late: 5 is no longer a small cell, but
    // publishing it now would let anyone subtract version 1 from version 2.
    register(
        &mut sv,
        smuggling("MP-SV-0002", victims(3, Female, Child, &[], "SV")),
    )
    .await;
    let refused = publish(&mut sv, "2026", None).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        refused.message().contains("--correction"),
        "{}",
        refused.message()
    );
    let corrected = publish(&mut sv, "2026", Some(CorrectionReason::LateRecords))
        .await
        .expect("a correction");
    let smuggled = corrected
        .reports
        .iter()
        .find(|r| r.table == TableKind::Smuggled.wire())
        .unwrap();
    assert_eq!(
        (smuggled.outcome.as_str(), smuggled.version),
        ("corrected", 2)
    );
    // Unchanged tables are not published again.
    let persons = corrected
        .reports
        .iter()
        .find(|r| r.table == TableKind::Persons.wire())
        .unwrap();
    assert_eq!(persons.outcome, "unchanged");

    let reports = eventually("gt holds version 2 of sv's smuggled table", || {
        let mut gt = gt.clone();
        async move {
            let r = regional(&mut gt, TableKind::Smuggled).await;
            r.into_iter().find(|(m, v, _)| m == "sv" && *v == 2)
        }
    })
    .await;
    let v2 = cells(&reports.2);
    for kept in ["female/child", "total/child", "female/adult", "total/adult"] {
        assert!(
            v2[kept].is_err(),
            "{kept} is published in version 2: {v2:?}"
        );
    }
    assert_eq!(v2["female/total"], Ok(11));
    assert_eq!(reports.2.correction, Some(CorrectionReason::LateRecords));
    let audit = common::audit_log(&sv_node.components);
    assert!(audit.iter().any(|e| e.action == "statistics_published"
        && e.justification == "late_records"
        && e.result.contains("smuggled 2026 version 2")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gets_ten_statistics_calls_a_minute() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let _gt = fed.start("gt").await.unwrap();
    let mut gt = fed.client("gt").await.unwrap();
    let ask = || pb::StatisticsRequest {
        period: "2026".into(),
        tables: vec![TableKind::Smuggled.wire()],
    };
    for _ in 0..enlace::limits::STATISTICS_PER_MINUTE {
        gt.compute_statistics(ask())
            .await
            .expect("within the budget");
    }
    // Publishing and assembling spend the same budget.
    let refused = gt.regional_statistics(ask()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(
        refused.message().contains("retry in"),
        "{}",
        refused.message()
    );
}
