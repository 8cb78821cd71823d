//! Black-box tests of `enlace cert renew` and `enlace cert revoke`, and of
//! the CRL settings as `enlace node check` validates them: the built
//! binary, real files, exit codes and messages.

use std::path::Path;
use std::process::{Command, Output};

use enlace::testing::Sandbox;

fn enlace(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_enlace"))
        .env_remove("RUST_LOG")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run enlace")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn serial(dir: &Path, file: &str) -> String {
    let out = enlace(&["cert", "inspect", "--json", file], dir);
    let v: serde_json::Value = serde_json::from_str(ok(&out).trim()).unwrap();
    v["serial"].as_str().unwrap().to_owned()
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn renew_and_revoke_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for args in [
        &[
            "ca", "init", "--name", "GT CA", "--cert", "ca.crt", "--key", "ca.key",
        ][..],
        &[
            "ca",
            "init",
            "--name",
            "Other CA",
            "--cert",
            "other.crt",
            "--key",
            "other.key",
        ],
        &[
            "cert",
            "issue",
            "--kind",
            "node",
            "--ca-cert",
            "ca.crt",
            "--ca-key",
            "ca.key",
            "--federation",
            "fed",
            "--node-id",
            "gt",
            "--dns",
            "localhost",
            "--cert",
            "node.crt",
            "--key",
            "node.key",
        ],
        &[
            "cert",
            "issue",
            "--kind",
            "client",
            "--name",
            "gt-operator",
            "--ca-cert",
            "ca.crt",
            "--ca-key",
            "ca.key",
            "--cert",
            "client.crt",
            "--key",
            "client.key",
        ],
        &[
            "cert",
            "issue",
            "--kind",
            "client",
            "--name",
            "stranger",
            "--ca-cert",
            "other.crt",
            "--ca-key",
            "other.key",
            "--cert",
            "stranger.crt",
            "--key",
            "stranger.key",
        ],
    ] {
        ok(&enlace(args, d));
    }
    let renew = |extra: &[&str]| {
        let mut args = vec![
            "cert",
            "renew",
            "--ca-cert",
            "ca.crt",
            "--ca-key",
            "ca.key",
            "--cert",
            "node.crt",
            "--key",
            "node.key",
        ];
        args.extend_from_slice(extra);
        enlace(&args, d)
    };

    // Renew, keeping the key.
    let first = serial(d, "node.crt");
    let key = std::fs::read(d.join("node.key")).unwrap();
    let said = ok(&renew(&["--days", "90"]));
    assert!(said.contains("same key"), "{said}");
    let second = serial(d, "node.crt");
    assert_ne!(first, second);
    assert!(said.contains(&second) && said.contains(&first), "{said}");
    assert_eq!(std::fs::read(d.join("node.key")).unwrap(), key);
    let inspect = ok(&enlace(&["cert", "inspect", "node.crt"], d));
    assert!(inspect.contains("URI:spiffe://fed/node/gt"), "{inspect}");
    assert!(inspect.contains("DNS:localhost"), "{inspect}");

    // Renew with a new key: the key file changes and stays private.
    ok(&renew(&["--new-key"]));
    assert_ne!(std::fs::read(d.join("node.key")).unwrap(), key);
    assert_eq!(mode(&d.join("node.key")), 0o600);
    assert_ne!(serial(d, "node.crt"), second);

    // Renewing under a CA that did not issue it: refused, nothing written.
    let before = std::fs::read(d.join("node.crt")).unwrap();
    let err = failed(&enlace(
        &[
            "cert",
            "renew",
            "--ca-cert",
            "other.crt",
            "--ca-key",
            "other.key",
            "--cert",
            "node.crt",
            "--key",
            "node.key",
        ],
        d,
    ));
    assert!(
        err.contains("node.crt") && err.contains("not by this CA"),
        "{err}"
    );
    assert_eq!(std::fs::read(d.join("node.crt")).unwrap(), before);

    // Revoke: the CRL is created, then extended with its number incremented.
    let revoke = |cert: &str, reason: &str| {
        enlace(
            &[
                "cert",
                "revoke",
                "--ca-cert",
                "ca.crt",
                "--ca-key",
                "ca.key",
                "--cert",
                cert,
                "--reason",
                reason,
                "--crl",
                "ca.crl",
            ],
            d,
        )
    };
    let said = ok(&revoke("client.crt", "key-compromise"));
    assert!(
        said.contains("CRL number 1") && said.contains("lists 1"),
        "{said}"
    );
    let said = ok(&revoke("node.crt", "superseded"));
    assert!(
        said.contains("CRL number 2") && said.contains("lists 2"),
        "{said}"
    );
    let crl = std::fs::read_to_string(d.join("ca.crl")).unwrap();
    assert!(crl.starts_with("-----BEGIN X509 CRL-----"), "{crl}");

    // Bad input: each refused with the file and the rule, the CRL untouched.
    let err = failed(&revoke("node.crt", "superseded"));
    assert!(err.contains("already revoked"), "{err}");
    let err = failed(&revoke("stranger.crt", "unspecified"));
    assert!(
        err.contains("stranger.crt") && err.contains("not by this CA"),
        "{err}"
    );
    let err = failed(&revoke("client.crt", "because"));
    assert!(
        err.contains("--reason") && err.contains("key-compromise"),
        "{err}"
    );
    let err = failed(&enlace(
        &[
            "cert",
            "revoke",
            "--ca-cert",
            "ca.crt",
            "--ca-key",
            "ca.key",
            "--cert",
            "missing.crt",
            "--crl",
            "new.crl",
        ],
        d,
    ));
    assert!(err.contains("missing.crt"), "{err}");
    assert!(!d.join("new.crl").exists(), "nothing written on error");
    assert_eq!(std::fs::read_to_string(d.join("ca.crl")).unwrap(), crl);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_check_validates_crls_from_the_file_and_the_environment() {
    let fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.member("gt").unwrap();
    let hn_dir = fed.member("hn").unwrap().dir.clone();
    let d = &gt.dir;
    // A CRL of hn's CA (a roster CA), and one of a CA nobody knows.
    for (ca, crl) in [("../hn/ca", "hn.crl"), ("rogue", "rogue.crl")] {
        if ca == "rogue" {
            ok(&enlace(
                &[
                    "ca",
                    "init",
                    "--name",
                    "Rogue",
                    "--cert",
                    "rogue.crt",
                    "--key",
                    "rogue.key",
                ],
                d,
            ));
        }
        let cert = format!("{ca}.crt");
        let key = format!("{ca}.key");
        ok(&enlace(
            &[
                "cert",
                "issue",
                "--kind",
                "client",
                "--name",
                "x",
                "--ca-cert",
                &cert,
                "--ca-key",
                &key,
                "--cert",
                "x.crt",
                "--key",
                "x.key",
                "--force",
            ],
            d,
        ));
        ok(&enlace(
            &[
                "cert",
                "revoke",
                "--ca-cert",
                &cert,
                "--ca-key",
                &key,
                "--cert",
                "x.crt",
                "--crl",
                crl,
            ],
            d,
        ));
    }
    assert!(hn_dir.join("ca.crt").exists());
    let config = gt.config_path();
    let check = |env: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_enlace"));
        c.args(["node", "check", "--config"]).arg(&config);
        if let Some(v) = env {
            c.env("ENLACE__TLS__PEER_CRLS", v);
        }
        c.output().unwrap()
    };
    ok(&check(Some("hn.crl")));
    let out = check(Some("hn.crl,rogue.crl"));
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tls.peer_crls[1]"), "{err}");
    assert!(err.contains("Rogue"), "{err}");
    // Two CRLs of one CA: only one would be consulted, so it is an error.
    let out = check(Some("hn.crl,hn.crl"));
    assert_eq!(out.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("second CRL"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = check(Some("nowhere.crl"));
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere.crl"));
    // Empty: no CRLs, as without the variable.
    ok(&check(Some("")));
    ok(&check(None));
}
