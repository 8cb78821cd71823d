//! `enlace alert watch` outlives a node restart: it reconnects and goes on
//! from the last position it printed, and says on stderr where it is.

use crate::cli::enlace;
use crate::common::{self, DEADLINE};

use std::io::BufRead;
use std::process::{Child, Stdio};
use std::sync::mpsc;

use enlace::testing::Sandbox;

/// A running `enlace` whose output lines arrive on channels; killed when
/// dropped.
struct Watching {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

fn lines(r: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(r).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

impl Watching {
    fn start(args: &[&str]) -> Self {
        let mut child = enlace()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start enlace");
        let stdout = lines(child.stdout.take().expect("stdout"));
        let stderr = lines(child.stderr.take().expect("stderr"));
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// The first line of `rx` that contains `what`, within the deadline.
    async fn wait_for(
        rx: &mpsc::Receiver<String>,
        what: &str,
        seen: &mut Vec<String>,
    ) -> Option<String> {
        let deadline = std::time::Instant::now() + DEADLINE;
        let mut ticks = common::pace(std::time::Duration::from_millis(20));
        while std::time::Instant::now() < deadline {
            match rx.try_recv() {
                Ok(line) => {
                    seen.push(line.clone());
                    if line.contains(what) {
                        return Some(line);
                    }
                }
                Err(mpsc::TryRecvError::Empty) => {
                    ticks.tick().await;
                }
                Err(mpsc::TryRecvError::Disconnected) => return None,
            }
        }
        None
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_reconnects_after_a_node_restart_and_resumes_where_it_was() {
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    gt.components.publisher.declare_new_log();
    let client = fed.member("gt").unwrap().client_path();
    let mut w = Watching::start(&[
        "alert",
        "watch",
        "--client",
        client.to_str().unwrap(),
        "--json",
    ]);
    let mut err = Vec::new();
    Watching::wait_for(&w.stderr, "watching for records after position 0", &mut err)
        .await
        .unwrap_or_else(|| panic!("the watch starts: {err:?}"));

    let mut c = fed.client("gt").await.unwrap();
    common::publish(&mut c, "antes del reinicio", &[]).await;
    let mut out = Vec::new();
    let first = Watching::wait_for(&w.stdout, "antes del reinicio", &mut out)
        .await
        .unwrap_or_else(|| panic!("the first record: {out:?} {err:?}"));
    let position = serde_json::from_str::<serde_json::Value>(&first).unwrap()["position"]
        .as_u64()
        .unwrap();

    // The node stops: the watch says where it was and keeps trying.
    drop(c);
    gt.stop().await.unwrap();
    let lost = Watching::wait_for(&w.stderr, "reconnecting", &mut err)
        .await
        .unwrap_or_else(|| panic!("the watch says it lost the node: {err:?}"));
    assert!(
        lost.contains(&format!("--after {position}")),
        "the position to resume from: {lost}"
    );
    assert!(w.child.try_wait().unwrap().is_none(), "still watching");

    // The node is back: the next record arrives, and only it.
    let gt = fed.start("gt").await.unwrap();
    gt.components.publisher.declare_new_log();
    let mut c = fed.client("gt").await.unwrap();
    common::publish(&mut c, "después del reinicio", &[]).await;
    Watching::wait_for(&w.stdout, "después del reinicio", &mut out)
        .await
        .unwrap_or_else(|| panic!("the record after the restart: {out:?} {err:?}"));
    assert_eq!(
        out.iter()
            .filter(|l| l.contains("antes del reinicio"))
            .count(),
        1,
        "nothing printed twice: {out:?}"
    );

    // Started with --after, it resumes there: the second record only.
    let mut again = Watching::start(&[
        "alert",
        "watch",
        "--client",
        client.to_str().unwrap(),
        "--json",
        "--after",
        &position.to_string(),
    ]);
    let mut out2 = Vec::new();
    let next = Watching::wait_for(&again.stdout, "reinicio", &mut out2)
        .await
        .unwrap_or_else(|| panic!("a record after {position}: {out2:?}"));
    assert!(next.contains("después del reinicio"), "{next}");
    let _ = again.child.kill();
    drop(w);
    gt.stop().await.unwrap();
}
