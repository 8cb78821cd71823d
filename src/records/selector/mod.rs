//! Selectors: personal identifiers as keyed tokens, never in clear.
//!
//! A passport number, a telephone number or a name with a date of birth must
//! never leave the agency that holds it. What travels between nodes, and what
//! a node stores in its `selectors` tree, is a *selector token*:
//! HMAC-SHA256 under the federation's **matching key** over the selector kind
//! and the identifier's normalised form. Two agencies that hold the same
//! person's passport obtain the same token and so find each other, while a
//! peer (or anyone who copies a peer's store) learns nothing it could read
//! back without the key.
//!
//! Matching only works if every node turns the same identifier into the same
//! bytes, whatever the spelling, accents, spacing or order in which an
//! officer typed it. The rules in [`normalise`] are therefore part of the
//! protocol, written down with test vectors in `docs/selectors.md`; changing
//! one silently breaks matching across the federation.
//!
//! The matching key is a federation-wide secret shared by all members. It is
//! distinct from the TLS keys (which protect links) and from the Ed25519
//! signing keys (which prove who wrote a record): a leaked matching key lets
//! its holder test guesses against tokens, but it neither impersonates a node
//! nor opens a link, and the other keys reveal nothing about tokens. Keys are
//! numbered by **epoch**; every token carries the epoch of the key that made
//! it so that the federation can rotate the key while nodes still hold the
//! previous one for a while.
//!
//! Errors name the kind and the rule that was broken, never the value: they
//! end up in logs, and a log must not become a list of identifiers.
//!
//! The rules are versioned ([`NormalisationVersion`]): version 2 changed how
//! names with apostrophes are normalised, so during a transition a value
//! whose v1 form differs also gets its v1 token, to keep finding what was
//! hashed before the change (`docs/selectors.md`, "Versions").
//!
//! The module is in four parts: [`normalise`] and its rules per kind
//! (`normalisation`), the matching key and the tokens it makes (`token`),
//! the v1 → v2 transition of queries (`transition`), and the published
//! test vectors with the properties (`tests`).

use std::fmt;
use std::path::PathBuf;

use crate::records::crypto::CryptoError;
use crate::records::vocabulary::SelectorKind;

mod normalisation;
mod token;
mod transition;

pub use normalisation::{NormalisationVersion, normalise, normalise_as, parse_selector_arg};
pub use token::{Hashed, MatchingKey, Token};
pub use transition::QueryTokens;

/// Longest value accepted, in characters (Unicode scalar values), before
/// normalisation.
pub(crate) const MAX_INPUT_CHARS: usize = 256;
/// Longest normalised e-mail address, in characters.
pub(crate) const MAX_EMAIL_CHARS: usize = 254;
/// Shortest matching key, in bytes.
pub(crate) const MIN_KEY_LEN: usize = 32;
/// Length of a generated matching key, in bytes.
pub(crate) const GENERATED_KEY_LEN: usize = 32;

/// A selector that could not be normalised, or a matching key that could not
/// be used.
///
/// Messages name the kind and the rule broken, and may give a length or a
/// count, but never any part of the value itself: they are logged.
#[derive(thiserror::Error)]
pub enum SelectorError {
    #[error("{}: the value is empty", .kind.code())]
    Empty { kind: SelectorKind },
    #[error("{}: longer than {max} characters before normalisation (got {got})", .kind.code(), max = MAX_INPUT_CHARS)]
    TooLong { kind: SelectorKind, got: usize },
    #[error(
        "{}: longer than {max} characters after normalisation (got {got}; letters such as ß, Æ or ﬁ are written as two)",
        .kind.code(),
        max = MAX_INPUT_CHARS
    )]
    TooLongNormalised { kind: SelectorKind, got: usize },
    #[error(
        "{}: invisible character U+{code:04X} ({name}) at character {at}; delete it (it usually comes with copied text)",
        .kind.code()
    )]
    Invisible {
        kind: SelectorKind,
        code: u32,
        name: &'static str,
        /// 1-based, in characters of the whole value.
        at: usize,
    },
    #[error("{}: after normalisation must contain only letters A-Z and digits 0-9", .kind.code())]
    NotAlphanumeric { kind: SelectorKind },
    #[error("{}: after normalisation must be {min} to {max} letters or digits (got {got})", .kind.code())]
    Length {
        kind: SelectorKind,
        min: usize,
        max: usize,
        got: usize,
    },
    #[error("imei: after normalisation must contain only digits 0-9")]
    ImeiNotDigits,
    #[error(
        "imei: after normalisation must be exactly 15 digits (IMEI) or 16 digits (IMEISV) (got {got})"
    )]
    ImeiLength { got: usize },
    #[error(
        "phone: no country code; write the number in international form, starting with '+' or '00' and the country code"
    )]
    PhoneNoCountryCode,
    #[error(
        "phone: must be '+' or '00' followed by digits, with only spaces, '-', '.', '(' and ')' between them"
    )]
    PhoneCharacters,
    #[error("phone: the country code cannot start with 0")]
    PhoneCountryCodeZero,
    #[error("phone: must be '+' followed by 8 to 15 digits (got {got} digits)")]
    PhoneLength { got: usize },
    #[error("email: must contain exactly one '@' (got {got})")]
    EmailAt { got: usize },
    #[error("email: the part before '@' is empty")]
    EmailLocalEmpty,
    #[error("email: the domain after '@' is empty")]
    EmailDomainEmpty,
    #[error("email: the domain after '@' must contain a '.'")]
    EmailDomainDot,
    #[error("email: must not contain whitespace")]
    EmailWhitespace,
    #[error("email: must be at most {max} characters after trimming (got {got})", max = MAX_EMAIL_CHARS)]
    EmailLength { got: usize },
    #[error("name_dob: must be NAME|YYYY-MM-DD (no '|' found)")]
    NameDobShape,
    #[error("name_dob: the name has no letters")]
    NameEmpty,
    #[error("name_dob: names must not contain digits")]
    NameDigits,
    #[error(
        "name_dob: name tokens must be letters A-Z once accents are removed (transliterate other scripts to Latin letters first)"
    )]
    NameLetters,
    #[error("name_dob: the date of birth must be written YYYY-MM-DD")]
    DateFormat,
    #[error("name_dob: the year of birth must be 1900 to 2100")]
    DateYear,
    #[error(
        "name_dob: the date of birth is not a calendar date (month 01-12, day within the month, 29 February only in leap years)"
    )]
    DateInvalid,
    #[error("selector argument must be KIND=VALUE (no '=' found)")]
    ArgumentShape,
    // NOTE: the text before '=' is not echoed either: a mistyped argument
    // such as `X1234567=passport` would otherwise put the value in a log.
    #[error("unknown selector kind; expected one of: {}", kind_list())]
    UnknownKind,
    #[error("matching key must be at least {min} bytes (got {got})", min = MIN_KEY_LEN)]
    KeyTooShort { got: usize },
    #[error("matching key epoch must be 1 or more (0 is what an unset field reads as)")]
    ZeroEpoch,
    #[error("matching key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

// NOTE: `Debug` is the message, so that `{:?}` in a log line or an
// `unwrap()` panic cannot show more than `Display` does.
impl fmt::Debug for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SelectorError({self})")
    }
}

fn kind_list() -> String {
    SelectorKind::ALL
        .iter()
        .map(|k| k.code())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
