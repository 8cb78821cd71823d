//! A network endpoint, `host:port`: where a roster member is reached, or
//! where this node dials a peer instead (`[[sync.peers]]`).

use std::fmt;

/// A network endpoint `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// A DNS name or an IP address (without brackets).
    pub host: String,
    /// Never 0.
    pub port: u16,
}

impl Endpoint {
    /// Parses `host:port`, `[v6]:port` or `https://host:port`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let s = s.strip_prefix("https://").unwrap_or(s);
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, p) = rest
                .split_once("]:")
                .ok_or_else(|| format!("{s:?} is not host:port"))?;
            (h, p)
        } else {
            s.rsplit_once(':')
                .ok_or_else(|| format!("{s:?} is not host:port"))?
        };
        if host.is_empty() {
            return Err(format!("{s:?} has no host"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{s:?} has no valid port"))?;
        if port == 0 {
            return Err(format!("{s:?}: port 0 is not a reachable endpoint"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}
