//! The node certificate as peers will judge it (identity, chain, names,
//! purposes, expiry), and the expiry of every CA the node relies on.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};
use time::OffsetDateTime;

use super::{Check, EXPIRY_WARNING_DAYS, Report, Status};
use crate::records::model::NodeId;
use crate::trust::pki::{CertInfo, San};
use crate::trust::roster::Roster;
use crate::trust::tls;

/// The node certificate as peers will judge it.
pub(super) fn node_certificate<F: FnMut(&Check)>(
    r: &mut Report<F>,
    path: &Path,
    chain: &[CertificateDer<'static>],
    roster: &Roster,
    id: &NodeId,
    listen: Option<SocketAddr>,
    now: OffsetDateTime,
) {
    let what = format!("tls.cert {}", path.display());
    let Some(leaf) = chain.first() else {
        return;
    };
    let info = match CertInfo::parse(leaf) {
        Ok(i) => i,
        Err(e) => {
            r.push("cert-identity", Status::Fail, format!("{what}: {e}"));
            return;
        }
    };

    let expected = roster.spiffe_id(id);
    let spiffe: Vec<&str> = info.uris().filter(|u| u.starts_with("spiffe://")).collect();
    let (status, message) = match spiffe.as_slice() {
        [one] if *one == expected => (Status::Ok, format!("{what}: names {expected}")),
        [one] => (
            Status::Fail,
            format!("{what}: names {one}, but this node is {expected}"),
        ),
        [] => (
            Status::Fail,
            format!("{what}: carries no SPIFFE id; it needs exactly one URI SAN {expected}"),
        ),
        many => (
            Status::Fail,
            format!(
                "{what}: carries {} SPIFFE ids ({}); exactly one, {expected}, is allowed",
                many.len(),
                many.join(", ")
            ),
        ),
    };
    r.push("cert-identity", status, message);

    let (status, message) = match chains_to_member_ca(roster, id, chain, &info, now) {
        Ok(at_now) => (
            Status::Ok,
            format!(
                "{what}: chains to a CA the roster lists for {id}{}",
                if at_now {
                    ""
                } else {
                    " (checked within its validity period, which does not include now: see cert-expiry)"
                }
            ),
        ),
        Err(e) => (
            Status::Fail,
            format!("{what}: does not chain to a CA the roster lists for {id}: {e}"),
        ),
    };
    r.push("cert-chain", status, message);

    san_check(r, &what, &info, roster, id, listen);

    let missing: Vec<&str> = ["serverAuth", "clientAuth"]
        .into_iter()
        .filter(|p| !info.has_eku(p))
        .collect();
    let is_ca = info.basic_constraints.is_some_and(|b| b.ca);
    let (status, message) = if !missing.is_empty() {
        (
            Status::Fail,
            format!(
                "{what}: extended key usage lacks {} (a node is both server and client of its peers; it needs serverAuth and clientAuth)",
                missing.join(" and ")
            ),
        )
    } else if is_ca {
        (
            Status::Fail,
            format!("{what}: is a CA certificate (CA:TRUE); a node certificate must be CA:FALSE"),
        )
    } else {
        (
            Status::Ok,
            format!("{what}: extended key usage serverAuth, clientAuth"),
        )
    };
    r.push("cert-eku", status, message);

    for (i, cert) in chain.iter().enumerate() {
        let label = if i == 0 {
            format!("{what} ({})", info.subject)
        } else {
            format!("{what}, chain certificate {}", i + 1)
        };
        match CertInfo::parse(cert) {
            Ok(c) => expiry(r, "cert-expiry", &label, &c, now),
            Err(e) => r.push("cert-expiry", Status::Fail, format!("{label}: {e}")),
        }
    }
}

/// Verifies the chain against this member's roster CAs only, as the peer
/// listener of every other member will (`tls::RosterClientVerifier`). If the
/// certificate is not valid now, the chain is checked at a moment within its
/// validity so that expiry is reported once, by the expiry check. `Ok(true)`
/// when it was checked at the present time.
fn chains_to_member_ca(
    roster: &Roster,
    id: &NodeId,
    chain: &[CertificateDer<'static>],
    info: &CertInfo,
    now: OffsetDateTime,
) -> Result<bool, String> {
    let member = roster
        .member(id)
        .ok_or_else(|| format!("{id} is not a member"))?;
    let mut roots = RootCertStore::empty();
    for ca in &member.ca_certs {
        roots
            .add(ca.clone())
            .map_err(|e| format!("a roster CA of {id} is not usable as a trust anchor: {e}"))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), tls::provider())
        .build()
        .map_err(|e| e.to_string())?;
    let at_now = info.not_before <= now && now <= info.not_after;
    let at = if at_now {
        now
    } else {
        info.not_before + (info.not_after - info.not_before) / 2
    };
    let at = UnixTime::since_unix_epoch(Duration::from_secs(
        u64::try_from(at.unix_timestamp()).unwrap_or(0),
    ));
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or_else(|| "no certificate".to_owned())?;
    verifier
        .verify_client_cert(leaf, intermediates, at)
        .map(|_| at_now)
        .map_err(|e| e.to_string())
}

/// Peers dial the roster endpoint and check its host against the DNS and
/// IP SANs; a node with no endpoint is at least checked against its listen
/// address.
fn san_check<F: FnMut(&Check)>(
    r: &mut Report<F>,
    what: &str,
    info: &CertInfo,
    roster: &Roster,
    id: &NodeId,
    listen: Option<SocketAddr>,
) {
    let names: Vec<String> = info
        .sans
        .iter()
        .filter(|s| matches!(s, San::Dns(_) | San::Ip(_)))
        .map(ToString::to_string)
        .collect();
    let listed = if names.is_empty() {
        "no DNS or IP SAN".to_owned()
    } else {
        names.join(", ")
    };
    let endpoint = roster.member(id).and_then(|m| m.endpoint.as_ref());
    let (status, message) = match (endpoint, listen) {
        (Some(ep), _) if covers(&info.sans, &ep.host) => (
            Status::Ok,
            format!("{what}: {listed} covers the roster endpoint {ep} of {id}"),
        ),
        (Some(ep), _) => (
            Status::Fail,
            format!(
                "SAN mismatch: {what} has {listed}, but the roster endpoint of {id} is {ep}; peers dialling {host} will refuse it (issue the certificate with {flag} {host})",
                host = ep.host,
                flag = if ep.host.parse::<IpAddr>().is_ok() {
                    "--ip"
                } else {
                    "--dns"
                },
            ),
        ),
        (None, Some(addr)) if covers(&info.sans, &addr.ip().to_string()) => (
            Status::Ok,
            format!("{what}: {listed} covers listen.peer {addr} ({id} has no roster endpoint)"),
        ),
        (None, Some(addr)) if addr.ip().is_unspecified() => (
            Status::Ok,
            format!("{what}: {listed} ({id} has no roster endpoint; listen.peer is {addr})"),
        ),
        (None, listen) => (
            Status::Warn,
            format!(
                "{what}: {listed} does not cover listen.peer {}; {id} has no roster endpoint, so only a [[sync.peers]] entry at a peer can dial it, under one of those names",
                listen
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "(unset)".into())
            ),
        ),
    };
    r.push("cert-san", status, message);
}

/// Whether a DNS or IP SAN matches `host` the way WebPKI name checking
/// does: an IP address only by an IP SAN; a name case-insensitively, with
/// a `*.` wildcard standing for exactly one leftmost label.
fn covers(sans: &[San], host: &str) -> bool {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return sans.iter().any(|s| matches!(s, San::Ip(a) if *a == ip));
    }
    let host = host.trim_end_matches('.');
    sans.iter().any(|s| match s {
        San::Dns(name) => {
            let name = name.trim_end_matches('.');
            match name.strip_prefix("*.") {
                Some(suffix) => host.split_once('.').is_some_and(|(first, rest)| {
                    !first.is_empty() && rest.eq_ignore_ascii_case(suffix)
                }),
                None => name.eq_ignore_ascii_case(host),
            }
        }
        _ => false,
    })
}

pub(super) fn ca_expiry<F: FnMut(&Check)>(
    r: &mut Report<F>,
    what: &str,
    cert: &CertificateDer<'_>,
    now: OffsetDateTime,
) {
    match CertInfo::parse(cert) {
        Ok(info) => expiry(
            r,
            "ca-expiry",
            &format!("{what} ({})", info.subject),
            &info,
            now,
        ),
        Err(e) => r.push("ca-expiry", Status::Fail, format!("{what}: {e}")),
    }
}

/// Expired or not yet valid: FAIL; within [`EXPIRY_WARNING_DAYS`]: warn.
fn expiry<F: FnMut(&Check)>(
    r: &mut Report<F>,
    check: &'static str,
    what: &str,
    info: &CertInfo,
    now: OffsetDateTime,
) {
    let (status, message) = if now < info.not_before {
        (
            Status::Fail,
            format!(
                "{what}: not valid before {} (is this machine's clock, or the issuer's, wrong?)",
                date(info.not_before)
            ),
        )
    } else if now > info.not_after {
        (
            Status::Fail,
            format!(
                "{what}: expired on {} ({} days ago)",
                date(info.not_after),
                (now - info.not_after).whole_days()
            ),
        )
    } else {
        let days = info.days_left(now);
        let status = if days <= EXPIRY_WARNING_DAYS {
            Status::Warn
        } else {
            Status::Ok
        };
        (
            status,
            format!(
                "{what}: valid until {} ({days} days left)",
                date(info.not_after)
            ),
        )
    };
    r.push(check, status, message);
}

pub(super) fn date(t: OffsetDateTime) -> String {
    t.format(time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute] UTC"
    ))
    .unwrap_or_else(|_| t.to_string())
}

/// Each configured CRL: readable, and fresh. A CRL past its next update is
/// the "stale certificate status" operators most often miss: the node still
/// uses it, but revocations since then are unknown. The node's own
/// certificate listed in a CRL of its own CA fails: every peer refuses it.
pub(super) fn crls<F: FnMut(&Check)>(
    r: &mut Report<F>,
    files: &[(&'static str, &std::path::PathBuf)],
    own_leaf: Option<&CertificateDer<'static>>,
    now: OffsetDateTime,
) {
    let own = own_leaf.and_then(|leaf| {
        let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
        Some((
            cert.issuer().as_raw().to_vec(),
            cert.raw_serial().to_vec(),
            cert.raw_serial_as_string(),
        ))
    });
    for (field, path) in files {
        let crls = match crate::trust::crl::load(path) {
            Ok(c) => c,
            Err(e) => {
                r.push(
                    "crl",
                    Status::Fail,
                    format!("{field} {}: {e}", path.display()),
                );
                continue;
            }
        };
        for der in crls {
            let Ok(info) = crate::trust::crl::CrlInfo::parse(der.as_ref()) else {
                continue; // load() parsed every one already
            };
            let what = format!("{field} {} ({})", path.display(), info.issuer);
            if let Some((issuer, raw_serial, serial)) = &own
                && *issuer == info.issuer_raw
                && info.entry(raw_serial).is_some()
            {
                r.push(
                    "crl",
                    Status::Fail,
                    format!("{what}: this node's own certificate (serial {serial}) is revoked; every peer refuses it: renew it (enlace cert renew --new-key)"),
                );
                continue;
            }
            match info.next_update {
                Some(next) if next < now => r.push(
                    "crl",
                    Status::Warn,
                    format!(
                        "{what}: stale since {} (next update passed); still used, but revocations since then are unknown: publish a fresh CRL",
                        date(next)
                    ),
                ),
                next => r.push(
                    "crl",
                    Status::Ok,
                    format!(
                        "{what}: {} revoked, next update {}",
                        info.revoked.len(),
                        next.map_or("not set".to_owned(), date)
                    ),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Diagnosis;

    fn sans(list: &[&str]) -> Vec<San> {
        list.iter()
            .map(|s| match s.parse::<IpAddr>() {
                Ok(ip) => San::Ip(ip),
                Err(_) => San::Dns((*s).to_owned()),
            })
            .collect()
    }

    #[test]
    fn names_match_as_webpki_matches_them() {
        let s = sans(&["enlace.mp.gob.gt", "*.nodes.example", "10.0.0.5", "::1"]);
        assert!(covers(&s, "ENLACE.mp.gob.gt"));
        assert!(covers(&s, "enlace.mp.gob.gt."));
        assert!(covers(&s, "gt.nodes.example"));
        assert!(!covers(&s, "a.gt.nodes.example"), "one label only");
        assert!(!covers(&s, "nodes.example"));
        assert!(covers(&s, "10.0.0.5"));
        assert!(covers(&s, "::1"));
        assert!(!covers(&s, "10.0.0.6"));
        // An IP address is matched by IP SANs only, never by a DNS SAN
        // that happens to spell it.
        assert!(!covers(&sans(&["localhost"]), "127.0.0.1"));
        assert!(!covers(&[San::Dns("127.0.0.1".into())], "127.0.0.1"));
    }

    #[test]
    fn expiry_verdicts() {
        let ca = crate::trust::pki::new_ca("CA", None, 3650).unwrap();
        let profile = crate::trust::pki::Profile::Node {
            federation: "fed".into(),
            node_id: NodeId::parse("gt").unwrap(),
            dns_names: vec!["localhost".into()],
            ip_addresses: vec![],
        };
        let now = OffsetDateTime::now_utc();
        let verdict = |from: OffsetDateTime, until: OffsetDateTime| {
            let issued = crate::trust::pki::issue_with_validity(
                &ca.cert_pem,
                &ca.key_pem,
                &profile,
                from,
                until,
            )
            .unwrap();
            let der = roster_der(&issued.cert_pem);
            let mut r = Report {
                diagnosis: Diagnosis::default(),
                on_check: |_: &Check| {},
            };
            expiry(
                &mut r,
                "cert-expiry",
                "node.crt",
                &CertInfo::parse(&der).unwrap(),
                now,
            );
            let c = r.diagnosis.checks.remove(0);
            (c.status, c.message)
        };
        let day = time::Duration::days(1);
        let (s, m) = verdict(now - 400 * day, now - 3 * day);
        assert_eq!(s, Status::Fail);
        assert!(m.contains("expired on") && m.contains("3 days ago"), "{m}");
        let (s, m) = verdict(now - day, now + 10 * day + time::Duration::hours(1));
        assert_eq!(s, Status::Warn);
        assert!(m.contains("10 days left"), "{m}");
        let (s, _) = verdict(now - day, now + 90 * day);
        assert_eq!(s, Status::Ok);
        let (s, m) = verdict(now + day, now + 90 * day);
        assert_eq!(s, Status::Fail);
        assert!(m.contains("not valid before"), "{m}");
    }

    fn roster_der(pem: &str) -> CertificateDer<'static> {
        use rustls_pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }
}
