//! Identity checks at the TLS handshake, on both listeners and on
//! outgoing connections. Every connection here is a real TLS 1.3
//! handshake against a real node.

use crate::common;

use common::certs::{identity, pull_as, read_issued, refused};

use enlace::records::model::NodeId;
use enlace::testing::Sandbox;
use enlace::trust::pki::{self, Profile};
use enlace::trust::roster::Endpoint;
use enlace::trust::tls::{self, TlsIdentity};
use enlace::wire::pb::v1 as pb;
use enlace::wire::pb::v1::agency_client::AgencyClient;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

fn node_cert(ca: &pki::Issued, federation: &str, id: &str) -> pki::Issued {
    pki::issue(
        &ca.cert_pem,
        &ca.key_pem,
        &Profile::Node {
            federation: federation.into(),
            node_id: NodeId::parse(id).unwrap(),
            dns_names: vec!["localhost".into()],
            ip_addresses: vec!["127.0.0.1".parse().unwrap()],
        },
        1,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_are_accepted_only_with_a_certificate_from_their_own_roster_ca() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn", "sv"])
        .await
        .unwrap();
    let gt = fed.start("gt").await.unwrap();
    let roster = fed.roster().unwrap();
    let port = fed.member("gt").unwrap().peer_addr.port();
    let hn_dir = fed.member("hn").unwrap().dir.clone();
    let hn_ca = read_issued(&hn_dir, "ca.crt", "ca.key");

    // Control: hn's real node certificate is accepted.
    let real = read_issued(&hn_dir, "node.crt", "node.key");
    pull_as(&roster, &identity(&real), "gt", port)
        .await
        .expect("hn's own certificate works");

    // A certificate naming hn from a CA the roster does not list.
    let rogue_ca = pki::new_ca("rogue CA", None, 1).unwrap();
    let rogue = node_cert(&rogue_ca, "test-fed", "hn");
    // A certificate from hn's (allowed) CA that names another member, sv:
    // hn's CA may issue only hn's certificates.
    let impostor = node_cert(&hn_ca, "test-fed", "sv");
    // A certificate from hn's CA naming a node that is not a member.
    let stranger = node_cert(&hn_ca, "test-fed", "mx");
    // A certificate of another federation's trust domain.
    let foreign = node_cert(&hn_ca, "other-fed", "hn");
    for (what, cert) in [
        ("rogue CA", &rogue),
        ("impostor", &impostor),
        ("stranger", &stranger),
        ("foreign", &foreign),
    ] {
        let refused_before = refused(&gt.components.metrics.peer_handshakes);
        let err = pull_as(&roster, &identity(cert), "gt", port).await;
        assert!(err.is_err(), "{what}: must be refused");
        common::eventually(&format!("{what}: refused at the handshake"), || async {
            (refused(&gt.components.metrics.peer_handshakes) > refused_before).then_some(())
        })
        .await;
    }

    // gt is unharmed and still serves hn.
    pull_as(&roster, &identity(&real), "gt", port)
        .await
        .expect("still serving");
    gt.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_connections_refuse_a_server_with_another_members_identity() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn", "sv"])
        .await
        .unwrap();
    let roster = fed.roster().unwrap();
    // sv's node runs where hn dials, expecting gt.
    let sv = fed.start("sv").await.unwrap();
    let sv_port = fed.member("sv").unwrap().peer_addr.port();
    let hn_dir = fed.member("hn").unwrap().dir.clone();
    let hn = identity(&read_issued(&hn_dir, "node.crt", "node.key"));
    let err = pull_as(&roster, &hn, "gt", sv_port).await.unwrap_err();
    assert!(
        err.contains("certificate names node sv, but gt was expected"),
        "{err}"
    );
    // Control: the same connection expecting sv succeeds.
    pull_as(&roster, &hn, "sv", sv_port)
        .await
        .expect("sv is sv");
    sv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agency_clients_need_a_certificate_from_the_local_agency_ca() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let dir = fed.member("gt").unwrap().dir.clone();
    let agency_addr = fed.member("gt").unwrap().agency_addr;
    let server_ca = vec![
        CertificateDer::from_pem_slice(std::fs::read(dir.join("ca.crt")).unwrap().as_slice())
            .unwrap(),
    ];

    async fn list(
        ca: &[CertificateDer<'static>],
        who: &TlsIdentity,
        addr: std::net::SocketAddr,
    ) -> Result<(), String> {
        let config = tls::agency_client_config(ca, who).unwrap();
        let endpoint = Endpoint {
            host: "127.0.0.1".into(),
            port: addr.port(),
        };
        let connector = tls::connector(
            config,
            endpoint.host.clone(),
            endpoint.port,
            tls::server_name("127.0.0.1").unwrap(),
        );
        let channel = tonic::transport::Endpoint::from_shared(format!("https://{endpoint}"))
            .unwrap()
            .connect_with_connector(connector)
            .await
            .map_err(|e| enlace::service::client::error_chain(&e))?;
        AgencyClient::new(channel)
            .list_records(pb::ListRecordsRequest::default())
            .await
            .map(|_| ())
            .map_err(|s| enlace::service::client::error_chain(&s))
    }

    let good = identity(&read_issued(&dir, "client.crt", "client.key"));
    list(&server_ca, &good, agency_addr)
        .await
        .expect("the agency CA's client is served");

    // A client certificate issued by the federation CA: valid in the
    // federation, but not an agency client of this node.
    let fed_ca = read_issued(&dir, "ca.crt", "ca.key");
    let wrong = pki::issue(
        &fed_ca.cert_pem,
        &fed_ca.key_pem,
        &Profile::Client {
            name: "intruder".into(),
        },
        1,
    )
    .unwrap();
    // A peer node certificate is not an agency client either.
    let node = read_issued(&dir, "node.crt", "node.key");
    for (what, cert) in [
        ("federation-CA client", &wrong),
        ("node certificate", &node),
    ] {
        let before = refused(&gt.components.metrics.agency_handshakes);
        assert!(
            list(&server_ca, &identity(cert), agency_addr)
                .await
                .is_err(),
            "{what}"
        );
        common::eventually(&format!("{what}: refused at the handshake"), || async {
            (refused(&gt.components.metrics.agency_handshakes) > before).then_some(())
        })
        .await;
    }

    // And the server is verified too: a client trusting another CA refuses the node.
    let other_ca = pki::new_ca("other", None, 1).unwrap();
    let other_roots = vec![CertificateDer::from_pem_slice(other_ca.cert_pem.as_bytes()).unwrap()];
    assert!(list(&other_roots, &good, agency_addr).await.is_err());

    gt.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_listeners_serve_grpc_health_and_the_agency_listener_serves_reflection() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let roster = fed.roster().unwrap();
    let hn_dir = fed.member("hn").unwrap().dir.clone();
    let hn = identity(&read_issued(&hn_dir, "node.crt", "node.key"));

    // Peer listener, as peer hn.
    let config = tls::peer_client_config(&roster, &hn, &NodeId::parse("gt").unwrap()).unwrap();
    let port = fed.member("gt").unwrap().peer_addr.port();
    let mut health = HealthClient::new(
        enlace::exchange::peers::peer_channel(config, "127.0.0.1", port).unwrap(),
    );
    for service in ["enlace.v1.Federation", "enlace.v1.Agency"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(
            status,
            ServingStatus::Serving as i32,
            "{service} on the peer listener"
        );
    }

    // Agency listener, as gt's agency client.
    let client =
        enlace::service::client::ClientConfig::load(&fed.member("gt").unwrap().client_path())
            .unwrap();
    let mut agency = client.connect().await.unwrap();
    agency.list_peers(pb::ListPeersRequest {}).await.unwrap();
    let mut reflection =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(
            tonic::transport::Endpoint::from_shared(format!("https://{}", client.endpoint))
                .unwrap()
                .connect_with_connector(tls::connector(
                    tls::agency_client_config(&client.ca, &client.identity).unwrap(),
                    client.endpoint.host.clone(),
                    client.endpoint.port,
                    tls::server_name(&client.server_name).unwrap(),
                ))
                .await
                .unwrap(),
        );
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_request::MessageRequest,
    };
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let listed = format!("{:?}", response.message_response);
    assert!(listed.contains("enlace.v1.Agency"), "{listed}");
    gt.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_expiring_within_30_days_are_reported() {
    // Sandbox certificates are valid for a year: none is due within 30
    // days, and every one within 400.
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let soon = gt
        .components
        .trust
        .expiring_certificates(enlace::trust::reload::EXPIRY_WARNING_DAYS);
    assert!(soon.is_empty(), "{soon:?}");
    let due = gt.components.trust.expiring_certificates(400);
    let names: Vec<&str> = due.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.iter().any(|n| n.starts_with("node certificate")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("agency CA")),
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| n.starts_with("roster CA")).count(),
        2,
        "{names:?}"
    );
    assert!(
        due.iter().all(|(_, days)| (363..=365).contains(days)),
        "{due:?}"
    );
    gt.stop().await.unwrap();
}
