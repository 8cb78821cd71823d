//! The `local_cases` tree (case id → local case, never replicated) and its
//! selector index `case_selectors` (index key ‖ case id → empty), written
//! together so that the index never points at a case that says otherwise.
//! The store treats both as opaque bytes; `crate::cases` composes them.

use sled::Transactional;

use super::audit::put_audit;
use super::filters::{Filters, OwnWrite};
use super::{GATE, Store, StoreError, TxResult, tx_error};

/// The local cases of a store: see [`Store::cases`].
#[derive(Clone, Copy)]
pub struct Cases<'a> {
    pub(super) store: &'a Store,
}

impl Cases<'_> {
    /// Writes a local case (never replicated) and moves its selector index
    /// entries from `old_tokens` to `new_tokens`, with its audit entry, in
    /// one durable step. Tokens are opaque index keys (kind, epoch and
    /// token bytes).
    pub(crate) async fn put(
        &self,
        case_id: &str,
        value: &[u8],
        old_tokens: &[Vec<u8>],
        new_tokens: &[Vec<u8>],
        own: Option<&OwnWrite>,
        audit: Vec<u8>,
    ) -> Result<(), StoreError> {
        let store = self.store;
        let gate = GATE.lock().await;
        let generation = {
            let mut w = store.writer.lock().map_err(|_| StoreError::Poisoned)?;
            let entries = w.chain(vec![audit]);
            let index_key = |t: &Vec<u8>| {
                let mut k = t.clone();
                k.extend_from_slice(case_id.as_bytes());
                k
            };
            let trees = &store.trees;
            (
                &trees.local_cases,
                &trees.case_selectors,
                &trees.audit,
                &trees.own_filter,
            )
                .transaction(|(cases, index, aud, filter)| -> TxResult<()> {
                    cases.insert(case_id.as_bytes(), value)?;
                    for t in old_tokens {
                        index.remove(index_key(t))?;
                    }
                    for t in new_tokens {
                        index.insert(index_key(t), &[])?;
                    }
                    if let Some(own) = own {
                        Filters::apply_own(filter, own)?;
                    }
                    put_audit(aud, &entries)?;
                    Ok(())
                })
                .map_err(tx_error)?;
            w.advance_audit(&entries);
            w.generation += 1;
            w.generation
        };
        drop(gate);
        store.make_durable(generation).await
    }

    /// A local case by id.
    pub fn get(&self, case_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .store
            .trees
            .local_cases
            .get(case_id.as_bytes())?
            .map(|v| v.to_vec()))
    }

    /// Every local case.
    pub fn all(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        self.store
            .trees
            .local_cases
            .iter()
            .values()
            .map(|v| v.map(|v| v.to_vec()).map_err(StoreError::from))
            .collect()
    }

    /// Ids of the local cases indexed under `token` (an index key, as given
    /// to [`Cases::put`]).
    pub(crate) fn with_token(&self, token: &[u8]) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for kv in self.store.trees.case_selectors.scan_prefix(token) {
            let (k, _) = kv?;
            if let Some(id) = k
                .get(token.len()..)
                .and_then(|b| std::str::from_utf8(b).ok())
            {
                out.push(id.to_owned());
            }
        }
        Ok(out)
    }
}
