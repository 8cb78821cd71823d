//! Record signatures, signing-key files and private-file hygiene.
//!
//! Records are signed with Ed25519 (ring). The signed message is a fixed
//! domain-separation prefix followed by the exact body bytes that travel, so
//! a signature made for a record can never be replayed as a signature over
//! anything else enlace signs later, and no canonical re-encoding is needed.
//!
//! Signing keys live in PKCS#8 PEM files (`-----BEGIN PRIVATE KEY-----`), the
//! format `openssl genpkey -algorithm ed25519` writes, so an agency can make
//! them with its own tools. They are separate from the TLS keys.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, Ed25519KeyPair, KeyPair};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;

/// Prefix of every signed record message.
pub(crate) const RECORD_SIGNATURE_CONTEXT: &[u8] = b"enlace/v1/record\0";
/// Prefix of what a node signs when it checkpoints its audit log.
pub(crate) const CHECKPOINT_SIGNATURE_CONTEXT: &[u8] = b"enlace/checkpoint/v1\0";
/// Prefix of what a peer signs when it witnesses another's checkpoint.
pub(crate) const WITNESS_SIGNATURE_CONTEXT: &[u8] = b"enlace/witness/v1\0";
/// Prefix of what a node signs when it states that it lost its audit log.
pub(crate) const RECOVERY_SIGNATURE_CONTEXT: &[u8] = b"enlace/recovery/v1\0";
/// Prefix of what a peer signs when it witnesses such a statement.
pub(crate) const RECOVERY_WITNESS_SIGNATURE_CONTEXT: &[u8] = b"enlace/recovery-witness/v1\0";

/// Length of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path} is not a PKCS#8 PEM private key: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("key file {path} does not hold an Ed25519 key: {reason}")]
    NotEd25519 { path: PathBuf, reason: String },
    #[error(
        "private key file {path} is readable or writable by group or others (mode {mode:04o}); run: chmod 600 {path}"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("record signature does not verify for key {key_id}")]
    BadSignature { key_id: String },
    #[error("the system random number generator failed")]
    Random,
}

/// The node's Ed25519 record-signing key and its roster key id.
pub struct SigningKey {
    key_id: String,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id)
            .field(
                "public_key",
                &crate::records::crypto::encode_public_key(self.public_key()),
            )
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads a PKCS#8 PEM Ed25519 key, refusing a file that others can read.
    pub fn load(path: &Path, key_id: &str) -> Result<Self, CryptoError> {
        check_private_permissions(path)?;
        Self::read(path, key_id)
    }

    /// [`SigningKey::load`] without the permission check: for `enlace
    /// doctor`, which reports loose permissions itself and goes on checking.
    pub fn read(path: &Path, key_id: &str) -> Result<Self, CryptoError> {
        let pem = fs::read(path).map_err(|source| CryptoError::Read {
            path: path.to_owned(),
            source,
        })?;
        let der = PrivatePkcs8KeyDer::from_pem_slice(&pem).map_err(|e| CryptoError::Pem {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Self::from_pkcs8(der.secret_pkcs8_der(), key_id).map_err(|reason| CryptoError::NotEd25519 {
            path: path.to_owned(),
            reason,
        })
    }

    /// From PKCS#8 DER bytes (v1 as written by openssl, or v2 as by ring).
    pub(crate) fn from_pkcs8(der: &[u8], key_id: &str) -> Result<Self, String> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|e| e.to_string())?;
        Ok(Self {
            key_id: key_id.to_owned(),
            pair,
        })
    }

    /// Makes a fresh key; returns it with its PKCS#8 PEM encoding.
    pub fn generate(key_id: &str) -> Result<(Self, String), CryptoError> {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| CryptoError::Random)?;
        let pem = pem_encode("PRIVATE KEY", pkcs8.as_ref());
        let key = Self::from_pkcs8(pkcs8.as_ref(), key_id).map_err(|_| CryptoError::Random)?;
        Ok((key, pem))
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// Signs encoded record body bytes.
    pub fn sign_record(&self, body: &[u8]) -> Vec<u8> {
        self.sign_in(RECORD_SIGNATURE_CONTEXT, body)
    }

    /// Signs `message` under a domain-separation `context` (one of the
    /// `*_SIGNATURE_CONTEXT` constants): a signature made for one purpose
    /// never verifies for another.
    pub(crate) fn sign_in(&self, context: &[u8], message: &[u8]) -> Vec<u8> {
        let mut msg = Vec::with_capacity(context.len() + message.len());
        msg.extend_from_slice(context);
        msg.extend_from_slice(message);
        self.pair.sign(&msg).as_ref().to_vec()
    }
}

/// Verifies a signature made by [`SigningKey::sign_in`] with `context`.
pub(crate) fn verify_in(
    context: &[u8],
    public_key: &[u8],
    key_id: &str,
    message: &[u8],
    signature: &[u8],
) -> Result<(), CryptoError> {
    let mut msg = Vec::with_capacity(context.len() + message.len());
    msg.extend_from_slice(context);
    msg.extend_from_slice(message);
    signature::UnparsedPublicKey::new(&signature::ED25519, public_key)
        .verify(&msg, signature)
        .map_err(|_| CryptoError::BadSignature {
            key_id: key_id.to_owned(),
        })
}

/// Verifies a record signature made by [`SigningKey::sign_record`].
pub fn verify_record(
    public_key: &[u8],
    key_id: &str,
    body: &[u8],
    signature: &[u8],
) -> Result<(), CryptoError> {
    verify_in(
        RECORD_SIGNATURE_CONTEXT,
        public_key,
        key_id,
        body,
        signature,
    )
}

/// Base64 (standard alphabet, padded) of a public key, as the roster holds it.
pub fn encode_public_key(key: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// Parses a roster public key: base64 of 32 raw Ed25519 bytes.
pub(crate) fn decode_public_key(s: &str) -> Result<[u8; PUBLIC_KEY_LEN], String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| format!("is not base64: {e}"))?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        format!(
            "must be {PUBLIC_KEY_LEN} bytes of Ed25519 public key (got {})",
            b.len()
        )
    })
}

/// The SHA-256 of some bytes.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Parses a SHA-256 in hex (64 digits, optionally prefixed `sha256:`), as
/// roster anchors and hashes are written.
pub fn parse_sha256_hex(s: &str) -> Result<[u8; 32], String> {
    let s = s.trim();
    let s = s.strip_prefix("sha256:").unwrap_or(s);
    let bytes = hex::decode(s).map_err(|e| format!("is not hex ({e})"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("must be 32 bytes of SHA-256, got {}", b.len()))
}

/// `n` random bytes from the system generator.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| CryptoError::Random)?;
    Ok(out)
}

/// PEM-encodes DER bytes under `label`.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Refuses a private key file that anyone but its owner can read or write.
pub fn check_private_permissions(path: &Path) -> Result<(), CryptoError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::metadata(path).map_err(|source| CryptoError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(CryptoError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    Ok(())
}

/// Writes a file that only its owner may read (mode 0600 from creation, so
/// the secret is never briefly readable by others). Refuses to overwrite an
/// existing file unless `overwrite` is set.
pub fn write_private_file(
    path: &Path,
    contents: &[u8],
    overwrite: bool,
) -> Result<(), CryptoError> {
    let err = |source| CryptoError::Write {
        path: path.to_owned(),
        source,
    };
    let mut opts = fs::OpenOptions::new();
    opts.write(true);
    if overwrite {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(err)?;
    }
    f.write_all(contents).map_err(err)?;
    f.sync_all().map_err(err)
}

/// Writes a public file (certificates, rosters), refusing to overwrite
/// unless `overwrite` is set.
pub fn write_public_file(path: &Path, contents: &[u8], overwrite: bool) -> Result<(), CryptoError> {
    let err = |source| CryptoError::Write {
        path: path.to_owned(),
        source,
    };
    let mut opts = fs::OpenOptions::new();
    opts.write(true);
    if overwrite {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = opts.open(path).map_err(err)?;
    f.write_all(contents).map_err(err)?;
    f.sync_all().map_err(err)
}

/// Replaces `path` atomically: the contents go to a new file beside it
/// (mode 0600 from creation when `private`), which is then renamed over
/// it. A running node that re-reads the file on change (`crate::trust::reload`)
/// sees the old file or the new one, never half of either.
pub fn replace_file(path: &Path, contents: &[u8], private: bool) -> Result<(), CryptoError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suffix: [u8; 6] = random_bytes()?;
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", hex::encode(suffix)));
    let written = if private {
        write_private_file(&tmp, contents, false)
    } else {
        write_public_file(&tmp, contents, false)
    };
    let renamed = written.and_then(|()| {
        fs::rename(&tmp, path).map_err(|source| CryptoError::Write {
            path: path.to_owned(),
            source,
        })
    });
    if renamed.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    renamed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let (key, _pem) = SigningKey::generate("gt-1").unwrap();
        let sig = key.sign_record(b"body");
        verify_record(key.public_key(), "gt-1", b"body", &sig).unwrap();
        assert!(verify_record(key.public_key(), "gt-1", b"bodY", &sig).is_err());
        // The context prefix is part of the message: a plain signature over
        // the body alone must not verify.
        let plain = key.pair.sign(b"body");
        assert!(verify_record(key.public_key(), "gt-1", b"body", plain.as_ref()).is_err());
    }

    #[test]
    fn key_files_round_trip_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        let (key, pem) = SigningKey::generate("gt-1").unwrap();
        write_private_file(&path, pem.as_bytes(), false).unwrap();
        let loaded = SigningKey::load(&path, "gt-1").unwrap();
        assert_eq!(loaded.public_key(), key.public_key());
        assert!(
            write_private_file(&path, b"x", false).is_err(),
            "no silent overwrite"
        );

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            let err = SigningKey::load(&path, "gt-1").unwrap_err();
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
    }

    #[test]
    fn public_keys_encode_and_decode() {
        let (key, _) = SigningKey::generate("k").unwrap();
        let s = encode_public_key(key.public_key());
        assert_eq!(decode_public_key(&s).unwrap().as_slice(), key.public_key());
        assert!(decode_public_key("AAAA").unwrap_err().contains("32 bytes"));
        assert!(decode_public_key("!!").is_err());
    }
}
