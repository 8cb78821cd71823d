//! The period a statistical table counts: a calendar year or one of its
//! quarters, in UTC, so that every member cuts the year at the same instant.

use std::fmt;

/// The period a table counts: a calendar year or one of its quarters (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    Year(u16),
    Quarter(u16, u8),
}

impl Period {
    /// Parses `2026` or `2026-Q1` … `2026-Q4` (years 2000 to 2999).
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad =
            || format!("period {s:?}: expected a year such as 2026 or a quarter such as 2026-Q1");
        let t = s.trim();
        let (year, quarter) = match t.split_once(['-', '_']) {
            Some((y, q)) => (y, Some(q)),
            None => (t, None),
        };
        if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let year: u16 = year.parse().map_err(|_| bad())?;
        if !(2000..=2999).contains(&year) {
            return Err(format!(
                "period {s:?}: the year must be between 2000 and 2999"
            ));
        }
        match quarter {
            None => Ok(Self::Year(year)),
            Some(q) => match q.to_ascii_uppercase().as_str() {
                "Q1" => Ok(Self::Quarter(year, 1)),
                "Q2" => Ok(Self::Quarter(year, 2)),
                "Q3" => Ok(Self::Quarter(year, 3)),
                "Q4" => Ok(Self::Quarter(year, 4)),
                _ => Err(bad()),
            },
        }
    }

    pub fn year(self) -> u16 {
        match self {
            Self::Year(y) | Self::Quarter(y, _) => y,
        }
    }

    /// The period's bounds in milliseconds since the Unix epoch, UTC:
    /// `[start, end)`.
    pub fn bounds_ms(self) -> (i64, i64) {
        let (y, first_month, months) = match self {
            Self::Year(y) => (y, 1u8, 12u8),
            Self::Quarter(y, q) => (y, (q - 1) * 3 + 1, 3),
        };
        let start = month_start_ms(i32::from(y), first_month);
        let end_month = first_month + months;
        let end = if end_month > 12 {
            month_start_ms(i32::from(y) + 1, 1)
        } else {
            month_start_ms(i32::from(y), end_month)
        };
        (start, end)
    }

    /// Whether an instant (ms since the epoch) falls in the period.
    pub fn contains_ms(self, at_ms: i64) -> bool {
        let (start, end) = self.bounds_ms();
        (start..end).contains(&at_ms)
    }
}

fn month_start_ms(year: i32, month: u8) -> i64 {
    let month = time::Month::try_from(month).unwrap_or(time::Month::January);
    time::Date::from_calendar_date(year, month, 1)
        .map(|d| d.midnight().assume_utc().unix_timestamp() * 1000)
        .unwrap_or(0)
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Year(y) => write!(f, "{y}"),
            Self::Quarter(y, q) => write!(f, "{y}-Q{q}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_and_bound() {
        assert_eq!(Period::parse("2026"), Ok(Period::Year(2026)));
        assert_eq!(Period::parse("2026-q3"), Ok(Period::Quarter(2026, 3)));
        for bad in ["26", "2026-Q5", "1999", "abcd", "2026-", "2026-Q1x", ""] {
            assert!(Period::parse(bad).is_err(), "{bad:?} accepted");
        }
        let (s, e) = Period::Year(2026).bounds_ms();
        assert_eq!(s, 1_767_225_600_000); // 2026-01-01T00:00:00Z
        assert_eq!(e, 1_798_761_600_000); // 2027-01-01T00:00:00Z
        let (s4, e4) = Period::Quarter(2026, 4).bounds_ms();
        assert_eq!(e4, e);
        assert_eq!(s4, 1_790_812_800_000); // 2026-10-01T00:00:00Z
        assert!(Period::Quarter(2026, 1).contains_ms(s));
        assert!(!Period::Quarter(2026, 1).contains_ms(s4));
    }
}
