//! `enlace roster` and `enlace keys generate --governance` as an operator
//! runs them: a change compiled, approved offline, refused below the
//! threshold, sealed, verified and shown; and the same change through
//! running nodes: proposed, listed, diffed, approved there and offline,
//! refused for a key of no member, and adopted by the nodes themselves;
//! and a source that breaks the OPRF epoch rules refused at compile.

use crate::cli::{run, text};
use crate::common::eventually;

use std::process::Output;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roster_source_that_changes_an_oprf_epochs_key_is_not_compiled() {
    let fed = Sandbox::create("test-fed", &["gt", "hn", "sv"])
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = |n: &str| work.path().join(n).to_str().unwrap().to_owned();
    let source = fed.dir.join("federation.toml");

    // A new key printed for gt's epoch 1, which the chain lists already.
    let out = run(&[
        "keys",
        "generate-oprf",
        "--epoch",
        "1",
        "--out",
        &w("oprf-1-again.key"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let entry = text(&out.stdout);
    let new_key = entry
        .lines()
        .find_map(|l| l.strip_prefix("public_key = "))
        .unwrap()
        .to_owned();
    let toml = std::fs::read_to_string(&source).unwrap();
    let gt = toml.find("id = \"gt\"").unwrap();
    let at = gt + toml[gt..].find("[[members.oprf_keys]]").unwrap();
    let line = at + toml[at..].find("public_key = ").unwrap();
    let end = line + toml[line..].find('\n').unwrap();
    let edited = format!("{}public_key = {new_key}{}", &toml[..line], &toml[end..]);
    assert_ne!(edited, toml);
    // Beside the original: the source names its CA files relative to it.
    let edited_path = fed.dir.join("federation-edited.toml");
    std::fs::write(&edited_path, edited).unwrap();

    let out = run(&[
        "roster",
        "compile",
        "--file",
        edited_path.to_str().unwrap(),
        "--after",
        fed.chain_dir().to_str().unwrap(),
        "--out",
        &w("2.version"),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    for part in [
        "refused (oprf_epoch): version 2, member gt's oprf_keys, epoch 1",
        "(rule: an epoch keeps its key)",
        "list the new key under a new epoch, greater than 1",
    ] {
        assert!(err.contains(part), "{part:?} not in {err}");
    }
    assert!(!work.path().join("2.version").exists(), "nothing written");
}

/// Runs the binary off the runtime's threads: the nodes of the test run
/// on them meanwhile.
async fn enlace(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args)
    })
    .await
    .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}\nstdout: {}",
        text(&out.stderr),
        text(&out.stdout)
    );
    text(&out.stdout)
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).unwrap()
}

/// Proposal `id` in `roster proposals --json` output, if listed.
fn listed(all: &serde_json::Value, id: &str) -> Option<serde_json::Value> {
    all.as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roster_change_is_proposed_approved_and_adopted_through_the_nodes() {
    let mut fed = Sandbox::create("test-fed", &["gt", "hn", "sv"])
        .await
        .unwrap();
    let mut nodes = Vec::new();
    for id in ["gt", "hn", "sv"] {
        let node = fed.start(id).await.unwrap();
        node.components.publisher.declare_new_log();
        nodes.push(node);
    }
    let work = tempfile::tempdir().unwrap();
    let w = |n: &str| work.path().join(n).to_str().unwrap().to_owned();
    let f = |n: &str| fed.dir.join(n).to_str().unwrap().to_owned();
    let gt = f("gt/client.toml");
    let hn = f("hn/client.toml");
    let v1 = fed.roster().unwrap();
    let v1_hash = hex::encode(v1.position.hash);

    // The version in force at a node: version 1, as the chain holds it.
    let shown = json(&enlace(&["roster", "show", "--client", &gt, "--json"]).await);
    assert_eq!(shown["version"], 1);
    assert_eq!(shown["hash"], v1_hash.as_str());
    assert_eq!(shown["threshold"], 2);
    assert_eq!(shown["members"].as_array().unwrap().len(), 3);
    let shown = ok(&enlace(&["roster", "show", "--client", &gt]).await);
    assert!(shown.contains("roster version 1"), "{shown}");
    assert!(shown.contains(&v1_hash), "{shown}");
    // The same printer as for a chain directory; one of the two, not both.
    let from_chain = ok(&enlace(&["roster", "show", "--chain", &f("roster")]).await);
    assert_eq!(shown, from_chain);
    let out = enlace(&["roster", "show", "--chain", &f("roster"), "--client", &gt]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = enlace(&["roster", "show"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    // The next version adds an observer, mx, with a CA of its own: the
    // voting members and the threshold (2 of 3) stay as they are.
    std::fs::create_dir_all(fed.dir.join("mx")).unwrap();
    ok(&enlace(&[
        "ca",
        "init",
        "--name",
        "mx federation CA",
        "--cert",
        &f("mx/ca.crt"),
        "--key",
        &f("mx/ca.key"),
    ])
    .await);
    let mut source = std::fs::read_to_string(fed.dir.join("federation.toml")).unwrap();
    source.push_str(
        "\n[[members]]\nid = \"mx\"\nname = \"Sandbox observer mx\"\ncountry = \"MX\"\nrole = \"observer\"\nca = [\"mx/ca.crt\"]\n",
    );
    std::fs::write(fed.dir.join("next.toml"), source).unwrap();

    let out = enlace(&[
        "roster",
        "propose",
        "--client",
        &gt,
        "--file",
        &f("next.toml"),
    ])
    .await;
    let id = ok(&out).lines().last().unwrap().to_owned();
    assert_eq!(id.len(), 64, "{id}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    assert!(
        text(&out.stderr).contains("+ member mx"),
        "{}",
        text(&out.stderr)
    );

    // Listed as pending, no approval yet.
    let all = json(&enlace(&["roster", "proposals", "--client", &gt, "--json"]).await);
    let p = listed(&all, &id).expect("the proposal is listed");
    assert_eq!(p["version"], 2);
    assert_eq!(p["state"], "pending");
    assert_eq!(p["approvals"], 0);
    assert_eq!(p["threshold"], 2);
    assert_eq!(p["proposed_by"], "gt");

    // What it changes: mx added, by a prefix of the id.
    let diff = ok(&enlace(&["roster", "diff", "--client", &gt, &id[..12]]).await);
    assert!(diff.contains("+ member mx"), "{diff}");
    assert!(diff.contains(&v1_hash), "{diff}");
    let diff = json(&enlace(&["roster", "diff", "--client", &gt, &id, "--json"]).await);
    assert_eq!(diff["id"], id.as_str());
    assert_eq!(diff["previous"]["version"], 1);
    assert_eq!(diff["follows"], true);
    assert!(
        diff["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["what"] == "member_added" && c["member"] == "mx"),
        "{diff}"
    );

    // gt approves at its node; the same key again still counts once.
    let approve = |key: String| {
        let (gt, id) = (gt.clone(), id.clone());
        async move {
            enlace(&[
                "roster",
                "approve",
                "--client",
                &gt,
                &id,
                "--governance-key",
                &key,
            ])
            .await
        }
    };
    let out = approve(f("gt/governance.key")).await;
    let said = ok(&out);
    assert!(said.contains("pending, approvals 1 of 2"), "{said}");
    assert!(
        text(&out.stderr).contains("approving as gt"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("+ member mx"),
        "{}",
        text(&out.stderr)
    );
    let said = ok(&approve(f("gt/governance.key")).await);
    assert!(said.contains("pending, approvals 1 of 2"), "{said}");
    let all = json(&enlace(&["roster", "proposals", "--client", &gt, "--json"]).await);
    assert_eq!(listed(&all, &id).unwrap()["approvals"], 1);

    // A governance key of no member: the node refuses it, with its reason.
    ok(&enlace(&[
        "keys",
        "generate",
        "--governance",
        "--out",
        &w("outsider.key"),
    ])
    .await);
    let out = approve(w("outsider.key")).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unknown_key"),
        "{}",
        text(&out.stderr)
    );
    let all = json(&enlace(&["roster", "proposals", "--client", &gt, "--json"]).await);
    assert_eq!(listed(&all, &id).unwrap()["approvals"], 1);

    // hn's administrator takes the proposal's bytes to an offline
    // machine (checked against the id) and signs them there…
    ok(&enlace(&[
        "roster",
        "diff",
        "--client",
        &gt,
        &id,
        "--out",
        &w("2.version"),
    ])
    .await);
    let out = enlace(&[
        "roster",
        "sign",
        "--proposal",
        &w("2.version"),
        "--governance-key",
        &f("hn/governance.key"),
        "--out",
        &w("2.hn"),
    ])
    .await;
    ok(&out);
    // …and submits the approval at hn, once hn holds the proposal and
    // gt's approval: it is the second, and hn adopts version 2.
    eventually("hn holds the proposal with gt's approval", || async {
        let all = json(&enlace(&["roster", "proposals", "--client", &hn, "--json"]).await);
        listed(&all, &id).filter(|p| p["approvals"] == 1)
    })
    .await;
    let said = ok(&enlace(&[
        "roster",
        "submit",
        "--client",
        &hn,
        "--signature",
        &w("2.hn"),
    ])
    .await);
    assert!(said.contains("adopted, approvals 2 of 2"), "{said}");

    // gt adopts it too once hn's approval reaches it.
    let shown = eventually("gt has version 2 in force", || async {
        let shown = json(&enlace(&["roster", "show", "--client", &gt, "--json"]).await);
        (shown["version"] == 2).then_some(shown)
    })
    .await;
    assert_eq!(shown["hash"], id.as_str());
    assert_eq!(shown["previous"], v1_hash.as_str());
    assert!(
        shown["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "mx" && m["role"] == "observer"),
        "{shown}"
    );
    let all = json(&enlace(&["roster", "proposals", "--client", &gt, "--json"]).await);
    let p = listed(&all, &id).unwrap();
    assert_eq!(p["state"], "adopted");
    assert_eq!(p["approvals"], 2);

    for node in nodes {
        node.stop().await.unwrap();
    }
}
