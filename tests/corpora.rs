//! Replays every file of the fuzz corpora (`tests/fuzz/corpus/<target>/`)
//! through the same functions the fuzz targets run
//! (`enlace::testing::fuzz`), on stable and in seconds: the inputs the
//! fuzzer found interesting, and every crash it found once, stay checked
//! by `cargo test`. See `docs/fuzzing.md`.

use std::path::{Path, PathBuf};

use enlace::testing::fuzz::{self, TARGETS};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_file_replays_without_a_panic() {
    for (target, run) in TARGETS {
        let files = files(&corpus(target));
        assert!(!files.is_empty(), "the corpus of {target} is empty");
        for path in files {
            let data = std::fs::read(&path).expect("a corpus file reads");
            let name = path.display().to_string();
            if std::panic::catch_unwind(|| run(&data)).is_err() {
                panic!("{target}: {name} panics");
            }
        }
    }
}

#[test]
fn every_seed_is_in_its_corpus() {
    for seed in fuzz::seeds::seeds() {
        assert!(
            !seed.bytes.is_empty(),
            "{}/{} is empty",
            seed.target,
            seed.name
        );
        let path = corpus(seed.target).join(&seed.name);
        assert!(
            path.is_file(),
            "{} is missing: run `cargo test --test corpora -- --ignored write_seeds`",
            path.display()
        );
    }
}

/// The seeds are what their names say: valid inputs, accepted whole (and
/// the `invalid-*` ones refused, see [`oblivious_seed`]).
#[test]
fn seeds_are_valid_inputs() {
    use enlace::records::selector::normalise;
    use enlace::records::vocabulary::SelectorKind;
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs-example");
    let roster = enlace::trust::load::chain_of(&base.join("roster"), None, None)
        .unwrap_or_else(|e| panic!("{e:?}"))
        .head()
        .version
        .roster
        .clone();
    let mut problems = Vec::new();
    for seed in fuzz::seeds::seeds() {
        let what = format!("{}/{}", seed.target, seed.name);
        let mut fail = |e: String| problems.push(format!("{what}: {e}"));
        match seed.target {
            "record" if seed.name.starts_with("seed-body-") => {
                if let Err(e) = enlace::wire::decode_body(&seed.bytes) {
                    fail(e.to_string());
                }
            }
            "record" => {
                let envelope = enlace::wire::Envelope::decode(&seed.bytes).expect(&what);
                if let Err(e) = enlace::trust::verify::verify(&roster, &envelope) {
                    fail(e.to_string());
                }
            }
            "roster" if seed.name.starts_with("seed-signed-") => {
                match enlace::trust::chain::Signed::decode(&seed.bytes) {
                    Ok(signed) => {
                        if let Err(e) = enlace::trust::chain::verify_start(&signed, None, None) {
                            fail(e.to_string());
                        }
                    }
                    Err(e) => fail(e.to_string()),
                }
            }
            "roster" => {
                let text = String::from_utf8(seed.bytes.clone()).expect(&what);
                if let Err(e) = enlace::trust::roster::RosterSource::parse(
                    &text,
                    &base,
                    &base.join("federation.toml"),
                ) {
                    fail(e.to_string());
                }
            }
            "config" => {
                let text = String::from_utf8(seed.bytes.clone()).expect(&what);
                let path = Path::new("/etc/enlace/node.toml");
                match enlace::config::parse(&text, path) {
                    Ok(raw) => {
                        if let Err(e) = enlace::config::validate::settings(&raw, path, None) {
                            fail(e.to_string());
                        }
                    }
                    Err(e) => fail(e.to_string()),
                }
            }
            "selector" => {
                let text = String::from_utf8(seed.bytes.clone()).expect(&what);
                let accepted = SelectorKind::ALL
                    .iter()
                    .any(|k| normalise(*k, &text).is_ok())
                    || enlace::records::selector::parse_selector_arg(&text).is_ok();
                if !accepted {
                    fail(format!("no kind accepts {text:?}"));
                }
            }
            "oblivious" => {
                if let Err(e) = oblivious_seed(&seed.name, &seed.bytes) {
                    fail(e);
                }
            }
            _ => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// An `oblivious` seed: `seed-evaluate-*` and `seed-confirm-*` pass their
/// call's check; `seed-invalid-<call>-<field>-*` is refused by its call's
/// check, and the refusal names `<field>`.
fn oblivious_seed(name: &str, bytes: &[u8]) -> Result<(), String> {
    use enlace::service::oblivious::{check_confirm, check_evaluate};
    use enlace::wire::pb::v1 as pb;
    use prost::Message;
    let max = enlace::config::QueryConfig::default().max_selectors;
    let name = name.strip_prefix("seed-").unwrap_or(name);
    let (valid, rest) = match name.strip_prefix("invalid-") {
        Some(rest) => (false, rest),
        None => (true, name),
    };
    let verdict = if rest.starts_with("evaluate") {
        let req = pb::EvaluateRequest::decode(bytes).map_err(|e| e.to_string())?;
        check_evaluate(&req, max).map(|_| ())
    } else if rest.starts_with("confirm") {
        let req = pb::ConfirmRequest::decode(bytes).map_err(|e| e.to_string())?;
        check_confirm(&req, max).map(|_| ())
    } else {
        return Err("names neither evaluate nor confirm".into());
    };
    match verdict {
        Ok(()) if valid => Ok(()),
        Ok(()) => Err("is accepted".into()),
        Err(e) if valid => Err(format!("is refused: {e}")),
        Err(e) => {
            let field = rest.split('-').nth(1).unwrap_or_default();
            let message = e.to_string();
            if message.starts_with(field) && !field.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "is refused for another field than {field:?}: {message}"
                ))
            }
        }
    }
}

/// Writes the seeds into the corpora (after a change to the seeds, or to
/// the formats they are made with).
#[test]
#[ignore = "writes into tests/fuzz/corpus"]
fn write_seeds() {
    for seed in fuzz::seeds::seeds() {
        let dir = corpus(seed.target);
        std::fs::create_dir_all(&dir).expect("the corpus directory");
        std::fs::write(dir.join(&seed.name), &seed.bytes).expect("a seed writes");
    }
}
