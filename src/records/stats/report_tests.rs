//! The rules of a statistical report as a record: its wire form, what a
//! report may publish, and what a correction must keep.

use prost::Message;

use super::*;
use crate::records::lifecycle::{self, Mode};
use crate::records::model::fixtures::body;
use crate::records::model::{Content, RecordKind, Update};
use crate::wire::{self, pb::v1 as pb};

/// The smuggled-migrants table (sex × age group) with these interior
/// counts, every cell published, then `suppress` cells suppressed.
fn smuggled(interior: [u64; 9], suppress: &[(usize, Suppression)]) -> StatisticalReport {
    let mut counts = Counts::zero(TableKind::Smuggled, Period::Year(2026));
    counts.interior.copy_from_slice(&interior);
    let spec = TableKind::Smuggled.spec();
    let mut cells: Vec<Cell> = spec
        .all_keys()
        .into_iter()
        .map(|key| Cell {
            value: Some(counts.value(&key)),
            key,
            suppressed: None,
        })
        .collect();
    for (i, why) in suppress {
        cells[*i].value = None;
        cells[*i].suppressed = Some(*why);
    }
    StatisticalReport {
        table: ProtectedTable {
            kind: TableKind::Smuggled,
            period: Period::Year(2026),
            method: Method::Suppression { threshold: 3 },
            cells,
        },
        population: None,
        correction: None,
        expires_at_ms: 1_900_000_000_000,
    }
}

/// Index of a cell of the smuggled table in canonical order: sex slowest
/// (female, male, unknown, total), then age (child, adult, unknown, total).
fn at(sex: usize, age: usize) -> usize {
    sex * 4 + age
}

/// A table that hides female/child (2) and male/child (1): their row and
/// column partners are suppressed too, so neither can be recovered.
fn protected() -> StatisticalReport {
    use Suppression::*;
    smuggled(
        [2, 7, 0, 1, 9, 0, 0, 0, 0],
        &[
            (at(0, 0), Primary),
            (at(1, 0), Primary),
            (at(3, 0), Primary),
            (at(0, 1), Secondary),
            (at(1, 1), Secondary),
        ],
    )
}

fn errors_of(r: &StatisticalReport) -> String {
    let mut errors = crate::records::model::Errors::default();
    check_report(r, "statistical_report", &mut errors);
    crate::records::model::ValidationErrors(errors.0).to_string()
}

#[test]
fn a_report_travels_unchanged() {
    let b = body(RecordKind::StatisticalReport(protected()));
    let decoded = wire::decode_body(&wire::encode_body(&b)).expect("a valid report");
    assert_eq!(decoded, b);
}

#[test]
fn a_published_count_below_the_threshold_is_refused_with_its_cell() {
    let mut r = protected();
    r.table.cells[at(1, 0)] = Cell {
        key: r.table.cells[at(1, 0)].key.clone(),
        value: Some(1),
        suppressed: None,
    };
    let e = errors_of(&r);
    assert!(
        e.contains("cell male/child: 1 is below the threshold 3"),
        "{e}"
    );
    assert!(errors_of(&protected()).is_empty());
}

#[test]
fn margins_that_do_not_add_up_are_refused() {
    let mut r = protected();
    // Nobody of unknown sex was counted; claim 12.
    r.table.cells[at(2, 3)].value = Some(12);
    let e = errors_of(&r);
    assert!(e.contains("cell unknown/total: 12 does not add up"), "{e}");
    // A margin over published zeros that claims people.
    let mut r = protected();
    r.table.cells[at(3, 2)].value = Some(5);
    assert!(errors_of(&r).contains("cell total/unknown: 5 does not add up"));
}

#[test]
fn a_threshold_below_three_and_a_population_off_the_victims_table_are_refused() {
    let mut r = protected();
    r.table.method = Method::Suppression { threshold: 2 };
    r.population = Some(Population {
        count: 100,
        year: 2026,
        source: "INE".into(),
    });
    let e = errors_of(&r);
    assert!(e.contains("threshold must be at least 3"), "{e}");
    assert!(
        e.contains("only the victims table carries a population"),
        "{e}"
    );
}

#[test]
fn the_wire_form_must_list_every_cell_once_and_carry_no_hidden_value() {
    let b = body(RecordKind::StatisticalReport(protected()));
    let pb_body = pb::RecordBody::decode(wire::encode_body(&b).as_slice()).unwrap();
    let Some(pb::record_body::Kind::StatisticalReport(original)) = pb_body.kind.clone() else {
        panic!("not a report")
    };
    let decode = |report: &pb::StatisticalReport| {
        let mut tampered = pb_body.clone();
        tampered.kind = Some(pb::record_body::Kind::StatisticalReport(report.clone()));
        wire::decode_body(&tampered.encode_to_vec())
            .unwrap_err()
            .to_string()
    };
    // A suppressed cell that still carries its figure.
    let mut report = original.clone();
    report.cells[at(0, 0)].value = 2;
    let e = decode(&report);
    assert!(
        e.contains("statistical_report.cells[0].value: a suppressed cell carries no value"),
        "{e}"
    );
    // A cell listed twice instead of another.
    let mut report = original.clone();
    report.cells[1] = report.cells[2].clone();
    assert!(decode(&report).contains("is listed twice"));
    // A cell missing.
    let mut report = original;
    report.cells.pop();
    let e = decode(&report);
    assert!(
        e.contains("the smuggled table has 16 cells; the report lists 15"),
        "{e}"
    );
}

fn correction(next: StatisticalReport, reason: Option<CorrectionReason>) -> RecordKind {
    let first = body(RecordKind::StatisticalReport(protected()));
    RecordKind::Update(Update {
        target: first.record_id,
        version: 2,
        content: Content::StatisticalReport(StatisticalReport {
            correction: reason,
            ..next
        }),
    })
}

#[test]
fn a_correction_keeps_every_earlier_suppression_at_origin_and_recipient() {
    let first = body(RecordKind::StatisticalReport(protected()));
    let state = lifecycle::next(None, &first, Mode::Origin).expect("first version");
    let kept = state.statistics.as_ref().expect("a report series");
    assert_eq!(kept.suppressed.len(), 5);
    // Late records: female/child is now 4, which would be published; the
    // union keeps it suppressed, so version 2 is accepted.
    let mut union = protected();
    union.table.cells[at(0, 2)].value = Some(0);
    let ok = body(correction(union, Some(CorrectionReason::LateRecords)));
    lifecycle::next(Some(&state), &ok, Mode::Origin).expect("the union is kept");
    // Publishing female/child (4) and its partners would let anyone subtract
    // the versions: refused by the origin and by every recipient.
    let leaky = smuggled(
        [4, 7, 0, 1, 9, 0, 0, 0, 0],
        &[
            (at(1, 0), Suppression::Primary),
            (at(1, 1), Suppression::Secondary),
            (at(1, 3), Suppression::Secondary),
            (at(3, 0), Suppression::Secondary),
        ],
    );
    let bad = body(correction(leaky, Some(CorrectionReason::LateRecords)));
    for mode in [Mode::Origin, Mode::Recipient] {
        let e = lifecycle::next(Some(&state), &bad, mode).unwrap_err();
        assert!(e.to_string().contains("must stay suppressed"), "{e}");
        assert!(e.to_string().contains("female/child"), "{e}");
    }
}

#[test]
fn a_correction_says_why_and_keeps_its_table_and_period() {
    let no_reason = body(correction(protected(), None));
    let e = no_reason.validate().unwrap_err().to_string();
    assert!(e.contains("a correction says why"), "{e}");
    let first = body(RecordKind::StatisticalReport(StatisticalReport {
        correction: Some(CorrectionReason::DataCorrection),
        ..protected()
    }));
    assert!(
        first
            .validate()
            .unwrap_err()
            .to_string()
            .contains("the first version of a report corrects nothing")
    );
    let state = lifecycle::next(
        None,
        &body(RecordKind::StatisticalReport(protected())),
        Mode::Origin,
    )
    .unwrap();
    let mut other = protected();
    other.table.period = Period::Year(2025);
    let moved = body(correction(other, Some(CorrectionReason::DataCorrection)));
    let e = lifecycle::next(Some(&state), &moved, Mode::Recipient).unwrap_err();
    assert!(
        e.to_string().contains("keeps the table and the period"),
        "{e}"
    );
}
