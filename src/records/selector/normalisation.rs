//! Normalisation: every spelling of one identifier becomes the same
//! canonical string, or is refused with the rule it breaks. These rules are
//! part of the protocol (`docs/selectors.md`).
//!
//! The rules are versioned because a token is a hash of the normalised
//! form: a rule that changes the form of a value already accepted changes
//! its token, and the old token stays in peers' stores until it expires or
//! the key is rotated. Version 2 changed `name_dob` only (apostrophes join
//! instead of splitting; letters with strokes and ligatures are
//! transliterated); [`NormalisationVersion::V1`] is kept so that the v1
//! token of a value can still be made during the transition
//! ([`MatchingKey::hash_with_v1`](super::MatchingKey::hash_with_v1)).

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use super::{MAX_EMAIL_CHARS, MAX_INPUT_CHARS, SelectorError};
use crate::records::vocabulary::SelectorKind;

/// A version of the normalisation rules (`docs/selectors.md`, "Versions").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NormalisationVersion {
    /// The rules of protocol version 1: apostrophes split a name into
    /// tokens; letters without a Unicode decomposition (`Ø`, `Ł`, …) are
    /// refused.
    V1,
    /// Apostrophes are removed, so `O'Neil` and `ONeil` agree; `Ø Æ Œ Ł Đ
    /// Ð Þ Ħ Ŧ Ŋ ẞ` in names are transliterated. Everything else as v1.
    V2,
}

impl NormalisationVersion {
    /// The version every token is made with, unless asked otherwise.
    pub const CURRENT: Self = Self::V2;

    /// The number written in the documentation: 1 or 2.
    pub fn number(self) -> u32 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
        }
    }
}

/// Turns an identifier into its canonical form for `kind` under the
/// current rules ([`NormalisationVersion::CURRENT`]), or says which rule it
/// breaks. The rules are a protocol; see `docs/selectors.md`.
///
/// Normalisation is idempotent: a normalised value normalises to itself.
pub fn normalise(kind: SelectorKind, value: &str) -> Result<String, SelectorError> {
    normalise_as(NormalisationVersion::CURRENT, kind, value)
}

/// [`normalise`] under the rules of `version`. Only `name_dob` differs
/// between versions.
pub fn normalise_as(
    version: NormalisationVersion,
    kind: SelectorKind,
    value: &str,
) -> Result<String, SelectorError> {
    if value.trim().is_empty() {
        return Err(SelectorError::Empty { kind });
    }
    let got = value.chars().count();
    if got > MAX_INPUT_CHARS {
        return Err(SelectorError::TooLong { kind, got });
    }
    // NOTE: e-mail addresses are compared as typed (no fold), and v1
    // accepted them with invisible characters; every other kind refused
    // them already, so here only the message becomes precise.
    if kind != SelectorKind::Email
        && let Some((at, c, name)) = first_invisible(value)
    {
        return Err(SelectorError::Invisible {
            kind,
            code: u32::from(c),
            name,
            at,
        });
    }
    let normalised = match kind {
        SelectorKind::Passport => identifier(kind, value, 5, 20),
        SelectorKind::NationalId => identifier(kind, value, 3, 30),
        SelectorKind::VehiclePlate => identifier(kind, value, 2, 15),
        SelectorKind::BankAccount => identifier(kind, value, 5, 34),
        SelectorKind::Imei => imei(value),
        SelectorKind::Phone => phone(value),
        SelectorKind::Email => email(value),
        SelectorKind::NameDob => name_dob(version, value),
    }?;
    // NOTE: the limit applies before normalisation, so a form longer than
    // it would be refused when normalised again, and normalisation would
    // not be idempotent. Only `name_dob` can grow: some letters become two
    // (`ß` → `SS`, `Æ` → `AE`, `ﬁ` → `FI`). Caught by the idempotence check
    // of the `selector` fuzz harness.
    let got = normalised.chars().count();
    if got > MAX_INPUT_CHARS {
        return Err(SelectorError::TooLongNormalised { kind, got });
    }
    Ok(normalised)
}

/// Invisible formatting characters (General_Category `Cf` that render as
/// nothing), with the name an officer can search for. They arrive with
/// text copied from documents and web pages; the officer cannot see them,
/// so the error names the character and its position.
const INVISIBLE: &[(u32, u32, &str)] = &[
    (0x00AD, 0x00AD, "SOFT HYPHEN"),
    (0x061C, 0x061C, "ARABIC LETTER MARK"),
    (0x180E, 0x180E, "MONGOLIAN VOWEL SEPARATOR"),
    (0x200B, 0x200B, "ZERO WIDTH SPACE"),
    (0x200C, 0x200C, "ZERO WIDTH NON-JOINER"),
    (0x200D, 0x200D, "ZERO WIDTH JOINER"),
    (0x200E, 0x200E, "LEFT-TO-RIGHT MARK"),
    (0x200F, 0x200F, "RIGHT-TO-LEFT MARK"),
    (0x202A, 0x202A, "LEFT-TO-RIGHT EMBEDDING"),
    (0x202B, 0x202B, "RIGHT-TO-LEFT EMBEDDING"),
    (0x202C, 0x202C, "POP DIRECTIONAL FORMATTING"),
    (0x202D, 0x202D, "LEFT-TO-RIGHT OVERRIDE"),
    (0x202E, 0x202E, "RIGHT-TO-LEFT OVERRIDE"),
    (0x2060, 0x2060, "WORD JOINER"),
    (0x2061, 0x2064, "INVISIBLE OPERATOR"),
    (0x2066, 0x2066, "LEFT-TO-RIGHT ISOLATE"),
    (0x2067, 0x2067, "RIGHT-TO-LEFT ISOLATE"),
    (0x2068, 0x2068, "FIRST STRONG ISOLATE"),
    (0x2069, 0x2069, "POP DIRECTIONAL ISOLATE"),
    (0x206A, 0x206F, "DEPRECATED FORMAT CHARACTER"),
    (
        0xFEFF,
        0xFEFF,
        "ZERO WIDTH NO-BREAK SPACE (BYTE ORDER MARK)",
    ),
    (0xE0001, 0xE0001, "LANGUAGE TAG"),
    (0xE0020, 0xE007F, "TAG CHARACTER"),
];

/// The first invisible character of `value`: its position (1-based, in
/// characters), the character and its name.
fn first_invisible(value: &str) -> Option<(usize, char, &'static str)> {
    value.chars().enumerate().find_map(|(i, c)| {
        let code = u32::from(c);
        INVISIBLE
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&code))
            .map(|(_, _, name)| (i + 1, c, *name))
    })
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

/// The apostrophes of names: ' ’ ʼ ‘ ` ´.
fn is_apostrophe(c: char) -> bool {
    matches!(
        c,
        '\'' | '\u{2019}' | '\u{02BC}' | '\u{2018}' | '`' | '\u{00B4}'
    )
}

/// v1 split names at apostrophes as well.
fn is_name_separator_v1(c: char) -> bool {
    is_common_separator(c) || matches!(c, ',' | '\'' | '`' | '\u{2018}' | '\u{2019}' | '\u{02BC}')
}

fn is_name_separator_v2(c: char) -> bool {
    is_common_separator(c) || c == ','
}

/// The letters that Unicode does not decompose into a base letter and a
/// mark, as [`fold`] leaves them (upper case), and the Latin letters they
/// become in v2. The choice follows the v1 rule for letters with marks
/// (`Ö` → `O`, not `OE`): the stroke is dropped like an accent, and a
/// ligature is written as its two letters.
// NOTE: `ĸ` (kra) is not here: Greenlandic replaced it by `Q` in 1973 and
// older texts by `K`, so neither guess can be made for the officer.
fn transliteration(c: char) -> Option<&'static str> {
    Some(match c {
        'Æ' => "AE",
        'Œ' => "OE",
        'Ø' => "O",
        'Ł' => "L",
        'Đ' | 'Ð' => "D",
        'Þ' => "TH",
        'Ħ' => "H",
        'Ŧ' => "T",
        'Ŋ' => "N",
        'ẞ' => "SS",
        _ => return None,
    })
}

/// The name part under `version`, folded and ready to split into tokens.
fn name_letters(version: NormalisationVersion, name: &str) -> String {
    match version {
        NormalisationVersion::V1 => fold(name),
        NormalisationVersion::V2 => {
            // NOTE: apostrophes go before the fold, because NFKD turns `´`
            // into a space and a combining acute; and after it, because it
            // turns the full-width `＇` and `｀` into `'` and `` ` ``.
            let bare: String = name.chars().filter(|c| !is_apostrophe(*c)).collect();
            let mut out = String::with_capacity(bare.len());
            for c in fold(&bare).chars().filter(|c| !is_apostrophe(*c)) {
                match transliteration(c) {
                    Some(latin) => out.push_str(latin),
                    None => out.push(c),
                }
            }
            out
        }
    }
}

fn name_dob(version: NormalisationVersion, value: &str) -> Result<String, SelectorError> {
    let (name, date) = value.rsplit_once('|').ok_or(SelectorError::NameDobShape)?;
    let folded = name_letters(version, name);
    let separator = match version {
        NormalisationVersion::V1 => is_name_separator_v1,
        NormalisationVersion::V2 => is_name_separator_v2,
    };
    let mut tokens: Vec<&str> = folded.split(separator).filter(|t| !t.is_empty()).collect();
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
