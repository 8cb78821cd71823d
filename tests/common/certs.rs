//! Certificate helpers for the revocation and reload tests: reading a
//! sandbox member's PKI, editing its configuration, and handshakes that
//! report what the server presented.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use enlace::records::model::NodeId;
use enlace::trust::pki;
use enlace::trust::roster::Roster;
use enlace::trust::tls::{self, TlsIdentity};
use enlace::wire::pb::v1 as pb;
use enlace::wire::pb::v1::federation_client::FederationClient;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub fn read_issued(dir: &Path, cert: &str, key: &str) -> pki::Issued {
    pki::Issued {
        cert_pem: std::fs::read_to_string(dir.join(cert)).unwrap(),
        key_pem: std::fs::read_to_string(dir.join(key)).unwrap(),
    }
}

pub fn identity(issued: &pki::Issued) -> TlsIdentity {
    TlsIdentity {
        chain: vec![CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap()],
        key: PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap(),
    }
}

pub fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// The serial of a PEM certificate, as `enlace cert inspect` prints it.
pub fn serial(pem: &str) -> String {
    pki::CertInfo::parse(&der(pem)).unwrap().serial
}

/// Adds `lines` to the `[tls]` section of a sandbox node's configuration
/// and appends `extra` (whole sections) at the end.
pub fn edit_config(config: &Path, tls_lines: &str, extra: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let anchor = "agency_client_ca = \"agency-ca.crt\"\n";
    assert!(text.contains(anchor), "sandbox config layout changed");
    let text = text.replacen(anchor, &format!("{anchor}{tls_lines}"), 1);
    std::fs::write(config, format!("{text}\n{extra}")).unwrap();
}

/// Calls `Pull` on the peer listener at `port` as `who`, expecting to talk
/// to member `expected`. Returns the error chain on failure.
pub async fn pull_as(
    roster: &Roster,
    who: &TlsIdentity,
    expected: &str,
    port: u16,
) -> Result<(), String> {
    let config = tls::peer_client_config(roster, who, &NodeId::parse(expected).unwrap()).unwrap();
    let channel = enlace::exchange::peers::peer_channel(config, "127.0.0.1", port).unwrap();
    let mut client = FederationClient::new(channel);
    let request = pb::PullRequest {
        origin: expected.into(),
        after_seq: 0,
        follow: false,
        max_batch: 0,
    };
    match client.pull(request).await {
        Ok(stream) => {
            let mut stream = stream.into_inner();
            // Drain: a refused client can also fail on the first read.
            loop {
                match stream.message().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => return Ok(()),
                    // The member's own node opened its stream meanwhile
                    // (one per peer, the newest wins): this one was
                    // accepted, then replaced.
                    Err(s)
                        if s.code() == tonic::Code::Aborted
                            && s.message().contains("replaced this one") =>
                    {
                        return Ok(());
                    }
                    Err(s) => return Err(enlace::service::client::error_chain(&s)),
                }
            }
        }
        Err(s) => Err(enlace::service::client::error_chain(&s)),
    }
}

/// A TLS handshake with `config` to `addr`; the serial of the certificate
/// the server presented.
pub async fn server_serial(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
) -> Result<String, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = tls::server_name("127.0.0.1").unwrap();
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no server certificate")?;
    Ok(pki::CertInfo::parse(leaf)
        .map_err(|e| e.to_string())?
        .serial)
}

pub fn refused(stats: &tls::HandshakeStats) -> u64 {
    stats.refused.load(std::sync::atomic::Ordering::Relaxed)
}

pub fn accepted(stats: &tls::HandshakeStats) -> u64 {
    stats.accepted.load(std::sync::atomic::Ordering::Relaxed)
}

/// An agency client of `member`'s node named `name`, issued by its agency
/// CA and not listed in `[agency.clients]`: it has the default role (the
/// sandbox's is reader). Its files are `<name>.crt`, `<name>.key` and
/// `<name>.toml` in the member's directory.
pub async fn unlisted_client(
    fed: &enlace::testing::Sandbox,
    member: &str,
    name: &str,
) -> enlace::wire::pb::v1::agency_client::AgencyClient<tonic::transport::Channel> {
    let dir = fed.member(member).unwrap().dir.clone();
    let cert = enlace::trust::pki::issue(
        &std::fs::read_to_string(dir.join("agency-ca.crt")).unwrap(),
        &std::fs::read_to_string(dir.join("agency-ca.key")).unwrap(),
        &enlace::trust::pki::Profile::Client { name: name.into() },
        1,
    )
    .unwrap();
    enlace::records::crypto::write_private_file(
        &dir.join(format!("{name}.key")),
        cert.key_pem.as_bytes(),
        false,
    )
    .unwrap();
    std::fs::write(dir.join(format!("{name}.crt")), cert.cert_pem).unwrap();
    let client_toml = std::fs::read_to_string(dir.join("client.toml"))
        .unwrap()
        .replace("client.", &format!("{name}."));
    std::fs::write(dir.join(format!("{name}.toml")), client_toml).unwrap();
    enlace::service::client::ClientConfig::load(&dir.join(format!("{name}.toml")))
        .unwrap()
        .connect()
        .await
        .unwrap()
}
