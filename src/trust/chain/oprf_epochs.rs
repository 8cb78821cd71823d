//! The link rule for members' OPRF epochs: once retired, an epoch never
//! comes back, and an epoch keeps its key.
//!
//! Why: a node treats an epoch of member M as retired when the roster in
//! force lists a later epoch of M and not this one
//! (`crate::cases::retire`), and then drops every filter entry of that
//! epoch and refuses that epoch's changes for good. That is irreversible,
//! so it is safe only if no later version lists the epoch again, under
//! any key; and a filter built under an epoch's key means nothing under
//! another key of the same epoch. For every member present in both
//! versions, `next` therefore:
//! 1. keeps the public key of every epoch listed in both;
//! 2. lists a new epoch only if it is greater than every epoch the member
//!    listed in `current`;
//! 3. still lists the member's greatest epoch of `current`, or a greater
//!    one, if `current` listed any (without this, rule 2 comparing
//!    neighbours only, `{1,2,3}` → `{1,3}` → `{1}` → `{1,2}` would bring
//!    the retired epoch 2 back, under any key).
//!
//! Together they make rule 2 hold along the whole chain: a member's
//! greatest listed epoch never decreases while it stays a member, and a
//! new epoch is greater than every epoch the member ever listed. A member
//! new in `next`, or removed from it, is not constrained: a member removed
//! and later re-added under the same id may list old epochs again
//! (docs/roster.md, "OPRF epochs").

use std::fmt;

use super::Refusal;
use crate::trust::roster::Roster;

/// Which of the rules a version breaks, with what the remedy needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OprfEpochRule {
    /// The epoch is listed in both versions with different public keys.
    KeepsKey {
        /// The member's greatest epoch in the previous version.
        latest: u32,
    },
    /// The epoch is new, and not greater than every epoch listed before.
    Forward {
        /// The member's greatest epoch in the previous version.
        latest: u32,
    },
    /// The member no longer lists its greatest epoch of the previous
    /// version nor a greater one; the refusal's epoch is that greatest.
    KeepsLatest,
}

impl fmt::Display for OprfEpochRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KeepsKey { latest } => write!(
                f,
                "its public key differs from the one the previous version lists \
                 (rule: an epoch keeps its key); nodes hold filters built under the key \
                 the epoch first had, so list the new key under a new epoch, greater than {latest}"
            ),
            Self::Forward { latest } => write!(
                f,
                "the previous version does not list it and it is not greater than the \
                 member's latest epoch {latest} (rule: a new epoch is greater than every \
                 epoch listed before); an epoch below the latest that is not listed is \
                 retired for good, so list the key under an epoch greater than {latest}"
            ),
            Self::KeepsLatest => write!(
                f,
                "the member's greatest epoch in the previous version is not listed, nor a \
                 greater one (rule: a member's latest epoch stays listed until a greater one \
                 replaces it); keep this epoch's key listed, or list a new one under a \
                 greater epoch"
            ),
        }
    }
}

/// Whether `next` keeps the OPRF epoch rules towards `current`, for every
/// member listed in both; the first breach found (members by id, epochs
/// ascending).
pub fn check(current: &Roster, next: &Roster) -> Result<(), Refusal> {
    let version = next.position.version;
    for after in next.members() {
        let Some(before) = current.member(&after.id) else {
            continue;
        };
        let Some(latest) = before.oprf_keys.iter().map(|k| k.epoch).max() else {
            continue;
        };
        let refuse = |epoch, rule| Refusal::OprfEpoch {
            version,
            member: after.id.clone(),
            epoch,
            rule,
        };
        if after.oprf_keys.iter().all(|k| k.epoch < latest) {
            return Err(refuse(latest, OprfEpochRule::KeepsLatest));
        }
        for key in &after.oprf_keys {
            match before.oprf_key(key.epoch) {
                Some(old) if old.key != key.key => {
                    return Err(refuse(key.epoch, OprfEpochRule::KeepsKey { latest }));
                }
                Some(_) => {}
                None if key.epoch <= latest => {
                    return Err(refuse(key.epoch, OprfEpochRule::Forward { latest }));
                }
                None => {}
            }
        }
    }
    Ok(())
}
