//! `enlace ca`, `enlace cert`: making the keys and
//! certificates a member needs, in the enlace certificate profile
//! ([`enlace::trust::pki`]), and revoking them ([`enlace::trust::crl`]). Private keys are
//! written with mode 0600 and never overwritten without `--force`, except
//! by `cert renew`, whose purpose is to replace the files it is given (it
//! does so atomically, so a node watching them never reads half a file).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};

use crate::failure::Spelled;
use enlace::records::crypto;
use enlace::records::model::NodeId;
use enlace::trust::pki::{self, Profile};

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a self-signed CA (ECDSA P-256): a member's federation CA, or
    /// a node's local agency CA.
    Init {
        /// Subject common name, e.g. "GT federation CA".
        #[arg(long)]
        name: String,
        /// Subject organisation.
        #[arg(long)]
        org: Option<String>,
        /// Where to write the CA certificate (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// Where to write the CA private key (PEM, mode 0600).
        #[arg(long)]
        key: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CertKind {
    /// A node certificate: serverAuth + clientAuth, SPIFFE id, DNS/IP SANs.
    Node,
    /// An agency-client certificate: clientAuth, CN = client name.
    Client,
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Issue a certificate under a CA.
    Issue(IssueArgs),
    /// Re-issue a certificate from the CA that issued it: same subject,
    /// SANs and purposes, a new serial and a fresh validity. Keeps the
    /// private key unless --new-key. Files are replaced atomically, so a
    /// running node that watches them picks up the new certificate.
    Renew(RenewArgs),
    /// Revoke a certificate: add its serial to the CA's CRL (created, or
    /// extended and re-signed with its CRL number incremented).
    Revoke(RevokeArgs),
    /// Show what the certificates in a PEM file say: subject, issuer,
    /// serial, validity and days left, key, constraints, key usages, every
    /// SAN and the SHA-256 fingerprint.
    Inspect {
        /// A PEM file with one or more certificates.
        file: PathBuf,
        /// One JSON object per certificate.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// What the certificate is for.
    #[arg(long, value_enum)]
    kind: CertKind,
    /// Issuing CA certificate (PEM).
    #[arg(long)]
    ca_cert: PathBuf,
    /// Issuing CA private key (PEM).
    #[arg(long)]
    ca_key: PathBuf,
    /// Where to write the certificate (PEM).
    #[arg(long)]
    cert: PathBuf,
    /// Where to write the private key (PEM, mode 0600).
    #[arg(long)]
    key: PathBuf,
    /// Node certificates: the federation (SPIFFE trust domain).
    #[arg(long, required_if_eq("kind", "node"))]
    federation: Option<String>,
    /// Node certificates: the node id.
    #[arg(long, required_if_eq("kind", "node"))]
    node_id: Option<String>,
    /// Node certificates: a DNS name the node is reached at (repeatable).
    #[arg(long = "dns")]
    dns: Vec<String>,
    /// Node certificates: an IP address the node is reached at (repeatable).
    #[arg(long = "ip")]
    ip: Vec<IpAddr>,
    /// Client certificates: the client's name (subject CN), the actor in logs.
    #[arg(long, required_if_eq("kind", "client"))]
    name: Option<String>,
    /// Validity in days.
    #[arg(long, default_value_t = 397)]
    days: u32,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
pub struct RenewArgs {
    /// The CA that issued the certificate (PEM).
    #[arg(long)]
    ca_cert: PathBuf,
    /// The CA's private key (PEM).
    #[arg(long)]
    ca_key: PathBuf,
    /// The certificate to renew (PEM); replaced unless --out-cert.
    #[arg(long)]
    cert: PathBuf,
    /// Its private key (PEM, mode 0600). Kept as it is, or replaced by a
    /// fresh key with --new-key (unless --out-key).
    #[arg(long)]
    key: PathBuf,
    /// Make a fresh private key instead of keeping the current one.
    #[arg(long)]
    new_key: bool,
    /// Validity of the new certificate in days.
    #[arg(long, default_value_t = 397)]
    days: u32,
    /// Write the new certificate here instead of replacing --cert.
    #[arg(long)]
    out_cert: Option<PathBuf>,
    /// With --new-key: write the new key here instead of replacing --key.
    #[arg(long, requires = "new_key")]
    out_key: Option<PathBuf>,
    /// Overwrite existing --out-cert / --out-key files.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The CA that issued the certificate (PEM).
    #[arg(long)]
    ca_cert: PathBuf,
    /// The CA's private key (PEM).
    #[arg(long)]
    ca_key: PathBuf,
    /// The certificate to revoke (PEM; the first certificate in the file).
    #[arg(long)]
    cert: PathBuf,
    /// Why (RFC 5280): unspecified, key-compromise, ca-compromise,
    /// affiliation-changed, superseded, cessation-of-operation,
    /// certificate-hold, privilege-withdrawn.
    #[arg(long, default_value = "unspecified")]
    reason: String,
    /// The CRL file (PEM): extended if it exists, created otherwise.
    #[arg(long)]
    crl: PathBuf,
    /// Days until the CRL's next update.
    #[arg(long, default_value_t = 30)]
    days: u32,
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn write_pair(cert: &Path, key: &Path, issued: &pki::Issued, force: bool) -> anyhow::Result<()> {
    for p in [cert, key] {
        if p.exists() && !force {
            bail!("{} exists; pass --force to overwrite it", p.display());
        }
    }
    crypto::write_private_file(key, issued.key_pem.as_bytes(), force).spelled()?;
    crypto::write_public_file(cert, issued.cert_pem.as_bytes(), force).spelled()?;
    Ok(())
}

pub fn ca(cmd: CaCommand) -> anyhow::Result<()> {
    match cmd {
        CaCommand::Init {
            name,
            org,
            cert,
            key,
            days,
            force,
        } => {
            let issued = pki::new_ca(&name, org.as_deref(), days).spelled()?;
            write_pair(&cert, &key, &issued, force)?;
            println!(
                "wrote CA certificate {} and key {}",
                cert.display(),
                key.display()
            );
            Ok(())
        }
    }
}

pub fn cert(cmd: CertCommand) -> anyhow::Result<()> {
    match cmd {
        CertCommand::Issue(a) => issue(a),
        CertCommand::Renew(a) => renew(a),
        CertCommand::Revoke(a) => revoke(a),
        CertCommand::Inspect { file, json } => inspect(&file, json),
    }
}

fn issue(a: IssueArgs) -> anyhow::Result<()> {
    let profile = match a.kind {
        CertKind::Node => {
            let federation = a.federation.unwrap_or_default();
            let node_id = NodeId::parse(&a.node_id.unwrap_or_default())
                .spelled()
                .context("--node-id")?;
            if a.name.is_some() {
                bail!(
                    "--name is for client certificates; a node certificate is named by --node-id"
                );
            }
            Profile::Node {
                federation,
                node_id,
                dns_names: a.dns,
                ip_addresses: a.ip,
            }
        }
        CertKind::Client => {
            if a.node_id.is_some() || !a.dns.is_empty() || !a.ip.is_empty() {
                bail!("--node-id, --dns and --ip are for node certificates");
            }
            Profile::Client {
                name: a.name.unwrap_or_default(),
            }
        }
    };
    let ca_cert = read(&a.ca_cert)?;
    let ca_key = read(&a.ca_key)?;
    let issued = pki::issue(&ca_cert, &ca_key, &profile, a.days).spelled()?;
    write_pair(&a.cert, &a.key, &issued, a.force)?;
    println!(
        "wrote certificate {} and key {}",
        a.cert.display(),
        a.key.display()
    );
    Ok(())
}

fn renew(a: RenewArgs) -> anyhow::Result<()> {
    let ca_cert = read(&a.ca_cert)?;
    let ca_key = read(&a.ca_key)?;
    let cert = read(&a.cert)?;
    let key = if a.new_key {
        None
    } else {
        crypto::check_private_permissions(&a.key).spelled()?;
        Some(read(&a.key)?)
    };
    let renewed = pki::renew(&ca_cert, &ca_key, &cert, key.as_deref(), a.days)
        .spelled()
        .with_context(|| format!("cannot renew {}", a.cert.display()))?;
    let cert_out = a.out_cert.clone().unwrap_or_else(|| a.cert.clone());
    let key_out = a.out_key.clone().unwrap_or_else(|| a.key.clone());
    for (given, path) in [(&a.out_cert, &cert_out), (&a.out_key, &key_out)] {
        if given.is_some() && path.exists() && !a.force {
            bail!("{} exists; pass --force to overwrite it", path.display());
        }
    }
    // NOTE: the key goes first: a node that reloads between the two
    // renames sees a key that does not fit the old certificate, refuses
    // that pair and keeps serving; the next check sees both.
    if renewed.new_key {
        crypto::replace_file(&key_out, renewed.issued.key_pem.as_bytes(), true).spelled()?;
    }
    crypto::replace_file(&cert_out, renewed.issued.cert_pem.as_bytes(), false).spelled()?;
    println!(
        "renewed certificate {} (serial {} replaces {}, valid {} days){}",
        cert_out.display(),
        renewed.new_serial,
        renewed.old_serial,
        a.days,
        if renewed.new_key {
            format!(" with a new key {}", key_out.display())
        } else {
            format!(", same key {}", a.key.display())
        }
    );
    Ok(())
}

fn revoke(a: RevokeArgs) -> anyhow::Result<()> {
    let reason = enlace::trust::crl::parse_reason(&a.reason)
        .spelled()
        .context("--reason")?;
    let ca_cert = read(&a.ca_cert)?;
    let ca_key = read(&a.ca_key)?;
    let cert = enlace::trust::roster::load_certs(&a.cert).spelled()?;
    let existing = if a.crl.exists() {
        let crls = enlace::trust::crl::load(&a.crl).spelled()?;
        if crls.len() != 1 {
            bail!(
                "{}: holds {} CRLs; revoke extends a file with exactly one",
                a.crl.display(),
                crls.len()
            );
        }
        Some(read(&a.crl)?)
    } else {
        None
    };
    let revocation = enlace::trust::crl::revoke(
        &ca_cert,
        &ca_key,
        &cert[0],
        existing.as_deref(),
        reason,
        a.days,
    )
    .map_err(|e| match &existing {
        Some(_) => anyhow!(
            "cannot revoke {} into {}: {e}",
            a.cert.display(),
            a.crl.display()
        ),
        None => anyhow!("cannot revoke {}: {e}", a.cert.display()),
    })?;
    crypto::replace_file(&a.crl, revocation.crl_pem.as_bytes(), false).spelled()?;
    println!(
        "revoked certificate {} ({}); {} is CRL number {} and lists {} certificate(s), next update in {} days",
        revocation.serial,
        a.reason,
        a.crl.display(),
        revocation.number,
        revocation.listed,
        a.days
    );
    Ok(())
}

fn inspect(file: &Path, json: bool) -> anyhow::Result<()> {
    let certs = enlace::trust::roster::load_certs(file).spelled()?;
    let now = time::OffsetDateTime::now_utc();
    for (i, der) in certs.iter().enumerate() {
        let info = pki::CertInfo::parse(der)
            .spelled()
            .with_context(|| format!("{}: certificate {}", file.display(), i + 1))?;
        let days_left = info.days_left(now);
        let state = if now < info.not_before {
            "not yet valid"
        } else if now > info.not_after {
            "expired"
        } else {
            "valid"
        };
        let sans = |pick: fn(&pki::San) -> Option<String>| -> Vec<String> {
            info.sans.iter().filter_map(pick).collect()
        };
        if json {
            let bc = info.basic_constraints.map(
                |b| serde_json::json!({"ca": b.ca, "path_len": b.path_len, "critical": b.critical}),
            );
            println!(
                "{}",
                serde_json::json!({
                    "file": file.display().to_string(),
                    "index": i + 1,
                    "subject": info.subject,
                    "issuer": info.issuer,
                    "serial": info.serial,
                    "not_before": rfc3339(info.not_before),
                    "not_after": rfc3339(info.not_after),
                    "days_left": days_left,
                    "state": state,
                    "key_algorithm": info.key_algorithm,
                    "signature_algorithm": info.signature_algorithm,
                    "basic_constraints": bc,
                    "key_usage": info.key_usage,
                    "key_usage_critical": info.key_usage_critical,
                    "extended_key_usage": info.extended_key_usage,
                    "san": {
                        "uri": sans(|s| match s { pki::San::Uri(u) => Some(u.clone()), _ => None }),
                        "dns": sans(|s| match s { pki::San::Dns(d) => Some(d.clone()), _ => None }),
                        "ip": sans(|s| match s { pki::San::Ip(ip) => Some(ip.to_string()), _ => None }),
                        "other": sans(|s| match s { pki::San::Other(o) => Some(o.clone()), _ => None }),
                    },
                    "sha256": info.sha256,
                })
            );
            continue;
        }
        if i > 0 {
            println!();
        }
        println!(
            "certificate {} of {} in {}",
            i + 1,
            certs.len(),
            file.display()
        );
        let row = |label: &str, value: &str| println!("  {label:<20} {value}");
        row("subject", &info.subject);
        row("issuer", &info.issuer);
        row("serial", &info.serial);
        row("not before", &rfc3339(info.not_before));
        let left = match state {
            "expired" => format!("EXPIRED {} days ago", (now - info.not_after).whole_days()),
            "not yet valid" => "NOT YET VALID".to_owned(),
            _ => format!("{days_left} days left"),
        };
        row(
            "not after",
            &format!("{} ({left})", rfc3339(info.not_after)),
        );
        row("key", &info.key_algorithm);
        row("signature", &info.signature_algorithm);
        row(
            "basic constraints",
            &match info.basic_constraints {
                None => "none".to_owned(),
                Some(b) => format!(
                    "CA:{}{}{}",
                    if b.ca { "TRUE" } else { "FALSE" },
                    b.path_len
                        .map(|n| format!(", pathlen:{n}"))
                        .unwrap_or_default(),
                    if b.critical { " (critical)" } else { "" }
                ),
            },
        );
        row(
            "key usage",
            &if info.key_usage.is_empty() {
                "none".to_owned()
            } else {
                format!(
                    "{}{}",
                    info.key_usage.join(", "),
                    if info.key_usage_critical {
                        " (critical)"
                    } else {
                        ""
                    }
                )
            },
        );
        row(
            "extended key usage",
            &if info.extended_key_usage.is_empty() {
                "none".to_owned()
            } else {
                info.extended_key_usage.join(", ")
            },
        );
        if info.sans.is_empty() {
            row("SAN", "none");
        }
        for san in &info.sans {
            row("SAN", &san.to_string());
        }
        row("SHA-256", &info.sha256);
    }
    Ok(())
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}
