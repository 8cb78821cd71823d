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
    let roster = fed.roster().unwrap();
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
            let mut ticks = common::pace(Duration::from_millis(20));
            loop {
                ticks.tick().await;
                more.extend(idle_socket(addr).await);
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

/// Opens an authenticated TLS connection to `addr`; sends the HTTP/2
/// preface if `preface`, then reads and discards until the server closes
/// it, and counts it in `closed` then.
async fn held_connection(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    preface: bool,
    closed: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = tls::server_name("127.0.0.1").unwrap();
    let conn = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await;
    tokio::spawn(async move {
        if let Ok(mut conn) = conn {
            if preface && conn.write_all(H2_PREFACE).await.is_ok() {
                let _ = conn.flush().await;
            }
            let mut buf = [0u8; 4096];
            while let Ok(n) = conn.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        }
        closed.fetch_add(1, Ordering::SeqCst);
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_idle_authenticated_connections_are_capped_and_silent_ones_closed() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let Check::Peer { config, .. } = peer_check(&fed, "gt", "hn") else {
        unreachable!()
    };
    let peer_addr = fed.member("gt").unwrap().peer_addr;

    // Member hn opens many proper but idle HTTP/2 connections.
    let opened = 40;
    let closed = Arc::new(AtomicUsize::new(0));
    let mut held = Vec::new();
    for _ in 0..opened {
        held.push(held_connection(config.clone(), peer_addr, true, closed.clone()).await);
    }
    let cap = enlace::trust::tls::MAX_CONNECTIONS_PER_PEER;
    // Well before the server's keepalive (a ping after 15 s, which this
    // client never answers) would close them all.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ticks = common::pace(Duration::from_millis(20));
    while closed.load(Ordering::SeqCst) < opened - cap && Instant::now() < deadline {
        ticks.tick().await;
    }
    assert_eq!(
        closed.load(Ordering::SeqCst),
        opened - cap,
        "exactly the connections beyond the cap are closed"
    );
    // The node still serves another client.
    assert_eq!(
        agency_check(&fed, "gt", None).run().await,
        Ok(ServingStatus::Serving as i32)
    );
    for h in held {
        h.abort();
    }

    // An authenticated connection that never sends the HTTP/2 preface is
    // closed once the preface timeout passes.
    let Check::Agency { config, addr, .. } = agency_check(&fed, "gt", None) else {
        unreachable!()
    };
    let silent_closed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let _silent = held_connection(config, addr, false, silent_closed.clone()).await;
    common::eventually("a connection without a preface closed", || async {
        (silent_closed.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    eprintln!("silent connection closed after {:?}", started.elapsed());
    gt.stop().await.unwrap();
}

/// Connects twice with `config` (resumption on at the client) and returns
/// how the second handshake went.
async fn second_handshake(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
) -> Option<rustls::HandshakeKind> {
    let connect = || async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        tokio_rustls::TlsConnector::from(config.clone())
            .connect(tls::server_name("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap()
    };
    let mut first = connect().await;
    // The server's first HTTP/2 frames come after any session tickets, so
    // once they are read, every ticket has been.
    first.write_all(H2_PREFACE).await.unwrap();
    let mut buf = [0u8; 64];
    let _ = tokio::time::timeout(common::DEADLINE, first.read(&mut buf)).await;
    let second = connect().await;
    second.get_ref().1.handshake_kind()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_sessions_are_never_resumed_so_every_connection_verifies_the_certificate() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let with_resumption = |c: &Arc<rustls::ClientConfig>| {
        let mut c = (**c).clone();
        c.resumption = rustls::client::Resumption::default();
        Arc::new(c)
    };
    let Check::Peer { config, .. } = peer_check(&fed, "gt", "hn") else {
        unreachable!()
    };
    let peer = second_handshake(
        with_resumption(&config),
        fed.member("gt").unwrap().peer_addr,
    )
    .await;
    assert_eq!(peer, Some(rustls::HandshakeKind::Full), "peer listener");
    let Check::Agency { config, addr, .. } = agency_check(&fed, "gt", None) else {
        unreachable!()
    };
    let agency = second_handshake(with_resumption(&config), addr).await;
    assert_eq!(agency, Some(rustls::HandshakeKind::Full), "agency listener");
    gt.stop().await.unwrap();
}

/// A certificate under `ca` without an extended key usage: what some
/// hand-rolled PKIs issue, and what WebPKI alone lets through.
fn without_eku(ca: &pki::Issued, common_name: &str, spiffe: Option<&str>) -> pki::Issued {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let ca_key = rcgen::KeyPair::from_pem(&ca.key_pem).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    if let Some(uri) = spiffe {
        params
            .subject_alt_names
            .push(rcgen::SanType::URI(uri.to_string().try_into().unwrap()));
    }
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &issuer).unwrap();
    pki::Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_certificates_without_the_extended_key_usage_are_refused_on_each_side() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let roster = fed.roster().unwrap();
    let gt_dir = fed.member("gt").unwrap().dir.clone();
    let hn_dir = fed.member("hn").unwrap().dir.clone();
    let hn_ca = read_issued(&hn_dir, "ca.crt", "ca.key");
    let hn_plain = without_eku(&hn_ca, "hn", Some("spiffe://test-fed/node/hn"));

    // Peer listener: hn's CA, hn's SPIFFE id, no EKU.
    let port = fed.member("gt").unwrap().peer_addr.port();
    let pulled = pull_as(&roster, &identity(&hn_plain), "gt", port).await;
    assert!(
        pulled.is_err(),
        "peer listener accepted a certificate without EKU"
    );

    // Agency listener: gt's agency CA, no EKU.
    let agency_ca = read_issued(&gt_dir, "agency-ca.crt", "agency-ca.key");
    let client_plain = identity(&without_eku(&agency_ca, "gt-plain", None));
    let checked = agency_check(&fed, "gt", Some(&client_plain)).run().await;
    assert!(
        checked.is_err(),
        "agency listener accepted a client certificate without EKU: {checked:?}"
    );

    // Outgoing: gt dials a server presenting hn's certificate without EKU.
    let server = tls::peer_server_config(&roster, &identity(&hn_plain)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serve = tokio::spawn(async move {
        if let Ok((tcp, _)) = listener.accept().await {
            let _ = tokio_rustls::TlsAcceptor::from(server).accept(tcp).await;
        }
    });
    let gt_identity = identity(&read_issued(&gt_dir, "node.crt", "node.key"));
    let client =
        tls::peer_client_config(&roster, &gt_identity, &NodeId::parse("hn").unwrap()).unwrap();
    let dialled = server_serial(client, addr).await;
    assert!(
        dialled.is_err(),
        "gt accepted a peer server certificate without EKU"
    );
    serve.abort();

    // Control: the same identities with the profile's EKU pass.
    let real = read_issued(&hn_dir, "node.crt", "node.key");
    pull_as(&roster, &identity(&real), "gt", port)
        .await
        .unwrap();
    gt.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_a_reissued_copy_of_a_federation_ca_is_refused_as_the_agency_ca() {
    let fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt_dir = fed.member("gt").unwrap().dir.clone();
    // gt's federation CA again: same subject, same key, new serial and
    // validity, so different bytes.
    let ca = read_issued(&gt_dir, "ca.crt", "ca.key");
    let key = rcgen::KeyPair::from_pem(&ca.key_pem).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "gt federation CA");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "enlace sandbox gt");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    params.serial_number = Some(rcgen::SerialNumber::from(vec![0x42, 0x17]));
    let copy = params.self_signed(&key).unwrap().pem();
    assert_ne!(copy.trim(), ca.cert_pem.trim());
    std::fs::write(gt_dir.join("agency-ca.crt"), copy).unwrap();
    let loaded = enlace::trust::load::settings(&fed.member("gt").unwrap().config_path(), None);
    let error = loaded.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        error.contains("tls.agency_client_ca") && error.contains("federation CA"),
        "a re-issued copy of the node's federation CA must be refused as agency CA: {error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_an_agency_client_carrying_a_node_spiffe_id_is_refused() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let gt_dir = fed.member("gt").unwrap().dir.clone();
    let agency_ca = read_issued(&gt_dir, "agency-ca.crt", "agency-ca.key");
    // The agency CA issues a node-profile certificate naming member hn.
    let node_like = pki::issue(
        &agency_ca.cert_pem,
        &agency_ca.key_pem,
        &Profile::Node {
            federation: "test-fed".into(),
            node_id: NodeId::parse("hn").unwrap(),
            dns_names: vec!["localhost".into()],
            ip_addresses: vec![],
        },
        1,
    )
    .unwrap();
    let checked = agency_check(&fed, "gt", Some(&identity(&node_like)))
        .run()
        .await;
    assert!(
        checked.is_err(),
        "agency listener accepted a node SPIFFE id: {checked:?}"
    );
    // Control: the operator's own client certificate passes.
    assert_eq!(
        agency_check(&fed, "gt", None).run().await,
        Ok(ServingStatus::Serving as i32)
    );
    gt.stop().await.unwrap();
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_store_files_are_owner_only_and_an_open_data_dir_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let mut fed = Sandbox::create("test-fed", &["gt"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let data = fed.member("gt").unwrap().data_dir();
    let mut stack = vec![data.clone()];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} has mode {mode:o}", dir.display());
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else {
                seen += 1;
                let mode = meta.permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{} has mode {mode:o}", path.display());
            }
        }
    }
    assert!(seen > 0, "the store made no files");
    gt.stop().await.unwrap();

    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let error = fed
        .start("gt")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        error.contains(&format!("chmod 700 {}", data.display())) && error.contains("755"),
        "a data directory others can enter must be refused, naming the chmod: {error:?}"
    );
}
