//! The record log: every record this node holds, framed, in one
//! append-only file (`records.log` in the data directory). Part of the
//! on-disk format: changing it means a new schema version.
//!
//! A frame is `len u32 LE ‖ crc32 u32 LE ‖ payload`, `len` counting the
//! payload bytes and the CRC-32 (IEEE) covering them. The payload
//! (schema version 3) is
//!
//! `0xF3 ‖ len(origin) u8 ‖ origin ‖ seq u64 BE ‖ position u64 BE ‖
//!  len(record_id) u16 BE ‖ record_id ‖ expires_at_ms i64 BE ‖
//!  len(state) u32 BE ‖ state ‖ tag u8 ‖ len(content) u32 BE ‖ content ‖
//!  zero padding`
//!
//! `expires_at_ms` is `i64::MIN` for a record that never expires (or
//! arrived as a tombstone); `len(state)` is `u32::MAX` when the frame
//! carries no series state. The state is that of the series named by the
//! record's own id, written with the series' first record (see
//! [`super::SeriesWrite`]); later states of a series are in sled. Tag 0 is
//! a SignedRecord envelope, 1 a tombstone held in the frame, 2 a tombstone
//! too long for the frame it replaced (its bytes are in the sled
//! `tombstones` tree). Padding appears only in a frame rewritten by a
//! purge, which keeps the frame's length and everything before the tag.
//!
//! Frames written by schema version 2 lack the marker byte (their first
//! byte is the origin's length, 1 to 32), the expiry and the state; their
//! expiry and series state are in sled. They are read as they are and
//! rewritten in their own layout by a purge, so a version 2 log needs no
//! conversion.
//!
//! The log is only ever appended to, except by [`RecordLog::overwrite`]: a
//! purge replaces a frame in place with a tombstone frame of the same
//! length, so that the content is gone from the disk. Which prefix of the
//! file is committed is not the log's business: the store keeps it in sled
//! (`meta` key `record_log_end`), written in the transaction that
//! references the frames, and hands it to [`RecordLog::open`].
//!
//! Compaction ([`super::Store::compact`]) writes the frames again, without
//! a purge's padding, into a new file `records.<n>.log`; sled's `meta` key
//! `record_log_file` names the file in use (absent: `records.log`).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{Content, StoreError};
use crate::records::model::NodeId;

/// Name of the first log in the data directory; a compaction writes the
/// next one (see [`file_name`]).
pub(crate) const FILE_NAME: &str = "records.log";

/// Name of the `n`th log file: `records.log`, then `records.1.log`, ….
pub(crate) fn file_name(n: u64) -> String {
    match n {
        0 => FILE_NAME.to_owned(),
        n => format!("records.{n}.log"),
    }
}

/// The number of a log file's name, if it is one (see [`file_name`]).
pub(crate) fn file_number(name: &str) -> Option<u64> {
    if name == FILE_NAME {
        return Some(0);
    }
    let n = name.strip_prefix("records.")?.strip_suffix(".log")?;
    // Digits only, no sign or leading zero: one name per number.
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n.starts_with('0') {
        return None;
    }
    n.parse().ok().filter(|&n| n > 0)
}

/// The frame `frame` becomes in a compacted log: the same head and
/// content, at its natural length (a purge's padding dropped). A tombstone
/// kept in sled (`elsewhere`) moves into the frame.
pub fn compacted(frame: &Frame, elsewhere: Option<&[u8]>) -> Result<Vec<u8>, StoreError> {
    match (&frame.content, elsewhere) {
        (FrameContent::Held(content), _) => encode(&frame.head, content),
        (FrameContent::TombstoneElsewhere, Some(t)) => encode_raw(&frame.head, TAG_TOMBSTONE, t, 0),
        (FrameContent::TombstoneElsewhere, None) => Err(StoreError::Corrupt(format!(
            "tombstone of {}#{} is missing",
            frame.head.origin, frame.head.seq
        ))),
    }
}

const HEADER: usize = 8;
/// First payload byte of a version 3 frame (a version 2 frame starts with
/// its origin's length, at most 32).
const MARKER_V3: u8 = 0xF3;
const NO_EXPIRY: i64 = i64::MIN;
const NO_STATE: u32 = u32::MAX;
const TAG_ENVELOPE: u8 = 0;
const TAG_TOMBSTONE: u8 = 1;
const TAG_TOMBSTONE_ELSEWHERE: u8 = 2;
/// Bytes read ahead by [`RecordLog::read`]: one pread serves most frames.
const READ_AHEAD: usize = 2048;
/// Largest payload accepted when scanning: far above any record, small
/// enough that a corrupt length cannot make the scan allocate wildly.
const MAX_PAYLOAD: usize = 64 * 1024 * 1024;

/// What a frame holds in place of the record's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameContent {
    /// Content as stored (envelope or tombstone).
    Held(Content),
    /// A tombstone kept in sled because it did not fit the frame.
    TombstoneElsewhere,
}

/// The fields before the content: the same in a frame and in the
/// tombstone frame that replaces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub origin: NodeId,
    pub seq: u64,
    pub position: u64,
    pub record_id: String,
    /// When the content expires (ms since the Unix epoch); `None` for a
    /// version 2 frame, whose expiry is in sled.
    pub expires_at_ms: Option<i64>,
    /// State of the series named by `record_id`, as of this record.
    pub series_state: Option<Vec<u8>>,
    /// Written by schema version 2 (see the module doc).
    pub v2: bool,
}

/// A decoded frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub head: Head,
    pub content: FrameContent,
    /// Length of the frame on disk, header included.
    pub len: usize,
}

/// Encodes the frame of a record as first stored.
pub fn encode(head: &Head, content: &Content) -> Result<Vec<u8>, StoreError> {
    let (tag, bytes): (u8, &[u8]) = match content {
        Content::Envelope(b) => (TAG_ENVELOPE, b),
        Content::Tombstone(b) => (TAG_TOMBSTONE, b),
    };
    encode_raw(head, tag, bytes, 0)
}

/// Length of a frame with `head` and `content_len` bytes of content, before
/// any padding.
fn natural_len(head: &Head, content_len: usize) -> usize {
    let v3_fields = if head.v2 {
        0
    } else {
        1 + 8 + 4 + head.series_state.as_ref().map_or(0, Vec::len)
    };
    HEADER
        + v3_fields
        + 1
        + head.origin.as_str().len()
        + 16
        + 2
        + head.record_id.len()
        + 1
        + 4
        + content_len
}

/// Bytes of a frame that a compaction would drop: a purge's padding, in a
/// frame of `frame_len` bytes holding `content_len` bytes of content (0
/// for a tombstone kept in sled: it may come back in at compaction, which
/// the figure does not try to foresee).
pub(crate) fn slack(frame_len: usize, head: &Head, content_len: usize) -> u64 {
    frame_len.saturating_sub(natural_len(head, content_len)) as u64
}

/// Encodes one frame. `pad_to`, if larger than the natural length, is the
/// total frame length to fill with zero padding (a purge's rewrite).
fn encode_raw(head: &Head, tag: u8, bytes: &[u8], pad_to: usize) -> Result<Vec<u8>, StoreError> {
    let record_id = &head.record_id;
    let id_len = u16::try_from(record_id.len()).map_err(|_| StoreError::FieldTooLong {
        field: "record id",
        len: record_id.len(),
    })?;
    let content_len = u32::try_from(bytes.len()).map_err(|_| StoreError::FieldTooLong {
        field: "record",
        len: bytes.len(),
    })?;
    let state = head.series_state.as_deref();
    let state_len = match state {
        Some(s) => u32::try_from(s.len())
            .ok()
            .filter(|&l| l != NO_STATE)
            .ok_or(StoreError::FieldTooLong {
                field: "series state",
                len: s.len(),
            })?,
        None => NO_STATE,
    };
    let origin = head.origin.as_str().as_bytes();
    let natural = natural_len(head, bytes.len());
    let mut frame = Vec::with_capacity(natural.max(pad_to));
    frame.extend_from_slice(&[0; HEADER]);
    if !head.v2 {
        frame.push(MARKER_V3);
    }
    // NodeId guarantees at most 32 bytes.
    frame.push(origin.len() as u8);
    frame.extend_from_slice(origin);
    frame.extend_from_slice(&head.seq.to_be_bytes());
    frame.extend_from_slice(&head.position.to_be_bytes());
    frame.extend_from_slice(&id_len.to_be_bytes());
    frame.extend_from_slice(record_id.as_bytes());
    if !head.v2 {
        frame.extend_from_slice(&head.expires_at_ms.unwrap_or(NO_EXPIRY).to_be_bytes());
        frame.extend_from_slice(&state_len.to_be_bytes());
        frame.extend_from_slice(state.unwrap_or_default());
    }
    frame.push(tag);
    frame.extend_from_slice(&content_len.to_be_bytes());
    frame.extend_from_slice(bytes);
    if pad_to > frame.len() {
        frame.resize(pad_to, 0);
    }
    let payload_len = u32::try_from(frame.len() - HEADER).map_err(|_| StoreError::FrameTooLong)?;
    let crc = crc32fast::hash(&frame[HEADER..]);
    frame[..4].copy_from_slice(&payload_len.to_le_bytes());
    frame[4..HEADER].copy_from_slice(&crc.to_le_bytes());
    Ok(frame)
}

/// Reads the head; returns it and the offset of the tag in the payload.
fn parse_head(payload: &[u8]) -> Option<(Head, usize)> {
    let v2 = payload.first()? != &MARKER_V3;
    let mut at = usize::from(!v2);
    let olen = usize::from(*payload.get(at)?);
    at += 1;
    let origin = NodeId::parse(std::str::from_utf8(payload.get(at..at + olen)?).ok()?).ok()?;
    at += olen;
    let u64_at = |at: usize| {
        Some(u64::from_be_bytes(
            payload.get(at..at + 8)?.try_into().ok()?,
        ))
    };
    let seq = u64_at(at)?;
    let position = u64_at(at + 8)?;
    let id_len = usize::from(u16::from_be_bytes(
        payload.get(at + 16..at + 18)?.try_into().ok()?,
    ));
    at += 18;
    let record_id = std::str::from_utf8(payload.get(at..at + id_len)?)
        .ok()?
        .to_owned();
    at += id_len;
    let (mut expires_at_ms, mut series_state) = (None, None);
    if !v2 {
        let at_ms = i64::from_be_bytes(payload.get(at..at + 8)?.try_into().ok()?);
        expires_at_ms = (at_ms != NO_EXPIRY).then_some(at_ms);
        let state_len = u32::from_be_bytes(payload.get(at + 8..at + 12)?.try_into().ok()?);
        at += 12;
        if state_len != NO_STATE {
            let len = usize::try_from(state_len).ok()?;
            series_state = Some(payload.get(at..at + len)?.to_vec());
            at += len;
        }
    }
    Some((
        Head {
            origin,
            seq,
            position,
            record_id,
            expires_at_ms,
            series_state,
            v2,
        },
        at,
    ))
}

fn parse_content(payload: &[u8], tag_at: usize) -> Option<FrameContent> {
    let tag = *payload.get(tag_at)?;
    let len = u32::from_be_bytes(payload.get(tag_at + 1..tag_at + 5)?.try_into().ok()?);
    let bytes = payload.get(tag_at + 5..tag_at + 5 + usize::try_from(len).ok()?)?;
    match tag {
        TAG_ENVELOPE => Some(FrameContent::Held(Content::Envelope(bytes.to_vec()))),
        TAG_TOMBSTONE => Some(FrameContent::Held(Content::Tombstone(bytes.to_vec()))),
        TAG_TOMBSTONE_ELSEWHERE => Some(FrameContent::TombstoneElsewhere),
        _ => None,
    }
}

/// What a frame met while scanning holds, without copying it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Envelope,
    /// A tombstone of this many bytes, in the frame.
    Tombstone(usize),
    TombstoneElsewhere,
}

fn parse_kind(payload: &[u8], tag_at: usize) -> Option<Kind> {
    let tag = *payload.get(tag_at)?;
    let len = u32::from_be_bytes(payload.get(tag_at + 1..tag_at + 5)?.try_into().ok()?);
    let len = usize::try_from(len).ok()?;
    payload.get(tag_at + 5..tag_at + 5 + len)?;
    match tag {
        TAG_ENVELOPE => Some(Kind::Envelope),
        TAG_TOMBSTONE => Some(Kind::Tombstone(len)),
        TAG_TOMBSTONE_ELSEWHERE => Some(Kind::TombstoneElsewhere),
        _ => None,
    }
}

/// A frame met while scanning the log at open.
pub struct Scanned {
    pub offset: u64,
    pub head: Head,
    /// Length on disk, header included.
    pub len: usize,
    /// `None` if the frame failed its checksum (a purge's rewrite torn by
    /// a crash is the only legitimate cause; the store decides).
    pub content: Option<Kind>,
}

/// The log file. Reads take `&self` (positional reads); the store
/// serialises appends under its writer lock and keeps the end offset.
pub struct RecordLog {
    file: File,
}

fn io(action: &'static str, source: std::io::Error) -> StoreError {
    StoreError::LogIo { action, source }
}

impl RecordLog {
    /// Opens (or creates, owner-only) the log at `path`, cuts it back to
    /// `committed` bytes (frames past it were never acknowledged: the sled
    /// transaction that would have referenced them did not commit) and
    /// calls `each` for every frame up to there, in order.
    pub fn open(
        path: &Path,
        committed: u64,
        mut each: impl FnMut(Scanned) -> Result<(), StoreError>,
    ) -> Result<Self, StoreError> {
        let file = create_owner_only(path, false)?;
        let len = file.metadata().map_err(|e| io("stat", e))?.len();
        if len < committed {
            return Err(StoreError::Corrupt(format!(
                "record log {} holds {len} bytes, but {committed} were committed",
                path.display()
            )));
        }
        if len > committed {
            file.set_len(committed).map_err(|e| io("truncate", e))?;
            file.sync_all().map_err(|e| io("sync", e))?;
        }
        let mut reader = std::io::BufReader::with_capacity(1 << 20, &file);
        let mut offset = 0u64;
        let mut header = [0u8; HEADER];
        let mut payload = Vec::new();
        while offset < committed {
            let bad = |what: &str| {
                StoreError::Corrupt(format!(
                    "record log {}: frame at offset {offset} {what}",
                    path.display()
                ))
            };
            if committed - offset < HEADER as u64 {
                return Err(bad("is cut short"));
            }
            reader.read_exact(&mut header).map_err(|e| io("read", e))?;
            let plen = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            if plen > MAX_PAYLOAD || (committed - offset - HEADER as u64) < plen as u64 {
                return Err(bad("has an impossible length"));
            }
            payload.resize(plen, 0);
            reader.read_exact(&mut payload).map_err(|e| io("read", e))?;
            let (head, tag_at) = parse_head(&payload).ok_or_else(|| bad("does not parse"))?;
            let content = if crc32fast::hash(&payload) == crc {
                Some(parse_kind(&payload, tag_at).ok_or_else(|| bad("does not parse"))?)
            } else {
                None
            };
            each(Scanned {
                offset,
                head,
                len: HEADER + plen,
                content,
            })?;
            offset += (HEADER + plen) as u64;
        }
        drop(reader);
        Ok(Self { file })
    }

    /// Writes `frames` (already encoded, back to back) at `at` and makes
    /// them durable.
    pub fn append(&self, at: u64, frames: &[u8]) -> Result<(), StoreError> {
        self.file
            .write_all_at(frames, at)
            .map_err(|e| io("append", e))?;
        self.file.sync_data().map_err(|e| io("sync", e))
    }

    /// Replaces the frame at `at` with `frame` of the same length. The
    /// caller syncs ([`RecordLog::sync`]) and keeps readers away meanwhile.
    pub fn overwrite(&self, at: u64, frame: &[u8]) -> Result<(), StoreError> {
        self.file
            .write_all_at(frame, at)
            .map_err(|e| io("overwrite", e))
    }

    pub fn sync(&self) -> Result<(), StoreError> {
        self.file.sync_data().map_err(|e| io("sync", e))
    }

    /// The frame at `at`, checksum verified.
    pub fn read(&self, at: u64) -> Result<Frame, StoreError> {
        let mut buf = vec![0u8; READ_AHEAD];
        let got = read_some_at(&self.file, &mut buf, at)?;
        let bad = |what: &str| StoreError::Corrupt(format!("record log frame at {at} {what}"));
        if got < HEADER {
            return Err(bad("is cut short"));
        }
        let plen = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
        if plen > MAX_PAYLOAD {
            return Err(bad("has an impossible length"));
        }
        let total = HEADER + plen;
        if got < total {
            buf.resize(total, 0);
            self.file
                .read_exact_at(&mut buf[got..], at + got as u64)
                .map_err(|e| io("read", e))?;
        }
        let payload = &buf[HEADER..total];
        if crc32fast::hash(payload) != crc {
            return Err(bad("fails its checksum"));
        }
        let (head, tag_at) = parse_head(payload).ok_or_else(|| bad("does not parse"))?;
        let content = parse_content(payload, tag_at).ok_or_else(|| bad("does not parse"))?;
        Ok(Frame {
            head,
            content,
            len: total,
        })
    }
}

/// Opens `path` for reading and writing, creating it readable by its owner
/// only (other members' records); `new` insists that it did not exist.
pub(crate) fn create_owner_only(path: &Path, new: bool) -> Result<File, StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true);
    if new {
        options.create_new(true);
    } else {
        options.create(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map_err(|source| StoreError::LogOpen {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads what is there, up to `buf.len()` bytes, at `at`.
fn read_some_at(file: &File, buf: &mut [u8], at: u64) -> Result<usize, StoreError> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], at + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io("read", e)),
        }
    }
    Ok(got)
}

/// The frame that replaces `frame` at a purge: the same length, the
/// tombstone in it if it fits (`true`), else a marker that it is kept in
/// sled (`false`).
pub(crate) fn tombstone_frame(
    frame: &Frame,
    tombstone: &[u8],
) -> Result<(Vec<u8>, bool), StoreError> {
    let rewrite = |tag, bytes| encode_raw(&frame.head, tag, bytes, frame.len);
    let inline = rewrite(TAG_TOMBSTONE, tombstone)?;
    if inline.len() == frame.len {
        return Ok((inline, true));
    }
    let marker = rewrite(TAG_TOMBSTONE_ELSEWHERE, &[])?;
    if marker.len() != frame.len {
        return Err(StoreError::Corrupt(format!(
            "record frame of {} bytes is too short for a tombstone",
            frame.len
        )));
    }
    Ok((marker, false))
}
