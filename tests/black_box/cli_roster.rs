//! `enlace roster` and `enlace keys generate --governance` as an operator
//! runs them: a change compiled, approved offline, refused below the
//! threshold, sealed, verified and shown.

use crate::cli::{run, text};

use enlace::testing::Sandbox;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roster_change_is_compiled_approved_offline_sealed_and_verified() {
    use std::os::unix::fs::PermissionsExt;
    let fed = Sandbox::create("test-fed", &["gt", "hn", "sv"])
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = |n: &str| work.path().join(n).to_str().unwrap().to_owned();
    let f = |n: &str| fed.dir.join(n).to_str().unwrap().to_owned();

    // A governance key: private, and its roster entry printed.
    let out = run(&[
        "keys",
        "generate",
        "--governance",
        "--out",
        &w("outsider.key"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("governance_keys = [\""),
        "{}",
        text(&out.stdout)
    );
    let mode = std::fs::metadata(w("outsider.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    // Version 2, compiled after the chain; its hash on the last line.
    let out = run(&[
        "roster",
        "compile",
        "--file",
        &f("federation.toml"),
        "--after",
        &f("roster"),
        "--out",
        &w("2.version"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let hash = text(&out.stdout).lines().last().unwrap().to_owned();
    assert_eq!(hash.len(), 64, "{hash}");

    // A key that is no member's would not count: sign refuses it.
    let out = run(&[
        "roster",
        "sign",
        "--proposal",
        &w("2.version"),
        "--governance-key",
        &w("outsider.key"),
        "--out",
        &w("2.x"),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not a governance key"),
        "{}",
        text(&out.stderr)
    );
    for id in ["hn", "gt"] {
        let out = run(&[
            "roster",
            "sign",
            "--proposal",
            &w("2.version"),
            "--governance-key",
            &f(&format!("{id}/governance.key")),
            "--out",
            &w(&format!("2.{id}")),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains(&format!("approving as {id}")));
    }

    // One approval of three is below the threshold of 2: nothing written.
    let out = run(&[
        "roster",
        "seal",
        "--proposal",
        &w("2.version"),
        "--signature",
        &w("2.hn"),
        "--chain",
        &f("roster"),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("below_threshold"),
        "{}",
        text(&out.stderr)
    );
    assert!(!fed.chain_dir().join("2.roster").exists());
    // The same approval twice still counts once.
    let out = run(&[
        "roster",
        "seal",
        "--proposal",
        &w("2.version"),
        "--signature",
        &w("2.hn"),
        "--signature",
        &w("2.hn"),
        "--chain",
        &f("roster"),
    ]);
    assert!(!out.status.success());
    let out = run(&[
        "roster",
        "seal",
        "--proposal",
        &w("2.version"),
        "--signature",
        &w("2.hn"),
        "--signature",
        &w("2.gt"),
        "--chain",
        &f("roster"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(fed.chain_dir().join("2.roster").exists());

    // The chain verifies from version 1, and shows version 2 in force.
    let out = run(&["roster", "verify", "--chain", &f("roster"), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["versions"].as_array().unwrap().len(), 2);
    assert_eq!(v["versions"][1]["hash"], hash.as_str());
    let out = run(&["roster", "show", "--chain", &f("roster"), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], 2);
    assert_eq!(v["threshold"], 2);
    assert_eq!(v["members"].as_array().unwrap().len(), 3);
    // From the anchor of version 2, and not from an anchor that is absent.
    let out = run(&[
        "roster",
        "verify",
        "--chain",
        &f("roster"),
        "--anchor",
        &hash,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&[
        "roster",
        "verify",
        "--chain",
        &f("roster"),
        "--anchor",
        &"0".repeat(64),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("anchor_mismatch"),
        "{}",
        text(&out.stderr)
    );
}
