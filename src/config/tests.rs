//! The shipped example, the defaults, and the whole-file report.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{ClientRole, DEFAULT_CACHE_BYTES, LogFormat, Reveal, Settings, read, validate};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/config/node.toml")
}

/// Writes `text` as `node.toml` in a fresh directory and validates it.
fn check(text: &str) -> Result<Settings, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.toml");
    std::fs::write(&path, text).unwrap();
    let raw = read(&path).map_err(|e| e.problems)?;
    validate::settings(&raw, &path, None).map_err(|e| e.problems)
}

const MINIMAL: &str = r#"
[node]
id = "gt"
[federation]
chain = "roster"
[listen]
peer = "127.0.0.1:7101"
agency = "127.0.0.1:7201"
[tls]
cert = "node.crt"
key = "node.key"
agency_client_ca = "agency-ca.crt"
[signing]
key = "signing.key"
key_id = "gt-2026"
"#;

// NOTE: this checks the file's schema and every rule that needs no file
// (types, ranges, unknown keys, addresses, roles, the contact point). It
// does not read the roster, certificates or keys the example names (they
// are paths on a production host): those are checked by `trust::load`,
// which the integration tests run on generated federations.
#[test]
fn the_deploy_example_parses_and_validates() {
    let path = example();
    let raw = read(&path).unwrap_or_else(|e| panic!("{e}"));
    let s = validate::settings(&raw, &path, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.node_id.as_str(), "gt");
    assert_eq!(s.data_dir, Path::new("/var/lib/enlace"));
    assert_eq!(s.cache_bytes, DEFAULT_CACHE_BYTES);
    assert_eq!(s.peer_listen, "0.0.0.0:7443".parse().unwrap());
    assert_eq!(s.metrics_listen, Some("10.20.0.5:9101".parse().unwrap()));
    assert_eq!(s.tls_files.chain, Path::new("/etc/enlace/roster"));
    assert_eq!(s.tls_files.anchor, None);
    assert_eq!(s.key_files.signing_key_id, "gt-2026");
    assert_eq!(s.key_files.matching.as_ref().map(|m| m.epoch), Some(1));
    assert_eq!(s.sync.batch_size, 256);
    assert_eq!(s.log_format, LogFormat::Json);
    assert_eq!(s.query.reveal, Reveal::ContactOnly);
    assert_eq!(s.agency.role_of("operador-enlace"), ClientRole::Admin);
    assert_eq!(s.agency.role_of("someone-else"), ClientRole::Reader);
    assert!(s.agency.contact.is_some());

    // The keys shown commented out are valid too.
    let text = std::fs::read_to_string(&path).unwrap();
    let uncommented: String = text
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if is_key_or_table(rest) => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(uncommented, text.trim_end());
    let s = check(&uncommented).unwrap_or_else(|p| panic!("{p:#?}"));
    assert_eq!(s.tls_files.peer_crls.len(), 1);
    assert_eq!(s.tls_files.agency_client_crls.len(), 1);
    let hn = s.sync.endpoints.values().next().map(ToString::to_string);
    assert_eq!(hn.as_deref(), Some("10.8.0.2:7443"));
}

/// `key = …` or `[[table]]`: a commented-out setting, not prose.
fn is_key_or_table(text: &str) -> bool {
    text.starts_with("[[")
        || text.split_once(" = ").is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
}

#[test]
fn a_key_left_out_takes_the_default_it_always_had() {
    let s = check(MINIMAL).unwrap_or_else(|p| panic!("{p:#?}"));
    assert_eq!(s.cache_bytes, 32 * 1024 * 1024);
    assert_eq!(s.data_dir, Path::new("data/gt"));
    assert_eq!(s.metrics_listen, None);
    assert_eq!(s.reload.poll, Some(Duration::from_secs(5)));
    assert_eq!(s.sync.batch_size, 1024);
    assert_eq!(s.sync.backoff_min, Duration::from_millis(200));
    assert_eq!(s.sync.backoff_max, Duration::from_secs(30));
    assert_eq!(s.sync.silence_limit, Duration::from_secs(45));
    assert_eq!(s.sync.heartbeat, Duration::from_secs(15));
    assert!(s.sync.endpoints.is_empty());
    assert_eq!(s.log_format, LogFormat::Text);
    assert!(s.key_files.matching.is_none());
    assert_eq!(
        s.records.default_validity,
        Duration::from_secs(365 * 86_400)
    );
    assert_eq!(s.records.max_validity, Duration::from_secs(1825 * 86_400));
    assert_eq!(s.records.expiry_check, Duration::from_secs(60));
    assert_eq!(s.agency.default_role, ClientRole::None);
    assert!(s.agency.clients.is_empty() && s.agency.contact.is_none());
    assert_eq!(s.query.max_selectors, 16);
    assert_eq!(s.query.max_per_minute, 30);
    assert_eq!(s.query.deadline, Duration::from_secs(5));
    assert_eq!(s.query.reveal, Reveal::ContactOnly);
    assert_eq!(s.audit.checkpoint_interval, Duration::from_secs(300));
    assert_eq!(s.audit.retention, None);
    // Relative paths resolve against the file's directory.
    assert!(s.tls_files.cert.is_absolute() && s.tls_files.cert.ends_with("node.crt"));
}

#[test]
fn the_heartbeat_stays_below_the_silence_limit() {
    let short = check(&format!("{MINIMAL}\n[sync]\nsilence_limit_ms = 900\n")).unwrap();
    assert_eq!(short.sync.heartbeat, Duration::from_millis(300), "a third");
    let set = check(&format!(
        "{MINIMAL}\n[sync]\nsilence_limit_ms = 900\nheartbeat_ms = 200\n"
    ))
    .unwrap();
    assert_eq!(set.sync.heartbeat, Duration::from_millis(200));
    let problems = check(&format!(
        "{MINIMAL}\n[sync]\nsilence_limit_ms = 900\nheartbeat_ms = 900\n"
    ))
    .unwrap_err();
    assert_eq!(
        problems,
        [
            "sync.heartbeat_ms: must be below sync.silence_limit_ms (900), or peers configured alike drop quiet streams (got 900)"
        ]
    );
    let problems = check(&format!("{MINIMAL}\n[sync]\nheartbeat_ms = 50\n")).unwrap_err();
    assert_eq!(
        problems,
        ["sync.heartbeat_ms: must be at least 100 (got 50)"]
    );
}

#[test]
fn every_problem_is_reported_at_once_in_the_order_they_were_always_checked() {
    let problems = check("[matching]\nepoch = 0\n[sync]\nbatch_size = 0\n").unwrap_err();
    assert_eq!(
        problems,
        [
            "node.id: is required",
            "federation.chain: is required",
            "listen.peer: is required",
            "listen.agency: is required",
            "tls.cert: is required",
            "tls.key: is required",
            "tls.agency_client_ca: is required",
            "signing.key_id: is required",
            "signing.key: is required",
            "sync.batch_size: must be between 1 and 4096 (got 0)",
            "matching.epoch: must be at least 1",
        ]
    );
    let problems = check(&format!(
        "{MINIMAL}[query]\nreveal = \"all\"\n[audit]\nretention_days = 7\n"
    ))
    .unwrap_err();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].starts_with("audit.retention_days: must be 0"));
    assert!(problems[1].starts_with("query.reveal: \"all\" is not a policy"));
    // An unknown key stops the reading: it is named, alone.
    let problems = check(&format!("{MINIMAL}colour = \"blue\"\n")).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].contains("colour"), "{problems:#?}");
}

#[test]
fn statistics_protect_at_least_three_and_name_each_bad_field() {
    let s = check(MINIMAL).unwrap();
    assert_eq!(
        s.statistics.method,
        crate::records::stats::Method::Suppression { threshold: 5 },
        "suppression of 1 .. 4 by default"
    );
    let s = check(&format!(
        "{MINIMAL}\n[statistics]\nmethod = \"rounding\"\nrounding_base = 10\n[[statistics.population]]\nyear = 2024\ncount = 17000000\nsource = \"INE\"\n"
    ))
    .unwrap();
    assert_eq!(
        s.statistics.method,
        crate::records::stats::Method::Rounding { base: 10 }
    );
    // A later year without its own figure uses the latest earlier one.
    assert_eq!(
        s.statistics.population_for(2026).map(|p| p.year),
        Some(2024)
    );
    assert!(s.statistics.population_for(2023).is_none());
    let problems = check(&format!(
        "{MINIMAL}\n[statistics]\nmethod = \"noise\"\nthreshold = 2\nvalidity_days = 4000\n[[statistics.population]]\nyear = 2026\ncount = 0\nsource = \"\"\n[[statistics.population]]\nyear = 2026\ncount = 5\nsource = \"INE\"\n"
    ))
    .unwrap_err();
    for expected in [
        "statistics.threshold: must be at least 3",
        "statistics.method: \"noise\" is not a method",
        "statistics.validity_days: must not exceed records.max_validity_days (1825 days)",
        "statistics.population[0].count: must be positive",
        "statistics.population[0].source: must not be empty",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(expected)),
            "{expected} not in {problems:?}"
        );
    }
    // The second 2026 is refused only if the first was accepted; here the
    // first was bad, so it is not a duplicate.
    let dup = check(&format!(
        "{MINIMAL}\n[[statistics.population]]\nyear = 2026\ncount = 1\nsource = \"a\"\n[[statistics.population]]\nyear = 2026\ncount = 2\nsource = \"b\"\n"
    ))
    .unwrap_err();
    assert_eq!(dup, ["statistics.population[1].year: 2026 is given twice"]);
}

#[test]
fn an_unsigned_roster_is_refused_with_the_remedy_and_an_anchor_is_checked() {
    let old = MINIMAL.replace("chain = \"roster\"", "roster = \"federation.toml\"");
    let problems = check(&old).unwrap_err();
    assert!(
        problems[0].starts_with("federation.roster: an unsigned roster is no longer accepted"),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p == "federation.chain: is required"),
        "{problems:?}"
    );
    let anchored = MINIMAL.replace(
        "chain = \"roster\"",
        "chain = \"roster\"\nanchor = \"sha256:00ff\"",
    );
    let problems = check(&anchored).unwrap_err();
    assert!(
        problems[0].starts_with("federation.anchor: must be the SHA-256"),
        "{problems:?}"
    );
    let anchored = MINIMAL.replace(
        "chain = \"roster\"",
        &format!("chain = \"roster\"\nanchor = \"{}\"", "ab".repeat(32)),
    );
    let s = check(&anchored).unwrap();
    assert_eq!(s.tls_files.anchor, Some([0xab; 32]));
}

#[test]
fn the_oprf_section_needs_its_keys_and_a_budget_a_query_fits_in() {
    let problems = check(&format!(
        "{MINIMAL}[oprf]\nkeys = []\n[query]\nmax_selectors = 16\nevaluations_per_minute = 10\n"
    ))
    .unwrap_err();
    assert_eq!(
        problems,
        [
            "oprf.keys: at least one OPRF key file is required (enlace keys generate-oprf)",
            "oprf.identifiers_key: is required",
            "query.evaluations_per_minute: must be at least query.max_selectors (16), or a query of that many identifiers could never be evaluated (got 10)",
        ]
    );
    let s = check(&format!(
        "{MINIMAL}[oprf]\nkeys = [\"oprf-1.key\", \"/etc/enlace/oprf-2.key\"]\nidentifiers_key = \"identifiers.key\"\n"
    ))
    .unwrap();
    let files = s.key_files.oprf.expect("the [oprf] files");
    assert_eq!(files.keys.len(), 2);
    assert!(files.keys[0].ends_with("oprf-1.key") && files.keys[0].is_absolute());
    assert_eq!(
        files.keys[1],
        std::path::Path::new("/etc/enlace/oprf-2.key")
    );
    assert_eq!(s.query.evaluations_per_minute, 120, "the default");
}
