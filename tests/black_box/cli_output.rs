//! What the list commands print and accept: one JSON shape per field,
//! kebab-case codes, the documented `--kind` spelling, flags that cannot
//! apply refused.

use crate::cli::{run, text};
use crate::common;

use enlace::testing::Sandbox;

fn json_lines(out: &std::process::Output) -> Vec<serde_json::Value> {
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_has_one_shape_per_field_and_list_flags_are_checked() {
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    gt.components.publisher.declare_new_log();
    let client = fed.member("gt").unwrap().client_path();
    let c = client.to_str().unwrap();
    let mut g = fed.client("gt").await.unwrap();
    common::publish(&mut g, "a todos", &[]).await;
    common::publish(&mut g, "a hn", &["hn"]).await;
    let out = run(&[
        "case-ref",
        "publish",
        "--client",
        c,
        "--case-ref",
        "MP-1",
        "--offence",
        "smuggling",
        "--stage",
        "investigation",
        "--authority",
        "Fiscalía",
        "--tlp",
        "amber",
        "--handling",
        "H1",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let all = json_lines(&run(&["alert", "list", "--client", c, "--json"]));
    assert_eq!(all.len(), 3);
    assert_eq!(
        all[0]["distribution"],
        serde_json::json!({"scope": "all", "members": []})
    );
    assert_eq!(
        all[1]["distribution"],
        serde_json::json!({"scope": "named", "members": ["hn"]})
    );
    assert_eq!(all[0]["type"], "possible-victim", "kebab-case codes");
    assert_eq!(all[2]["kind"], "case-reference");
    for line in &all {
        for (field, v) in line.as_object().unwrap() {
            if let Some(s) = v.as_str()
                && !["summary", "competent_authority", "case_ref"].contains(&field.as_str())
                && !field.ends_with("_id")
                && !field.ends_with("_at")
            {
                assert!(!s.contains('_'), "{field}: {s} is not kebab-case");
            }
        }
    }

    // The documented spelling of a kind, and the old one, both work.
    for kind in ["case-reference", "case_reference"] {
        let cases = json_lines(&run(&[
            "alert", "list", "--client", c, "--json", "--kind", kind,
        ]));
        assert_eq!(cases.len(), 1, "--kind {kind}");
        assert_eq!(cases[0]["case_ref"], "MP-1");
    }
    let out = run(&["alert", "list", "--client", c, "--kind", "case"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--kind: unknown kind \"case\"; one of: alert, case-reference"),
        "{}",
        text(&out.stderr)
    );

    // A flag that cannot apply to case references is refused, by name.
    for (flag, value) in [
        ("--kind", "alert"),
        ("--type", "wanted"),
        ("--country", "HN"),
    ] {
        let out = run(&["case-ref", "list", "--client", c, flag, value]);
        assert_eq!(out.status.code(), Some(1), "{flag}");
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("{flag}: ")) && err.contains("alert list"),
            "{flag}: {err}"
        );
        assert!(out.stdout.is_empty(), "{flag}: nothing listed");
    }
    assert_eq!(
        json_lines(&run(&["case-ref", "list", "--client", c, "--json"])).len(),
        1
    );
    gt.stop().await.unwrap();
}
