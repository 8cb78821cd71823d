//! The gRPC services and the servers that carry them.
//!
//! Two listeners, two trust domains: the peer listener serves
//! [`FederationService`] to roster members; the agency listener serves
//! [`AgencyService`] to clients of the local agency CA, plus gRPC
//! reflection. Both serve the standard health service.
//!
//! This module is the only place where errors become `tonic::Status`
//! (`status`): internal details are logged, and callers get a precise
//! message about their own input.

mod agency;
mod audit;
mod budget;
mod cases;
pub mod client;
mod defaults;
mod federation;
mod identifiers;
pub mod oblivious;
mod pull;
mod reading;
mod roster;
mod statistics;
mod view;

pub use agency::AgencyService;
pub use federation::FederationService;

/// A request field that breaks a rule: `InvalidArgument`, naming the field.
fn invalid(field: &str, rule: impl Into<String>) -> Status {
    invalid_all(crate::records::model::ValidationErrors(vec![
        crate::records::model::FieldError::new(field, rule),
    ]))
}

/// Every broken rule of a request at once: `InvalidArgument`.
fn invalid_all(e: crate::records::model::ValidationErrors) -> Status {
    Status::invalid_argument(e.to_string())
}

/// The peer-facing service's gRPC name, as the health service knows it.
pub(crate) const FEDERATION_SERVICE_NAME: &str =
    crate::wire::pb::v1::federation_server::SERVICE_NAME;

/// Tells the health service that both services are serving, or not.
pub(crate) async fn set_serving(health: &tonic_health::server::HealthReporter, serving: bool) {
    use crate::wire::pb::v1::{agency_server::AgencyServer, federation_server::FederationServer};
    if serving {
        health
            .set_serving::<FederationServer<FederationService>>()
            .await;
        health.set_serving::<AgencyServer<AgencyService>>().await;
    } else {
        health
            .set_not_serving::<FederationServer<FederationService>>()
            .await;
        health
            .set_not_serving::<AgencyServer<AgencyService>>()
            .await;
    }
}

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::Server;
use tonic::{Request, Status};

use crate::components::Components;
use crate::publish::PublishError;
use crate::store::StoreError;
use crate::trust::tls::{self, ConnInfo, Identity};
use crate::wire::pb::v1::agency_server::AgencyServer;
use crate::wire::pb::v1::federation_server::FederationServer;

/// Largest request an agency client may send.
pub const MAX_AGENCY_REQUEST: usize = 1024 * 1024;
/// Largest response message either listener sends.
pub(crate) const MAX_RESPONSE: usize = 8 * 1024 * 1024;

type HealthService<H> = tonic_health::pb::health_server::HealthServer<H>;

/// Maps the errors of the layers below to gRPC statuses.
pub(crate) trait IntoStatus {
    fn into_status(self) -> Status;
}

impl IntoStatus for StoreError {
    fn into_status(self) -> Status {
        tracing::error!(error = %self, "store failure");
        Status::unavailable("the node's store failed; the request was not applied")
    }
}

impl IntoStatus for crate::audit::keeper::WitnessError {
    fn into_status(self) -> Status {
        use crate::audit::keeper::WitnessError;
        match self {
            WitnessError::Store(e) => e.into_status(),
            WitnessError::NotOwn { .. } => Status::permission_denied(self.to_string()),
            WitnessError::Invalid(_) | WitnessError::TooLong { .. } => {
                Status::invalid_argument(self.to_string())
            }
            WitnessError::Shrank { .. }
            | WitnessError::Forked { .. }
            | WitnessError::Roster(_)
            | WitnessError::Recovery(_) => Status::failed_precondition(self.to_string()),
        }
    }
}

impl IntoStatus for crate::governance::GovernanceError {
    fn into_status(self) -> Status {
        match self {
            crate::governance::GovernanceError::Store(e) => e.into_status(),
            crate::governance::GovernanceError::Poisoned => {
                tracing::error!(error = %self, "roster governance failure");
                Status::internal("the node's roster governance failed")
            }
        }
    }
}

impl IntoStatus for PublishError {
    fn into_status(self) -> Status {
        match self {
            PublishError::Invalid(e) => Status::invalid_argument(e.to_string()),
            PublishError::NotFound(what) => Status::not_found(what),
            PublishError::Observer(_) => Status::permission_denied(self.to_string()),
            PublishError::OwnLogBehind { .. } | PublishError::OwnLogUnconfirmed => {
                Status::failed_precondition(self.to_string())
            }
            PublishError::Store(e) => e.into_status(),
            PublishError::Crypto(e) => {
                tracing::error!(error = %e, "signing failure");
                Status::internal("the node could not sign the record")
            }
        }
    }
}

/// Maps any error of the layers below to a status.
pub(crate) fn status(e: impl IntoStatus) -> Status {
    e.into_status()
}

/// The verified identity of the connection a request came on.
pub(crate) fn identity<T>(req: &Request<T>) -> Result<Identity, Status> {
    req.extensions()
        .get::<ConnInfo>()
        .map(|c| c.identity.clone())
        .ok_or_else(|| Status::unauthenticated("no verified client certificate on this connection"))
}

async fn shutdown_signal(mut stop: watch::Receiver<bool>) {
    crate::shutdown::stopped(&mut stop).await;
}

/// How long a connection to either listener may live. Then the server
/// sends GOAWAY: calls in flight may finish within
/// [`MAX_CONNECTION_AGE_GRACE`], and the client opens a new connection,
/// with a new handshake that checks its certificate again. A peer's
/// replicator resumes its pull from its durable cursor.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(4 * 3600);
/// How long calls in flight may go on after [`MAX_CONNECTION_AGE`]
/// before the connection is closed under them (a followed pull stream
/// never ends on its own).
pub const MAX_CONNECTION_AGE_GRACE: Duration = Duration::from_secs(60);

fn server() -> Server {
    Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(15)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        // Bounds the memory one connection can tie up with open streams.
        .max_concurrent_streams(Some(256))
        // NOTE: an idle connection that answers pings would otherwise live
        // for ever, and keep a handshake's verdict for ever.
        .max_connection_age(MAX_CONNECTION_AGE)
        .max_connection_age_grace(MAX_CONNECTION_AGE_GRACE)
}

/// The peer listener: Federation + health, mTLS against the roster.
pub(crate) fn peer_server<H: tonic_health::pb::health_server::Health>(
    node: Components,
    listener: TcpListener,
    health: HealthService<H>,
    stop: watch::Receiver<bool>,
) -> impl Future<Output = Result<(), tonic::transport::Error>> + use<H> {
    let config = node.trust.peer_server();
    let federation = node.trust.roster().federation.clone();
    let identify: tls::Identify =
        Arc::new(move |cert| tls::node_id_from_cert(cert, &federation).map(Identity::Peer));
    let incoming = tls::incoming(
        listener,
        config,
        identify,
        "peer",
        node.metrics.peer_handshakes.clone(),
        stop.clone(),
    );
    let svc = FederationServer::new(FederationService::new(node, stop.clone()))
        .max_decoding_message_size(64 * 1024)
        .max_encoding_message_size(MAX_RESPONSE);
    server()
        .add_service(health)
        .add_service(svc)
        .serve_with_incoming_shutdown(incoming, shutdown_signal(stop))
}

/// The agency listener: Agency + health + reflection, mTLS against the
/// local agency CA.
pub(crate) fn agency_server<H: tonic_health::pb::health_server::Health>(
    node: Components,
    listener: TcpListener,
    health: HealthService<H>,
    stop: watch::Receiver<bool>,
) -> Result<
    impl Future<Output = Result<(), tonic::transport::Error>> + use<H>,
    tonic_reflection::server::Error,
> {
    let config = node.trust.agency_server();
    let identify: tls::Identify =
        Arc::new(|cert| tls::client_name_from_cert(cert).map(Identity::Client));
    let incoming = tls::incoming(
        listener,
        config,
        identify,
        "agency",
        node.metrics.agency_handshakes.clone(),
        stop.clone(),
    );
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::wire::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let svc = AgencyServer::new(AgencyService::new(node, stop.clone()))
        .max_decoding_message_size(MAX_AGENCY_REQUEST)
        .max_encoding_message_size(MAX_RESPONSE);
    Ok(server()
        .add_service(health)
        .add_service(reflection)
        .add_service(svc)
        .serve_with_incoming_shutdown(incoming, shutdown_signal(stop)))
}
