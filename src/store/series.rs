//! Series states: the state of an alert's series (JSON, see
//! `records::lifecycle`) and of MLA requests (`mla:` keys, see
//! `records::mla`). The state a series' first record sets travels in that
//! record's frame (ADR 0010); later states, and MLA request states, are in
//! sled's `series` tree, written with the record that changes them (see
//! `writes`). A lookup asks sled first, then the frame.

use super::{Records, Store, StoreError};
use crate::records::lifecycle::SeriesState;
use crate::records::mla::{self, MlaState};

/// The series states of a store: see [`Store::series`].
#[derive(Clone, Copy)]
pub struct Series<'a> {
    pub(super) store: &'a Store,
}

impl Series<'_> {
    /// The stored state of a series, if any: the latest in sled, else the
    /// one in the frame of the record that opened it.
    pub fn state(&self, series_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.store.trees.series.get(series_id.as_bytes())? {
            return Ok(Some(v.to_vec()));
        }
        Ok(Records { store: self.store }
            .frame_by_id(series_id)?
            .and_then(|f| f.head.series_state))
    }

    /// The state of an alert's series, decoded.
    pub fn decoded(&self, series_id: &str) -> Result<Option<SeriesState>, StoreError> {
        Ok(self.state(series_id)?.and_then(|b| SeriesState::decode(&b)))
    }

    /// The state of an MLA request sent or received here, decoded.
    pub fn mla(&self, request_id: &str) -> Result<Option<MlaState>, StoreError> {
        Ok(self
            .state(&mla::key(request_id))?
            .and_then(|b| MlaState::decode(&b)))
    }

    /// Every state whose key starts with `prefix` (e.g. MLA requests).
    pub(crate) fn with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.store.trees.series.scan_prefix(prefix.as_bytes()) {
            let (k, v) = kv?;
            out.push((String::from_utf8_lossy(&k).into_owned(), v.to_vec()));
        }
        Ok(out)
    }
}
