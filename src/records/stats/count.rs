//! The counting rules: from the facts of a member's local cases to the raw
//! counts of one table for one period.
//!
//! Every member must count the same way, or the regional table adds apples
//! to pears; so the rules are code, not configuration:
//!
//! - **Period.** A case counts in the period that contains `stage_at_ms`,
//!   the moment it reached its highest stage. A case is therefore counted
//!   once per period and never again at each change of stage: its victims
//!   and offenders appear in one period only (per year, and per quarter).
//! - **Offence.** The victims and persons tables count only trafficking
//!   cases ([`Offence::Trafficking`]); the smuggled and smuggling-persons
//!   tables only smuggling cases ([`Offence::Smuggling`]). Trafficking and
//!   smuggling never mix. Cases of any other offence (undetermined, enabling
//!   illegal stay, document fraud) are counted nowhere: an undetermined case
//!   is counted once it is classified, in the period of its highest stage.
//! - **Form of exploitation** (victims): exactly one distinct form → that
//!   form; several distinct forms → `mixed`; none → `not_recorded`.
//! - **Citizenship**: the member's own country → national; empty, not an
//!   assigned ISO 3166-1 code, or a code without a region (Antarctica) →
//!   unknown; any other country → its region (victims table) or foreign
//!   (persons tables). Codes compare in either case.
//! - **Stage** (persons tables), from the case's highest stage:
//!   intelligence or investigation → suspected; prosecution or trial →
//!   prosecuted; convicted → convicted; closed → suspected. A case closed
//!   without reaching prosecution counts its offenders as suspected; a case
//!   that was closed after a conviction should keep `Convicted` as its
//!   highest stage, which the caller's conversion ensures.
//! - **Smuggled migrants** are the victims list of a smuggling case,
//!   counted by sex and age group.

use crate::records::vocabulary::{AgeGroup, CaseStage, Exploitation, Offence, Sex};

use super::period::Period;
use super::regions::region_of;
use super::table::{Coord, Counts, REGIONS, TableKind};

/// What the statistics need of one local case; nothing that names anyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFacts {
    pub offence: Offence,
    /// The highest stage the case has reached.
    pub highest_stage: CaseStage,
    /// When it reached that stage, in milliseconds since the Unix epoch.
    pub stage_at_ms: i64,
    pub victims: Vec<VictimFacts>,
    pub offenders: Vec<OffenderFacts>,
}

/// One victim (or smuggled migrant) of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VictimFacts {
    pub sex: Sex,
    pub age_group: AgeGroup,
    /// The forms of exploitation recorded; may be empty or repeat a form.
    pub exploitation: Vec<Exploitation>,
    /// ISO 3166-1 alpha-2, or empty when unknown.
    pub citizenship: String,
}

/// One offender of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffenderFacts {
    pub sex: Sex,
    /// ISO 3166-1 alpha-2, or empty when unknown.
    pub citizenship: String,
}

/// The persons-table stage of a case's highest stage: 0 suspected,
/// 1 prosecuted, 2 convicted (indexes into `table::STAGES`).
pub fn stage_index(stage: CaseStage) -> usize {
    match stage {
        CaseStage::Intelligence | CaseStage::Investigation | CaseStage::Closed => 0,
        CaseStage::Prosecution | CaseStage::Trial => 1,
        CaseStage::Convicted => 2,
    }
}

/// The index of a victim's form of exploitation in the victims table's
/// exploitation dimension (the vocabulary, then `not_recorded`).
pub fn exploitation_index(forms: &[Exploitation]) -> usize {
    let mut distinct: Vec<Exploitation> = Vec::new();
    for f in forms {
        if !distinct.contains(f) {
            distinct.push(*f);
        }
    }
    match distinct.as_slice() {
        [] => Exploitation::ALL.len(),
        [one] => position(Exploitation::ALL, *one),
        _ => position(Exploitation::ALL, Exploitation::Mixed),
    }
}

/// The index of a citizenship in the victims table's citizenship dimension:
/// 0 national, 1 + region, then unknown.
pub fn citizenship_region_index(citizenship: &str, national: &str) -> usize {
    match classify(citizenship, national) {
        Citizenship::National => 0,
        Citizenship::Region(r) => 1 + r,
        Citizenship::Unknown => 1 + REGIONS.len(),
    }
}

/// The index of a citizenship in the persons tables: 0 national,
/// 1 foreign, 2 unknown.
pub fn citizenship_plain_index(citizenship: &str, national: &str) -> usize {
    match classify(citizenship, national) {
        Citizenship::National => 0,
        Citizenship::Region(_) => 1,
        Citizenship::Unknown => 2,
    }
}

enum Citizenship {
    National,
    Region(usize),
    Unknown,
}

fn classify(citizenship: &str, national: &str) -> Citizenship {
    let c = citizenship.trim();
    if c.is_empty() {
        return Citizenship::Unknown;
    }
    if c.eq_ignore_ascii_case(national.trim()) {
        return Citizenship::National;
    }
    match region_of(c) {
        Some(r) => Citizenship::Region(r),
        None => Citizenship::Unknown,
    }
}

fn position<T: PartialEq + Copy>(all: &[T], v: T) -> usize {
    all.iter().position(|x| *x == v).unwrap_or(0)
}

/// Counts `cases` into table `kind` for `period`. `national` is the
/// member's own country (ISO 3166-1 alpha-2). The rules are in the module
/// documentation.
pub fn count(kind: TableKind, period: Period, national: &str, cases: &[CaseFacts]) -> Counts {
    let mut counts = Counts::zero(kind, period);
    let spec = kind.spec();
    let wanted = match kind {
        TableKind::Victims | TableKind::Persons => Offence::Trafficking,
        TableKind::Smuggled | TableKind::SmugglingPersons => Offence::Smuggling,
    };
    let mut add = |coords: &[usize]| {
        let key: Vec<Coord> = coords.iter().map(|c| Coord::Value(*c as u8)).collect();
        if let Some(i) = spec.interior_index(&key) {
            counts.interior[i] += 1;
        }
    };
    for case in cases
        .iter()
        .filter(|c| c.offence == wanted && period.contains_ms(c.stage_at_ms))
    {
        match kind {
            TableKind::Victims => {
                for v in &case.victims {
                    add(&[
                        position(Sex::ALL, v.sex),
                        position(AgeGroup::ALL, v.age_group),
                        exploitation_index(&v.exploitation),
                        citizenship_region_index(&v.citizenship, national),
                    ]);
                }
            }
            TableKind::Smuggled => {
                for v in &case.victims {
                    add(&[
                        position(Sex::ALL, v.sex),
                        position(AgeGroup::ALL, v.age_group),
                    ]);
                }
            }
            TableKind::Persons | TableKind::SmugglingPersons => {
                let stage = stage_index(case.highest_stage);
                for o in &case.offenders {
                    add(&[
                        stage,
                        position(Sex::ALL, o.sex),
                        citizenship_plain_index(&o.citizenship, national),
                    ]);
                }
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(period: Period) -> i64 {
        period.bounds_ms().0 + 1000
    }

    fn victim(sex: Sex, age: AgeGroup, exp: &[Exploitation], cit: &str) -> VictimFacts {
        VictimFacts {
            sex,
            age_group: age,
            exploitation: exp.to_vec(),
            citizenship: cit.to_string(),
        }
    }

    fn offender(sex: Sex, cit: &str) -> OffenderFacts {
        OffenderFacts {
            sex,
            citizenship: cit.to_string(),
        }
    }

    fn case(offence: Offence, stage: CaseStage, at_ms: i64) -> CaseFacts {
        CaseFacts {
            offence,
            highest_stage: stage,
            stage_at_ms: at_ms,
            victims: vec![victim(Sex::Female, AgeGroup::Child, &[], "GT")],
            offenders: vec![offender(Sex::Male, "GT")],
        }
    }

    fn key(coords: &[usize]) -> Vec<Coord> {
        coords.iter().map(|c| Coord::Value(*c as u8)).collect()
    }

    fn total(counts: &Counts) -> u64 {
        counts.interior.iter().sum()
    }

    #[test]
    fn a_case_counts_in_the_period_of_its_highest_stage() {
        let q2 = Period::Quarter(2026, 2);
        let c = case(Offence::Trafficking, CaseStage::Trial, at(q2));
        assert_eq!(
            total(&count(
                TableKind::Victims,
                q2,
                "GT",
                std::slice::from_ref(&c)
            )),
            1
        );
        assert_eq!(
            total(&count(
                TableKind::Victims,
                Period::Year(2026),
                "GT",
                std::slice::from_ref(&c)
            )),
            1
        );
        for other in [
            Period::Quarter(2026, 1),
            Period::Quarter(2026, 3),
            Period::Year(2025),
        ] {
            assert_eq!(
                total(&count(
                    TableKind::Victims,
                    other,
                    "GT",
                    std::slice::from_ref(&c)
                )),
                0
            );
        }
        // The period's end is exclusive.
        let end = case(Offence::Trafficking, CaseStage::Trial, q2.bounds_ms().1);
        assert_eq!(total(&count(TableKind::Victims, q2, "GT", &[end])), 0);
    }

    #[test]
    fn trafficking_and_smuggling_never_mix_and_other_offences_count_nowhere() {
        let y = Period::Year(2026);
        let t = case(Offence::Trafficking, CaseStage::Investigation, at(y));
        let s = case(Offence::Smuggling, CaseStage::Investigation, at(y));
        let cases = [t.clone(), s.clone()];
        for kind in TableKind::ALL {
            assert_eq!(total(&count(*kind, y, "GT", &cases)), 1, "{kind}");
            assert_eq!(
                total(&count(*kind, y, "GT", std::slice::from_ref(&t))),
                match kind {
                    TableKind::Victims | TableKind::Persons => 1,
                    _ => 0,
                }
            );
        }
        for offence in [
            Offence::Undetermined,
            Offence::IllegalStay,
            Offence::DocumentFraud,
        ] {
            let c = case(offence, CaseStage::Convicted, at(y));
            for kind in TableKind::ALL {
                assert_eq!(total(&count(*kind, y, "GT", std::slice::from_ref(&c))), 0);
            }
        }
    }

    #[test]
    fn forms_of_exploitation() {
        use Exploitation::*;
        let not_recorded = Exploitation::ALL.len();
        assert_eq!(exploitation_index(&[]), not_recorded);
        assert_eq!(exploitation_index(&[ForcedLabour]), 1);
        assert_eq!(exploitation_index(&[Sexual, Sexual]), 0);
        assert_eq!(exploitation_index(&[Sexual, ForcedLabour]), 8);
        assert_eq!(exploitation_index(&[Mixed]), 8);
        assert_eq!(Exploitation::ALL[8], Mixed);

        let y = Period::Year(2026);
        let mut c = case(Offence::Trafficking, CaseStage::Trial, at(y));
        c.victims = vec![
            victim(Sex::Female, AgeGroup::Adult, &[Sexual, Begging], "GT"),
            victim(Sex::Female, AgeGroup::Adult, &[], "GT"),
        ];
        let counts = count(TableKind::Victims, y, "GT", &[c]);
        assert_eq!(counts.value(&key(&[0, 1, 8, 0])), 1);
        assert_eq!(counts.value(&key(&[0, 1, not_recorded, 0])), 1);
        assert_eq!(total(&counts), 2);
    }

    #[test]
    fn citizenship_national_region_foreign_unknown() {
        assert_eq!(citizenship_region_index("GT", "GT"), 0);
        assert_eq!(citizenship_region_index("gt", "GT"), 0);
        assert_eq!(citizenship_region_index("HN", "GT"), 1); // Central America
        assert_eq!(citizenship_region_index("DO", "GT"), 2); // Caribbean
        assert_eq!(citizenship_region_index("NG", "GT"), 1 + 6); // Africa
        let unknown = 1 + REGIONS.len();
        for c in ["", "  ", "XX", "AQ", "Guatemala"] {
            assert_eq!(citizenship_region_index(c, "GT"), unknown, "{c:?}");
            assert_eq!(citizenship_plain_index(c, "GT"), 2, "{c:?}");
        }
        assert_eq!(citizenship_plain_index("GT", "GT"), 0);
        assert_eq!(citizenship_plain_index("ES", "GT"), 1);
        // The same country is national for one member, foreign for another.
        assert_eq!(citizenship_plain_index("GT", "MX"), 1);
    }

    #[test]
    fn persons_stage_from_the_highest_stage() {
        assert_eq!(stage_index(CaseStage::Intelligence), 0);
        assert_eq!(stage_index(CaseStage::Investigation), 0);
        assert_eq!(stage_index(CaseStage::Prosecution), 1);
        assert_eq!(stage_index(CaseStage::Trial), 1);
        assert_eq!(stage_index(CaseStage::Convicted), 2);
        // Closed without reaching prosecution: suspected.
        assert_eq!(stage_index(CaseStage::Closed), 0);

        let y = Period::Year(2026);
        let mut c = case(Offence::Trafficking, CaseStage::Convicted, at(y));
        c.offenders = vec![
            offender(Sex::Male, "GT"),
            offender(Sex::Female, "SV"),
            offender(Sex::Unknown, ""),
        ];
        let counts = count(TableKind::Persons, y, "GT", &[c]);
        assert_eq!(counts.value(&key(&[2, 1, 0])), 1);
        assert_eq!(counts.value(&key(&[2, 0, 1])), 1);
        assert_eq!(counts.value(&key(&[2, 2, 2])), 1);
        assert_eq!(total(&counts), 3);
    }

    #[test]
    fn smuggled_migrants_by_sex_and_age_and_smugglers_by_stage() {
        let y = Period::Year(2026);
        let mut c = case(Offence::Smuggling, CaseStage::Prosecution, at(y));
        c.victims = vec![
            victim(Sex::Male, AgeGroup::Adult, &[], "EC"),
            victim(Sex::Male, AgeGroup::Adult, &[], "EC"),
            victim(Sex::Female, AgeGroup::Child, &[], ""),
        ];
        let smuggled = count(TableKind::Smuggled, y, "GT", std::slice::from_ref(&c));
        assert_eq!(smuggled.value(&key(&[1, 1])), 2);
        assert_eq!(smuggled.value(&key(&[0, 0])), 1);
        let persons = count(TableKind::SmugglingPersons, y, "GT", &[c]);
        assert_eq!(persons.value(&key(&[1, 1, 0])), 1);
        assert_eq!(total(&persons), 1);
    }
}
