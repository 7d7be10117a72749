//! `-p/--publish [ADDR:]HOST:GUEST[/tcp|/udp]`, as `docker run -p` spells
//! it. Published ports are bound on 127.0.0.1 unless an address is given,
//! so trying an appliance never exposes it to the network by accident.
//!
//! `GUEST`, `0:GUEST` and `ADDR::GUEST` leave the host port to be chosen
//! (host port 0 here); whoever starts the network picks a free one first.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// One published port: connections to `addr:host_port` on the host reach
/// `guest_port` in the guest. `host_port` 0: not chosen yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish {
    pub addr: IpAddr,
    pub host_port: u16,
    pub guest_port: u16,
    pub protocol: Protocol,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PublishError {
    #[error("--publish {spec:?}: expected [[ADDR:]HOST:]GUEST[/tcp|/udp], e.g. 8080:80, 0:80 (a free host port), 80 or 0.0.0.0:8443:443/tcp")]
    Shape { spec: String },
    #[error("--publish {spec:?}: {what} port {value:?} is not a number from {min} to 65535")]
    Port {
        spec: String,
        what: &'static str,
        value: String,
        min: u16,
    },
    #[error("--publish {spec:?}: {value:?} is not an IPv4 address or a bracketed IPv6 address like [::1]")]
    Address { spec: String, value: String },
    #[error("--publish {spec:?}: protocol {value:?} is neither tcp nor udp")]
    Protocol { spec: String, value: String },
}

impl Publish {
    /// passt's option and value for this port: `-t 127.0.0.1/18080:80`.
    pub fn passt_args(&self) -> [String; 2] {
        let flag = match self.protocol {
            Protocol::Tcp => "-t",
            Protocol::Udp => "-u",
        };
        [
            flag.to_string(),
            format!("{}/{}:{}", self.addr, self.host_port, self.guest_port),
        ]
    }
}

impl fmt::Display for Publish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            IpAddr::V6(a) => write!(f, "[{a}]")?,
            IpAddr::V4(a) => write!(f, "{a}")?,
        }
        write!(
            f,
            ":{}:{}/{}",
            self.host_port, self.guest_port, self.protocol
        )
    }
}

/// A port number; the host port may be 0 or empty (choose one).
fn port(spec: &str, what: &'static str, value: &str) -> Result<u16, PublishError> {
    let min = if what == "host" { 0 } else { 1 };
    if min == 0 && value.is_empty() {
        return Ok(0);
    }
    match value.parse::<u16>() {
        Ok(p) if p >= min && !value.starts_with('+') => Ok(p),
        _ => Err(PublishError::Port {
            spec: spec.to_string(),
            what,
            value: value.to_string(),
            min,
        }),
    }
}

impl FromStr for Publish {
    type Err = PublishError;

    fn from_str(spec: &str) -> Result<Self, PublishError> {
        let shape = || PublishError::Shape {
            spec: spec.to_string(),
        };
        let (ports, protocol) = match spec.rsplit_once('/') {
            Some((p, "tcp")) => (p, Protocol::Tcp),
            Some((p, "udp")) => (p, Protocol::Udp),
            Some((_, other)) => {
                return Err(PublishError::Protocol {
                    spec: spec.to_string(),
                    value: other.to_string(),
                })
            }
            None => (spec, Protocol::Tcp),
        };
        if ports.is_empty() {
            return Err(shape());
        }
        // Split off GUEST, then HOST; what remains is the address. A lone
        // GUEST leaves the host port to be chosen.
        let (rest, guest) = ports.rsplit_once(':').unwrap_or(("", ports));
        let (addr, host) = match rest.rsplit_once(':') {
            Some((a, h)) => (Some(a), h),
            None => (None, rest),
        };
        let addr = match addr {
            None => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some(a) => {
                let bad = || PublishError::Address {
                    spec: spec.to_string(),
                    value: a.to_string(),
                };
                if let Some(v6) = a.strip_prefix('[').and_then(|a| a.strip_suffix(']')) {
                    IpAddr::V6(v6.parse().map_err(|_| bad())?)
                } else {
                    IpAddr::V4(a.parse().map_err(|_| bad())?)
                }
            }
        };
        Ok(Publish {
            addr,
            host_port: port(spec, "host", host)?,
            guest_port: port(spec, "guest", guest)?,
            protocol,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Publish, PublishError> {
        s.parse()
    }

    #[test]
    fn host_and_guest_default_to_loopback_tcp() {
        let x = p("18080:80").unwrap();
        assert_eq!(x.addr, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(
            (x.host_port, x.guest_port, x.protocol),
            (18080, 80, Protocol::Tcp)
        );
        assert_eq!(x.passt_args(), ["-t", "127.0.0.1/18080:80"]);
        assert_eq!(x.to_string(), "127.0.0.1:18080:80/tcp");
    }

    #[test]
    fn address_and_protocol() {
        let x = p("0.0.0.0:5353:53/udp").unwrap();
        assert_eq!(x.addr, "0.0.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(x.passt_args(), ["-u", "0.0.0.0/5353:53"]);
        let x = p("[::1]:8443:443/tcp").unwrap();
        assert_eq!(x.addr, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(x.passt_args(), ["-t", "::1/8443:443"]);
        assert_eq!(x.to_string(), "[::1]:8443:443/tcp");
    }

    #[test]
    fn rejects_what_docker_would_not_run_here() {
        assert!(matches!(p(""), Err(PublishError::Shape { .. })));
        assert!(matches!(p("/tcp"), Err(PublishError::Shape { .. })));
        assert!(matches!(p("70000"), Err(PublishError::Port { .. })));
        assert!(matches!(
            p("80:0"),
            Err(PublishError::Port { what: "guest", .. })
        ));
        assert!(matches!(p("70000:80"), Err(PublishError::Port { .. })));
        assert!(matches!(p("+80:80"), Err(PublishError::Port { .. })));
        assert!(matches!(
            p("80:80/sctp"),
            Err(PublishError::Protocol { .. })
        ));
        assert!(matches!(
            p("localhost:80:80"),
            Err(PublishError::Address { .. })
        ));
        assert!(matches!(p("::1:80:80"), Err(PublishError::Address { .. })));
        assert!(matches!(p("[::1:80:80"), Err(PublishError::Address { .. })));
        assert!(matches!(p("1.2.3.4:x:80"), Err(PublishError::Port { .. })));
        assert!(matches!(p("a:b:c:d"), Err(PublishError::Address { .. })));
    }

    #[test]
    fn messages_say_what_to_type() {
        let e = p("").unwrap_err().to_string();
        assert!(e.contains("[[ADDR:]HOST:]GUEST"), "{e}");
        let e = p("8080:65536").unwrap_err().to_string();
        assert!(e.contains("from 1 to 65535"), "{e}");
    }

    #[test]
    fn a_free_host_port_is_asked_for_three_ways() {
        for spec in ["80", "0:80", "127.0.0.1::80", "127.0.0.1:0:80"] {
            let x = p(spec).unwrap();
            assert_eq!((x.host_port, x.guest_port), (0, 80), "{spec}");
            assert_eq!(x.addr, IpAddr::V4(Ipv4Addr::LOCALHOST), "{spec}");
        }
        let x = p("[::1]::443/tcp").unwrap();
        assert_eq!(
            (x.addr.is_ipv6(), x.host_port, x.guest_port),
            (true, 0, 443)
        );
    }
}
