//! Free host ports for `-p GUEST`, `-p 0:GUEST` and `-p ADDR::GUEST`.

use super::NetError;
use devices::net_backend::publish::{Protocol, Publish};
use std::net::{SocketAddr, TcpListener, UdpSocket};

/// Give every published port with host port 0 a free port of its address.
/// The ports are probed while all probes are held, so one call never hands
/// out the same port twice.
pub fn choose_host_ports(publish: &mut [Publish]) -> Result<(), NetError> {
    let mut held: Vec<Box<dyn std::any::Any>> = Vec::new();
    for p in publish.iter_mut().filter(|p| p.host_port == 0) {
        let addr = SocketAddr::new(p.addr, 0);
        let err = |source| NetError::NoFreePort {
            addr: p.addr,
            guest_port: p.guest_port,
            source,
        };
        let port = match p.protocol {
            Protocol::Tcp => {
                let l = TcpListener::bind(addr).map_err(err)?;
                let port = l.local_addr().map_err(err)?.port();
                held.push(Box::new(l));
                port
            }
            Protocol::Udp => {
                let s = UdpSocket::bind(addr).map_err(err)?;
                let port = s.local_addr().map_err(err)?.port();
                held.push(Box::new(s));
                port
            }
        };
        p.host_port = port;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_chosen_and_distinct() {
        let mut ps: Vec<Publish> = ["0:80", "0:443", "8080:81", "0:53/udp"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        choose_host_ports(&mut ps).unwrap();
        assert!(ps.iter().all(|p| p.host_port != 0));
        assert_ne!(ps[0].host_port, ps[1].host_port);
        assert_eq!(ps[2].host_port, 8080);
    }
}
