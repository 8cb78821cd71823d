//! Certificates and keys made with openssl, following the README's
//! certificate profile, work as well as enlace's own: hn's node certificate,
//! its agency client certificate and its record-signing key all come from
//! openssl here, and hn exchanges records with gt both ways.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::{eventually, list_all, publish};
use enlace::testing::Sandbox;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn chmod600(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_certificates_and_keys_work_like_enlaces_own() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let hn = fed.member("hn").unwrap().dir.clone();

    // The node certificate, exactly as the README shows it.
    std::fs::write(
        hn.join("node.ext"),
        "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth, clientAuth\nsubjectAltName = URI:spiffe://test-fed/node/hn, DNS:localhost, IP:127.0.0.1\n",
    )
    .unwrap();
    std::fs::remove_file(hn.join("node.key")).unwrap();
    openssl(
        &hn,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "node.key",
            "-out",
            "node.csr",
            "-subj",
            "/CN=hn",
        ],
    );
    openssl(
        &hn,
        &[
            "x509",
            "-req",
            "-in",
            "node.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-sha256",
            "-extfile",
            "node.ext",
            "-out",
            "node.crt",
        ],
    );
    chmod600(&hn.join("node.key"));

    // The agency client certificate: clientAuth, CN = the client's name.
    std::fs::write(hn.join("client.ext"), "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = clientAuth\n").unwrap();
    std::fs::remove_file(hn.join("client.key")).unwrap();
    openssl(
        &hn,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
            "-subj",
            "/CN=hn-operator",
        ],
    );
    openssl(
        &hn,
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "agency-ca.crt",
            "-CAkey",
            "agency-ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-sha256",
            "-extfile",
            "client.ext",
            "-out",
            "client.crt",
        ],
    );
    chmod600(&hn.join("client.key"));

    // The record-signing key, and its roster entry as `enlace keys show` prints it.
    std::fs::remove_file(hn.join("signing.key")).unwrap();
    openssl(
        &hn,
        &["genpkey", "-algorithm", "ed25519", "-out", "signing.key"],
    );
    chmod600(&hn.join("signing.key"));
    let out = Command::new(env!("CARGO_BIN_EXE_enlace"))
        .args(["keys", "show", "--key-id", "hn-sandbox-1", "--key"])
        .arg(hn.join("signing.key"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entry = String::from_utf8_lossy(&out.stdout).into_owned();
    let new_key = entry
        .lines()
        .find_map(|l| l.strip_prefix("public_key = "))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    let roster_path = fed.dir.join("federation.toml");
    let roster = std::fs::read_to_string(&roster_path).unwrap();
    let old_key = roster
        .split("key_id = \"hn-sandbox-1\"\npublic_key = \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    std::fs::write(&roster_path, roster.replace(&old_key, &new_key)).unwrap();
    fed.sign_roster().unwrap();

    let gt_node = fed.start("gt").await.unwrap();
    let hn_node = fed.start("hn").await.unwrap();
    let mut gt = fed.client("gt").await.unwrap();
    let mut hn_client = fed
        .client("hn")
        .await
        .expect("an openssl agency client certificate is accepted");
    let from_hn = publish(&mut hn_client, "firmada con una clave de openssl", &[]).await;
    let from_gt = publish(&mut gt, "para hn", &[]).await;
    eventually(
        "hn's record at gt, verified under the openssl key",
        || async {
            let mut c = gt.clone();
            list_all(&mut c)
                .await
                .into_iter()
                .find(|r| r.record_id == from_hn.record_id)
        },
    )
    .await;
    eventually(
        "gt's record at hn, over hn's openssl certificate",
        || async {
            let mut c = hn_client.clone();
            list_all(&mut c)
                .await
                .into_iter()
                .find(|r| r.record_id == from_gt.record_id)
        },
    )
    .await;
    hn_node.stop().await.unwrap();
    gt_node.stop().await.unwrap();
}
