//! The matching key of one epoch and the selector tokens it makes from
//! normalised values.

use std::fmt;
use std::fs;
use std::io::Read;
use std::path::Path;

use base64::Engine;
use ring::hmac;

use super::{
    GENERATED_KEY_LEN, MIN_KEY_LEN, NormalisationVersion, SelectorError, normalise, normalise_as,
};
use crate::records::crypto::{self, CryptoError};
use crate::records::vocabulary::SelectorKind;

/// Largest matching key file read; a real one is 45 bytes.
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// A selector token: what is stored and sent instead of the identifier.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token {
    pub kind: SelectorKind,
    /// Epoch of the matching key that made the token.
    pub epoch: u32,
    /// HMAC-SHA256(key, kind code ‖ 0x00 ‖ normalised value).
    pub token: [u8; 32],
}

impl Token {
    /// The token bytes as 64 lower-case hex digits.
    pub fn hex(&self) -> String {
        hex::encode(self.token)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("kind", &self.kind.code())
            .field("epoch", &self.epoch)
            .field("token", &self.hex())
            .finish()
    }
}

/// The tokens of one clear value during the v1 → v2 transition
/// (`docs/selectors.md`, "Versions").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hashed {
    /// The token of the current (v2) normalised form: the one to publish.
    pub token: Token,
    /// The token of the v1 normalised form, when v1 accepted the value and
    /// normalised it differently (a name with an apostrophe): what a node
    /// made of the same value before the upgrade, and what a node not yet
    /// upgraded still makes. `None` when it would equal `token`.
    pub v1: Option<Token>,
}

impl Hashed {
    /// The token, then its v1 companion if there is one.
    pub fn all(&self) -> impl Iterator<Item = Token> + use<> {
        std::iter::once(self.token).chain(self.v1)
    }
}

/// The federation matching key of one epoch.
#[derive(Clone)]
pub struct MatchingKey {
    epoch: u32,
    key: hmac::Key,
}

// NOTE: never the key bytes, nor anything derived from them.
impl fmt::Debug for MatchingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MatchingKey")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl MatchingKey {
    /// A key from raw bytes (at least [`MIN_KEY_LEN`]) for `epoch` (1 or
    /// more).
    pub(crate) fn from_bytes(epoch: u32, bytes: &[u8]) -> Result<Self, SelectorError> {
        if epoch == 0 {
            return Err(SelectorError::ZeroEpoch);
        }
        if bytes.len() < MIN_KEY_LEN {
            return Err(SelectorError::KeyTooShort { got: bytes.len() });
        }
        Ok(Self {
            epoch,
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        })
    }

    /// Loads a matching key file: standard padded base64 of the key bytes on
    /// one line, with an optional trailing newline. Refuses a file that
    /// anyone but its owner can read or write.
    pub fn load(path: &Path, epoch: u32) -> Result<Self, SelectorError> {
        crypto::check_private_permissions(path)?;
        Self::read(path, epoch)
    }

    /// [`MatchingKey::load`] without the permission check: for `enlace
    /// doctor`, which reports loose permissions itself and goes on checking.
    pub fn read(path: &Path, epoch: u32) -> Result<Self, SelectorError> {
        let read_err = |source| CryptoError::Read {
            path: path.to_owned(),
            source,
        };
        let file = fs::File::open(path).map_err(read_err)?;
        let mut text = Vec::new();
        file.take(MAX_KEY_FILE_BYTES + 1)
            .read_to_end(&mut text)
            .map_err(read_err)?;
        let file_err = |reason: String| SelectorError::KeyFile {
            path: path.to_owned(),
            reason,
        };
        if text.len() as u64 > MAX_KEY_FILE_BYTES {
            return Err(file_err(format!(
                "larger than {MAX_KEY_FILE_BYTES} bytes; expected one line of base64"
            )));
        }
        let line = text
            .strip_suffix(b"\r\n")
            .or_else(|| text.strip_suffix(b"\n"))
            .unwrap_or(&text);
        // NOTE: the decoder's own error names the offending byte, which is
        // key material; it is replaced by a fixed reason.
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(line)
            .map_err(|_| {
                file_err(
                    "is not one line of standard padded base64 (optionally ending in a newline)"
                        .to_owned(),
                )
            })?;
        Self::from_bytes(epoch, &bytes).map_err(|e| match e {
            SelectorError::KeyTooShort { got } => file_err(format!(
                "holds {got} bytes; a matching key must be at least {MIN_KEY_LEN} bytes"
            )),
            other => other,
        })
    }

    /// Makes a fresh epoch-1 key from the system random generator; returns
    /// it with the contents of its key file (base64 and a newline), to be
    /// written with `crypto::write_private_file`.
    pub fn generate() -> Result<(Self, String), SelectorError> {
        let bytes = crypto::random_bytes::<GENERATED_KEY_LEN>()?;
        let key = Self::from_bytes(1, &bytes)?;
        let mut file = base64::engine::general_purpose::STANDARD.encode(bytes);
        file.push('\n');
        Ok((key, file))
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The token of an already normalised value (from [`normalise`] or
    /// [`parse_selector_arg`](super::parse_selector_arg)). A value that is not normalised gives a token
    /// that matches nothing.
    pub fn token(&self, kind: SelectorKind, normalised: &str) -> Token {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(kind.code().as_bytes());
        ctx.update(&[0]);
        ctx.update(normalised.as_bytes());
        let tag = ctx.sign();
        let mut token = [0u8; 32];
        // HMAC-SHA256 tags are always 32 bytes.
        token.copy_from_slice(tag.as_ref());
        Token {
            kind,
            epoch: self.epoch,
            token,
        }
    }

    /// Normalises `value`, then makes its token.
    pub fn hash(&self, kind: SelectorKind, value: &str) -> Result<Token, SelectorError> {
        let normalised = normalise(kind, value)?;
        Ok(self.token(kind, &normalised))
    }

    /// Normalises the clear `value` and makes its token, and also its v1
    /// token where v1 normalises it differently. It must be the clear
    /// value: the v2 form of `O'Neil` is `ONEIL`, whose v1 form is `ONEIL`
    /// too, so the v1 token cannot be recovered from a normalised value.
    pub fn hash_with_v1(&self, kind: SelectorKind, value: &str) -> Result<Hashed, SelectorError> {
        let normalised = normalise(kind, value)?;
        let v1 = normalise_as(NormalisationVersion::V1, kind, value)
            .ok()
            .filter(|old| *old != normalised)
            .map(|old| self.token(kind, &old));
        Ok(Hashed {
            token: self.token(kind, &normalised),
            v1,
        })
    }
}
