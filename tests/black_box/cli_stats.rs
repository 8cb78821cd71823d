//! `enlace stats` from the command line: the JSON cell contract, what
//! publishing says, and the regional report written as CSV and HTML.

use crate::cli::{run, text};

use enlace::testing::Sandbox;

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_compute_publish_and_regional_from_the_command_line() {
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    gt.components.publisher.declare_new_log();
    let client = fed.member("gt").unwrap().client_path();
    let c = client.to_str().unwrap();
    // Seven women smuggled, one of them a girl (a small cell).
    let mut args = vec![
        "case",
        "add",
        "--client",
        c,
        "--case-number",
        "MP-GT-0001",
        "--offence",
        "smuggling",
        "--stage-reached",
        "2026-03-01",
        "--selector",
        "passport=X1234567",
        "--victim",
        "sex=female,age=child,citizenship=HN",
    ];
    for _ in 0..6 {
        args.extend(["--victim", "sex=female,age=adult,citizenship=HN"]);
    }
    ok(&run(&args));

    // Bad input: the flag and the rule.
    let out = run(&["stats", "compute", "--client", c, "--period", "26"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--period"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&[
        "stats",
        "compute",
        "--client",
        c,
        "--period",
        "2026",
        "--table",
        "trafficking",
    ]);
    assert!(text(&out.stderr).contains("expected one of: victims, persons, smuggling"));

    let cells: Vec<serde_json::Value> = serde_json::from_str(&ok(&run(&[
        "stats",
        "compute",
        "--client",
        c,
        "--period",
        "2026",
        "--table",
        "smuggling",
        "--json",
    ])))
    .unwrap();
    let girls = cells
        .iter()
        .find(|v| v["table"] == "smuggled" && v["sex"] == "female" && v["age_group"] == "child")
        .expect("the female/child cell");
    assert_eq!(girls["value"], serde_json::Value::Null);
    assert_eq!(girls["suppressed"], "primary");
    assert_eq!(girls["member"], "gt");
    assert_eq!(girls["period"], "2026");
    // A dimension the table lacks is absent; margins say "total".
    assert!(girls.get("exploitation").is_none(), "{girls}");
    let women = cells
        .iter()
        .find(|v| v["table"] == "smuggled" && v["sex"] == "female" && v["age_group"] == "total")
        .unwrap();
    assert_eq!(women["value"], 7);
    assert!(cells.iter().any(|v| v["table"] == "smuggling_persons"));

    let published = ok(&run(&[
        "stats", "publish", "--client", c, "--period", "2026",
    ]));
    assert_eq!(
        published
            .lines()
            .filter(|l| l.contains("published as version 1"))
            .count(),
        4,
        "{published}"
    );
    // Again, with nothing changed: nothing to publish, nothing to correct.
    let again = ok(&run(&[
        "stats", "publish", "--client", c, "--period", "2026",
    ]));
    assert_eq!(
        again.lines().filter(|l| l.contains("unchanged")).count(),
        4,
        "{again}"
    );

    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("regional.html");
    ok(&run(&[
        "stats",
        "regional",
        "--client",
        c,
        "--period",
        "2026",
        "--table",
        "smuggling",
        "--format",
        "html",
        "--out",
        html.to_str().unwrap(),
    ]));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<svg") && page.trim_end().ends_with("</html>"));
    assert!(!page.contains("MP-GT-0001"));
    let csv = ok(&run(&[
        "stats", "regional", "--client", c, "--period", "2026", "--table", "smuggled", "--format",
        "csv",
    ]));
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "country,member,year,period,table,indicator,sex,age_group,exploitation,citizenship,stage,value,flag"
        )
    );
    assert!(
        csv.lines()
            .any(|l| l.starts_with("GT,gt,2026,2026,smuggled,")
                && l.contains(",female,child,")
                && l.ends_with(",suppressed_primary")),
        "{csv}"
    );
    // Withdrawn, the report leaves the regional table.
    let withdrawn = ok(&run(&[
        "stats",
        "withdraw",
        "--client",
        c,
        "--period",
        "2026",
        "--table",
        "smuggled",
        "--reason",
        "cifras duplicadas",
    ]));
    assert!(withdrawn.starts_with("withdrawn: gt-"), "{withdrawn}");
    let out = run(&[
        "stats", "regional", "--client", c, "--period", "2026", "--table", "smuggled",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no member has published the smuggled table for 2026"),
        "{}",
        text(&out.stderr)
    );
    gt.stop().await.unwrap();
}
