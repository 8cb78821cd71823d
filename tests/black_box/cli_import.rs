//! `enlace alert import` as an agency runs it: again after an interruption
//! (what went through is skipped, nothing is published twice), on the
//! output of `list --json`, with every bad line of a file named in one run,
//! and with a line too long for the node refused before anything is sent.

use crate::cli::{run, text};

use enlace::testing::Sandbox;

const ALERT: &str = r#"{"kind":"alert","type":"possible-victim","offence":"trafficking","exploitation":["begging"],"origin_countries":["NI"],"tlp":"amber","handling":"h1","summary":"importada 1","selectors":[{"kind":"passport","value":"C7654321"}]}"#;
const CASE: &str = r#"{"kind":"case-reference","case_ref":"HN-77","offence":"smuggling","stage":"trial","competent_authority":"Fiscalía","tlp":"green","handling":"h0"}"#;
const ALERT2: &str = r#"{"kind":"alert","type":"wanted","offence":"smuggling","origin_countries":["SV"],"tlp":"amber","handling":"h1","summary":"importada 2"}"#;

fn record_count(c: &str) -> usize {
    let out = run(&["alert", "list", "--client", c, "--json", "--all-versions"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).lines().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_run_again_skips_what_went_through_and_publishes_the_rest() {
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    gt.components.publisher.declare_new_log();
    let client = fed.member("gt").unwrap().client_path();
    let c = client.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("import.jsonl");

    // A run interrupted after its first line: that line was published.
    std::fs::write(&file, format!("{ALERT}\n")).unwrap();
    let out = run(&["alert", "import", "--client", c, file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let first_id = text(&out.stdout).trim().to_owned();
    assert_eq!(record_count(c), 1);

    // The whole file, run again (with other spacing and key order for the
    // line that went through, and a repeat of it): one record per line.
    let reordered = r#"{ "summary": "importada 1", "kind": "alert", "type": "possible-victim", "offence": "trafficking", "exploitation": ["begging"], "origin_countries": ["NI"], "tlp": "amber", "handling": "h1", "selectors": [{"kind": "passport", "value": "C7654321"}] }"#;
    std::fs::write(&file, format!("{reordered}\n{CASE}\n{ALERT2}\n{ALERT}\n")).unwrap();
    let out = run(&["alert", "import", "--client", c, file.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    let ids: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(ids.len(), 3, "one record id per distinct line: {ids:?}");
    assert_eq!(
        ids[0], first_id,
        "the line that went through keeps its record"
    );
    assert!(
        err.contains("2 published, 1 skipped as already published, 0 failed"),
        "progress and summary on stderr: {err}"
    );
    assert!(err.contains("line 4 repeats line 1"), "{err}");
    assert_eq!(record_count(c), 3, "nothing published twice");

    // And once more: everything is skipped.
    let out = run(&["alert", "import", "--client", c, file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("0 published, 3 skipped as already published"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(record_count(c), 3);

    // The output of `list --json` is an import file.
    let listed = run(&["alert", "list", "--client", c, "--json", "--kind", "alert"]);
    assert!(listed.status.success());
    let cases = run(&["case-ref", "list", "--client", c, "--json"]);
    assert!(cases.status.success());
    let listing = dir.path().join("listed.jsonl");
    std::fs::write(
        &listing,
        [listed.stdout.as_slice(), cases.stdout.as_slice()].concat(),
    )
    .unwrap();
    let out = run(&[
        "alert",
        "import",
        "--client",
        c,
        "--dry-run",
        listing.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "list output imports: {}",
        text(&out.stderr)
    );
    let out = run(&["alert", "import", "--client", c, listing.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(record_count(c), 6, "the 3 listed records, published anew");
    // A field that is in neither shape is still an error that names it.
    std::fs::write(&file, "{\"kind\":\"alert\",\"colour\":\"blue\"}\n").unwrap();
    let out = run(&["alert", "import", "--client", c, file.to_str().unwrap()]);
    assert!(
        !out.status.success() && text(&out.stderr).contains("colour"),
        "{}",
        text(&out.stderr)
    );
    gt.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_names_every_bad_line_at_once_and_refuses_an_over_long_line() {
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    gt.components.publisher.declare_new_log();
    let client = fed.member("gt").unwrap().client_path();
    let c = client.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("import.jsonl");

    let typo = r#"{"kind":"alert","tipo":"wanted"}"#;
    let rule = r#"{"kind":"alert","type":"wanted","offence":"trafficking","tlp":"clear","handling":"h1","summary":"sin fines"}"#;
    let long = format!(
        r#"{{"kind":"alert","type":"wanted","offence":"smuggling","tlp":"amber","handling":"h1","summary":"{}"}}"#,
        "x".repeat(5 * 1024 * 1024)
    );
    std::fs::write(
        &file,
        format!("{ALERT}\n{typo}\nnot json\n{rule}\n{long}\n{CASE}\n"),
    )
    .unwrap();
    let out = run(&["alert", "import", "--client", c, file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("line 2:") && err.contains("tipo"), "{err}");
    assert!(err.contains("line 3: not JSON"), "{err}");
    assert!(
        err.contains("line 4: alert.trafficking")
            && err.contains("trafficking requires at least one form of exploitation"),
        "the node's rule, with its line and field, in the same run: {err}"
    );
    assert!(
        err.contains("line 5: the line is 5242") && err.contains("at most 1048576 bytes"),
        "{err}"
    );
    assert!(!err.contains("h2 protocol error"), "{err}");
    assert!(
        !err.contains("line 1:") && !err.contains("line 6:"),
        "{err}"
    );
    assert!(err.contains("nothing was published"), "{err}");
    assert_eq!(record_count(c), 0, "all or nothing");
    gt.stop().await.unwrap();
}
