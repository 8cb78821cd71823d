//! A damaged store never panics: seeded trials flip single bytes in, and
//! truncate, each file of a stopped node's store, and run the binary on
//! it. Each trial either refuses with the corrupt-store message and its
//! remedy, or opens; none exits 101 (a Rust panic).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common;
use enlace::testing::Sandbox;

/// Every file under `dir`, relative to it.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    for f in files(from) {
        let target = to.join(&f);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&f), &target).unwrap();
    }
}

/// A small deterministic generator, so that a failing trial repeats.
struct Seeded(u64);

impl Seeded {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }
}

fn enlace(args: &[&str], config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_enlace"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("RUST_LOG")
        .output()
        .expect("run enlace")
}

/// `node run` on the damaged store: it refuses at once, or it opens and
/// stops cleanly on SIGTERM.
async fn run_node(config: &Path) -> Option<i32> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_enlace"))
        .args(["node", "run", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    let until = Instant::now() + Duration::from_millis(1500);
    let mut ticks = common::pace(Duration::from_millis(20));
    while Instant::now() < until {
        ticks.tick().await;
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().unwrap().code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_is_refused_with_its_remedy_and_never_panics() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    drop(fed.take_listeners("gt"));
    drop(fed.take_listeners("hn"));
    {
        let gt = fed.start("gt").await.unwrap();
        gt.components.publisher.declare_new_log();
        let mut c = fed.client("gt").await.unwrap();
        for i in 0..30 {
            common::publish(&mut c, &format!("registro {i}"), &[]).await;
        }
        gt.stop().await.unwrap();
    }
    let data = fed.member("gt").unwrap().data_dir();
    let config = fed.member("gt").unwrap().config_path();
    let pristine = fed.dir.join("pristine");
    copy_dir(&data, &pristine);
    let mut rng = Seeded(0x00e1_ace0);
    let mut refused = 0;
    let mut trials = 0;
    for file in files(&pristine) {
        let len = std::fs::metadata(pristine.join(&file)).unwrap().len();
        if len == 0 {
            continue;
        }
        // Flipped bytes, one at a time (one in the file's first 512 bytes,
        // where the headers are), and a cut at a random place.
        for trial in 0..6 {
            copy_dir(&pristine, &data);
            let path = data.join(&file);
            let mut bytes = std::fs::read(&path).unwrap();
            let at = if trial == 0 {
                rng.below(len.min(512))
            } else {
                rng.below(len)
            } as usize;
            let what = if trial < 5 {
                bytes[at] ^= 1 << rng.below(8);
                format!("{} byte {at} flipped", file.display())
            } else {
                bytes.truncate(at);
                format!("{} cut at {at}", file.display())
            };
            std::fs::write(&path, &bytes).unwrap();
            trials += 1;
            let verify = enlace(&["audit", "verify", "--local-only"], &config);
            let stderr = String::from_utf8_lossy(&verify.stderr);
            assert_ne!(
                verify.status.code(),
                Some(101),
                "audit verify panicked: {what}: {stderr}"
            );
            if stderr.contains("store is corrupt") {
                assert!(stderr.contains("enlace node recover"), "{what}: {stderr}");
                refused += 1;
            }
            let code = run_node(&config).await;
            assert_ne!(code, Some(101), "node run panicked: {what}");
            let out = enlace(&["doctor"], &config);
            assert_ne!(out.status.code(), Some(101), "doctor panicked: {what}");
            eprintln!(
                "{what}: audit verify {:?}, node run {code:?}, doctor {:?}",
                verify.status.code(),
                out.status.code()
            );
        }
    }
    assert!(trials >= 8, "{trials} trials");
    eprintln!("{refused} of {trials} trials refused as corrupt");
}
