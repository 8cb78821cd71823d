//! The fixed tables: their dimensions, values and labels, the cells of a
//! table (interior cells and margins), and the periods they count.
//!
//! NOTE: the tables are fixed in code on purpose. An ad-hoc query ("victims
//! of sexual exploitation, female, from the Caribbean, in Q3") can be
//! differenced against another to expose one person; a fixed set of tables,
//! each protected as a whole, cannot (DataSHIELD's own warning). Adding a
//! value to a dimension changes the table's cells and is a contract change:
//! add it at the end, and peers running older code refuse reports they
//! cannot read rather than misread them.

use std::fmt;
use std::sync::LazyLock;

use super::period::Period;
use crate::records::vocabulary::{AgeGroup, Exploitation, Sex};

/// A value's machine code and its labels for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Label {
    pub code: &'static str,
    pub en: &'static str,
    pub es: &'static str,
}

impl Label {
    pub const fn new(code: &'static str, en: &'static str, es: &'static str) -> Self {
        Self { code, en, es }
    }

    /// "es / en", Spanish first, like the vocabulary.
    pub fn label(&self) -> String {
        format!("{} / {}", self.es, self.en)
    }
}

/// The label of every margin ("total" in the summed dimension).
pub const TOTAL: Label = Label::new("total", "Total", "Total");

/// What a dimension counts by. Its code is the JSON key of the dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DimName {
    Sex,
    AgeGroup,
    Exploitation,
    Citizenship,
    Stage,
}

impl DimName {
    pub fn code(self) -> &'static str {
        match self {
            Self::Sex => "sex",
            Self::AgeGroup => "age_group",
            Self::Exploitation => "exploitation",
            Self::Citizenship => "citizenship",
            Self::Stage => "stage",
        }
    }

    pub fn label(self) -> Label {
        match self {
            Self::Sex => Label::new("sex", "Sex", "Sexo"),
            Self::AgeGroup => Label::new("age_group", "Age group", "Grupo de edad"),
            Self::Exploitation => Label::new(
                "exploitation",
                "Form of exploitation",
                "Forma de explotación",
            ),
            Self::Citizenship => Label::new("citizenship", "Citizenship", "Nacionalidad"),
            Self::Stage => Label::new("stage", "Stage", "Etapa"),
        }
    }
}

/// One dimension of a table: its values (the interior coordinates) and
/// named groups of values (subtotals such as "foreign" over the regions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dimension {
    pub name: DimName,
    pub values: Vec<Label>,
    /// Subtotals: a label and the indexes of the values it sums.
    pub groups: Vec<(Label, Vec<usize>)>,
}

/// A coordinate in one dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Coord {
    /// One value, by index into `Dimension::values`.
    Value(u8),
    /// One group, by index into `Dimension::groups`.
    Group(u8),
    /// The whole dimension.
    Total,
}

/// A cell's coordinates, one per dimension of its table, in the table's
/// dimension order. A cell whose coordinates are all values is interior;
/// any other cell is a margin, the sum of the interior cells it covers.
pub type Key = Vec<Coord>;

/// The statistical tables, each a contract (codes on the wire and in the
/// CSV). Trafficking and smuggling have tables of their own and are never
/// added together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableKind {
    /// Victims of trafficking detected: sex × age group × form of
    /// exploitation × citizenship (GLOTIP; SDG 16.2.2).
    Victims,
    /// Persons suspected, prosecuted and convicted of trafficking: stage ×
    /// sex × citizenship (GLOTIP).
    Persons,
    /// Smuggled migrants: sex × age group.
    Smuggled,
    /// Persons suspected, prosecuted and convicted of smuggling of
    /// migrants: stage × sex × citizenship.
    SmugglingPersons,
}

impl TableKind {
    pub const ALL: &'static [Self] = &[
        Self::Victims,
        Self::Persons,
        Self::Smuggled,
        Self::SmugglingPersons,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::Victims => "victims",
            Self::Persons => "persons",
            Self::Smuggled => "smuggled",
            Self::SmugglingPersons => "smuggling_persons",
        }
    }

    pub fn label(self) -> Label {
        match self {
            Self::Victims => Label::new(
                "victims",
                "Victims of trafficking in persons detected",
                "Víctimas de trata de personas detectadas",
            ),
            Self::Persons => Label::new(
                "persons",
                "Persons suspected, prosecuted and convicted of trafficking in persons",
                "Personas sospechosas, acusadas y condenadas por trata de personas",
            ),
            Self::Smuggled => Label::new(
                "smuggled",
                "Smuggled migrants",
                "Personas migrantes objeto de tráfico ilícito",
            ),
            Self::SmugglingPersons => Label::new(
                "smuggling_persons",
                "Persons suspected, prosecuted and convicted of smuggling of migrants",
                "Personas sospechosas, acusadas y condenadas por tráfico ilícito de migrantes",
            ),
        }
    }

    /// The number on the wire (`record.proto`, `StatisticalTable`).
    pub fn wire(self) -> i32 {
        match self {
            Self::Victims => 1,
            Self::Persons => 2,
            Self::Smuggled => 3,
            Self::SmugglingPersons => 4,
        }
    }

    pub fn from_wire(v: i32) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.wire() == v)
    }

    /// Parses a table code, or `smuggling` for both smuggling tables.
    pub fn parse_selection(s: &str) -> Result<Vec<Self>, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "victims" => Ok(vec![Self::Victims]),
            "persons" => Ok(vec![Self::Persons]),
            "smuggled" => Ok(vec![Self::Smuggled]),
            "smuggling_persons" => Ok(vec![Self::SmugglingPersons]),
            "smuggling" => Ok(vec![Self::Smuggled, Self::SmugglingPersons]),
            _ => Err(format!(
                "unknown table {s:?}; expected one of: victims, persons, smuggling, smuggled, smuggling_persons"
            )),
        }
    }

    /// This table's dimensions, in cell-coordinate order.
    pub fn spec(self) -> &'static TableSpec {
        static SPECS: LazyLock<Vec<TableSpec>> =
            LazyLock::new(|| TableKind::ALL.iter().map(|k| build_spec(*k)).collect());
        &SPECS[TableKind::ALL.iter().position(|k| *k == self).unwrap_or(0)]
    }
}

impl fmt::Display for TableKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A table's fixed shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub kind: TableKind,
    pub dims: Vec<Dimension>,
}

impl TableSpec {
    /// The number of interior cells.
    pub fn interior_len(&self) -> usize {
        self.dims.iter().map(|d| d.values.len()).product()
    }

    /// The position of an interior cell in row-major order (first
    /// dimension slowest), or `None` if `key` is not interior or out of range.
    pub fn interior_index(&self, key: &[Coord]) -> Option<usize> {
        if key.len() != self.dims.len() {
            return None;
        }
        let mut index = 0usize;
        for (d, c) in self.dims.iter().zip(key) {
            let Coord::Value(v) = *c else { return None };
            let v = usize::from(v);
            if v >= d.values.len() {
                return None;
            }
            index = index * d.values.len() + v;
        }
        Some(index)
    }

    /// The interior key at a row-major position.
    pub fn interior_key(&self, mut index: usize) -> Key {
        let mut key = vec![Coord::Total; self.dims.len()];
        for (slot, d) in key.iter_mut().zip(&self.dims).rev() {
            let n = d.values.len();
            *slot = Coord::Value((index % n) as u8);
            index /= n;
        }
        key
    }

    /// Every cell of the table, interior and margins, in the canonical
    /// order: per dimension the values, then the groups, then the total;
    /// first dimension slowest. Reports list their cells in this order.
    pub fn all_keys(&self) -> Vec<Key> {
        let mut keys: Vec<Key> = vec![Vec::new()];
        for d in &self.dims {
            let coords: Vec<Coord> = (0..d.values.len())
                .map(|i| Coord::Value(i as u8))
                .chain((0..d.groups.len()).map(|g| Coord::Group(g as u8)))
                .chain(std::iter::once(Coord::Total))
                .collect();
            keys = keys
                .into_iter()
                .flat_map(|k| {
                    coords.iter().map(move |c| {
                        let mut k = k.clone();
                        k.push(*c);
                        k
                    })
                })
                .collect();
        }
        keys
    }

    /// Whether `key` names a cell of this table.
    pub fn is_key(&self, key: &[Coord]) -> bool {
        key.len() == self.dims.len() && key.iter().enumerate().all(|(d, c)| self.is_coord(d, *c))
    }

    /// Whether `c` is a coordinate of dimension `dim`.
    pub fn is_coord(&self, dim: usize, c: Coord) -> bool {
        self.dims.get(dim).is_some_and(|d| match c {
            Coord::Value(v) => usize::from(v) < d.values.len(),
            Coord::Group(g) => usize::from(g) < d.groups.len(),
            Coord::Total => true,
        })
    }

    /// The row-major positions of the interior cells a cell covers (itself
    /// alone for an interior cell).
    pub fn covered(&self, key: &[Coord]) -> Vec<usize> {
        let mut out = vec![0usize];
        for (d, c) in self.dims.iter().zip(key) {
            let n = d.values.len();
            let values: Vec<usize> = match *c {
                Coord::Value(v) => vec![usize::from(v)],
                Coord::Group(g) => d.groups[usize::from(g)].1.clone(),
                Coord::Total => (0..n).collect(),
            };
            out = out
                .into_iter()
                .flat_map(|base| values.iter().map(move |v| base * n + v))
                .collect();
        }
        out
    }

    /// The label of one coordinate of dimension `dim`.
    pub fn coord_label(&self, dim: usize, c: Coord) -> Label {
        let d = &self.dims[dim];
        match c {
            Coord::Value(v) => d.values[usize::from(v)],
            Coord::Group(g) => d.groups[usize::from(g)].0,
            Coord::Total => TOTAL,
        }
    }
}

/// The regions of foreign citizenship, after the UN M49 geographic regions
/// (sub-regions for the Americas, where the federation is).
pub const REGIONS: &[Label] = &[
    Label::new("central_america", "Central America", "Centroamérica"),
    Label::new("caribbean", "Caribbean", "Caribe"),
    Label::new("south_america", "South America", "América del Sur"),
    Label::new("northern_america", "Northern America", "América del Norte"),
    Label::new("europe", "Europe", "Europa"),
    Label::new("asia", "Asia", "Asia"),
    Label::new("africa", "Africa", "África"),
    Label::new("oceania", "Oceania", "Oceanía"),
];

pub const NATIONAL: Label = Label::new("national", "National", "Nacional");
pub const FOREIGN: Label = Label::new("foreign", "Foreign", "Extranjera");
pub const CITIZENSHIP_UNKNOWN: Label = Label::new("unknown", "Unknown", "Desconocida");
pub const EXPLOITATION_NOT_RECORDED: Label =
    Label::new("not_recorded", "Not recorded", "No registrada");

/// The stages persons are counted at (GLOTIP: suspected, prosecuted,
/// convicted); a case counts at the highest it reached.
pub const STAGES: &[Label] = &[
    Label::new("suspected", "Suspected", "Sospechosas"),
    Label::new("prosecuted", "Prosecuted", "Acusadas"),
    Label::new("convicted", "Convicted", "Condenadas"),
];

fn vocab<T: Copy>(all: &[T], f: impl Fn(T) -> Label) -> Vec<Label> {
    all.iter().copied().map(f).collect()
}

fn sex_dim() -> Dimension {
    Dimension {
        name: DimName::Sex,
        values: vocab(Sex::ALL, |s| Label::new(s.code(), s.en(), s.es())),
        groups: Vec::new(),
    }
}

fn age_dim() -> Dimension {
    Dimension {
        name: DimName::AgeGroup,
        values: vocab(AgeGroup::ALL, |a| Label::new(a.code(), a.en(), a.es())),
        groups: Vec::new(),
    }
}

fn stage_dim() -> Dimension {
    Dimension {
        name: DimName::Stage,
        values: STAGES.to_vec(),
        groups: Vec::new(),
    }
}

/// National, foreign (by region, with a "foreign" subtotal) and unknown.
fn citizenship_by_region() -> Dimension {
    let mut values = vec![NATIONAL];
    values.extend_from_slice(REGIONS);
    values.push(CITIZENSHIP_UNKNOWN);
    Dimension {
        name: DimName::Citizenship,
        values,
        groups: vec![(FOREIGN, (1..=REGIONS.len()).collect())],
    }
}

/// National, foreign and unknown.
fn citizenship_plain() -> Dimension {
    Dimension {
        name: DimName::Citizenship,
        values: vec![NATIONAL, FOREIGN, CITIZENSHIP_UNKNOWN],
        groups: Vec::new(),
    }
}

fn build_spec(kind: TableKind) -> TableSpec {
    let dims = match kind {
        TableKind::Victims => {
            let mut exploitation =
                vocab(Exploitation::ALL, |e| Label::new(e.code(), e.en(), e.es()));
            exploitation.push(EXPLOITATION_NOT_RECORDED);
            vec![
                sex_dim(),
                age_dim(),
                Dimension {
                    name: DimName::Exploitation,
                    values: exploitation,
                    groups: Vec::new(),
                },
                citizenship_by_region(),
            ]
        }
        TableKind::Persons | TableKind::SmugglingPersons => {
            vec![stage_dim(), sex_dim(), citizenship_plain()]
        }
        TableKind::Smuggled => vec![sex_dim(), age_dim()],
    };
    TableSpec { kind, dims }
}

/// Why a table is suppressed or rounded, and with what parameters. A
/// protected table carries its method so that a reader knows what a
/// missing or rounded figure means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Cells of 1 … threshold−1 are suppressed (primary), and further cells
    /// (secondary) so that none of them can be recovered from the rest.
    Suppression { threshold: u32 },
    /// Interior cells are rounded to a multiple of `base`; margins are the
    /// sums of the rounded interior cells, so the table adds up.
    Rounding { base: u32 },
}

/// Why a cell is not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Suppression {
    /// Its count was 1 … threshold−1.
    Primary,
    /// It would let a primary cell be recovered from the published cells.
    Secondary,
}

impl Suppression {
    pub fn code(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Secondary => "secondary",
        }
    }
}

/// The raw counts of one table for one period: the interior cells in
/// row-major order. Never leaves the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    pub kind: TableKind,
    pub period: Period,
    pub interior: Vec<u64>,
}

impl Counts {
    pub fn zero(kind: TableKind, period: Period) -> Self {
        Self {
            kind,
            period,
            interior: vec![0; kind.spec().interior_len()],
        }
    }

    /// The true value of any cell.
    pub fn value(&self, key: &[Coord]) -> u64 {
        self.kind
            .spec()
            .covered(key)
            .into_iter()
            .map(|i| self.interior[i])
            .sum()
    }
}

/// One published cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub key: Key,
    /// `None` when suppressed.
    pub value: Option<u64>,
    pub suppressed: Option<Suppression>,
}

/// A protected table: what may leave the node. Every cell of the table is
/// listed, in `TableSpec::all_keys` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedTable {
    pub kind: TableKind,
    pub period: Period,
    pub method: Method,
    pub cells: Vec<Cell>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cover_the_interior() {
        for kind in TableKind::ALL {
            let spec = kind.spec();
            let n = spec.interior_len();
            for i in 0..n {
                let key = spec.interior_key(i);
                assert_eq!(spec.interior_index(&key), Some(i));
                assert_eq!(spec.covered(&key), vec![i]);
            }
            let total = vec![Coord::Total; spec.dims.len()];
            let mut all = spec.covered(&total);
            all.sort_unstable();
            assert_eq!(all, (0..n).collect::<Vec<_>>());
            let keys = spec.all_keys();
            assert!(keys.iter().all(|k| spec.is_key(k)));
            assert_eq!(keys.last(), Some(&total));
        }
        // Victims: foreign is the sum of the regions.
        let spec = TableKind::Victims.spec();
        let foreign = vec![Coord::Total, Coord::Total, Coord::Total, Coord::Group(0)];
        assert_eq!(spec.covered(&foreign).len(), 3 * 3 * 11 * REGIONS.len());
    }
}
