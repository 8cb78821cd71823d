//! The agency-facing `Agency` service: what a national case-management
//! system or the CLI uses to publish and read records.
//!
//! Every request carries the client's verified identity (its certificate's
//! common name); it is the actor written to the logs.

use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{IntoStatus, identity, status};
use crate::model::wire;
use crate::model::{FieldError, NodeId, RecordKind, ValidationErrors};
use crate::node::NodeState;
use crate::pb::v1 as pb;
use crate::pb::v1::agency_server::Agency;
use crate::store::StoredRecord;
use crate::tls::Identity;

/// Records per list page when the client does not say.
const DEFAULT_LIST_LIMIT: u32 = 1000;
/// Most records per list page.
const MAX_LIST_LIMIT: u32 = 10_000;
/// Records read from the store per step of a watch.
const WATCH_STEP: usize = 256;

pub struct AgencyService {
    state: Arc<NodeState>,
    stop: watch::Receiver<bool>,
}

impl AgencyService {
    pub fn new(state: Arc<NodeState>, stop: watch::Receiver<bool>) -> Self {
        Self { state, stop }
    }
}

fn client<T>(req: &Request<T>) -> Result<String, Status> {
    match identity(req)? {
        Identity::Client(name) => Ok(name),
        Identity::Peer(_) => Err(Status::permission_denied(
            "the agency API is for agency clients",
        )),
    }
}

fn invalid(field: &str, rule: impl Into<String>) -> Status {
    Status::invalid_argument(ValidationErrors(vec![FieldError::new(field, rule)]).to_string())
}

fn parse_origin(origin: &str) -> Result<Option<NodeId>, Status> {
    if origin.is_empty() {
        return Ok(None);
    }
    NodeId::parse(origin)
        .map(Some)
        .map_err(|rule| invalid("origin", rule))
}

/// The view of a stored record, re-verified under the current roster.
/// A record that no longer verifies (e.g. its key was removed from the
/// roster) is not shown.
pub(crate) fn view(state: &NodeState, record: &StoredRecord) -> Option<pb::RecordView> {
    let verified = match state.open_stored(record) {
        Ok(v) => v,
        Err(rejection) => {
            tracing::warn!(origin = %record.origin, seq = record.seq, %rejection, "stored record no longer verifies; hidden");
            return None;
        }
    };
    let body = verified.body;
    let kind = match body.kind {
        RecordKind::Alert(a) => pb::record_view::Kind::Alert(wire::alert_to_pb(&a)),
    };
    Some(pb::RecordView {
        record_id: body.record_id,
        origin: body.origin.to_string(),
        seq: body.seq,
        created_at_ms: body.created_at_ms,
        key_id: verified.key_id,
        position: record.position,
        distribution: Some(wire::distribution_to_pb(&body.distribution)),
        kind: Some(kind),
    })
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::RecordView, Status>> + Send>>;

#[tonic::async_trait]
impl Agency for AgencyService {
    #[tracing::instrument(skip_all, fields(node = %self.state.id, client))]
    async fn publish_alert(
        &self,
        request: Request<pb::PublishAlertRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let actor = client(&request)?;
        tracing::Span::current().record("client", actor.as_str());
        let req = request.into_inner();
        let alert = req
            .alert
            .map(wire::alert_from_pb)
            .ok_or_else(|| invalid("alert", "is required"))?;
        let stored = self
            .state
            .publish(RecordKind::Alert(alert), &req.to)
            .await
            .map_err(status)?;
        let record_id = self
            .state
            .open_stored(&stored)
            .map(|v| v.body.record_id)
            .map_err(|e| Status::internal(format!("published record does not verify: {e}")))?;
        tracing::info!(actor = %actor, record_id = %record_id, "alert published");
        Ok(Response::new(pb::PublishResponse {
            record_id,
            origin: stored.origin.to_string(),
            seq: stored.seq,
        }))
    }

    async fn get_record(
        &self,
        request: Request<pb::GetRecordRequest>,
    ) -> Result<Response<pb::RecordView>, Status> {
        client(&request)?;
        let id = request.into_inner().record_id;
        if id.is_empty() {
            return Err(invalid("record_id", "is required"));
        }
        let stored = self
            .state
            .store
            .get_by_id(&id)
            .map_err(status)?
            .ok_or_else(|| Status::not_found(format!("record {id} is not held by this node")))?;
        view(&self.state, &stored)
            .map(Response::new)
            .ok_or_else(|| {
                Status::not_found(format!("record {id} no longer verifies and is not shown"))
            })
    }

    async fn list_records(
        &self,
        request: Request<pb::ListRecordsRequest>,
    ) -> Result<Response<pb::ListRecordsResponse>, Status> {
        client(&request)?;
        let req = request.into_inner();
        let origin = parse_origin(&req.origin)?;
        let limit = match req.limit {
            0 => DEFAULT_LIST_LIMIT,
            n if n > MAX_LIST_LIMIT => {
                return Err(invalid(
                    "limit",
                    format!("must be at most {MAX_LIST_LIMIT}"),
                ));
            }
            n => n,
        };
        let (stored, last) = self
            .state
            .store
            .list(req.after_position, limit as usize, origin.as_ref())
            .map_err(status)?;
        let records = stored.iter().filter_map(|r| view(&self.state, r)).collect();
        Ok(Response::new(pb::ListRecordsResponse {
            records,
            last_position: last,
        }))
    }

    type WatchRecordsStream = WatchStream;

    async fn watch_records(
        &self,
        request: Request<pb::WatchRecordsRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        client(&request)?;
        let req = request.into_inner();
        let origin = parse_origin(&req.origin)?;
        let (tx, rx) = mpsc::channel(64);
        let state = self.state.clone();
        let mut stop = self.stop.clone();
        let mut after = req.after_position;
        tokio::spawn(async move {
            let mut changes = state.store.subscribe();
            loop {
                changes.borrow_and_update();
                loop {
                    let (stored, last) = match state.store.list(after, WATCH_STEP, origin.as_ref())
                    {
                        Ok(v) => v,
                        Err(e) => {
                            let _ = tx.send(Err(e.into_status())).await;
                            return;
                        }
                    };
                    if last == after {
                        break;
                    }
                    after = last;
                    for r in &stored {
                        if let Some(v) = view(&state, r)
                            && tx.send(Ok(v)).await.is_err()
                        {
                            return;
                        }
                    }
                }
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    _ = crate::node::stopped(&mut stop) => {
                        let _ = tx.send(Err(Status::unavailable(format!("node {} is shutting down", state.id)))).await;
                        return;
                    }
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn list_peers(
        &self,
        request: Request<pb::ListPeersRequest>,
    ) -> Result<Response<pb::ListPeersResponse>, Status> {
        client(&request)?;
        let mut peers = Vec::new();
        for (id, p) in self.state.peer_states() {
            peers.push(pb::PeerStatus {
                node_id: id.to_string(),
                endpoint: p.endpoint,
                connected: p.connected,
                cursor: self.state.store.cursor(&id).map_err(status)?,
                last_error: p.last_error.unwrap_or_default(),
                last_contact_ms: p.last_contact_ms.unwrap_or(0),
                records_received: p.records_received,
                records_rejected: p.records_rejected,
            });
        }
        Ok(Response::new(pb::ListPeersResponse { peers }))
    }
}
