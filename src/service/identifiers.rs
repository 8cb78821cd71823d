//! Where an agency's identifiers go once a request is stored: into this
//! node's match filter (`crate::cases`), only for alerts to all members
//! (a filter change right after an alert for named members would tell
//! every other member it exists), and the change published before the
//! request is answered, so that a query that follows finds it. The record
//! and its identifiers are two writes: a node that stops between them has
//! not answered, and the agency's retry with the same idempotency key
//! (the publication `already_published`) writes the identifiers again.

use tonic::{Response, Status};

use super::agency::AgencyService;
use super::status;
use crate::cases::Identifier;
use crate::wire::pb::v1 as pb;

impl AgencyService {
    /// Gives the alert series a publication stored the identifiers `ids`
    /// in this node's match filter (`None`: they leave it). Nothing for a
    /// dry run, or on a node without an OPRF key.
    pub(super) async fn alert_identifiers(
        &self,
        answer: &Response<pb::PublishResponse>,
        ids: Option<&[Identifier]>,
    ) -> Result<(), Status> {
        let r = answer.get_ref();
        if r.validated_only || r.series_id.is_empty() || self.node().cases.oprf.is_none() {
            return Ok(());
        }
        if ids.is_some_and(<[Identifier]>::is_empty) {
            return Ok(());
        }
        // NOTE: only an alert to all members: every member holds the filter,
        // so a change to it right after an alert for named members would
        // tell the others that such an alert exists, and a hit would tell
        // them what it is about.
        let to_all = self
            .node()
            .store
            .series()
            .decoded(&r.series_id)
            .map_err(status)?
            .is_some_and(|s| s.recipients.is_empty());
        let ids = if to_all { ids } else { None };
        self.node()
            .cases
            .put_own_source(&crate::cases::alert_source(&r.series_id), ids)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        self.filter_changed().await;
        Ok(())
    }

    /// Publishes the match filter change a request made, before the
    /// request is answered: a query that follows finds it. The change is
    /// durable already; should publishing fail, the node's filter duty
    /// retries, and the request still succeeded.
    pub(super) async fn filter_changed(&self) {
        if self.node().cases.oprf.is_none() {
            return;
        }
        if let Err(error) = self.node().publish_filter(false).await {
            tracing::warn!(%error, "cannot publish the match filter change now; the filter duty retries");
        }
    }
}
