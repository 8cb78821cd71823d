//! The `record_log` target: the record log file as a disk hands it back.
//! Its own file, as each target is: see [`super`] for what every target
//! asserts and the fixtures they share.

use super::input_file;
use crate::store::record_log::{self, FrameContent, RecordLog};

/// The input as a record log file: scanned as at open, every frame that
/// passed its checksum read back, and its compacted form read back equal.
pub fn record_log(data: &[u8]) {
    let Some(file) = input_file(data) else {
        return;
    };
    let mut scanned = Vec::new();
    let log = RecordLog::open(file.path(), data.len() as u64, |s| {
        scanned.push(s);
        Ok(())
    });
    if let Ok(log) = log {
        for s in &scanned {
            let Some(kind) = s.content else { continue };
            let frame = match log.read(s.offset) {
                Ok(f) => f,
                Err(e) => panic!(
                    "frame at {} scanned as {kind:?} but does not read: {e}",
                    s.offset
                ),
            };
            assert_eq!(frame.head, s.head);
            assert_eq!(frame.len, s.len);
            let elsewhere =
                matches!(frame.content, FrameContent::TombstoneElsewhere).then_some(&b"{}"[..]);
            if let Ok(bytes) = record_log::compacted(&frame, elsewhere)
                && let Some(again) = input_file(&bytes)
            {
                let reread = RecordLog::open(again.path(), bytes.len() as u64, |_| Ok(()))
                    .and_then(|l| l.read(0));
                match reread {
                    Ok(f) => {
                        assert_eq!(f.head, frame.head, "compaction changed the head");
                        if let FrameContent::Held(c) = &frame.content {
                            assert_eq!(&f.content, &FrameContent::Held(c.clone()));
                        }
                    }
                    Err(e) => panic!("a compacted frame does not read back: {e}"),
                }
            }
        }
    }
}
