use std::path::Path;

use super::*;

#[test]
fn endpoints_parse() {
    assert_eq!(
        Endpoint::parse("127.0.0.1:7101").unwrap(),
        Endpoint {
            host: "127.0.0.1".into(),
            port: 7101
        }
    );
    assert_eq!(Endpoint::parse("[::1]:80").unwrap().host, "::1");
    assert_eq!(
        Endpoint::parse("https://node.gt.example:443").unwrap().port,
        443
    );
    for bad in ["nohost", ":80", "host:0", "host:99999"] {
        assert!(Endpoint::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
        federation = "Bad Domain"
        expires = "tomorrow"
        [[members]]
        id = "GT"
        name = ""
        country = "gt"
        endpoint = "nowhere"
        ca = ["missing.crt"]
        governance_keys = ["AAAA"]
        [[members.signing_keys]]
        key_id = "k 1"
        public_key = "AAAA"
    "#;
    let err =
        RosterSource::parse(text, Path::new("/nonexistent"), Path::new("f.toml")).unwrap_err();
    let joined = err.problems.join("\n");
    for expected in [
        "federation:",
        "expires:",
        ".id:",
        ".name: is required",
        ".country:",
        ".endpoint:",
        ".ca[0]:",
        ".key_id:",
        ".public_key:",
        ".governance_keys[0]:",
    ] {
        assert!(
            joined.contains(expected),
            "missing {expected:?} in:\n{joined}"
        );
    }
}

#[test]
fn unknown_fields_are_refused() {
    let err = RosterSource::parse(
        "federation = \"x\"\nmembrs = []\n",
        Path::new("."),
        Path::new("f.toml"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("membrs"), "{err}");
}

#[test]
fn a_version_that_is_not_a_roster_is_refused_with_the_reason() {
    let err = Roster::from_version(b"\xff\xff\xff").unwrap_err();
    assert!(
        err.problems[0].contains("not an encoded RosterVersion"),
        "{err}"
    );
    let empty = pb::RosterVersion::default().encode_to_vec();
    let err = Roster::from_version(&empty).unwrap_err();
    let joined = err.problems.join("\n");
    for expected in [
        "version: must be 1",
        "expires_at_ms: is required",
        "federation:",
        "members:",
    ] {
        assert!(
            joined.contains(expected),
            "missing {expected:?} in:\n{joined}"
        );
    }
}
