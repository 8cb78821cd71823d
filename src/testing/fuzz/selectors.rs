//! The `selector` target: identifiers normalised and hashed into selectors.
//! Its own file, as each target is: see [`super`] for what every target
//! asserts and the fixtures they share.

use super::fixture;
use crate::records::selector::{NormalisationVersion, normalise_as};
use crate::records::vocabulary::SelectorKind;

/// The input as a value of every selector kind, under both rule versions:
/// what is accepted normalises to itself, hashes to the token of its
/// normalised form, and `KIND=VALUE` parses to the same.
pub fn selector(data: &[u8]) {
    let fx = fixture();
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    for &kind in SelectorKind::ALL {
        for version in [NormalisationVersion::V1, NormalisationVersion::V2] {
            let Ok(once) = normalise_as(version, kind, value) else {
                continue;
            };
            let twice = normalise_as(version, kind, &once);
            assert_eq!(
                twice.as_ref().map_err(ToString::to_string),
                Ok(&once),
                "{} {version:?} is not idempotent on {value:?}",
                kind.code()
            );
            if version == NormalisationVersion::CURRENT {
                let token = fx.matching.hash(kind, value).expect("accepted once");
                assert_eq!(token, fx.matching.token(kind, &once));
                let arg = crate::records::selector::parse_selector_arg(&format!(
                    "{}={value}",
                    kind.code()
                ));
                assert_eq!(arg.ok(), Some((kind, once.clone())));
            }
        }
    }
    let _ = crate::records::selector::parse_selector_arg(value);
}
