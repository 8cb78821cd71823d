//! A reader that stops reading (`enlace audit export | head`) ends a
//! command quietly: no "Broken pipe", no panic, exit 0.

use crate::cli::{enlace, text};
use crate::common;

use std::process::Stdio;

use enlace::testing::Sandbox;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_ends_a_command_quietly() {
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    gt.components.publisher.declare_new_log();
    let mut g = fed.client("gt").await.unwrap();
    common::publish(&mut g, "una", &[]).await;
    // The sandbox's client is an admin.
    let client = fed.member("gt").unwrap().client_path();
    let c = client.to_str().unwrap();
    for args in [
        vec!["audit", "export", "--client", c],
        vec!["alert", "list", "--client", c, "--json"],
    ] {
        // `| head -0`: the reader is gone before the first line.
        let mut child = enlace()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = text(&out.stderr);
        assert!(
            !err.to_lowercase().contains("broken pipe") && !err.contains("panicked"),
            "{args:?}: {err}"
        );
        assert!(out.status.success(), "{args:?}: {:?} {err}", out.status);
    }
    gt.stop().await.unwrap();
}
