//! The allow-lists, one per kind of thread.
//!
//! Read off `strace -ff` of the mbr test appliance booting with passt
//! networking, serving pages through `-p`, and powering off (README,
//! "Seccomp"): each thread's trace file starts with its
//! `prctl(PR_SET_NAME, …)`, so every list below is what threads of that
//! name called, plus what their error and shutdown paths call.

use seccompiler::{BackendError, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

#[path = "syscall_names.rs"]
mod syscall_names;

/// The kinds of threads the monitor starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Runs one vCPU: KVM_RUN and the device emulation of its exits (port
    /// and MMIO devices, PCI configuration, virtio notifications), which
    /// also starts device workers when a driver activates a device.
    Vcpu,
    /// A virtio device's queue worker (block, entropy).
    Worker,
    /// virtio-net's I/O loop between the guest's queues and the backend.
    NetIo,
    /// A relay thread between virtio-net and the passt socket.
    PasstRelay,
    /// Disk read-ahead of compressed or sparse images.
    ReadAhead,
    /// The thread that runs the VM's event loop, stops the VM and, after a
    /// guest reset, builds it again (KVM setup, guest memory, the kernel
    /// read from the disk image, new vCPU threads), then cleans up.
    VmLoop,
    /// The command line's own thread once the guest may run: it waits for
    /// the ready conditions (reads the console log, opens TCP connections
    /// through the published ports), maps signals and stop requests onto
    /// the instance, writes events and messages, and at the end joins the
    /// VM thread and removes the instance's directory. It starts nothing
    /// and opens nothing for writing.
    Supervisor,
}

impl Kind {
    /// Every kind, for tests and listings.
    pub const ALL: [Kind; 7] = [
        Kind::Vcpu,
        Kind::Worker,
        Kind::NetIo,
        Kind::PasstRelay,
        Kind::ReadAhead,
        Kind::VmLoop,
        Kind::Supervisor,
    ];

    /// A short name for messages.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Vcpu => "vcpu",
            Kind::Worker => "device worker",
            Kind::NetIo => "net I/O",
            Kind::PasstRelay => "passt relay",
            Kind::ReadAhead => "read-ahead",
            Kind::VmLoop => "VM loop",
            Kind::Supervisor => "supervisor",
        }
    }

    /// Calls this kind may make whatever their arguments (beyond [`COMMON`]).
    pub fn syscalls(self) -> Vec<i64> {
        // A thread started by a filtered thread keeps that filter too, so a
        // kind's list holds what the threads it starts need: the VM loop
        // starts vCPUs (after a reset), a vCPU's exit starts device workers
        // and the network loop, a disk read may start the read-ahead, which
        // starts decompression threads.
        let read_ahead: &[&[i64]] = &[READ_AHEAD, SPAWN];
        let worker: &[&[i64]] = &[WORKER, EVENT_LOOP, READ_AHEAD, SPAWN];
        let net_io: &[&[i64]] = &[NET_IO, EVENT_LOOP];
        let vcpu: &[&[i64]] = &[VCPU, SPAWN, WORKER, EVENT_LOOP, READ_AHEAD, NET_IO];
        let vm_loop: &[&[i64]] = &[VM_LOOP, VCPU, SPAWN, WORKER, EVENT_LOOP, READ_AHEAD, NET_IO];
        let lists = match self {
            Kind::Vcpu => vcpu,
            Kind::Worker => worker,
            Kind::NetIo => net_io,
            Kind::PasstRelay => &[PASST_RELAY],
            Kind::ReadAhead => read_ahead,
            Kind::VmLoop => vm_loop,
            Kind::Supervisor => &[SUPERVISOR],
        };
        lists.concat()
    }

    /// Calls allowed only with some arguments: ioctl on vCPU threads, and
    /// read-only `openat` everywhere: glibc opens /proc and /sys files once
    /// per process from whichever thread first needs them
    /// (`/proc/sys/vm/overcommit_memory` when a thread's malloc arena first
    /// shrinks, `/sys/devices/system/cpu/online` when it sizes its arenas),
    /// which can be a filtered thread.
    pub fn conditional(self) -> Result<Vec<(i64, Vec<SeccompRule>)>, BackendError> {
        let read_only_open = (libc::SYS_openat, vec![read_only_open_rule()?]);
        match self {
            Kind::Vcpu => Ok(vec![
                (libc::SYS_ioctl, ioctl_rules(VCPU_IOCTLS)?),
                read_only_open,
            ]),
            // Rebuilding the VM after a reset needs most of KVM's ioctls,
            // and reads the kernel again.
            Kind::VmLoop => Ok(vec![
                (libc::SYS_ioctl, Vec::new()),
                (libc::SYS_openat, Vec::new()),
            ]),
            // std's TcpStream::connect_timeout switches O_NONBLOCK with
            // FIONBIO.
            Kind::Supervisor => Ok(vec![
                (libc::SYS_ioctl, ioctl_rules(&[libc::FIONBIO as u64])?),
                read_only_open,
            ]),
            _ => Ok(vec![read_only_open]),
        }
    }
}

/// `openat(dirfd, path, flags)` with flags that neither write nor create.
fn read_only_open_rule() -> Result<SeccompRule, BackendError> {
    let write_bits = (libc::O_ACCMODE | libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND) as u64;
    SeccompRule::new(vec![SeccompCondition::new(
        2,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::MaskedEq(write_bits),
        libc::O_RDONLY as u64,
    )?])
}

fn ioctl_rules(numbers: &[u64]) -> Result<Vec<SeccompRule>, BackendError> {
    numbers
        .iter()
        .map(|&n| {
            SeccompRule::new(vec![SeccompCondition::new(
                1,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                n,
            )?])
        })
        .collect()
}

/// The name of system call `nr` (for the SIGSYS report).
pub fn syscall_name(nr: i64) -> &'static str {
    syscall_names::NAMES
        .binary_search_by_key(&nr, |(n, _)| *n)
        .map(|i| syscall_names::NAMES[i].1)
        .unwrap_or("unknown")
}

/// What every thread of the monitor does: memory (the allocator), locks,
/// time, signals (the vCPU kick, SIGSYS's own report), logging to stderr,
/// and ending.
pub const COMMON: &[i64] = &[
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_mprotect,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask,
    libc::SYS_sigaltstack,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_close,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_getrandom,
    libc::SYS_statx,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_lseek,
    libc::SYS_read,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_ctl,
    libc::SYS_poll,
    libc::SYS_ppoll,
    // File status flags (O_NONBLOCK, FD_CLOEXEC) on descriptors the thread
    // already has: std's pipe and socket wrappers ask for them.
    libc::SYS_fcntl,
];

/// Starting a thread (a vCPU's exit can start a device worker), which then
/// installs its own filter on top of the inherited one.
const SPAWN: &[i64] = &[
    libc::SYS_seccomp,
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_prctl,
    libc::SYS_sched_getaffinity,
    libc::SYS_eventfd2,
    libc::SYS_epoll_create1,
    libc::SYS_fcntl,
    libc::SYS_dup,
];

const VCPU: &[i64] = &[
    libc::SYS_tgkill,
    libc::SYS_rt_sigaction,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
];

/// `_IO(KVMIO, nr)` and `_IOW(KVMIO, nr, size)` of linux/kvm.h (KVMIO = 0xAE).
const fn kvm_io(nr: u64) -> u64 {
    0xae << 8 | nr
}
const fn kvm_iow(nr: u64, size: u64) -> u64 {
    1 << 30 | size << 16 | 0xae << 8 | nr
}
/// `_IOR(KVMIO, nr, size)` and `_IOWR(KVMIO, nr, size)`.
const fn kvm_ior(nr: u64, size: u64) -> u64 {
    2 << 30 | size << 16 | 0xae << 8 | nr
}
const fn kvm_iowr(nr: u64, size: u64) -> u64 {
    3 << 30 | size << 16 | 0xae << 8 | nr
}

/// KVM ioctls a vCPU thread makes while the guest runs: KVM_RUN, and what
/// the device emulation of its exits asks of the VM (MSI-X programming
/// rewrites the GSI routing and binds irqfds; a virtio activation may bind
/// ioeventfds; line interrupts).
pub const VCPU_IOCTLS: &[u64] = &[
    kvm_io(0x80),      // KVM_RUN
    kvm_iow(0x6a, 8),  // KVM_SET_GSI_ROUTING (struct kvm_irq_routing)
    kvm_iow(0x76, 32), // KVM_IRQFD (struct kvm_irqfd)
    kvm_iow(0x79, 64), // KVM_IOEVENTFD (struct kvm_ioeventfd)
    kvm_iow(0xa5, 32), // KVM_SIGNAL_MSI (struct kvm_msi)
    kvm_iow(0x61, 8),  // KVM_IRQ_LINE (struct kvm_irq_level)
    // A vCPU parked for a snapshot reads its own state (vmm::snapshot::
    // capture_vcpu) and tells the guest it was paused.
    kvm_ior(0x98, 4),    // KVM_GET_MP_STATE (struct kvm_mp_state)
    kvm_iowr(0x91, 8),   // KVM_GET_CPUID2 (struct kvm_cpuid2)
    kvm_ior(0x81, 144),  // KVM_GET_REGS (struct kvm_regs)
    kvm_ior(0x83, 312),  // KVM_GET_SREGS (struct kvm_sregs)
    kvm_ior(0xa4, 4096), // KVM_GET_XSAVE (struct kvm_xsave)
    kvm_ior(0xa6, 392),  // KVM_GET_XCRS (struct kvm_xcrs)
    kvm_ior(0xa1, 128),  // KVM_GET_DEBUGREGS (struct kvm_debugregs)
    kvm_ior(0x8e, 1024), // KVM_GET_LAPIC (struct kvm_lapic_state)
    kvm_iowr(0x88, 8),   // KVM_GET_MSRS (struct kvm_msrs)
    kvm_ior(0x9f, 64),   // KVM_GET_VCPU_EVENTS (struct kvm_vcpu_events)
    kvm_io(0xad),        // KVM_KVMCLOCK_CTRL
];

/// Device workers and the network loop build their event loop (epoll,
/// eventfds) after their filter is on.
const EVENT_LOOP: &[i64] = &[libc::SYS_epoll_create1, libc::SYS_eventfd2];

const WORKER: &[i64] = &[
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_preadv,
    libc::SYS_pwritev,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_fallocate,
    libc::SYS_ftruncate,
];

const NET_IO: &[i64] = &[
    libc::SYS_recvfrom,
    libc::SYS_recvmsg,
    libc::SYS_sendto,
    libc::SYS_sendmsg,
    libc::SYS_readv,
];

const PASST_RELAY: &[i64] = NET_IO;

const READ_AHEAD: &[i64] = &[libc::SYS_pread64, libc::SYS_preadv];

const VM_LOOP: &[i64] = &[
    // A snapshot's files are written here (vmm::capture's FinishHook).
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_rename,
    libc::SYS_kill,
    libc::SYS_wait4,
    libc::SYS_waitid,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_send_signal,
    libc::SYS_eventfd2,
    libc::SYS_timerfd_create,
    libc::SYS_timerfd_settime,
    libc::SYS_pread64,
    libc::SYS_madvise,
    libc::SYS_memfd_create,
    libc::SYS_ftruncate,
    libc::SYS_getdents64,
    libc::SYS_readlink,
    libc::SYS_flock,
];

/// The supervising thread: TCP ready checks (connect with a timeout, an
/// HTTP request and its answer), stop requests (a file read and removed),
/// the end of the VM thread and of its passt (join, reap), and removing
/// the instance's directory (`remove_dir_all`).
const SUPERVISOR: &[i64] = &[
    libc::SYS_socket,
    libc::SYS_connect,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_sendto,
    libc::SYS_recvfrom,
    libc::SYS_shutdown,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_rmdir,
    libc::SYS_getdents64,
    libc::SYS_kill,
    libc::SYS_tgkill,
    libc::SYS_wait4,
    libc::SYS_waitid,
    libc::SYS_flock,
    libc::SYS_pread64,
];
