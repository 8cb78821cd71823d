//! A member's match filter as records: the entries of its own identifiers
//! under its OPRF key of one epoch (`crate::records::oprf`), published as
//! additions and removals to all members (`docs/selectors.md`). A member
//! holds the union of another's additions minus its removals, applied in
//! the origin's order; the record that completes an epoch's first
//! publication says so, and only then do queries use that epoch.
//!
//! An entry tells nothing to anyone without the origin's key: the filter
//! is not an identifier list in disguise, which is why it may go to every
//! member. What it does show is how many identifiers a member holds, and
//! when that number changes.

use crate::records::oprf::{ENTRY_LEN, Entry};

/// Most entries added, or removed, by one record (256 KiB each way).
pub const MAX_ENTRIES_PER_RECORD: usize = 16_384;

/// A change to the origin's match filter of one epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchFilter {
    pub epoch: u32,
    pub added: Vec<Entry>,
    pub removed: Vec<Entry>,
    /// This record completes the epoch's first publication.
    pub complete: bool,
}

impl MatchFilter {
    /// Entries as the wire carries them: concatenated.
    pub fn pack(entries: &[Entry]) -> Vec<u8> {
        entries.iter().flat_map(|e| e.0).collect()
    }

    /// Concatenated entries back into a list, or why not.
    pub fn unpack(bytes: &[u8]) -> Result<Vec<Entry>, String> {
        if !bytes.len().is_multiple_of(ENTRY_LEN) {
            return Err(format!(
                "must be a multiple of {ENTRY_LEN} bytes (got {})",
                bytes.len()
            ));
        }
        if bytes.len() / ENTRY_LEN > MAX_ENTRIES_PER_RECORD {
            return Err(format!(
                "at most {MAX_ENTRIES_PER_RECORD} entries per record (got {})",
                bytes.len() / ENTRY_LEN
            ));
        }
        Ok(bytes
            .chunks_exact(ENTRY_LEN)
            .filter_map(Entry::from_slice)
            .collect())
    }
}
