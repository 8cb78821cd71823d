//! The one way enlace dials: a connector for tonic channels that runs the
//! TLS handshake and wraps the stream in the reload guard.
//!
//! Separate from the listener because dialling has its own trust inputs:
//! the server name to verify and, for a peer, which member's configuration
//! to use; every channel enlace opens goes through here, so there is no
//! plaintext path.

use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use super::ClientTls;
use super::guard::{Guarded, owned_chain};

/// A connector for tonic channels that dials `host:port` over TCP and runs
/// the TLS handshake with `config`, verifying `server_name`. Every channel
/// enlace opens goes through it, so there is no plaintext path.
pub fn connector(
    config: impl Into<ClientTls>,
    host: String,
    port: u16,
    server_name: ServerName<'static>,
) -> impl tower::Service<
    tonic::transport::Uri,
    Response = hyper_util::rt::TokioIo<Guarded<tokio_rustls::client::TlsStream<TcpStream>>>,
    Error = std::io::Error,
    Future: Send,
> + Clone
+ Send
+ 'static {
    let source: ClientTls = config.into();
    tower::service_fn(move |_: tonic::transport::Uri| {
        let config = source.current();
        let source = source.clone();
        let server_name = server_name.clone();
        let host = host.clone();
        async move {
            let connector = tokio_rustls::TlsConnector::from(config?);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let stream = connector.connect(server_name.clone(), tcp).await?;
            let chain = owned_chain(stream.get_ref().1.peer_certificates());
            let target = format!("{host}:{port}");
            Ok(hyper_util::rt::TokioIo::new(Guarded {
                stream,
                info: (),
                recheck: source.recheck(chain, server_name),
                _slot: None,
                preface: None,
                on_cut: Some(Box::new(move |reason: &str| {
                    tracing::warn!(
                        security_event = true,
                        peer = %target,
                        reason,
                        "connection to a peer cut: after a reload its certificate is no longer accepted"
                    );
                })),
            }))
        }
    })
}
