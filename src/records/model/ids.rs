//! Who and what a record names: member node ids, the distribution that
//! says which members may receive a record, and record ids, which carry
//! their origin's node id.

use std::collections::BTreeSet;
use std::fmt;

use super::{FieldError, MAX_RECIPIENTS, ValidationErrors};

/// A member's node id: `gt`, `hn`, `gt-mp`, ...
///
/// 1 to 32 characters of lower-case ASCII letters, digits and `-`, starting
/// with a letter and not ending with `-`. It appears in SPIFFE ids, store
/// keys and record ids, so the alphabet is deliberately small.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(String);

impl NodeId {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > 32 {
            return Err(format!("node id {s:?} must be 1 to 32 characters long"));
        }
        if !s.starts_with(|c: char| c.is_ascii_lowercase()) || s.ends_with('-') {
            return Err(format!(
                "node id {s:?} must start with a lower-case letter and not end with '-'"
            ));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(format!("node id {s:?} may contain only a-z, 0-9 and '-'"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who may receive a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Distribution {
    /// Every member of the federation.
    AllMembers,
    /// Only these members (never empty).
    Named(BTreeSet<NodeId>),
}

impl Distribution {
    /// Whether `node` may receive a record with this distribution.
    pub(crate) fn includes(&self, node: &NodeId) -> bool {
        match self {
            Distribution::AllMembers => true,
            Distribution::Named(members) => members.contains(node),
        }
    }

    /// Builds a distribution from a list of recipient ids; empty means all.
    pub(crate) fn from_recipients<S: AsRef<str>>(
        field: &str,
        to: &[S],
    ) -> Result<Self, ValidationErrors> {
        if to.is_empty() {
            return Ok(Distribution::AllMembers);
        }
        let mut errors = Vec::new();
        let mut members = BTreeSet::new();
        if to.len() > MAX_RECIPIENTS {
            errors.push(FieldError::new(
                field,
                format!("at most {MAX_RECIPIENTS} recipients"),
            ));
        }
        for (i, id) in to.iter().enumerate() {
            match NodeId::parse(id.as_ref()) {
                Ok(id) => {
                    if !members.insert(id.clone()) {
                        errors.push(FieldError::new(
                            format!("{field}[{i}]"),
                            format!("recipient {id} is listed twice"),
                        ));
                    }
                }
                Err(rule) => errors.push(FieldError::new(format!("{field}[{i}]"), rule)),
            }
        }
        ValidationErrors(errors).into_result()?;
        Ok(Distribution::Named(members))
    }

    /// Recipient ids as strings, empty for all members.
    pub fn recipients(&self) -> Vec<String> {
        match self {
            Distribution::AllMembers => Vec::new(),
            Distribution::Named(m) => m.iter().map(ToString::to_string).collect(),
        }
    }
}

/// Makes a new record id for `origin` from 8 random bytes.
pub fn new_record_id(origin: &NodeId, random: [u8; 8]) -> String {
    format!("{origin}-{:016x}", u64::from_be_bytes(random))
}

/// Checks the form of a record id of any origin: `<node id>-<16 hex>`.
pub fn check_record_id_format(id: &str) -> Result<(), String> {
    match id.rsplit_once('-') {
        Some((origin, _)) => match NodeId::parse(origin) {
            Ok(origin) => check_record_id(id, &origin),
            Err(_) => Err(format!(
                "{id:?} is not a record id (\"<origin>-<16 hex digits>\")"
            )),
        },
        None => Err(format!(
            "{id:?} is not a record id (\"<origin>-<16 hex digits>\")"
        )),
    }
}

pub(super) fn check_record_id(id: &str, origin: &NodeId) -> Result<(), String> {
    let ok = id
        .strip_prefix(origin.as_str())
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hex| {
            hex.len() == 16
                && hex
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "must be \"{origin}-\" followed by 16 lower-case hex digits (got {id:?})"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_follow_the_rules() {
        for ok in ["gt", "gt-mp", "a1", "iom"] {
            assert!(NodeId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "GT", "1gt", "gt-", "g_t", "gt mp", &"a".repeat(33)] {
            assert!(NodeId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn distribution_from_recipients() {
        assert_eq!(
            Distribution::from_recipients::<&str>("to", &[]).unwrap(),
            Distribution::AllMembers
        );
        let d = Distribution::from_recipients("to", &["hn", "sv"]).unwrap();
        assert!(d.includes(&NodeId::parse("hn").unwrap()));
        assert!(!d.includes(&NodeId::parse("gt").unwrap()));
        let err = Distribution::from_recipients("to", &["hn", "hn", "X"]).unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
    }

    #[test]
    fn record_ids_carry_their_origin() {
        let gt = NodeId::parse("gt").unwrap();
        let id = new_record_id(&gt, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(id, "gt-0102030405060708");
        assert!(check_record_id(&id, &gt).is_ok());
        assert!(check_record_id(&id, &NodeId::parse("hn").unwrap()).is_err());
        assert!(check_record_id("gt-XYZ", &gt).is_err());
        assert!(check_record_id_format(&id).is_ok());
        assert!(check_record_id_format("gt-mp-0102030405060708").is_ok());
        assert!(check_record_id_format("nope").is_err());
    }
}
