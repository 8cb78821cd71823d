//! A TCP proxy on loopback that a test can cut and heal, to play an
//! unreliable link between two real nodes. Cutting drops every open
//! connection and refuses new ones; healing lets connections through again.
//! It can also cut each connection after a number of bytes from the server,
//! to play a peer that disconnects in the middle of a batch.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub addr: SocketAddr,
    /// Generation: odd while cut. Connections end when it changes.
    state: watch::Sender<(u64, bool)>,
    pub connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.state.send_modify(|s| {
            s.0 += 1;
            s.1 = true;
        });
    }
}

impl Proxy {
    /// Forwards 127.0.0.1:<port> to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        Self::start_with(target, None).await
    }

    /// Like `start`, but each connection is cut once `limit` bytes have
    /// come back from the server.
    pub async fn start_with(target: SocketAddr, limit: Option<usize>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (state, rx) = watch::channel((0u64, false));
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                let (generation, cut) = *rx.borrow();
                if cut {
                    drop(inbound);
                    continue;
                }
                count.fetch_add(1, Ordering::Relaxed);
                let mut rx = rx.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let relay = relay(inbound, outbound, limit);
                    tokio::select! {
                        _ = relay => {}
                        _ = rx.wait_for(|s| s.0 != generation) => {}
                    }
                });
            }
        });
        Self {
            addr,
            state,
            connections,
            task,
        }
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.state.send_modify(|s| {
            s.0 += 1;
            s.1 = true;
        });
    }

    /// Lets connections through again.
    pub fn heal(&self) {
        self.state.send_modify(|s| {
            s.0 += 1;
            s.1 = false;
        });
    }
}

async fn relay(inbound: TcpStream, outbound: TcpStream, limit: Option<usize>) {
    let (mut ci, mut co) = inbound.into_split();
    let (mut si, mut so) = outbound.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut ci, &mut so).await;
        let _ = so.shutdown().await;
    };
    let down = async {
        let mut sent = 0usize;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match si.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let n = match limit {
                Some(l) if sent + n >= l => {
                    let _ = co.write_all(&buf[..l - sent]).await;
                    break;
                }
                _ => n,
            };
            if co.write_all(&buf[..n]).await.is_err() {
                break;
            }
            sent += n;
        }
        let _ = co.shutdown().await;
    };
    // Either direction ending ends the connection, as a broken link would.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}
