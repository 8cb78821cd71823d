//! Where a query's time goes: one member's share of the OPRF work timed
//! alone, and the query's calls made with each member's share on a task
//! of its own, to compare with `CaseIndex::query`, which polls every
//! member's share within the one task of the agency call.

use std::time::Instant;

use anyhow::{Context, bail};
use tokio::task::JoinSet;

use enlace::components::Components;
use enlace::records::model::NodeId;
use enlace::records::oprf::{self, Blinded, SecretKey};
use enlace::records::selector::normalise;
use enlace::records::vocabulary::SelectorKind;
use enlace::testing::RunningNode;
use enlace::wire::pb::v1 as pb;
use enlace::wire::{ConfirmRequest, EvaluateRequest, Reach};

use super::{JUSTIFICATION, QUERIER, SELECTORS};
use crate::bench::report::{ms, percentile};
use crate::bench::rpc;
use crate::failure::Spelled;

/// One member's share of a query's OPRF work, on one thread: medians, ms.
pub(super) struct OprfCost {
    /// The querier blinds [`SELECTORS`] identifiers for one member.
    pub(super) blind_ms: f64,
    /// The member evaluates them, with its proof.
    pub(super) evaluate_ms: f64,
    /// The querier checks the proof and unblinds.
    pub(super) finalize_ms: f64,
}

impl OprfCost {
    /// Repetitions timed; the median is kept.
    pub(super) const REPS: usize = 50;

    pub(super) fn measure() -> anyhow::Result<Self> {
        let (key, _) = SecretKey::generate(1).spelled()?;
        let public = key.public();
        let (mut blind, mut evaluate, mut finalize) = (Vec::new(), Vec::new(), Vec::new());
        for rep in 0..Self::REPS {
            let inputs = (0..SELECTORS)
                .map(|i| oprf::input(SelectorKind::Passport, &format!("ZB{rep:04}{i:03}")))
                .collect();
            let t = Instant::now();
            let blinded = Blinded::new(inputs).spelled()?;
            blind.push(ms(t.elapsed()));
            let t = Instant::now();
            let (elements, proof) = key.evaluate(&blinded.elements).spelled()?;
            evaluate.push(ms(t.elapsed()));
            let elements: Vec<Vec<u8>> = elements.iter().map(|e| e.to_vec()).collect();
            let t = Instant::now();
            std::hint::black_box(blinded.finalize(&elements, &proof, &public).spelled()?);
            finalize.push(ms(t.elapsed()));
        }
        Ok(Self {
            blind_ms: median(blind),
            evaluate_ms: median(evaluate),
            finalize_ms: median(finalize),
        })
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(&v, 50.0)
}

/// The oblivious calls of a query, made by the bench on the querier's
/// behalf (its components: its mTLS clients, its view of the filters, the
/// roster's keys of epoch 1) with each member's share on a task of its
/// own: blind, Evaluate, check the proof and unblind, look in the filter,
/// Confirm on a hit. No catch-up and no audit at the querier (the members
/// audit as usual). Its time in ms, once every answer is in and checked.
pub(super) async fn spawned(
    querier: &RunningNode,
    holder: &NodeId,
    asked: &[pb::SelectorValue],
    round: u64,
) -> anyhow::Result<f64> {
    let ids: Vec<(SelectorKind, String)> = asked
        .iter()
        .map(|v| {
            let kind = SelectorKind::from_wire(v.kind).context("a bench selector's kind")?;
            Ok((kind, normalise(kind, &v.value).spelled()?))
        })
        .collect::<anyhow::Result<_>>()?;
    let roster = querier.components.trust.roster();
    let started = Instant::now();
    let mut shares = JoinSet::new();
    for m in roster.members().filter(|m| m.id != querier.id) {
        let key = *m.oprf_key(1).context("a member without an OPRF key")?;
        let (node, peer, ids) = (querier.components.clone(), m.id.clone(), ids.clone());
        let query_id = format!("q-bench-{round}");
        shares.spawn(async move {
            let hit = one_share(&node, &peer, key, &ids, query_id).await?;
            anyhow::Ok((peer, hit))
        });
    }
    while let Some(done) = shares.join_next().await {
        let (peer, hit) = done.spelled()??;
        if hit != (peer == *holder) {
            bail!("the bench's own fan-out: {peer} answered hit = {hit}");
        }
    }
    Ok(ms(started.elapsed()))
}

/// One member's share of [`spawned`]: whether it confirmed a hit.
async fn one_share(
    node: &Components,
    peer: &NodeId,
    key: oprf::PublicKey,
    ids: &[(SelectorKind, String)],
    query_id: String,
) -> anyhow::Result<bool> {
    let inputs = ids.iter().map(|(k, v)| oprf::input(*k, v)).collect();
    let blinded = Blinded::new(inputs).spelled()?;
    let mut client = node
        .peers
        .client(peer)
        .map_err(|r| anyhow::anyhow!("cannot reach {peer}: {r:?}"))?;
    let requested_by = format!("{QUERIER}-operator");
    let (elements, proof, _) = client
        .evaluate(EvaluateRequest {
            query_id: query_id.clone(),
            epoch: key.epoch,
            blinded: blinded.elements.clone(),
            justification: JUSTIFICATION.to_owned(),
            requested_by: requested_by.clone(),
        })
        .await
        .map_err(rpc)?;
    let entries = blinded.finalize(&elements, &proof, &key).spelled()?;
    let filters = node.store.filters();
    let mut found = Vec::new();
    for e in entries {
        if filters.peer_holds(peer, key.epoch, &e.entry).spelled()? {
            found.push(e);
        }
    }
    if found.is_empty() {
        return Ok(false);
    }
    let answer = client
        .confirm(ConfirmRequest {
            query_id,
            epoch: key.epoch,
            entries: found,
            justification: JUSTIFICATION.to_owned(),
            requested_by,
        })
        .await
        .map_err(rpc)?;
    Ok(answer.hits.iter().any(|h| *h))
}
