//! The listeners under attack (issue 14: H1, M1, L2, L4, L5, L9): each
//! test performs the attack against a real node over real TLS 1.3 and
//! checks the defence. Slow-loris and floods come from `127.0.0.2` (any
//! address of `127.0.0.0/8` reaches the loopback listeners on Linux), so
//! that the legitimate client on `127.0.0.1` is another source, as it is
//! in the field.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common;

use common::certs::{identity, pull_as, read_issued, server_serial};

use enlace::records::model::NodeId;
use enlace::testing::Sandbox;
use enlace::trust::pki::{self, Profile};
use enlace::trust::roster::Roster;
use enlace::trust::tls::{self, TlsIdentity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// The HTTP/2 connection preface and an empty SETTINGS frame: what a
/// well-behaved gRPC client sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// An idle TCP connection from `127.0.0.2` to `target`, or `None` if the
/// connection did not come up (the server shed it at once).
async fn idle_socket(target: SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket
        .bind("127.0.0.2:0".parse().expect("address"))
        .expect("bind 127.0.0.2 (Linux routes all of 127.0.0.0/8 to lo)");
    tokio::time::timeout(Duration::from_secs(2), socket.connect(target))
        .await
        .ok()?
        .ok()
}

/// A health check on a new connection to a listener.
#[derive(Clone)]
enum Check {
    /// The peer listener, as a roster member.
    Peer {
        config: Arc<rustls::ClientConfig>,
        port: u16,
    },
    /// The agency listener, as an agency client.
    Agency {
        config: Arc<rustls::ClientConfig>,
        addr: SocketAddr,
        server_name: String,
    },
}

impl Check {
    async fn run(&self) -> Result<i32, String> {
        let channel = match self {
            Check::Peer { config, port } => {
                enlace::exchange::peers::peer_channel(config.clone(), "127.0.0.1", *port)
                    .map_err(|e| e.to_string())?
            }
            Check::Agency {
                config,
                addr,
                server_name,
            } => tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
                .map_err(|e| e.to_string())?
                .connect_with_connector_lazy(tls::connector(
                    config.clone(),
                    addr.ip().to_string(),
                    addr.port(),
                    tls::server_name(server_name).map_err(|e| e.to_string())?,
                )),
        };
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: "enlace.v1.Federation".into(),
            })
            .await
            .map(|r| r.into_inner().status)
            .map_err(|s| enlace::service::client::error_chain(&s))
    }
}

fn peer_check(fed: &Sandbox, node: &str, as_member: &str) -> Check {
    let roster = Roster::load(&fed.dir.join("federation.toml")).unwrap();
    let who = identity(&read_issued(
        &fed.member(as_member).unwrap().dir,
        "node.crt",
        "node.key",
    ));
    Check::Peer {
        config: tls::peer_client_config(&roster, &who, &NodeId::parse(node).unwrap()).unwrap(),
        port: fed.member(node).unwrap().peer_addr.port(),
    }
}

fn agency_check(fed: &Sandbox, node: &str, who: Option<&TlsIdentity>) -> Check {
    let cfg = enlace::service::client::ClientConfig::load(&fed.member(node).unwrap().client_path())
        .unwrap();
    Check::Agency {
        config: tls::agency_client_config(&cfg.ca, who.unwrap_or(&cfg.identity)).unwrap(),
        addr: fed.member(node).unwrap().agency_addr,
        server_name: cfg.server_name.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_slow_loris_without_a_certificate_does_not_delay_a_health_check() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let listeners = [
        (
            "peer",
            fed.member("gt").unwrap().peer_addr,
            peer_check(&fed, "gt", "hn"),
        ),
        (
            "agency",
            fed.member("gt").unwrap().agency_addr,
            agency_check(&fed, "gt", None),
        ),
    ];
    for (name, addr, check) in listeners {
        // Control, before the attack.
        assert_eq!(
            check.run().await,
            Ok(ServingStatus::Serving as i32),
            "{name}"
        );
        // More idle sockets than there are handshake slots, none of which
        // ever sends a ClientHello; and more arriving while we measure.
        let mut idle = Vec::new();
        for _ in 0..300 {
            idle.extend(idle_socket(addr).await);
        }
        let flood = tokio::spawn(async move {
            let mut more = Vec::new();
            loop {
                more.extend(idle_socket(addr).await);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let mut latencies = Vec::new();
        for _ in 0..3 {
            let started = Instant::now();
            let served = tokio::time::timeout(Duration::from_secs(1), check.run()).await;
            latencies.push(started.elapsed());
            assert_eq!(
                served.ok(),
                Some(Ok(ServingStatus::Serving as i32)),
                "{name} listener: a health check under a slow-loris of {} idle sockets must be served within 1 s",
                idle.len()
            );
        }
        eprintln!("{name} listener: health checks under slow-loris took {latencies:?}");
        flood.abort();
        drop(idle);
    }
    gt.stop().await.unwrap();
}
