//! The TAP backend in a network namespace made by the test: the guest
//! side (our backend) asks the host side (the namespace's kernel) for its
//! MAC and gets an answer, and a UDP datagram sent by the host arrives as
//! a frame. Fails with the reason without CAP_SYS_ADMIN/CAP_NET_ADMIN or `ip`.

use devices::net_backend::tap::TapBackend;
use devices::net_backend::{NetBackend, MAX_FRAME};
use std::process::Command;
use std::time::{Duration, Instant};

const GUEST_MAC: [u8; 6] = [0x02, 0x4f, 0x56, 0x46, 0x00, 0x02];
const HOST_IP: [u8; 4] = [10, 99, 0, 1];
const GUEST_IP: [u8; 4] = [10, 99, 0, 2];

fn arp_request(mac: [u8; 6], sip: [u8; 4], tip: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&sip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tip);
    f
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Receive until `pred` holds for a frame or `secs` pass.
fn recv_until(tap: &mut TapBackend, secs: u64, pred: impl Fn(&[u8]) -> bool) -> bool {
    let mut buf = vec![0u8; MAX_FRAME];
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        match tap.recv(&mut buf).expect("TAP receive") {
            Some(n) if pred(&buf[..n]) => return true,
            Some(_) => {}
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    false
}

#[test]
fn tap_passes_traffic_both_ways_in_a_namespace() {
    // Everything in a thread that moved into its own network namespace;
    // `ip` children inherit it, other tests are untouched.
    let r = std::thread::spawn(|| {
        // SAFETY: unshare(2) on this thread only.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            panic!(
                "cannot make a network namespace (needs CAP_SYS_ADMIN): {}",
                std::io::Error::last_os_error()
            );
        }
        let mut tap = match TapBackend::open("ovfrun-t0") {
            Ok(t) => t,
            Err(e) => panic!("cannot open a TAP interface: {e}"),
        };
        assert_eq!(tap.describe(), "TAP ovfrun-t0");
        if !(ip(&["addr", "add", "10.99.0.1/24", "dev", "ovfrun-t0"])
            && ip(&["link", "set", "ovfrun-t0", "up"]))
        {
            panic!("`ip` (iproute2) cannot configure the TAP interface");
        }

        // Guest -> host: an ARP request; the host kernel answers.
        tap.send(&arp_request(GUEST_MAC, GUEST_IP, HOST_IP))
            .unwrap();
        assert!(
            recv_until(&mut tap, 10, |f| f.len() >= 42
                && f[0..6] == GUEST_MAC
                && f[12..14] == [0x08, 0x06]
                && f[20..22] == [0, 2]
                && f[28..32] == HOST_IP),
            "ARP reply from the host side"
        );

        // Host -> guest: a UDP datagram to the guest's address (the host
        // learnt its MAC from the request) arrives as an IPv4 frame.
        let sock = std::net::UdpSocket::bind("10.99.0.1:0").unwrap();
        sock.send_to(b"hello guest", "10.99.0.2:9999").unwrap();
        assert!(
            recv_until(&mut tap, 10, |f| f.len() > 42
                && f[12..14] == [0x08, 0x00]
                && f[30..34] == GUEST_IP
                && f.ends_with(b"hello guest")),
            "UDP datagram from the host side"
        );
    });
    r.join().unwrap();
}
