//! Black-box tests of the built `enlace` binary: configuration errors,
//! key and certificate commands, and two nodes run as separate processes
//! exchanging an alert published with the CLI.

use crate::common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use common::eventually;
use enlace::testing::Sandbox;

pub(crate) fn enlace() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_enlace"));
    c.env_remove("RUST_LOG");
    c
}

pub(crate) fn run(args: &[&str]) -> Output {
    enlace().args(args).output().expect("run enlace")
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A node process that is killed if the test fails before stopping it.
struct NodeProcess(Child);

impl NodeProcess {
    fn start(config: &Path) -> Self {
        let child = enlace()
            .args(["node", "run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            // NOTE: not piped: nobody reads it, and a full pipe would block the node.
            .stderr(Stdio::null())
            .spawn()
            .expect("start node");
        Self(child)
    }

    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -TERM {pid}");
        self.0.wait().expect("wait")
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Publishes with `publish` (a CLI run), retrying only while the node is
/// not up yet; any other failure fails the test at once with its message.
async fn publish_when_up(mut publish: impl FnMut() -> Output) -> String {
    eventually("the node to accept the publish", || {
        let out = publish();
        let err = text(&out.stderr);
        if !out.status.success()
            && !err.contains("cannot reach")
            && !err.contains("node unavailable")
        {
            panic!("publish failed: {err}");
        }
        async move {
            out.status.success().then(|| {
                text(&out.stdout)
                    .trim()
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .to_owned()
            })
        }
    })
    .await
}

#[test]
fn an_invalid_config_lists_every_problem_and_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("node.toml");
    std::fs::write(
        &cfg,
        r#"
[node]
id = "Not An Id"

[federation]
roster = "missing-federation.toml"

[listen]
peer = "not-an-address"
agency = "127.0.0.1:99999"

[tls]
cert = "missing.crt"
key = "missing.key"

[signing]
key = "missing-signing.key"

[sync]
batch_size = 0
"#,
    )
    .unwrap();
    let out = run(&["node", "run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64), "stderr: {}", text(&out.stderr));
    let err = text(&out.stderr);
    for field in [
        "node.id:",
        "federation.roster",
        "listen.peer:",
        "listen.agency:",
        "tls:",
        "tls.agency_client_ca: is required",
        "signing.key_id: is required",
        "signing.key:",
        "sync.batch_size:",
    ] {
        assert!(err.contains(field), "missing {field:?} in:\n{err}");
    }
    // Nothing was created: the default data directory does not exist.
    assert!(!dir.path().join("data").exists());

    // An unknown key is named too.
    std::fs::write(&cfg, "[node]\nid = \"gt\"\ncolour = \"blue\"\n").unwrap();
    let out = run(&["node", "check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out.stderr).contains("colour"),
        "{}",
        text(&out.stderr)
    );

    // A missing file is a config error too.
    let out = run(&["node", "run", "--config", "/nonexistent/node.toml"]);
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn keys_and_certificates_are_written_private_and_never_overwritten_silently() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let out = run(&[
        "ca",
        "init",
        "--name",
        "GT federation CA",
        "--cert",
        &p("ca.crt"),
        "--key",
        &p("ca.key"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&[
        "cert",
        "issue",
        "--kind",
        "node",
        "--ca-cert",
        &p("ca.crt"),
        "--ca-key",
        &p("ca.key"),
        "--federation",
        "fed",
        "--node-id",
        "gt",
        "--dns",
        "enlace.gt.example",
        "--ip",
        "127.0.0.1",
        "--cert",
        &p("node.crt"),
        "--key",
        &p("node.key"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&[
        "keys",
        "generate",
        "--key-id",
        "gt-1",
        "--out",
        &p("signing.key"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("key_id = \"gt-1\""),
        "prints the roster entry"
    );
    for key in ["ca.key", "node.key", "signing.key"] {
        let mode = std::fs::metadata(dir.path().join(key))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{key}");
    }
    let before = std::fs::read(dir.path().join("signing.key")).unwrap();
    let out = run(&[
        "keys",
        "generate",
        "--key-id",
        "gt-1",
        "--out",
        &p("signing.key"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read(dir.path().join("signing.key")).unwrap(),
        before,
        "unchanged"
    );

    // A node certificate needs a node id: clap says which flag is missing.
    let out = run(&[
        "cert",
        "issue",
        "--kind",
        "node",
        "--ca-cert",
        &p("ca.crt"),
        "--ca-key",
        &p("ca.key"),
        "--federation",
        "fed",
        "--cert",
        &p("x.crt"),
        "--key",
        &p("x.key"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--node-id"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_node_processes_exchange_an_alert_published_with_the_cli() {
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    // Free the ports the sandbox reserved, for the processes to bind.
    drop(fed.take_listeners("gt"));
    drop(fed.take_listeners("hn"));
    let gt_dir = fed.member("gt").unwrap().dir.clone();
    let hn_dir = fed.member("hn").unwrap().dir.clone();
    let gt = NodeProcess::start(&gt_dir.join("node.toml"));
    let hn = NodeProcess::start(&hn_dir.join("node.toml"));
    let gt_client = gt_dir.join("client.toml");
    let hn_client = hn_dir.join("client.toml");

    let record_id = publish_when_up(|| {
        run(&[
            "alert",
            "publish",
            "--client",
            gt_client.to_str().unwrap(),
            "--type",
            "possible-victim",
            "--offence",
            "trafficking",
            "--exploitation",
            "sexual",
            "--origin-country",
            "HN",
            "--destination-country",
            "GT",
            "--tlp",
            "amber",
            "--handling",
            "H1",
            "--summary",
            "Alerta desde la CLI",
            "--selector",
            "passport=X1234567",
            "--to",
            "hn",
        ])
    })
    .await;
    assert!(record_id.starts_with("gt-"), "{record_id}");

    let line = eventually("the alert listed at hn", || {
        let out = run(&[
            "alert",
            "list",
            "--client",
            hn_client.to_str().unwrap(),
            "--json",
        ]);
        let id = record_id.clone();
        async move {
            text(&out.stdout)
                .lines()
                .find(|l| l.contains(&id))
                .map(str::to_owned)
        }
    })
    .await;
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["record_id"], record_id);
    assert_eq!(v["origin"], "gt");
    // Its first record, or its second after its match filter.
    assert!((1..=2).contains(&v["seq"].as_u64().unwrap()), "{v}");
    assert_eq!(v["kind"], "alert");
    assert_eq!(v["summary"], "Alerta desde la CLI");
    assert_eq!(
        v["distribution"],
        serde_json::json!({"scope": "named", "members": ["hn"]})
    );

    assert_eq!(v["type"], "possible-victim");
    assert_eq!(v["offence"], "trafficking");
    assert_eq!(v["status"], "active");
    assert_eq!(v["version"], 1);
    assert_eq!(v["subject_category"], "victim", "derived from the type");
    // The passport went into gt's match filter: the alert carries no
    // selector at all.
    assert!(
        v.get("selectors")
            .is_none_or(|s| s.as_array().is_some_and(Vec::is_empty)),
        "{v}"
    );
    assert!(
        !line.contains("X1234567"),
        "no clear identifier in what hn holds"
    );

    // Bad input from the CLI: a precise error for every rule, nothing published.
    let out = run(&[
        "alert",
        "publish",
        "--client",
        gt_client.to_str().unwrap(),
        "--type",
        "possible-victim",
        "--offence",
        "smuggling",
        "--exploitation",
        "sexual",
        "--tlp",
        "green",
        "--handling",
        "H3",
        "--summary",
        " ",
        "--to",
        "zz",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    for expected in [
        "alert.summary: must not be empty",
        "alert.trafficking: trafficking elements go only with offence trafficking or undetermined",
        "alert.tlp: an alert about a victim is never TLP:CLEAR or TLP:GREEN",
        "alert.handling.condition: H3 requires its condition",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in {err}");
    }
    let out = run(&[
        "alert",
        "publish",
        "--client",
        gt_client.to_str().unwrap(),
        "--type",
        "warning",
        "--offence",
        "smuggling",
        "--tlp",
        "amber",
        "--handling",
        "H1",
        "--summary",
        "x",
        "--to",
        "zz",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("to: zz is not a member of the federation"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&[
        "alert",
        "list",
        "--client",
        gt_client.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(
        text(&out.stdout).lines().count(),
        1,
        "nothing stored on failure"
    );

    // The record log is compacted only while the node is stopped.
    let gt_config = gt_dir.join("node.toml");
    let compact = || {
        run(&[
            "node",
            "compact",
            "--config",
            gt_config.to_str().unwrap(),
            "--json",
        ])
    };
    let out = compact();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("in use by another process"),
        "{}",
        text(&out.stderr)
    );

    // SIGTERM is a clean shutdown.
    assert!(hn.terminate().success());
    assert!(gt.terminate().success());

    let mut held = Vec::new();
    for _ in 0..2 {
        let out = compact();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            v["bytes_after"].as_u64() <= v["bytes_before"].as_u64(),
            "{v}"
        );
        held.push(v["records"].as_u64().unwrap());
    }
    assert!(held[0] >= 1 && held[0] == held[1], "{held:?}");
}

/// Copies `certs-example/` so a test can tighten its key permissions
/// (git checks files out 0644; a node refuses private keys others can read).
fn example_federation() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs-example");
    let dst = tempfile::tempdir().unwrap();
    let root = dst.path().join("certs-example");
    for entry in walk(&src) {
        let rel = entry.strip_prefix(&src).unwrap();
        let to = root.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &to).unwrap();
        let mode = if to.extension().is_some_and(|e| e == "key") {
            0o600
        } else {
            0o644
        };
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    dst
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p))
        } else {
            out.push(p)
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_federation_runs_from_its_own_files() {
    let root = example_federation();
    let cwd = root.path();
    let in_root = |args: &[&str]| enlace().current_dir(cwd).args(args).output().unwrap();
    for id in ["gt", "hn", "sv"] {
        let out = in_root(&[
            "node",
            "check",
            "--config",
            &format!("certs-example/{id}/node.toml"),
        ]);
        assert!(out.status.success(), "{id}: {}", text(&out.stderr));
    }
    // A key that others can read is refused, and the message says how to fix it.
    {
        use std::os::unix::fs::PermissionsExt;
        let key = cwd.join("certs-example/sv/node.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = in_root(&["node", "check", "--config", "certs-example/sv/node.toml"]);
        assert_eq!(out.status.code(), Some(64));
        assert!(
            text(&out.stderr).contains("chmod 600"),
            "{}",
            text(&out.stderr)
        );
    }

    let start = |id: &str| {
        let child = enlace()
            .current_dir(cwd)
            .args([
                "node",
                "run",
                "--config",
                &format!("certs-example/{id}/node.toml"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        NodeProcess(child)
    };
    let gt = start("gt");
    let hn = start("hn");
    let record_id = publish_when_up(|| {
        in_root(&[
            "alert",
            "publish",
            "--client",
            "certs-example/gt/client.toml",
            "--type",
            "modus-operandi",
            "--offence",
            "smuggling",
            "--tlp",
            "green",
            "--handling",
            "H0",
            "--summary",
            "Ejemplo",
        ])
    })
    .await;
    eventually("the alert at hn", || {
        let out = in_root(&[
            "alert",
            "list",
            "--client",
            "certs-example/hn/client.toml",
            "--json",
        ]);
        let id = record_id.clone();
        async move { text(&out.stdout).contains(&id).then_some(()) }
    })
    .await;
    // The default data directories are ./data/<id> in the working directory.
    assert!(cwd.join("data/gt").is_dir() && cwd.join("data/hn").is_dir());
    assert!(hn.terminate().success());
    assert!(gt.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_covers_the_whole_lifecycle_and_imports_all_or_nothing() {
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    // hn never starts: gt's first start is a new member's, alone.
    gt.components.publisher.declare_new_log();
    let client = fed.member("gt").unwrap().client_path();
    let c = client.to_str().unwrap();

    // Case reference, then an update that changes only the stage.
    let out = run(&[
        "case-ref",
        "publish",
        "--client",
        c,
        "--case-ref",
        "MP-2026-0042",
        "--offence",
        "trafficking",
        "--stage",
        "investigation",
        "--authority",
        "Fiscalía contra la Trata de Personas",
        "--exploitation",
        "forced-labour",
        "--tlp",
        "amber",
        "--handling",
        "H2",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let case_id = text(&out.stdout).trim().to_owned();
    let out = run(&[
        "case-ref",
        "update",
        "--client",
        c,
        &case_id,
        "--stage",
        "prosecution",
        "--mla-status",
        "requested",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&["case-ref", "list", "--client", c, "--json"]);
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "the current version only");
    assert_eq!(lines[0]["stage"], "prosecution");
    assert_eq!(lines[0]["mla_status"], "requested");
    assert_eq!(lines[0]["case_ref"], "MP-2026-0042", "kept from version 1");
    assert_eq!(lines[0]["version"], 2);

    // People read labels in both languages.
    let out = run(&["case-ref", "list", "--client", c]);
    let human = text(&out.stdout);
    assert!(
        human.contains("Trata de personas / Trafficking in persons"),
        "{human}"
    );
    assert!(human.contains("Acusación"), "{human}");

    // Withdraw it.
    let out = run(&[
        "case-ref",
        "withdraw",
        "--client",
        c,
        &case_id,
        "--reason",
        "duplicado",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&[
        "alert",
        "list",
        "--client",
        c,
        "--json",
        "--status",
        "withdrawn",
    ]);
    let v: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(v["withdrawal_reason"], "duplicado");

    // Import: one bad line and nothing is published.
    let dir = tempfile::tempdir().unwrap();
    let good = r#"{"kind":"alert","type":"possible_victim","offence":"trafficking","exploitation":["begging"],"origin_countries":["NI"],"tlp":"amber","handling":"h1","summary":"importada 1","selectors":[{"kind":"passport","value":"C7654321"}]}"#;
    let good2 = r#"{"kind":"case_reference","case_ref":"HN-77","offence":"smuggling","stage":"trial","competent_authority":"Fiscalía","tlp":"green","handling":"h0"}"#;
    let bad = r#"{"kind":"alert","type":"wanted","offence":"trafficking","tlp":"clear","handling":"h1","summary":"sin fines"}"#;
    let file = dir.path().join("import.jsonl");
    std::fs::write(&file, format!("{good}\n{good2}\n{bad}\n")).unwrap();
    let before = run(&["alert", "list", "--client", c, "--json", "--all-versions"]).stdout;
    let out = run(&["alert", "import", "--client", c, file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("line 3:")
            && err.contains("trafficking requires at least one form of exploitation"),
        "{err}"
    );
    assert!(err.contains("nothing was published"), "{err}");
    assert_eq!(
        run(&["alert", "list", "--client", c, "--json", "--all-versions"]).stdout,
        before,
        "unchanged"
    );
    // A typo in a field name is an error too, with its line.
    std::fs::write(
        &file,
        format!("{good}\n{{\"kind\":\"alert\",\"tipo\":\"wanted\"}}\n"),
    )
    .unwrap();
    let out = run(&["alert", "import", "--client", c, file.to_str().unwrap()]);
    assert!(
        text(&out.stderr).contains("line 2:") && text(&out.stderr).contains("tipo"),
        "{}",
        text(&out.stderr)
    );

    std::fs::write(&file, format!("{good}\n{good2}\n")).unwrap();
    let out = run(&["alert", "import", "--client", c, file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 2, "two record ids");
    let out = run(&[
        "alert",
        "list",
        "--client",
        c,
        "--json",
        "--type",
        "possible-victim",
        "--country",
        "ni",
    ]);
    let v: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(v["summary"], "importada 1");
    assert_eq!(v["exploitation"], serde_json::json!(["begging"]));
    gt.stop().await.unwrap();
}

#[test]
fn selector_hash_shows_the_protocol_test_vector() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("test.key");
    // The published test key of docs/selectors.md: bytes 0x00..0x1f.
    std::fs::write(&key, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run(&[
        "selector",
        "hash",
        "name-dob",
        "PÉREZ GÓMEZ, José|1990-05-17",
        "--key",
        key.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(v["normalised"], "GOMEZ JOSE PEREZ|1990-05-17");
    assert_eq!(
        v["token"],
        "1d945e95eede73625574a4f7bc78338f6e27cfef3a450972a2a0fa46f74f373a"
    );
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/selectors.md"))
            .unwrap();
    assert!(
        docs.contains(v["token"].as_str().unwrap()),
        "the docs carry the same vector"
    );
    assert!(v["v1"].is_null(), "v1 and v2 agree: {v}");
    // A name whose v1 form differs: both tokens, as published.
    let out = run(&[
        "selector",
        "hash",
        "name-dob",
        "O'Neil, Seán|2001-01-31",
        "--key",
        key.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(v["normalised"], "ONEIL SEAN|2001-01-31");
    assert_eq!(v["v1"]["normalised"], "NEIL O SEAN|2001-01-31");
    for token in [&v["token"], &v["v1"]["token"]] {
        assert!(docs.contains(token.as_str().unwrap()), "{v}");
    }
    // A bad value gets a precise error that does not repeat it.
    let out = run(&[
        "selector",
        "hash",
        "passport",
        "X1",
        "--key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("passport:"),
        "{}",
        text(&out.stderr)
    );
    assert!(!text(&out.stderr).contains("X1"), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_queries_and_mla_from_the_command_line() {
    let mut fed = Sandbox::create("test-fed", &["hn", "sv"]).await.unwrap();
    let hn = fed.start("hn").await.unwrap();
    let sv = fed.start("sv").await.unwrap();
    let hn_client = fed.member("hn").unwrap().client_path();
    let sv_client = fed.member("sv").unwrap().client_path();
    let (h, s) = (hn_client.to_str().unwrap(), sv_client.to_str().unwrap());

    let out = run(&[
        "case",
        "add",
        "--client",
        h,
        "--case-number",
        "HN-2026-31",
        "--offence",
        "trafficking",
        "--selector",
        "passport=X1234567",
        "--victim",
        "sex=female,age=child,exploitation=sexual,citizenship=HN",
        "--offender",
        "sex=male,citizenship=GT",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let case_id = text(&out.stdout).trim().to_owned();
    assert!(case_id.starts_with("case-"), "{case_id}");

    // Without a justification clap refuses before anything is sent.
    let out = run(&["query", "--client", s, "--selector", "passport=X1234567"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--justification"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&[
        "query",
        "--client",
        s,
        "--selector",
        "passport=X1234567",
        "--justification",
        "caso de trata",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(v["peer"], "hn");
    assert_eq!(v["result"], "hit");
    assert_eq!(v["case_refs"], serde_json::json!(["HN-2026-31"]));
    assert!(v["contact"]["unit"].as_str().unwrap().contains("(hn)"));

    let out = run(&[
        "mla",
        "send",
        "--client",
        s,
        "--to",
        "hn",
        "--query-id",
        v["query_id"].as_str().unwrap(),
        "--legal-basis",
        "UNTOC art. 18",
        "--measures",
        "Copia del expediente",
        "--deadline",
        "2099-01-01",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let request_id = text(&out.stdout).trim().to_owned();
    let listed = eventually("the request acknowledged at sv", || {
        let out = run(&["mla", "list", "--client", s, "--json"]);
        async move {
            let v: serde_json::Value =
                serde_json::from_str(text(&out.stdout).lines().next()?).ok()?;
            (v["state"] == "acknowledged").then_some(v)
        }
    })
    .await;
    assert_eq!(listed["request_id"], request_id.as_str());
    assert_eq!(listed["overdue"], false);
    let out = run(&[
        "mla",
        "respond",
        "--client",
        h,
        &request_id,
        "--outcome",
        "need-info",
        "--text",
        "Falta la orden judicial",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    eventually("need_info at sv", || {
        let out = run(&["mla", "list", "--client", s, "--json"]);
        async move {
            text(&out.stdout)
                .contains("\"state\":\"need-info\"")
                .then_some(())
        }
    })
    .await;
    let out = run(&["case", "close", "--client", h, &case_id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&["case", "list", "--client", h, "--json"]);
    assert_eq!(
        text(&out.stdout).trim(),
        "",
        "a closed case is not listed by default"
    );
    hn.stop().await.unwrap();
    sv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_start_says_so_once_and_without_colour_codes() {
    // The sandbox holds gt's ports: the process cannot bind them.
    let fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let config = fed.member("gt").unwrap().config_path();
    let out = run(&["node", "run", "--config", config.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err.matches("cannot bind peer listener").count(),
        1,
        "printed once: {err}"
    );
    assert!(
        !err.contains('\u{1b}'),
        "no ANSI escapes in a pipe: {err:?}"
    );
}
