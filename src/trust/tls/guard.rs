//! The stream wrapper that keeps an established connection honest after a
//! reload: its peer's certificate is checked again at every change of the
//! configuration, and once it no longer passes the connection is cut.
//!
//! Separate because it is the one place where trust is enforced after the
//! handshake, on both accepted and dialled connections: rustls checks a
//! certificate only once, and without this a revoked member kept a live
//! pull stream for as long as it stayed connected.
//!
//! On accepted connections it also holds the connection's place in its
//! listener's budget (released when the connection ends), and cuts a
//! client that has not sent its protocol preface in time: hyper's HTTP/2
//! server waits for the preface for ever, and an authenticated but silent
//! connection would otherwise hold a file descriptor until its keepalive,
//! which only starts after the preface.

use std::pin::Pin;
use std::task::{Context, Poll};

use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::Sleep;

use super::admission::ConnectionSlot;

use super::refusal_reason;

/// A verified peer chain, owned.
pub(super) fn owned_chain(certs: Option<&[CertificateDer<'_>]>) -> Vec<CertificateDer<'static>> {
    certs
        .unwrap_or_default()
        .iter()
        .map(|c| c.clone().into_owned())
        .collect()
}

pub(super) type Check = Box<dyn Fn() -> Result<(), rustls::Error> + Send + Sync>;

/// The check an established connection runs again after each change of its
/// configuration source; once it fails, the connection is cut for good.
pub(super) struct Recheck {
    changes: Pin<Box<dyn tokio_stream::Stream<Item = ()> + Send + Sync>>,
    check: Check,
    cut: Option<String>,
}

impl Recheck {
    pub(super) fn new<T: Clone + Send + Sync + 'static>(
        source: watch::Receiver<T>,
        check: Check,
    ) -> Self {
        use tokio_stream::StreamExt;
        Self {
            changes: Box::pin(
                tokio_stream::wrappers::WatchStream::from_changes(source).map(|_| ()),
            ),
            check,
            cut: None,
        }
    }

    /// Runs the check if the configuration changed since the last call,
    /// and registers `cx` for the next change. `Some(reason)` the first
    /// time the check fails; an error every time after.
    fn poll_changed(&mut self, cx: &mut Context<'_>) -> Result<Option<String>, std::io::Error> {
        if let Some(reason) = &self.cut {
            return Err(cut_error(reason));
        }
        let mut changed = false;
        while let Poll::Ready(Some(())) = self.changes.as_mut().poll_next(cx) {
            changed = true;
        }
        if changed && let Err(error) = (self.check)() {
            let reason = refusal_reason(&error);
            self.cut = Some(reason.clone());
            return Ok(Some(reason));
        }
        Ok(None)
    }
}

fn cut_error(reason: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!("connection cut: the peer's certificate is no longer accepted ({reason})"),
    )
}

/// A TLS stream whose peer certificate is checked again at every change of
/// its configuration (see [`crate::trust::tls`]), with what is known of the
/// connection (`info`). `on_cut` runs once, when the connection is cut.
pub struct Guarded<S, I = ()> {
    pub(super) stream: S,
    pub(super) recheck: Option<Recheck>,
    pub(super) on_cut: Option<OnCut>,
    pub(super) info: I,
    /// The connection's place in its listener's budget, if it has one:
    /// held, never read, and handed back when the connection is dropped.
    pub(super) _slot: Option<ConnectionSlot>,
    /// The preface still awaited from the client, if any.
    pub(super) preface: Option<Preface>,
}

/// The first bytes a client must send, and by when.
pub(super) struct Preface {
    /// Bytes still to come.
    pub(super) remaining: usize,
    pub(super) deadline: Pin<Box<Sleep>>,
    /// What the error says once the deadline passes.
    pub(super) what: &'static str,
}

impl Preface {
    /// `bytes` bytes due within `within` from now.
    pub(super) fn within(bytes: usize, within: std::time::Duration, what: &'static str) -> Self {
        Self {
            remaining: bytes,
            deadline: Box::pin(tokio::time::sleep(within)),
            what,
        }
    }
}

/// What a connection does once, when it is cut (log, count).
pub(super) type OnCut = Box<dyn FnOnce(&str) + Send + Sync>;

impl<S, I> Guarded<S, I> {
    fn check(&mut self, cx: &mut Context<'_>) -> std::io::Result<()> {
        let Some(recheck) = &mut self.recheck else {
            return Ok(());
        };
        match recheck.poll_changed(cx)? {
            None => Ok(()),
            Some(reason) => {
                if let Some(on_cut) = self.on_cut.take() {
                    on_cut(&reason);
                }
                Err(cut_error(&reason))
            }
        }
    }
}

impl<S: AsyncRead + Unpin, I: Unpin> AsyncRead for Guarded<S, I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.check(cx)?;
        let this = &mut *self;
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if let Some(preface) = &mut this.preface {
            match &polled {
                Poll::Ready(Ok(())) => {
                    let got = buf.filled().len() - before;
                    preface.remaining = preface.remaining.saturating_sub(got);
                    if preface.remaining == 0 || got == 0 {
                        this.preface = None;
                    }
                }
                Poll::Pending if preface.deadline.as_mut().poll(cx).is_ready() => {
                    let what = preface.what;
                    this.preface = None;
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        what,
                    )));
                }
                _ => {}
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin, I: Unpin> AsyncWrite for Guarded<S, I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
