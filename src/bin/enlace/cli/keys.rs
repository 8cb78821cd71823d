//! `enlace keys`: a member's record-signing and governance keys, its OPRF
//! key of each epoch and the local key its identifiers are sealed under,
//! and (only while a federation moves off it) the shared matching key.
//! Private keys are written with mode 0600 and never overwritten without
//! `--force`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use clap::Subcommand;

use crate::failure::Spelled;
use enlace::records::crypto::{self, SigningKey};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate an Ed25519 record-signing key (PKCS#8 PEM, mode 0600) and
    /// print the roster entry for its public key; with --governance, a
    /// governance key that approves roster changes (keep it offline).
    Generate {
        /// Key id to list in the roster, e.g. "gt-2026" (signing keys).
        #[arg(long, required_unless_present = "governance")]
        key_id: Option<String>,
        /// A governance key: prints the `governance_keys` entry.
        #[arg(long)]
        governance: bool,
        /// Where to write the private key.
        #[arg(long)]
        out: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Generate this member's OPRF key of an epoch (RFC 9497 VOPRF,
    /// ristretto255-SHA512; mode 0600) and print the roster entry for its
    /// public key. Name the file in [oprf] keys; the key is used once a
    /// roster version lists it. Never leaves this member.
    GenerateOprf {
        /// 1 for the first key; one more at each rotation.
        #[arg(long, default_value_t = 1)]
        epoch: u32,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        force: bool,
    },
    /// Generate the key this node keeps its agencies' identifiers under
    /// (AES-256-GCM, mode 0600), named in [oprf] identifiers_key. Never
    /// leaves the node; back it up with the store.
    GenerateLocal {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        force: bool,
    },
    /// Generate the federation's shared matching key (32 random bytes,
    /// base64, mode 0600): only for a federation that has not moved to
    /// per-member OPRF keys (docs/selectors.md, "Migration").
    GenerateMatching {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        force: bool,
    },
    /// Print the roster entry for an existing signing key.
    Show {
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        key: PathBuf,
    },
}

/// Writes a new private key file, or says why not.
fn write_key(out: &Path, contents: &str, force: bool) -> anyhow::Result<()> {
    crypto::write_private_file(out, contents.as_bytes(), force).map_err(|e| match e {
        crypto::CryptoError::Write { source, .. }
            if source.kind() == std::io::ErrorKind::AlreadyExists =>
        {
            anyhow!("{} exists; pass --force to overwrite it", out.display())
        }
        e => anyhow::Error::msg(e),
    })
}

pub fn keys(cmd: KeysCommand) -> anyhow::Result<()> {
    let (key, key_id) = match cmd {
        KeysCommand::GenerateOprf { epoch, out, force } => {
            if epoch == 0 {
                bail!("--epoch: must be 1 or more");
            }
            let (key, contents) = enlace::records::oprf::SecretKey::generate(epoch).spelled()?;
            write_key(&out, &contents, force)?;
            eprintln!("wrote OPRF key {} (epoch {epoch})", out.display());
            println!(
                "[[members.oprf_keys]]\nepoch = {epoch}\npublic_key = \"{}\"",
                base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    key.public().key
                )
            );
            return Ok(());
        }
        KeysCommand::GenerateLocal { out, force } => {
            let (_, contents) = enlace::records::sealed::LocalKey::generate().spelled()?;
            write_key(&out, &contents, force)?;
            eprintln!("wrote identifiers key {}", out.display());
            return Ok(());
        }
        KeysCommand::GenerateMatching { out, force } => {
            let (_, contents) = enlace::records::selector::MatchingKey::generate().spelled()?;
            write_key(&out, &contents, force)?;
            eprintln!("wrote matching key {} (epoch 1)", out.display());
            return Ok(());
        }
        KeysCommand::Generate {
            key_id,
            governance,
            out,
            force,
        } => {
            let key_id = if governance {
                "governance".to_owned()
            } else {
                key_id.unwrap_or_default()
            };
            let (key, pem) = SigningKey::generate(&key_id).spelled()?;
            crypto::write_private_file(&out, pem.as_bytes(), force).map_err(|e| match e {
                crypto::CryptoError::Write { source, .. }
                    if source.kind() == std::io::ErrorKind::AlreadyExists =>
                {
                    anyhow!("{} exists; pass --force to overwrite it", out.display())
                }
                e => anyhow::Error::msg(e),
            })?;
            if governance {
                eprintln!(
                    "wrote governance key {} ({})",
                    out.display(),
                    enlace::trust::chain::key_name(key.public_key())
                );
                println!(
                    "governance_keys = [\"{}\"]",
                    crypto::encode_public_key(key.public_key())
                );
                return Ok(());
            }
            eprintln!("wrote signing key {}", out.display());
            (key, key_id)
        }
        KeysCommand::Show { key_id, key } => (SigningKey::load(&key, &key_id).spelled()?, key_id),
    };
    println!(
        "[[members.signing_keys]]\nkey_id = \"{key_id}\"\npublic_key = \"{}\"",
        crypto::encode_public_key(key.public_key())
    );
    Ok(())
}
