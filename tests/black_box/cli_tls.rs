//! A client that cannot talk to its node is told what is wrong and which
//! setting fixes it: pointed at the peer port, given the wrong CA, or
//! holding a certificate the node does not accept.

use crate::cli::{run, text};

use enlace::testing::Sandbox;

/// A copy of gt's client file in gt's directory with `endpoint`, `cert`,
/// `key` and `ca` as given.
fn client_file(dir: &std::path::Path, name: &str, endpoint: &str, cert: &str, ca: &str) -> String {
    let path = dir.join(name);
    let key = cert.replace(".crt", ".key");
    std::fs::write(
        &path,
        format!("endpoint = \"{endpoint}\"\ncert = \"{cert}\"\nkey = \"{key}\"\nca = \"{ca}\"\n"),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_cannot_talk_to_its_node_is_told_which_setting_to_fix() {
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let member = fed.member("gt").unwrap();
    let dir = member.dir.clone();

    // The peer port instead of the agency port.
    let peer = client_file(
        &dir,
        "peer-port.toml",
        &member.peer_addr.to_string(),
        "client.crt",
        "ca.crt",
    );
    let out = run(&["alert", "list", "--client", &peer]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("did not accept this client's certificate")
            && err.contains("listen.agency")
            && err.contains("peer"),
        "peer port: {err}"
    );

    // A CA that did not issue the node's certificate.
    let wrong_ca = client_file(
        &dir,
        "wrong-ca.toml",
        &member.agency_addr.to_string(),
        "client.crt",
        "../hn/ca.crt",
    );
    let out = run(&["alert", "list", "--client", &wrong_ca]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("is not issued by the CA in `ca") && err.contains("hn/ca.crt"),
        "wrong CA: {err}"
    );

    // A client certificate from another node's agency CA.
    let foreign = client_file(
        &dir,
        "foreign.toml",
        &member.agency_addr.to_string(),
        "../hn/client.crt",
        "ca.crt",
    );
    let out = run(&["alert", "list", "--client", &foreign]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("did not accept this client's certificate")
            && err.contains("agency_client_ca"),
        "foreign client certificate: {err}"
    );
    gt.stop().await.unwrap();
}
