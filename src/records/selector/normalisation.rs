//! Normalisation: every spelling of one identifier becomes the same
//! canonical string, or is refused with the rule it breaks. These rules are
//! part of the protocol (`docs/selectors.md`).

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use super::{MAX_EMAIL_CHARS, MAX_INPUT_CHARS, SelectorError};
use crate::records::vocabulary::SelectorKind;

/// Turns an identifier into its canonical form for `kind`, or says which
/// rule it breaks. The rules are a protocol; see `docs/selectors.md`.
///
/// Normalisation is idempotent: a normalised value normalises to itself.
pub fn normalise(kind: SelectorKind, value: &str) -> Result<String, SelectorError> {
    if value.trim().is_empty() {
        return Err(SelectorError::Empty { kind });
    }
    let got = value.chars().count();
    if got > MAX_INPUT_CHARS {
        return Err(SelectorError::TooLong { kind, got });
    }
    match kind {
        SelectorKind::Passport => identifier(kind, value, 5, 20),
        SelectorKind::NationalId => identifier(kind, value, 3, 30),
        SelectorKind::VehiclePlate => identifier(kind, value, 2, 15),
        SelectorKind::BankAccount => identifier(kind, value, 5, 34),
        SelectorKind::Imei => imei(value),
        SelectorKind::Phone => phone(value),
        SelectorKind::Email => email(value),
        SelectorKind::NameDob => name_dob(value),
    }
}

/// NFKD, drop combining marks (General_Category M), upper case: the
/// accent- and case-blind form shared by identifiers and names.
fn fold(value: &str) -> String {
    value
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_uppercase)
        .collect()
}

fn is_common_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, '-' | '.' | '/' | '_')
}

/// [`fold`], then drop the separators.
fn common(value: &str) -> String {
    fold(value)
        .chars()
        .filter(|c| !is_common_separator(*c))
        .collect()
}

fn identifier(
    kind: SelectorKind,
    value: &str,
    min: usize,
    max: usize,
) -> Result<String, SelectorError> {
    let n = common(value);
    if !n.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(SelectorError::NotAlphanumeric { kind });
    }
    // ASCII only from here, so bytes are characters.
    let got = n.len();
    if !(min..=max).contains(&got) {
        return Err(SelectorError::Length {
            kind,
            min,
            max,
            got,
        });
    }
    Ok(n)
}

// NOTE: no Luhn check. Agencies record what they find on a seized handset or
// a carrier's reply, typos and IMEISVs included; refusing a value the other
// agency holds as-is would only prevent a match that the identical typo
// would otherwise produce.
fn imei(value: &str) -> Result<String, SelectorError> {
    let n = common(value);
    if !n.chars().all(|c| c.is_ascii_digit()) {
        return Err(SelectorError::ImeiNotDigits);
    }
    match n.len() {
        15 | 16 => Ok(n),
        got => Err(SelectorError::ImeiLength { got }),
    }
}

fn phone(value: &str) -> Result<String, SelectorError> {
    let compact: String = value
        .chars()
        .filter(|c| !(c.is_whitespace() || matches!(c, '-' | '.' | '(' | ')')))
        .collect();
    let digits = if let Some(rest) = compact.strip_prefix('+') {
        rest
    } else if let Some(rest) = compact.strip_prefix("00") {
        rest
    } else if compact.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(SelectorError::PhoneNoCountryCode);
    } else {
        return Err(SelectorError::PhoneCharacters);
    };
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(SelectorError::PhoneCharacters);
    }
    if digits.starts_with('0') {
        return Err(SelectorError::PhoneCountryCodeZero);
    }
    let got = digits.len();
    if !(8..=15).contains(&got) {
        return Err(SelectorError::PhoneLength { got });
    }
    Ok(format!("+{digits}"))
}

fn email(value: &str) -> Result<String, SelectorError> {
    let n = value.trim().to_lowercase();
    let got = n.chars().count();
    if got > MAX_EMAIL_CHARS {
        return Err(SelectorError::EmailLength { got });
    }
    if n.chars().any(char::is_whitespace) {
        return Err(SelectorError::EmailWhitespace);
    }
    let ats = n.matches('@').count();
    let Some((local, domain)) = n.split_once('@').filter(|_| ats == 1) else {
        return Err(SelectorError::EmailAt { got: ats });
    };
    if local.is_empty() {
        return Err(SelectorError::EmailLocalEmpty);
    }
    if domain.is_empty() {
        return Err(SelectorError::EmailDomainEmpty);
    }
    if !domain.contains('.') {
        return Err(SelectorError::EmailDomainDot);
    }
    Ok(n)
}

fn is_name_separator(c: char) -> bool {
    is_common_separator(c) || matches!(c, ',' | '\'' | '`' | '\u{2018}' | '\u{2019}' | '\u{02BC}')
}

fn name_dob(value: &str) -> Result<String, SelectorError> {
    let (name, date) = value.rsplit_once('|').ok_or(SelectorError::NameDobShape)?;
    let folded = fold(name);
    let mut tokens: Vec<&str> = folded
        .split(is_name_separator)
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.is_empty() {
        return Err(SelectorError::NameEmpty);
    }
    if tokens.iter().flat_map(|t| t.chars()).any(char::is_numeric) {
        return Err(SelectorError::NameDigits);
    }
    if !tokens
        .iter()
        .flat_map(|t| t.chars())
        .all(|c| c.is_ascii_uppercase())
    {
        return Err(SelectorError::NameLetters);
    }
    // Byte order of A-Z tokens: the order in which given names and the two
    // surnames were written, or which surname came first, does not matter.
    tokens.sort_unstable();
    let date = check_date(date.trim())?;
    Ok(format!("{}|{date}", tokens.join(" ")))
}

/// Checks a strict `YYYY-MM-DD` Gregorian date in 1900..=2100.
fn check_date(date: &str) -> Result<&str, SelectorError> {
    let b = date.as_bytes();
    let shape_ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape_ok {
        return Err(SelectorError::DateFormat);
    }
    let num = |range: std::ops::Range<usize>| {
        b[range]
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
    };
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    if !(1900..=2100).contains(&year) {
        return Err(SelectorError::DateYear);
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(SelectorError::DateInvalid),
    };
    if !(1..=days).contains(&day) {
        return Err(SelectorError::DateInvalid);
    }
    Ok(date)
}

/// Parses a command-line selector `KIND=VALUE` (split at the first `=`;
/// the kind in snake or kebab case, e.g. `name-dob=PÉREZ GÓMEZ, José|1990-05-17`)
/// and returns the kind with the value already **normalised**, so that a bad
/// value is refused while the arguments are read. Pass the result to
/// [`MatchingKey::token`](super::MatchingKey::token) (or to
/// [`MatchingKey::hash`](super::MatchingKey::hash); normalising twice is
/// harmless).
pub fn parse_selector_arg(s: &str) -> Result<(SelectorKind, String), SelectorError> {
    let (kind, value) = s.split_once('=').ok_or(SelectorError::ArgumentShape)?;
    let kind = SelectorKind::parse(kind.trim()).map_err(|_| SelectorError::UnknownKind)?;
    let value = normalise(kind, value)?;
    Ok((kind, value))
}
