//! The agency API's view of the audit log: its entries as stored, and the
//! checkpoints with what each peer witnessed, for `enlace audit verify` and
//! `enlace audit export`. Admin role only; every read is itself audited.

use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::IntoStatus;
use super::agency::{AgencyService, AuditStream};
use crate::audit::checkpoint::Checkpoint;
use crate::audit::keeper::WITNESS_PAGE;
use crate::audit::{Action, Entry};
use crate::config::ClientRole;
use crate::records::model::NodeId;
use crate::wire::pb::v1 as pb;
use crate::wire::{AuditRecovery, MemberKey, SignedCheckpoint, Witness};

/// Entries read from the store per step of a `ReadAudit` stream.
const READ_STEP: usize = 1024;

impl AgencyService {
    pub(super) async fn read_audit_impl(
        &self,
        r: Request<pb::ReadAuditRequest>,
    ) -> Result<Response<AuditStream>, Status> {
        let actor = self.authorize(&r, ClientRole::Admin)?;
        let req = r.into_inner();
        if req.justification.trim().is_empty() {
            return Err(Status::invalid_argument(
                "justification: is required: say why the audit log is read",
            ));
        }
        let node = self.node().clone();
        // The read is on record, and part of what is read.
        let end = node
            .audit
            .record(vec![
                Entry::new(Action::AuditRead, &actor)
                    .justification(&req.justification)
                    .result(format!("entries after {}", req.after)),
            ])
            .await
            .map_err(IntoStatus::into_status)?;
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut after = req.after;
            while after < end {
                let entries = match node.store.audit().entries(after, READ_STEP) {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = tx.send(Err(e.into_status())).await;
                        return;
                    }
                };
                let Some(last) = entries.last().map(|e| e.n) else {
                    return;
                };
                for e in entries {
                    if e.n > end {
                        return;
                    }
                    let item = pb::AuditEntry {
                        n: e.n,
                        hash: e.hash.to_vec(),
                        prev: e.prev.to_vec(),
                        body: e.body,
                    };
                    if tx.send(Ok(item)).await.is_err() {
                        return;
                    }
                }
                after = last;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    pub(super) async fn audit_witnessed_impl(
        &self,
        r: Request<pb::WitnessedRequest>,
    ) -> Result<Response<pb::WitnessedResponse>, Status> {
        let actor = self.authorize(&r, ClientRole::Admin)?;
        let req = r.into_inner();
        if req.justification.trim().is_empty() {
            return Err(Status::invalid_argument(
                "justification: is required: say why the witnesses are read",
            ));
        }
        let node = self.node().clone();
        let member =
            NodeId::parse(&req.node).map_err(|e| Status::invalid_argument(format!("node: {e}")))?;
        if member == node.id {
            return Err(Status::invalid_argument(format!(
                "node: {member} is this node; a node does not witness its own log: ask its peers"
            )));
        }
        if node.trust.roster().member(&member).is_none() {
            return Err(Status::not_found(format!(
                "node: {member} is not a member of the roster in use"
            )));
        }
        let (witnesses, more) = node
            .audit
            .witnessed(&member, req.after_size, req.up_to_size, req.limit as usize)
            .map_err(IntoStatus::into_status)?;
        node.audit
            .record(vec![
                Entry::new(Action::AuditRead, &actor)
                    .counterpart(&member)
                    .justification(&req.justification)
                    .result(format!(
                        "{} witnesses of {member}'s log after size {}",
                        witnesses.len(),
                        req.after_size
                    )),
            ])
            .await
            .map_err(IntoStatus::into_status)?;
        Ok(Response::new(pb::WitnessedResponse {
            witnesses: witnesses.iter().map(Witness::to_pb).collect(),
            more,
            witness: node.id.to_string(),
        }))
    }

    pub(super) async fn audit_checkpoints_impl(
        &self,
        r: Request<pb::AuditCheckpointsRequest>,
    ) -> Result<Response<pb::AuditCheckpointsResponse>, Status> {
        self.authorize(&r, ClientRole::Admin)?;
        let node = self.node();
        let refused: std::collections::BTreeMap<String, String> = if r.get_ref().checkpoint_now {
            node.audit
                .send_checkpoint()
                .await
                .into_iter()
                .map(|(peer, why)| (peer.to_string(), why))
                .collect()
        } else {
            Default::default()
        };
        // A page: own checkpoints above `after`, and the witnesses of the
        // same range of sizes. With checkpoint_now, the page starts at the
        // checkpoint just made, which is what the caller asks about.
        let req = r.get_ref();
        let limit = match req.limit as usize {
            0 => WITNESS_PAGE,
            n => n.min(WITNESS_PAGE),
        };
        let after = if req.checkpoint_now {
            node.store
                .checkpoints()
                .latest(&node.id)
                .map_err(IntoStatus::into_status)?
                .map_or(0, |(size, _)| size.saturating_sub(1))
        } else {
            req.after_size
        };
        let (own, more) = node
            .audit
            .own_checkpoints_between(after, u64::MAX, limit)
            .map_err(IntoStatus::into_status)?;
        let page_end = match own.last() {
            Some(last) if more => Checkpoint::decode(&last.body)
                .map(|c| c.size)
                .map_err(|e| Status::internal(format!("own checkpoint does not decode: {e}")))?,
            _ => 0,
        };
        let own = own.iter().map(SignedCheckpoint::to_pb).collect();
        let anchor = node
            .store
            .audit()
            .anchor()
            .map_err(IntoStatus::into_status)?
            .map(|a| pb::AuditAnchor {
                n: a.n,
                hash: a.hash.to_vec(),
                checkpoint: pb::SignedCheckpoint::decode(a.checkpoint.as_slice()).ok(),
                retention: None,
            });
        let retention = node
            .store
            .audit()
            .retention()
            .map_err(IntoStatus::into_status)?
            .and_then(|bytes| pb::AuditRecovery::decode(bytes.as_slice()).ok());
        let anchor = anchor.map(|a| pb::AuditAnchor { retention, ..a });
        let peers = node
            .audit
            .gather_witnesses_between(after, page_end)
            .await
            .into_iter()
            .map(|(peer, answer)| match answer {
                Ok(witnesses) => pb::PeerWitnesses {
                    refused: refused.get(peer.as_str()).cloned().unwrap_or_default(),
                    peer: peer.to_string(),
                    error: String::new(),
                    witnesses: witnesses.iter().map(Witness::to_pb).collect(),
                },
                Err(error) => pb::PeerWitnesses {
                    refused: refused.get(peer.as_str()).cloned().unwrap_or_default(),
                    peer: peer.to_string(),
                    error,
                    witnesses: Vec::new(),
                },
            })
            .collect();
        Ok(Response::new(pb::AuditCheckpointsResponse {
            own,
            peers,
            keys: node
                .audit
                .key_book()
                .to_keys()
                .iter()
                .map(MemberKey::to_pb)
                .collect(),
            anchor,
            page_end,
            node: node.id.to_string(),
            recoveries: node
                .audit
                .own_recoveries()
                .map_err(IntoStatus::into_status)?
                .iter()
                .map(AuditRecovery::to_pb)
                .collect(),
        }))
    }
}
