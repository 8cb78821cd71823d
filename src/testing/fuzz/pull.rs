//! The `pull_batch` target: a Pull batch, and what the replicator does with
//! it before storing. Its own file, as each target is: see [`super`] for
//! what every target asserts and the fixtures they share.

use std::collections::HashMap;

use prost::Message;

use super::records::check_verified;
use super::records::resign_record;
use super::{NOW_MS, PEER, THIS_NODE, fixture, node};
use crate::records::lifecycle::{self, Mode, SeriesState, Tombstone};
use crate::records::mla::{self, MlaState};
use crate::trust::verify;
use crate::wire::PullBatch;
use crate::wire::pb::v1 as pb;

/// A `PullBatch` from peer `gt` to `hn`: decoded, every record verified
/// (as sent, and signed by the member it names), then taken through the
/// replicator's checks that need no store, in its order
/// (`exchange::sync::apply`: origin, seq window, entitlement, then the
/// series or MLA state carried along the batch, and the tombstone of
/// content that has already expired).
pub fn pull_batch(data: &[u8]) {
    let fx = fixture();
    let Ok(msg) = pb::PullBatch::decode(data) else {
        return;
    };
    let batch = PullBatch::from(msg.clone());
    assert_eq!(pb::PullBatch::from(&batch), msg, "PullBatch conversion");
    let peer = node(PEER);
    let this = node(THIS_NODE);
    let high_water = batch.high_water;
    let mut last_seq = 0u64;
    let mut pinned: Option<u64> = None;
    let mut series: HashMap<String, SeriesState> = HashMap::new();
    let mut mla_states: HashMap<String, MlaState> = HashMap::new();
    for envelope in &batch.records {
        if let Ok(v) = verify::verify(&fx.roster, envelope) {
            check_verified(fx, envelope, &v);
        }
        let resigned = resign_record(fx, &envelope.body);
        let v = match verify::verify(&fx.roster, &resigned) {
            Ok(v) => v,
            Err(_) => {
                pinned.get_or_insert(last_seq);
                continue;
            }
        };
        check_verified(fx, &resigned, &v);
        let seq = v.body.seq;
        if v.body.origin != peer || seq <= last_seq || seq > high_water {
            pinned.get_or_insert(last_seq);
            continue;
        }
        if !v.body.distribution.includes(&this) {
            last_seq = seq;
            continue;
        }
        let admitted = if v.body.roster_index().is_some() {
            Ok(())
        } else if v.body.kind.is_mla() {
            let key = mla::key(v.body.series_id());
            mla::next(mla_states.get(&key), &v.body).map(|after| {
                mla_states.insert(key, after);
            })
        } else {
            let id = v.body.series_id().to_owned();
            lifecycle::next(series.get(&id), &v.body, Mode::Recipient).map(|after| {
                series.insert(id, after);
            })
        };
        if admitted.is_ok()
            && let Some(at) = lifecycle::expires_at(&v.body)
            && at <= NOW_MS
        {
            let t = Tombstone::of(&v.body, &v.envelope, at, NOW_MS);
            assert_eq!(Tombstone::decode(&t.encode()).as_ref(), Some(&t));
        }
        assert!(seq > last_seq && seq <= high_water);
        last_seq = seq;
    }
    let cursor = pinned.map_or(high_water, |p| p.min(high_water));
    assert!(cursor <= high_water && last_seq <= high_water);
}
