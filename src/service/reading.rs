//! The agency API's reads of shared records: one by id, a filtered page,
//! and a live watch that follows the log. Its own file because these only
//! read the record log and shape views; the publishing side of the service
//! (roles, changes, their audit) stays in [`super::agency`].

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::agency::{AgencyService, WatchStream};
use super::view::{Filter, parse_origin, view};
use super::{IntoStatus, invalid, status};
use crate::config::ClientRole;
use crate::wire::pb::v1 as pb;

/// Records per list page when the client does not say.
const DEFAULT_LIST_LIMIT: u32 = 1000;
/// Most records examined by one list call, whatever the filters.
const MAX_EXAMINED: usize = 100_000;
/// Records read from the store per step of a watch.
const WATCH_STEP: usize = 256;

impl AgencyService {
    pub(super) async fn get_record_impl(
        &self,
        request: Request<pb::GetRecordRequest>,
    ) -> Result<Response<pb::RecordView>, Status> {
        self.authorize(&request, ClientRole::Reader)?;
        let id = request.into_inner().record_id;
        if id.is_empty() {
            return Err(invalid("record_id", "is required"));
        }
        let stored = self
            .node()
            .store
            .records()
            .get_by_id(&id)
            .map_err(status)?
            .ok_or_else(|| Status::not_found(format!("record {id} is not held by this node")))?;
        Ok(Response::new(
            view(&self.node().store, &stored, self.node().clock.now_ms())?.view,
        ))
    }

    pub(super) async fn list_records_impl(
        &self,
        request: Request<pb::ListRecordsRequest>,
    ) -> Result<Response<pb::ListRecordsResponse>, Status> {
        self.authorize(&request, ClientRole::Reader)?;
        let req = request.into_inner();
        let filter = Filter::from_request(&req)?;
        // A page at most: what a reader can make the node build and send
        // at once is bounded, whatever it asks for.
        let limit = match req.limit {
            0 => DEFAULT_LIST_LIMIT,
            n => n.min(crate::limits::LIST_RECORDS_PAGE),
        } as usize;
        let now = self.node().clock.now_ms();
        let mut records = Vec::new();
        let mut after = req.after_position;
        let mut examined = 0;
        'pages: loop {
            let (stored, last) = self
                .node()
                .store
                .records()
                .list(after, WATCH_STEP, filter.origin.as_ref())
                .map_err(status)?;
            if last == after {
                break;
            }
            for r in &stored {
                let v = view(&self.node().store, r, now)?;
                after = r.position;
                if filter.matches(&v) {
                    records.push(v.view);
                    if records.len() >= limit {
                        break 'pages;
                    }
                }
            }
            after = last;
            examined += WATCH_STEP;
            if examined >= MAX_EXAMINED {
                break;
            }
        }
        Ok(Response::new(pb::ListRecordsResponse {
            records,
            last_position: after,
        }))
    }

    pub(super) async fn watch_records_impl(
        &self,
        request: Request<pb::WatchRecordsRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        self.authorize(&request, ClientRole::Reader)?;
        let req = request.into_inner();
        let origin = parse_origin(&req.origin)?;
        let (tx, rx) = mpsc::channel(64);
        let node = self.node().clone();
        let mut stop = self.stop_signal();
        let mut after = req.after_position;
        tokio::spawn(async move {
            let mut changes = node.store.subscribe();
            loop {
                changes.borrow_and_update();
                loop {
                    let (stored, last) =
                        match node
                            .store
                            .records()
                            .list(after, WATCH_STEP, origin.as_ref())
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
                    let now = node.clock.now_ms();
                    for r in &stored {
                        let item = view(&node.store, r, now).map(|v| v.view);
                        // Match filters are not a reading (see `Filter::matches`).
                        if item.as_ref().is_ok_and(|v| v.kind_name == "match_filter") {
                            continue;
                        }
                        if tx.send(item).await.is_err() {
                            return;
                        }
                    }
                }
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    _ = crate::shutdown::stopped(&mut stop) => {
                        let _ = tx.send(Err(Status::unavailable(format!("node {} is shutting down", node.id)))).await;
                        return;
                    }
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
