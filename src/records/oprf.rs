//! Per-member oblivious PRF keys (RFC 9497, VOPRF mode,
//! ristretto255-SHA512): identifiers that no other member can test offline.
//!
//! Each member holds its own secret key `k`. The *filter entry* of an
//! identifier `y` at that member is `F(k, y)`, cut to [`ENTRY_LEN`] bytes,
//! where the PRF input is the selector's kind code, a zero byte and its
//! normalised form (the bytes the shared-key HMAC took before,
//! `docs/selectors.md`). A member publishes the entries of its own
//! identifiers (its *match filter*); another member that wants to know
//! whether the member holds `x` asks it to evaluate `F(k, x)` **blinded**:
//! it sends `r·H(x)` for a random `r`, gets back `k·r·H(x)` with a proof
//! (DLEQ) that the member used the key its roster entry publishes, and
//! unblinds. The member never sees `x`; the asker never learns `k`, so
//! every further guess costs one more online, rate-limited, audited
//! evaluation instead of a hash on the asker's own machine.
//!
//! Keys rotate by **epoch**: a new key, its public half added to the
//! roster next to the signing keys, then a filter under it
//! (`docs/selectors.md`, "Per-member keys"). Each epoch is a separate key
//! rather than a POPRF tweak of one key: rotation exists to bound what a
//! leaked key exposes, and a tweak of a leaked key is leaked too.
//!
//! Pure: no I/O but reading and writing the key file.

use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine;
use rand_core::{CryptoRng, RngCore};
use ring::rand::{SecureRandom, SystemRandom};
use voprf::{BlindedElement, EvaluationElement, Group, Proof, VoprfClient, VoprfServer};

use crate::records::crypto::{self, CryptoError};
use crate::records::vocabulary::SelectorKind;

/// The RFC 9497 ciphersuite: ristretto255 with SHA-512.
type Suite = voprf::Ristretto255;

/// Bytes of a filter entry: the first bytes of the 64-byte PRF output.
/// 128 bits: a chance collision among a million entries and a million
/// lookups is below 2^-88, and a hit is confirmed with the holder anyway.
pub const ENTRY_LEN: usize = 16;
/// Bytes of a confirmation tag: the PRF output's next 16 bytes. Never
/// published: only an evaluation yields it, so that a member holding
/// another's filter cannot have its entries confirmed without asking.
pub const TAG_LEN: usize = 16;
/// Bytes of a serialised group element (blinded or evaluated).
pub const ELEMENT_LEN: usize = 32;
/// Bytes of a serialised DLEQ proof.
pub const PROOF_LEN: usize = 64;
/// Bytes of a secret key (a ristretto255 scalar).
const SECRET_LEN: usize = 32;
/// Largest key file read; a real one is about 70 bytes.
const MAX_KEY_FILE_BYTES: u64 = 4096;
/// What a key file starts with.
const KEY_FILE_TAG: &str = "enlace-oprf-key-v1";

/// One filter entry: `F(k, kind ‖ 0x00 ‖ normalised)`, cut.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entry(pub [u8; ENTRY_LEN]);

impl Entry {
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// An entry from its bytes, if there are exactly [`ENTRY_LEN`].
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        Some(Self(b.try_into().ok()?))
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Entry({})", self.hex())
    }
}

/// A confirmation tag: the PRF output's bytes after the entry.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(pub [u8; TAG_LEN]);

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tag(..)")
    }
}

/// What one evaluation gives: the filter entry and its confirmation tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Output {
    pub entry: Entry,
    pub tag: Tag,
}

impl Output {
    /// Entry then tag, as a confirmation carries them.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = self.entry.0.to_vec();
        v.extend_from_slice(&self.tag.0);
        v
    }

    /// An output from entry and tag bytes, if there are exactly as many.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != ENTRY_LEN + TAG_LEN {
            return None;
        }
        Some(Self {
            entry: Entry::from_slice(&b[..ENTRY_LEN])?,
            tag: Tag(b[ENTRY_LEN..].try_into().ok()?),
        })
    }
}

/// The PRF input of a normalised identifier: the same bytes the shared-key
/// HMAC took (`docs/selectors.md`).
pub fn input(kind: SelectorKind, normalised: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(kind.code().len() + 1 + normalised.len());
    v.extend_from_slice(kind.code().as_bytes());
    v.push(0);
    v.extend_from_slice(normalised.as_bytes());
    v
}

/// Why an OPRF key or message could not be used. Never shows key bytes.
#[derive(Debug, thiserror::Error)]
pub enum OprfError {
    #[error("OPRF key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("OPRF key epoch must be 1 or more (0 is what an unset field reads as)")]
    ZeroEpoch,
    #[error("{what}: must be {ELEMENT_LEN} bytes of a ristretto255 element (got {got})")]
    ElementLength { what: &'static str, got: usize },
    #[error("{what}: is not a valid ristretto255 element")]
    Element { what: &'static str },
    #[error("proof: must be {PROOF_LEN} bytes (got {got})")]
    ProofLength { got: usize },
    #[error("{got} evaluated elements for {asked} blinded ones")]
    Count { got: usize, asked: usize },
    #[error(
        "the proof does not verify against the member's roster key of epoch {epoch}: it evaluated with another key"
    )]
    Proof { epoch: u32 },
    #[error("an identifier is empty or longer than 65535 bytes")]
    Input,
    #[error("the system random generator failed")]
    Random,
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// A member's public OPRF key of one epoch, as its roster entry lists it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey {
    pub epoch: u32,
    pub key: [u8; ELEMENT_LEN],
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PublicKey(epoch {}, {})",
            self.epoch,
            hex::encode(self.key)
        )
    }
}

impl PublicKey {
    /// Checks that `key` is a valid, non-identity group element.
    pub fn parse(epoch: u32, key: &[u8]) -> Result<Self, OprfError> {
        if epoch == 0 {
            return Err(OprfError::ZeroEpoch);
        }
        let key: [u8; ELEMENT_LEN] = key.try_into().map_err(|_| OprfError::ElementLength {
            what: "public key",
            got: key.len(),
        })?;
        Suite::deserialize_elem(&key).map_err(|_| OprfError::Element { what: "public key" })?;
        Ok(Self { epoch, key })
    }

    fn element(&self) -> Result<<Suite as Group>::Elem, OprfError> {
        Suite::deserialize_elem(&self.key).map_err(|_| OprfError::Element { what: "public key" })
    }
}

/// A member's secret OPRF key of one epoch.
pub struct SecretKey {
    epoch: u32,
    server: VoprfServer<Suite>,
    public: PublicKey,
}

// NOTE: never the key bytes.
impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("epoch", &self.epoch)
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl SecretKey {
    fn from_scalar(epoch: u32, bytes: &[u8]) -> Result<Self, OprfError> {
        if epoch == 0 {
            return Err(OprfError::ZeroEpoch);
        }
        let server = VoprfServer::<Suite>::new_with_key(bytes)
            .map_err(|_| OprfError::Element { what: "secret key" })?;
        let mut key = [0u8; ELEMENT_LEN];
        key.copy_from_slice(&Suite::serialize_elem(server.get_public_key()));
        Ok(Self {
            epoch,
            server,
            public: PublicKey { epoch, key },
        })
    }

    /// A fresh key for `epoch`; returns it with the contents of its key
    /// file, to be written with `crypto::write_private_file`.
    pub fn generate(epoch: u32) -> Result<(Self, String), OprfError> {
        let mut rng = Rng::with(64)?;
        let server = VoprfServer::<Suite>::new(&mut rng).map_err(|_| OprfError::Random)?;
        // The server's bytes are the scalar, then the public element.
        let scalar = server.serialize()[..SECRET_LEN].to_vec();
        let key = Self::from_scalar(epoch, &scalar)?;
        let file = format!(
            "{KEY_FILE_TAG} epoch={epoch} {}\n",
            base64::engine::general_purpose::STANDARD.encode(scalar)
        );
        Ok((key, file))
    }

    /// Loads a key file (`enlace-oprf-key-v1 epoch=N BASE64`, one line).
    /// Refuses a file that anyone but its owner can read or write.
    pub fn load(path: &Path) -> Result<Self, OprfError> {
        crypto::check_private_permissions(path)?;
        Self::read(path)
    }

    /// [`SecretKey::load`] without the permission check (for `enlace
    /// doctor`, which reports permissions itself).
    pub fn read(path: &Path) -> Result<Self, OprfError> {
        let read_err = |source| CryptoError::Read {
            path: path.to_owned(),
            source,
        };
        let file = fs::File::open(path).map_err(read_err)?;
        let mut text = Vec::new();
        file.take(MAX_KEY_FILE_BYTES + 1)
            .read_to_end(&mut text)
            .map_err(read_err)?;
        let fail = |reason: &str| OprfError::KeyFile {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        if text.len() as u64 > MAX_KEY_FILE_BYTES {
            return Err(fail("larger than 4096 bytes; expected one line"));
        }
        let text = std::str::from_utf8(&text).map_err(|_| fail("is not text"))?;
        let mut words = text.split_whitespace();
        let shape = "must be one line: enlace-oprf-key-v1 epoch=N BASE64 (as `enlace keys generate-oprf` writes it)";
        if words.next() != Some(KEY_FILE_TAG) {
            return Err(fail(shape));
        }
        let epoch = words
            .next()
            .and_then(|w| w.strip_prefix("epoch="))
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or_else(|| fail(shape))?;
        // NOTE: the decoder's own error names the offending byte, which is
        // key material; it is replaced by a fixed reason.
        let scalar = words
            .next()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .ok_or_else(|| fail(shape))?;
        if words.next().is_some() {
            return Err(fail(shape));
        }
        if scalar.len() != SECRET_LEN {
            return Err(fail("the key must be 32 bytes of a ristretto255 scalar"));
        }
        Self::from_scalar(epoch, &scalar).map_err(|e| match e {
            OprfError::Element { .. } => fail("the key is not a valid, non-zero scalar"),
            other => other,
        })
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The filter entry of one of this member's own identifiers.
    pub fn entry(&self, kind: SelectorKind, normalised: &str) -> Result<Entry, OprfError> {
        Ok(self.output(kind, normalised)?.entry)
    }

    /// The filter entry and confirmation tag of one of this member's own
    /// identifiers.
    pub fn output(&self, kind: SelectorKind, normalised: &str) -> Result<Output, OprfError> {
        let out = self
            .server
            .evaluate(&input(kind, normalised))
            .map_err(|_| OprfError::Input)?;
        Ok(cut(&out))
    }

    /// Evaluates another member's blinded elements with a proof that this
    /// key did it. Refuses, before any work, an element that is not a
    /// valid group element.
    pub fn evaluate(
        &self,
        blinded: &[Vec<u8>],
    ) -> Result<(Vec<[u8; ELEMENT_LEN]>, [u8; PROOF_LEN]), OprfError> {
        let elements = blinded
            .iter()
            .map(|b| blinded_element(b))
            .collect::<Result<Vec<_>, _>>()?;
        let mut rng = Rng::with(64)?;
        let result = self
            .server
            .batch_blind_evaluate(&mut rng, &elements)
            .map_err(|_| OprfError::Count {
                got: 0,
                asked: elements.len(),
            })?;
        let evaluated = result
            .messages
            .iter()
            .map(|m| {
                let mut e = [0u8; ELEMENT_LEN];
                e.copy_from_slice(&m.serialize());
                e
            })
            .collect();
        let mut proof = [0u8; PROOF_LEN];
        proof.copy_from_slice(&result.proof.serialize());
        Ok((evaluated, proof))
    }
}

/// Checks that `b` is what a peer may send to be evaluated: the
/// [`ELEMENT_LEN`]-byte canonical encoding of a ristretto255 element other
/// than the identity (RFC 9497's `DeserializeElement`). Pure, and what
/// [`SecretKey::evaluate`] checks of each element before any work.
pub fn check_blinded(b: &[u8]) -> Result<(), OprfError> {
    blinded_element(b).map(|_| ())
}

fn blinded_element(b: &[u8]) -> Result<BlindedElement<Suite>, OprfError> {
    if b.len() != ELEMENT_LEN {
        return Err(OprfError::ElementLength {
            what: "blinded element",
            got: b.len(),
        });
    }
    BlindedElement::<Suite>::deserialize(b).map_err(|_| OprfError::Element {
        what: "blinded element",
    })
}

/// A member's OPRF keys, one per epoch, and the local key its own
/// identifiers are sealed under (`crate::records::sealed`).
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<SecretKey>,
    local: crate::records::sealed::LocalKey,
}

impl KeyRing {
    /// `keys` in any order; their epochs must differ (the loader checks).
    pub fn new(mut keys: Vec<SecretKey>, local: crate::records::sealed::LocalKey) -> Self {
        keys.sort_by_key(SecretKey::epoch);
        Self { keys, local }
    }

    /// The key of `epoch`, if held.
    pub fn key(&self, epoch: u32) -> Option<&SecretKey> {
        self.keys.iter().find(|k| k.epoch() == epoch)
    }

    /// Every key, by epoch ascending.
    pub fn keys(&self) -> &[SecretKey] {
        &self.keys
    }

    /// The epochs held, ascending.
    pub fn epochs(&self) -> Vec<u32> {
        self.keys.iter().map(SecretKey::epoch).collect()
    }

    pub fn local(&self) -> &crate::records::sealed::LocalKey {
        &self.local
    }
}

/// A querier's blinded identifiers for one member, kept to unblind the
/// answer.
pub struct Blinded {
    inputs: Vec<Vec<u8>>,
    states: Vec<VoprfClient<Suite>>,
    /// What to send: one element per identifier, in order.
    pub elements: Vec<Vec<u8>>,
}

impl fmt::Debug for Blinded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blinded({} identifiers)", self.inputs.len())
    }
}

impl Blinded {
    /// Blinds each PRF input (see [`input`]) with a fresh random scalar.
    pub fn new(inputs: Vec<Vec<u8>>) -> Result<Self, OprfError> {
        let mut rng = Rng::with(64 * inputs.len())?;
        let mut states = Vec::with_capacity(inputs.len());
        let mut elements = Vec::with_capacity(inputs.len());
        for i in &inputs {
            let b = VoprfClient::<Suite>::blind(i, &mut rng).map_err(|_| OprfError::Input)?;
            elements.push(b.message.serialize().to_vec());
            states.push(b.state);
        }
        Ok(Self {
            inputs,
            states,
            elements,
        })
    }

    /// Unblinds a member's answer after checking its proof against the
    /// member's roster key: one entry per identifier, in order. An answer
    /// made with any other key fails with [`OprfError::Proof`].
    pub fn finalize(
        &self,
        evaluated: &[Vec<u8>],
        proof: &[u8],
        key: &PublicKey,
    ) -> Result<Vec<Output>, OprfError> {
        if evaluated.len() != self.states.len() {
            return Err(OprfError::Count {
                got: evaluated.len(),
                asked: self.states.len(),
            });
        }
        let messages = evaluated
            .iter()
            .map(|e| {
                if e.len() != ELEMENT_LEN {
                    return Err(OprfError::ElementLength {
                        what: "evaluated element",
                        got: e.len(),
                    });
                }
                EvaluationElement::<Suite>::deserialize(e).map_err(|_| OprfError::Element {
                    what: "evaluated element",
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if proof.len() != PROOF_LEN {
            return Err(OprfError::ProofLength { got: proof.len() });
        }
        let proof = Proof::<Suite>::deserialize(proof)
            .map_err(|_| OprfError::Proof { epoch: key.epoch })?;
        let outputs = VoprfClient::batch_finalize(
            &self.inputs,
            &self.states,
            &messages,
            &proof,
            key.element()?,
        )
        .map_err(|_| OprfError::Proof { epoch: key.epoch })?;
        outputs
            .map(|o| o.map(|o| cut(&o)).map_err(|_| OprfError::Input))
            .collect()
    }
}

fn cut(output: &[u8]) -> Output {
    let mut e = [0u8; ENTRY_LEN];
    e.copy_from_slice(&output[..ENTRY_LEN]);
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(&output[ENTRY_LEN..ENTRY_LEN + TAG_LEN]);
    Output {
        entry: Entry(e),
        tag: Tag(t),
    }
}

/// `rand_core`'s traits over ring's system generator. The bytes a call
/// needs are drawn up front, where a failure can be returned; should the
/// OPRF crate ask for more than that, more are drawn.
struct Rng {
    buf: Vec<u8>,
    at: usize,
}

impl Rng {
    fn with(bytes: usize) -> Result<Self, OprfError> {
        let mut buf = vec![0u8; bytes.max(64)];
        SystemRandom::new()
            .fill(&mut buf)
            .map_err(|_| OprfError::Random)?;
        Ok(Self { buf, at: 0 })
    }
}

impl RngCore for Rng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if self.at + dest.len() > self.buf.len() {
            // NOTE: unreachable with the sizes drawn above; a system
            // generator that fails here cannot be worked around, and
            // zeros would be a known blind.
            let mut more = vec![0u8; dest.len().max(64)];
            #[allow(clippy::expect_used)]
            SystemRandom::new()
                .fill(&mut more)
                .expect("the system random generator failed");
            self.buf = more;
            self.at = 0;
        }
        dest.copy_from_slice(&self.buf[self.at..self.at + dest.len()]);
        self.at += dest.len();
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for Rng {}

#[cfg(test)]
#[path = "oprf_tests.rs"]
mod tests;
