//! Verifying a pulled batch: every record's signature and body, spread over
//! the machine's cores, since Ed25519 verification is what bounds how fast
//! a node replicates.

use crate::trust::roster::Roster;
use crate::trust::verify::{self, Rejection};
use crate::wire::PullBatch;

/// A batch whose records went through [`verify::verify`].
pub(super) struct VerifiedBatch {
    pub(super) records: Vec<Result<verify::VerifiedRecord, Rejection>>,
    pub(super) high_water: u64,
    pub(super) head: u64,
}

/// Below this many records a batch is verified on one thread.
const PARALLEL_THRESHOLD: usize = 32;

/// Verifies every record of a batch, spreading the signatures over the
/// machine's cores (the Ed25519 verification is the replication floor).
pub(super) fn verify_batch(roster: &Roster, batch: PullBatch) -> VerifiedBatch {
    let envelopes = batch.records;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let records = if envelopes.len() < PARALLEL_THRESHOLD || threads == 1 {
        envelopes
            .iter()
            .map(|e| verify::verify(roster, e))
            .collect()
    } else {
        let chunk = envelopes.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = envelopes
                .chunks(chunk)
                .map(|part| {
                    let handle = scope.spawn(move || {
                        part.iter()
                            .map(|e| verify::verify(roster, e))
                            .collect::<Vec<_>>()
                    });
                    (part.len(), handle)
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|(len, h)| {
                    // A panicking verifier must not shift the results: its
                    // records count as unverified.
                    h.join().unwrap_or_else(|_| {
                        (0..len)
                            .map(|_| Err(Rejection::BadBody("verification failed".into())))
                            .collect()
                    })
                })
                .collect()
        })
    };
    VerifiedBatch {
        records,
        high_water: batch.high_water,
        head: batch.head,
    }
}
