//! How many connections a listener takes on, per source address and per
//! identity: the budgets every listener enforces before it does any work
//! for a connection (see THREATS.md, "Budgets").
//!
//! Separate from the accept loop because these are the numbers an
//! outsider or a member pushes against: the accept loop never waits for
//! room (a listener that blocks in accept lets idle sockets starve every
//! honest client); it asks here, and a connection for which there is no
//! room is closed at once and counted.
//!
//! Two stages, two budgets:
//! - *handshakes in progress*, before anything is known of the client but
//!   its address: a cap per listener and a smaller one per source
//!   address (an IPv6 source counts by its /64, which one host usually
//!   holds whole), so that one source cannot take every slot;
//! - *established connections*, once the certificate has named the
//!   client: a cap per listener and one per identity (member or agency
//!   client), so that a member or a client cannot hold the node's file
//!   descriptors with idle connections.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::identity::Identity;

/// TLS handshakes in progress at once on one listener; one more
/// connection is closed at once.
pub const MAX_HANDSHAKES: usize = 256;
/// TLS handshakes in progress at once from one source address (IPv4
/// address, IPv6 /64) on one listener; one more is closed at once.
pub const MAX_HANDSHAKES_PER_SOURCE: usize = 16;

/// Established (authenticated) connections at once on one listener; one
/// more is closed right after its handshake.
pub const MAX_CONNECTIONS: usize = 512;
/// Established connections at once from one member on the peer listener.
/// A member needs a few (its replicator, its queries and witnessing, a
/// doctor run); one more is closed right after its handshake.
pub const MAX_CONNECTIONS_PER_PEER: usize = 16;
/// Established connections at once from one agency client (by its
/// certificate's name) on the agency and metrics listeners; one more is
/// closed right after its handshake.
pub const MAX_CONNECTIONS_PER_CLIENT: usize = 32;

/// The budgets of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    /// See [`MAX_HANDSHAKES`].
    pub handshakes: usize,
    /// See [`MAX_HANDSHAKES_PER_SOURCE`].
    pub handshakes_per_source: usize,
    /// See [`MAX_CONNECTIONS`].
    pub connections: usize,
    /// See [`MAX_CONNECTIONS_PER_PEER`].
    pub connections_per_peer: usize,
    /// See [`MAX_CONNECTIONS_PER_CLIENT`].
    pub connections_per_client: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            handshakes: MAX_HANDSHAKES,
            handshakes_per_source: MAX_HANDSHAKES_PER_SOURCE,
            connections: MAX_CONNECTIONS,
            connections_per_peer: MAX_CONNECTIONS_PER_PEER,
            connections_per_client: MAX_CONNECTIONS_PER_CLIENT,
        }
    }
}

/// What a connection is counted under during its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    V4([u8; 4]),
    /// The /64 prefix.
    V6([u8; 8]),
}

impl From<IpAddr> for Source {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4.octets()),
                None => {
                    let o = v6.octets();
                    Self::V6([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
                }
            },
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    handshakes: usize,
    per_source: HashMap<Source, usize>,
    connections: usize,
    per_identity: HashMap<Identity, usize>,
}

/// The running counts of one listener, shared by its accept loop and its
/// connections; each slot given out is handed back when dropped.
#[derive(Debug, Clone)]
pub(super) struct Admission {
    limits: ListenerLimits,
    counts: Arc<Mutex<Counts>>,
}

impl Admission {
    pub(super) fn new(limits: ListenerLimits) -> Self {
        Self {
            limits,
            counts: Arc::default(),
        }
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        // NOTE: the counts stay consistent even if a holder panicked: every
        // change is one increment or decrement made under the lock.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A handshake slot for a connection from `ip`, or why there is none.
    pub(super) fn handshake(&self, ip: IpAddr) -> Result<HandshakeSlot, Shed> {
        let source = Source::from(ip);
        let mut c = self.counts();
        if c.handshakes >= self.limits.handshakes {
            return Err(Shed::Listener(self.limits.handshakes));
        }
        let from_source = c.per_source.entry(source).or_insert(0);
        if *from_source >= self.limits.handshakes_per_source {
            return Err(Shed::Source(self.limits.handshakes_per_source));
        }
        *from_source += 1;
        c.handshakes += 1;
        Ok(HandshakeSlot {
            admission: self.clone(),
            source,
        })
    }
}

impl Admission {
    /// A slot for an established connection of `who`, or why there is none.
    pub(super) fn connection(&self, who: &Identity) -> Result<ConnectionSlot, Capped> {
        let per_identity = match who {
            Identity::Peer(_) => self.limits.connections_per_peer,
            Identity::Client(_) => self.limits.connections_per_client,
        };
        let mut c = self.counts();
        if c.connections >= self.limits.connections {
            return Err(Capped::Listener(self.limits.connections));
        }
        let held = c.per_identity.entry(who.clone()).or_insert(0);
        if *held >= per_identity {
            return Err(Capped::Identity(per_identity));
        }
        *held += 1;
        c.connections += 1;
        Ok(ConnectionSlot {
            admission: self.clone(),
            who: who.clone(),
        })
    }
}

/// Why an authenticated connection was closed right after its handshake.
#[derive(Debug, Clone, Copy)]
pub(super) enum Capped {
    /// The listener had this many connections open.
    Listener(usize),
    /// The identity had this many connections open.
    Identity(usize),
}

impl std::fmt::Display for Capped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Listener(n) => write!(f, "{n} connections already open on the listener"),
            Self::Identity(n) => write!(f, "{n} connections already open for this identity"),
        }
    }
}

/// An established connection, counted until dropped (when the connection
/// ends, however it ends).
#[derive(Debug)]
pub struct ConnectionSlot {
    admission: Admission,
    who: Identity,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut c = self.admission.counts();
        c.connections = c.connections.saturating_sub(1);
        if let Some(n) = c.per_identity.get_mut(&self.who) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_identity.remove(&self.who);
            }
        }
    }
}

/// Why a connection was closed before its handshake.
#[derive(Debug, Clone, Copy)]
pub(super) enum Shed {
    /// The listener had this many handshakes in progress.
    Listener(usize),
    /// The source address had this many handshakes in progress.
    Source(usize),
}

impl std::fmt::Display for Shed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Listener(n) => {
                write!(f, "{n} TLS handshakes already in progress on the listener")
            }
            Self::Source(n) => {
                write!(
                    f,
                    "{n} TLS handshakes already in progress from this source address"
                )
            }
        }
    }
}

/// A handshake in progress, counted until dropped.
#[derive(Debug)]
pub(super) struct HandshakeSlot {
    admission: Admission,
    source: Source,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut c = self.admission.counts();
        c.handshakes = c.handshakes.saturating_sub(1);
        if let Some(n) = c.per_source.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_source.remove(&self.source);
            }
        }
    }
}

/// A WARN line at most every so often, saying how many events it stands
/// for: one line per connection shed would let a flood fill the log.
#[derive(Debug)]
pub(super) struct Throttled {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttled {
    pub(super) fn new(every: Duration) -> Self {
        Self {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// Counts one event; `Some(n)` when a line is due, standing for the
    /// `n` events since the last one.
    pub(super) fn due(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.1 += 1;
        let now = Instant::now();
        match s.0 {
            Some(last) if now.duration_since(last) < self.every => None,
            _ => {
                s.0 = Some(now);
                Some(std::mem::take(&mut s.1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::model::NodeId;

    #[test]
    fn one_source_cannot_take_every_handshake_slot() {
        let a = Admission::new(ListenerLimits {
            handshakes: 3,
            handshakes_per_source: 2,
            ..ListenerLimits::default()
        });
        let x: IpAddr = "192.0.2.1".parse().unwrap();
        let y: IpAddr = "192.0.2.2".parse().unwrap();
        let s1 = a.handshake(x).unwrap();
        let _s2 = a.handshake(x).unwrap();
        assert!(matches!(a.handshake(x), Err(Shed::Source(2))));
        let _s3 = a.handshake(y).unwrap();
        assert!(matches!(a.handshake(y), Err(Shed::Listener(3))));
        drop(s1);
        assert!(a.handshake(x).is_ok());
    }

    #[test]
    fn an_ipv6_host_counts_by_its_64() {
        let a = Admission::new(ListenerLimits {
            handshakes: 10,
            handshakes_per_source: 1,
            ..ListenerLimits::default()
        });
        let _s = a.handshake("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert!(a.handshake("2001:db8:1:2::ffff".parse().unwrap()).is_err());
        assert!(a.handshake("2001:db8:1:3::1".parse().unwrap()).is_ok());
    }

    #[test]
    fn connections_are_capped_per_identity_and_per_listener() {
        let a = Admission::new(ListenerLimits {
            connections: 3,
            connections_per_peer: 2,
            connections_per_client: 1,
            ..ListenerLimits::default()
        });
        let hn = Identity::Peer(NodeId::parse("hn").unwrap());
        let cli = Identity::Client("ops".into());
        let h1 = a.connection(&hn).unwrap();
        let _h2 = a.connection(&hn).unwrap();
        assert!(matches!(a.connection(&hn), Err(Capped::Identity(2))));
        let _c1 = a.connection(&cli).unwrap();
        assert!(matches!(
            a.connection(&Identity::Client("other".into())),
            Err(Capped::Listener(3))
        ));
        drop(h1);
        assert!(matches!(a.connection(&cli), Err(Capped::Identity(1))));
        assert!(a.connection(&hn).is_ok());
    }

    #[test]
    fn throttled_lines_say_how_many_they_stand_for() {
        let t = Throttled::new(Duration::from_secs(3600));
        assert_eq!(t.due(), Some(1));
        assert_eq!(t.due(), None);
        assert_eq!(t.due(), None);
    }
}
