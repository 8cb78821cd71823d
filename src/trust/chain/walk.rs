//! Walking a whole chain: from version 1 or an anchor, each next version
//! in order, as a node does at start, at a reload and when it catches up.
//! Its own file because it decides what happens with versions that
//! arrive together, twice, out of order or in conflict; the rules for one
//! step are [`super::verify_successor`]'s.

use super::{Refusal, Signed, hex, verify_start, verify_successor};

/// The result of walking a chain: the versions verified, in order from
/// the start, and where and why the walk stopped early, if it did.
#[derive(Debug, Clone)]
pub struct Walk {
    pub chain: Vec<Signed>,
    /// The version that could not follow, and why. A conflict halts the
    /// walk before the conflicting number: neither version is adopted.
    pub stopped: Option<(u64, Refusal)>,
    /// With a conflict, the two versions of one number, as evidence.
    pub conflict: Vec<Signed>,
}

impl Walk {
    /// The newest verified version.
    pub fn head(&self) -> &Signed {
        &self.chain[self.chain.len() - 1]
    }
}

/// Verifies a whole chain: from the anchored version (or version 1), each
/// next version in order. The versions may come in any order, more than
/// once, and may include ones before the anchor (ignored). Expiry is not
/// checked: a node whose newest version expired keeps its links
/// (docs/roster.md); the caller warns. Fails only when the start cannot
/// be verified; a later version that does not verify stops the walk.
pub fn verify_chain(
    mut versions: Vec<Signed>,
    anchor: Option<&[u8; 32]>,
) -> Result<Walk, (u64, Refusal)> {
    versions.sort_by_key(|s| s.version.number());
    let start = match anchor {
        Some(a) => versions
            .iter()
            .position(|s| s.version.hash() == *a)
            .ok_or((0, Refusal::AnchorMismatch { anchor: hex(a) }))?,
        None => versions
            .iter()
            .position(|s| s.version.number() == 1)
            .ok_or((0, Refusal::Empty))?,
    };
    let rest = versions.split_off(start);
    let mut by_number: std::collections::BTreeMap<u64, Vec<Signed>> = Default::default();
    for s in rest {
        let same = by_number.entry(s.version.number()).or_default();
        match same
            .iter_mut()
            .find(|o| o.version.hash() == s.version.hash())
        {
            // The same version from two places: pool the approvals.
            Some(o) => {
                for a in s.approvals {
                    if !o.approvals.contains(&a) {
                        o.approvals.push(a);
                    }
                }
            }
            None => same.push(s),
        }
    }
    let mut numbers = by_number.into_iter();
    let Some((n, firsts)) = numbers.next() else {
        return Err((0, Refusal::Empty));
    };
    let mut refusal = None;
    let mut first = None;
    for candidate in firsts {
        match verify_start(&candidate, anchor, None) {
            Ok(()) if first.is_none() => first = Some(candidate),
            Ok(()) => {
                // Two versions 1, each with its own threshold.
                let existing: &Signed = first.as_ref().unwrap_or(&candidate);
                return Err((
                    n,
                    Refusal::Conflict {
                        version: n,
                        first: hex(&existing.version.hash()),
                        second: hex(&candidate.version.hash()),
                    },
                ));
            }
            Err(r) => refusal = refusal.or(Some(r)),
        }
    }
    let Some(first) = first else {
        return Err((n, refusal.unwrap_or(Refusal::Empty)));
    };
    let mut walk = Walk {
        chain: vec![first],
        stopped: None,
        conflict: Vec::new(),
    };
    for (n, candidates) in numbers {
        let current = walk.head().version.roster.clone();
        if n != current.position.version + 1 {
            let got = candidates[0].version.number();
            walk.stopped = Some((
                got,
                Refusal::Skip {
                    current: current.position.version,
                    got,
                },
            ));
            break;
        }
        let mut valid = Vec::new();
        let mut last_refusal = None;
        for c in candidates {
            match verify_successor(&current, &c, None) {
                Ok(_) => valid.push(c),
                Err(r) => last_refusal = Some(r),
            }
        }
        match valid.len() {
            0 => {
                walk.stopped = last_refusal.map(|r| (n, r));
                break;
            }
            1 => walk.chain.push(valid.remove(0)),
            _ => {
                walk.stopped = Some((
                    n,
                    Refusal::Conflict {
                        version: n,
                        first: hex(&valid[0].version.hash()),
                        second: hex(&valid[1].version.hash()),
                    },
                ));
                walk.conflict = valid;
                break;
            }
        }
    }
    Ok(walk)
}
