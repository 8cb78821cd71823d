//! The local key a node keeps its agencies' own identifiers under
//! (AES-256-GCM): the normalised values behind its match filter, so that
//! it can compute their entries again under a new OPRF key at a rotation
//! without asking every agency to send them again
//! (`docs/decisions/0016-per-member-oprf-keys.md`).
//!
//! The key never leaves the node and is in no roster; losing it loses
//! only the ability to re-key (the agencies still hold the values).
//! Sealed values name their purpose in the associated data, so a blob
//! moved to another key slot does not open.

use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use crate::records::crypto::{self, CryptoError};

const KEY_LEN: usize = 32;
const KEY_FILE_TAG: &str = "enlace-local-key-v1";
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// Why a local key or a sealed value could not be used. Never shows key
/// bytes or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("local key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error(
        "a sealed value does not open with this node's identifiers key (damaged, or another key)"
    )]
    Open,
    #[error("the system random generator failed")]
    Random,
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// A node-local AES-256-GCM key.
pub struct LocalKey {
    key: LessSafeKey,
}

// NOTE: never the key bytes.
impl fmt::Debug for LocalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalKey(..)")
    }
}

impl LocalKey {
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let key = UnboundKey::new(&AES_256_GCM, bytes).ok()?;
        Some(Self {
            key: LessSafeKey::new(key),
        })
    }

    /// A fresh key and the contents of its key file.
    pub fn generate() -> Result<(Self, String), SealError> {
        let bytes = crypto::random_bytes::<KEY_LEN>().map_err(|_| SealError::Random)?;
        let key = Self::from_bytes(&bytes).ok_or(SealError::Random)?;
        let file = format!(
            "{KEY_FILE_TAG} {}\n",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        );
        Ok((key, file))
    }

    /// Loads a key file, refusing one that others can read or write.
    pub fn load(path: &Path) -> Result<Self, SealError> {
        crypto::check_private_permissions(path)?;
        Self::read(path)
    }

    /// [`LocalKey::load`] without the permission check (for `doctor`).
    pub fn read(path: &Path) -> Result<Self, SealError> {
        let read_err = |source| CryptoError::Read {
            path: path.to_owned(),
            source,
        };
        let mut text = Vec::new();
        fs::File::open(path)
            .map_err(read_err)?
            .take(MAX_KEY_FILE_BYTES + 1)
            .read_to_end(&mut text)
            .map_err(read_err)?;
        let fail = || SealError::KeyFile {
            path: path.to_owned(),
            reason: format!(
                "must be one line: {KEY_FILE_TAG} BASE64 of 32 bytes (as `enlace keys generate-local` writes it)"
            ),
        };
        let text = std::str::from_utf8(&text).map_err(|_| fail())?;
        let mut words = text.split_whitespace();
        if words.next() != Some(KEY_FILE_TAG) {
            return Err(fail());
        }
        let bytes = words
            .next()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .filter(|b| b.len() == KEY_LEN)
            .ok_or_else(fail)?;
        if words.next().is_some() {
            return Err(fail());
        }
        Self::from_bytes(&bytes).ok_or_else(fail)
    }

    /// `plaintext` sealed for `purpose`: nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, purpose: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let nonce = crypto::random_bytes::<NONCE_LEN>().map_err(|_| SealError::Random)?;
        let mut out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose),
                &mut out,
            )
            .map_err(|_| SealError::Random)?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&out);
        Ok(sealed)
    }

    /// Opens what [`LocalKey::seal`] sealed for the same `purpose`.
    pub fn open(&self, purpose: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(purpose), &mut body)
            .map_err(|_| SealError::Open)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_purpose() {
        let (key, file) = LocalKey::generate().unwrap();
        let sealed = key.seal(b"case:1", b"passport\0X1234567").unwrap();
        assert!(!sealed.windows(8).any(|w| w == b"X1234567"));
        assert_eq!(key.open(b"case:1", &sealed).unwrap(), b"passport\0X1234567");
        assert!(matches!(key.open(b"case:2", &sealed), Err(SealError::Open)));
        let (other, _) = LocalKey::generate().unwrap();
        assert!(other.open(b"case:1", &sealed).is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identifiers.key");
        crypto::write_private_file(&path, file.as_bytes(), false).unwrap();
        let loaded = LocalKey::load(&path).unwrap();
        assert_eq!(
            loaded.open(b"case:1", &sealed).unwrap(),
            b"passport\0X1234567"
        );
        std::fs::write(&path, "garbage\n").unwrap();
        let err = LocalKey::read(&path).unwrap_err().to_string();
        assert!(err.contains("enlace keys generate-local"), "{err}");
    }
}
