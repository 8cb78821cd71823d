//! The agency API from the command line: `--client FILE` (see
//! [`enlace::service::client`]), the connection it names, and a gRPC failure as one
//! line for the terminal. Every command that talks to a running node uses
//! these.

use std::path::PathBuf;

use clap::Args;
use tonic::Status;
use tonic::transport::Channel;

use crate::failure::Spelled;
use enlace::service::client::ClientConfig;
use enlace::wire::pb::v1::agency_client::AgencyClient;

#[derive(Debug, Args)]
pub struct ClientArg {
    /// Agency client file (endpoint, certificate, key, CA).
    #[arg(long, env = "ENLACE_CLIENT")]
    pub client: PathBuf,
}

/// A connection to a node's agency API.
pub type Client = AgencyClient<Channel>;

/// An agency client for `--client FILE`.
pub async fn connect(arg: &ClientArg) -> anyhow::Result<Client> {
    connect_with(&load(arg)?).await
}

/// The client file `--client FILE`.
pub fn load(arg: &ClientArg) -> anyhow::Result<ClientConfig> {
    ClientConfig::load(&arg.client).spelled()
}

/// An agency client for a loaded client file.
pub async fn connect_with(cfg: &ClientConfig) -> anyhow::Result<Client> {
    cfg.connect().await.spelled()
}

/// A gRPC status as a one-line message for the terminal.
pub fn status_message(s: &Status) -> String {
    let what = match s.code() {
        tonic::Code::InvalidArgument => "invalid request",
        tonic::Code::NotFound => "not found",
        tonic::Code::PermissionDenied => "permission denied",
        tonic::Code::Unauthenticated => "not authenticated",
        tonic::Code::Unavailable => "node unavailable",
        _ => "request failed",
    };
    let mut msg = format!("{what}: {}", s.message());
    if matches!(s.code(), tonic::Code::Unknown | tonic::Code::Unavailable)
        && let Some(src) = std::error::Error::source(s)
    {
        msg.push_str(&format!(" ({})", enlace::service::client::error_chain(src)));
    }
    msg
}

/// [`status_message`] as an error.
pub fn status_error(s: Status) -> anyhow::Error {
    anyhow::Error::msg(status_message(&s))
}
