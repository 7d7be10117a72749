//! A tiny KVM guest used to tell a real `/dev/kvm` from PVM, and to prove that
//! the KVM test host works.
//!
//! The guest is 16 bytes of real-mode code: it sums `N + (N-1) + … + 1` into
//! `eax` (three instructions per iteration), writes the sum to an I/O port and
//! halts. Real mode needs no page tables or GDT, so the guest is as small as a
//! guest can be; its run time is dominated by the loop, which is what the
//! detection measures (milliseconds on hardware KVM, tens of seconds under
//! PVM's instruction emulator).

use std::time::{Duration, Instant};

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::{Kvm, VcpuExit};

/// Guest-physical address the code is loaded at.
const CODE_ADDR: u64 = 0x1000;
/// Size of guest memory: one 64 KiB real-mode segment is plenty.
const MEM_SIZE: usize = 0x10000;
/// The port the guest writes its checksum to.
pub const RESULT_PORT: u16 = 0x10;

/// add eax, ecx; dec ecx; jnz -7; mov dx, 0x10; out dx, eax; hlt
const CODE: [u8; 14] = [
    0x66, 0x01, 0xC8, // add eax, ecx
    0x66, 0x49, // dec ecx
    0x75, 0xF9, // jnz back to the add
    0xBA, 0x10, 0x00, // mov dx, RESULT_PORT
    0x66, 0xEF, // out dx, eax
    0xF4, // hlt
    0xF4, // (padding: a second hlt)
];

/// What can go wrong while running the probe guest.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("iteration count must be at least 1 (0 would loop 2^32 times)")]
    ZeroIterations,
    #[error("cannot open /dev/kvm or create the probe VM: {0}")]
    Kvm(#[from] kvm_ioctls::Error),
    #[error("cannot allocate {MEM_SIZE} bytes of guest memory: {0}")]
    Memory(std::io::Error),
    #[error("probe guest stopped unexpectedly: {0}")]
    UnexpectedExit(String),
    #[error("probe guest halted without writing its result to port {RESULT_PORT:#x}")]
    NoResult,
}

/// Result of one probe run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeRun {
    /// The checksum the guest wrote.
    pub checksum: u32,
    /// Wall time from the first `KVM_RUN` to the halt.
    pub elapsed: Duration,
}

/// The sum the guest must compute for `n` iterations, modulo 2^32.
pub fn expected_checksum(n: u32) -> u32 {
    let n = u64::from(n);
    (n * (n + 1) / 2) as u32
}

/// Anonymous page-aligned memory for the guest, unmapped on drop.
struct GuestMemory {
    ptr: *mut u8,
}

impl GuestMemory {
    fn new() -> Result<Self, ProbeError> {
        // SAFETY: anonymous private mapping, no file, result checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MEM_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(ProbeError::Memory(std::io::Error::last_os_error()));
        }
        Ok(GuestMemory { ptr: ptr.cast() })
    }

    fn write(&mut self, offset: usize, bytes: &[u8]) {
        assert!(offset + bytes.len() <= MEM_SIZE);
        // SAFETY: bounds checked above; the mapping is MEM_SIZE bytes long.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(offset), bytes.len()) }
    }
}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        // SAFETY: ptr/MEM_SIZE are exactly what mmap returned; the VM that
        // used the mapping is dropped before (declared later in run_probe).
        unsafe { libc::munmap(self.ptr.cast(), MEM_SIZE) };
    }
}

/// Run the probe guest for `iterations` loop iterations.
pub fn run_probe(iterations: u32) -> Result<ProbeRun, ProbeError> {
    if iterations == 0 {
        return Err(ProbeError::ZeroIterations);
    }
    let mut mem = GuestMemory::new()?;
    mem.write(CODE_ADDR as usize, &CODE);

    let kvm = Kvm::new()?;
    let vm = kvm.create_vm()?;
    let region = kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: 0,
        memory_size: MEM_SIZE as u64,
        userspace_addr: mem.ptr as u64,
        flags: 0,
    };
    // SAFETY: the region points at a live mapping of memory_size bytes that
    // outlives the VM (mem is declared before vm, so dropped after it).
    unsafe { vm.set_user_memory_region(region)? };

    let mut vcpu = vm.create_vcpu(0)?;
    let mut sregs = vcpu.get_sregs()?;
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    vcpu.set_sregs(&sregs)?;
    let mut regs = vcpu.get_regs()?;
    regs.rip = CODE_ADDR;
    regs.rax = 0;
    regs.rcx = u64::from(iterations);
    regs.rflags = 2;
    vcpu.set_regs(&regs)?;

    let start = Instant::now();
    let mut checksum = None;
    loop {
        match vcpu.run()? {
            VcpuExit::IoOut(RESULT_PORT, data) if data.len() == 4 => {
                checksum = Some(u32::from_le_bytes([data[0], data[1], data[2], data[3]]));
            }
            VcpuExit::Hlt => break,
            other => return Err(ProbeError::UnexpectedExit(format!("{other:?}"))),
        }
    }
    let elapsed = start.elapsed();
    let checksum = checksum.ok_or(ProbeError::NoResult)?;
    Ok(ProbeRun { checksum, elapsed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_the_loop() {
        assert_eq!(expected_checksum(1), 1);
        assert_eq!(expected_checksum(4), 10);
        // wraps modulo 2^32 like the guest's eax
        let n = 100_000u32;
        let mut sum = 0u32;
        for i in 1..=n {
            sum = sum.wrapping_add(i);
        }
        assert_eq!(expected_checksum(n), sum);
        assert_eq!(
            expected_checksum(u32::MAX),
            (u64::from(u32::MAX) * (u64::from(u32::MAX) + 1) / 2) as u32
        );
    }

    #[test]
    fn zero_iterations_is_refused() {
        assert!(matches!(run_probe(0), Err(ProbeError::ZeroIterations)));
    }
}
