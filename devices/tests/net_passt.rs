//! The real passt (Debian package `passt`) behind our backend: the start
//! handshake, a published port listening on 127.0.0.1, DHCP answered
//! through a whole virtio-net device, and passt's death reported.
//! Fails with the reason where passt is not installed.

use devices::net_backend::passt_process::{start_passt, PasstError, PasstOptions};
use devices::net_backend::publish::Publish;
use devices::net_backend::{NetBackend, MAX_FRAME};
use devices::virtio::net::VirtioNet;
use devices::virtio::{ActiveQueue, Memory, Signal, VirtioDevice};
use std::net::{TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};
use virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE;
use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const MAC: [u8; 6] = [0x02, 0x4f, 0x56, 0x46, 0x00, 0x01];

/// Fails the test, with the fix, where passt is not installed.
fn have_passt() -> bool {
    let found = std::process::Command::new("passt")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "passt is not installed: apt-get install passt (scripts/setup-deps does)"
    );
    true
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ip_checksum(h: &[u8]) -> u16 {
    let mut s: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// DHCPDISCOVER from `mac`, broadcast.
fn dhcp_discover(mac: [u8; 6]) -> Vec<u8> {
    let mut bootp = vec![0u8; 240];
    bootp[0] = 1; // BOOTREQUEST
    bootp[1] = 1;
    bootp[2] = 6;
    bootp[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    bootp[10] = 0x80; // broadcast reply
    bootp[28..34].copy_from_slice(&mac);
    bootp[236..240].copy_from_slice(&[99, 130, 83, 99]);
    bootp.extend_from_slice(&[53, 1, 1, 255]);
    bootp.resize(300, 0);
    let udp_len = 8 + bootp.len();
    let mut udp = Vec::new();
    udp.extend_from_slice(&68u16.to_be_bytes());
    udp.extend_from_slice(&67u16.to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&bootp);
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255,
    ];
    ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
    let c = ip_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&udp);
    f
}

/// The offered address, if `f` is a DHCP reply (BOOTREPLY to port 68).
fn dhcp_offer(f: &[u8]) -> Option<[u8; 4]> {
    if f.len() < 14 + 20 + 8 + 240 || f[12..14] != [0x08, 0x00] || f[14 + 9] != 17 {
        return None;
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let udp = 14 + ihl;
    if f.get(udp + 2..udp + 4)? != [0, 68] {
        return None;
    }
    let bootp = &f[udp + 8..];
    (bootp.first() == Some(&2)).then(|| bootp[16..20].try_into().unwrap())
}

#[test]
fn handshake_and_published_port_listen_on_loopback() {
    if !have_passt() {
        return;
    }
    let port = free_port();
    let p: Publish = format!("{port}:80").parse().unwrap();
    let backend = start_passt(&PasstOptions::new(MAC, vec![p])).expect("passt starts");
    // The handshake already proved passt answers; its port is bound.
    TcpStream::connect(("127.0.0.1", port)).expect("published port listens");
    let pid = backend.pid();
    drop(backend);
    // Killed with the backend: the port closes and the process is gone.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn busy_published_port_is_named_in_the_error() {
    if !have_passt() {
        return;
    }
    let hold = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hold.local_addr().unwrap().port();
    let p: Publish = format!("{port}:80").parse().unwrap();
    let e = start_passt(&PasstOptions::new(MAC, vec![p]))
        .err()
        .expect("passt cannot bind a taken port");
    assert!(matches!(e, PasstError::Exited { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("127.0.0.1:{port}/tcp is already in use")),
        "{msg}"
    );
}

#[test]
fn passt_killed_under_us_is_reported_as_gone() {
    if !have_passt() {
        return;
    }
    let mut backend = start_passt(&PasstOptions::new(MAC, vec![])).unwrap();
    // SAFETY: plain kill(2) of the child we started.
    unsafe { libc::kill(backend.pid() as i32, libc::SIGKILL) };
    let mut buf = vec![0u8; MAX_FRAME];
    let deadline = Instant::now() + Duration::from_secs(10);
    let e = loop {
        match backend.recv(&mut buf) {
            Err(e) => break e,
            Ok(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(_) => panic!("passt's death went unnoticed"),
        }
    };
    assert!(e.is_gone(), "{e}");
    assert!(e.to_string().contains("without network"), "{e}");
}

/// Run by [`passt_dies_with_a_killed_ovf_run`] in a child process: start
/// passt, print its pid, wait to be killed.
#[test]
#[ignore = "helper process for passt_dies_with_a_killed_ovf_run"]
fn helper_start_passt_and_wait() {
    let Ok(port) = std::env::var("OVF_RUN_TEST_PASST_PORT") else {
        return;
    };
    let p: Publish = format!("{port}:80").parse().unwrap();
    let b = start_passt(&PasstOptions::new(MAC, vec![p])).expect("passt starts");
    println!("PASST-PID {}", b.pid());
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(60));
    drop(b);
}

fn process_alive(pid: u32) -> bool {
    // A zombie waiting for its reaper counts as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn passt_dies_with_a_killed_ovf_run() {
    assert!(have_passt());
    // SIGKILL runs no destructors: passt must still go, because its
    // socket closes (`-1`) and, where passt keeps it, PR_SET_PDEATHSIG.
    use std::io::BufRead;
    let port = free_port();
    let mut helper = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_start_passt_and_wait",
            "--ignored",
            "--nocapture",
        ])
        .env("OVF_RUN_TEST_PASST_PORT", port.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(helper.stdout.take().unwrap());
    let pid: u32 = out
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("PASST-PID ").map(|p| p.parse().unwrap()))
        .expect("the helper started passt");
    assert!(process_alive(pid));
    TcpStream::connect(("127.0.0.1", port)).expect("published port listens");
    helper.kill().unwrap();
    helper.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_alive(pid) {
        assert!(
            Instant::now() < deadline,
            "passt {pid} outlived the ovf-run that started it"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

fn wait(evt: &EventFd, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd: evt.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) };
    r > 0 && evt.read().is_ok()
}

#[test]
fn guest_gets_a_dhcp_offer_through_the_device() {
    if !have_passt() {
        return;
    }
    let backend = start_passt(&PasstOptions::new(MAC, vec![])).unwrap();
    let mem = Memory::from_ranges(&[(GuestAddress(0), 0x100_0000)]).unwrap();
    let rxq = MockSplitQueue::create(&mem, GuestAddress(0x10_0000), 64);
    let txq = MockSplitQueue::create(&mem, GuestAddress(0x20_0000), 64);
    let kicks: Vec<EventFd> = (0..2)
        .map(|_| EventFd::new(EFD_NONBLOCK).unwrap())
        .collect();
    let irqs: Vec<EventFd> = (0..2)
        .map(|_| EventFd::new(EFD_NONBLOCK).unwrap())
        .collect();
    let mut dev = VirtioNet::new(MAC, Box::new(backend));
    let queues = [&rxq, &txq]
        .iter()
        .enumerate()
        .map(|(i, vq)| ActiveQueue {
            queue: vq.create_queue().unwrap(),
            notify: kicks[i].try_clone().unwrap(),
            interrupt: Arc::new(irqs[i].try_clone().unwrap()) as Arc<dyn Signal>,
        })
        .collect();
    dev.activate(mem.clone(), dev.features(), queues).unwrap();

    // 32 receive buffers of 4 KiB, as a driver would post them.
    let w = VRING_DESC_F_WRITE as u16;
    let rx: Vec<RawDescriptor> = (0..32u64)
        .map(|i| RawDescriptor::from(SplitDescriptor::new(0x80_0000 + i * 0x1000, 0x1000, w, 0)))
        .collect();
    rxq.add_desc_chains(&rx, 0).unwrap();
    kicks[0].write(1).unwrap();

    let mut pkt = vec![0u8; 12];
    pkt.extend(dhcp_discover(MAC));
    mem.write_slice(&pkt, GuestAddress(0x40_0000)).unwrap();
    txq.add_desc_chains(
        &[RawDescriptor::from(SplitDescriptor::new(
            0x40_0000,
            pkt.len() as u32,
            0,
            0,
        ))],
        0,
    )
    .unwrap();
    kicks[1].write(1).unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = 0u16;
    let offered = 'found: loop {
        assert!(Instant::now() < deadline, "no DHCP offer from passt");
        wait(&irqs[0], Duration::from_millis(500));
        while seen < rxq.used().idx().load() {
            let e = rxq.used().ring().ref_at(seen as usize).unwrap().load();
            seen += 1;
            let addr = 0x80_0000 + u64::from(e.id()) * 0x1000;
            let mut b = vec![0u8; e.len() as usize];
            mem.read_slice(&mut b, GuestAddress(addr)).unwrap();
            assert!(b.len() >= 12, "header present");
            assert_eq!(u16::from_le_bytes([b[10], b[11]]), 1, "num_buffers");
            if let Some(ip) = dhcp_offer(&b[12..]) {
                break 'found ip;
            }
        }
    };
    assert_ne!(offered, [0, 0, 0, 0]);
    eprintln!("passt offered {offered:?}");
    dev.reset();
}
