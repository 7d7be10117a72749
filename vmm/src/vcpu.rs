//! vCPU setup (registers for each boot protocol, CPUID, MSRs, LAPIC) and
//! the run loop that dispatches port and MMIO exits to the buses.

use crate::layout::{BOOT_STACK_TOP, GDT_ADDR, PDPT_ADDR, PD_ADDR, PML4_ADDR};
use crate::memory::GuestMemory;
use devices::bus::Bus;
use devices::lifecycle::{StopReason, StopSignal};
use kvm_bindings::{
    kvm_fpu, kvm_msr_entry, kvm_segment, Msrs, KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN,
};
use kvm_ioctls::{VcpuExit, VcpuFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use vm_memory::{Bytes, GuestAddress};

/// How the boot vCPU starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootEntry {
    /// 32-bit protected mode, paging off, `ebx` = start info (PVH; also
    /// used by the hand-made test guests).
    Flat32 { entry: u64, ebx: u64 },
    /// 64-bit long mode with the low 4 GiB identity-mapped, `rsi` = boot
    /// params (the Linux 64-bit boot protocol).
    Long64 { entry: u64, rsi: u64 },
    /// The reset state KVM gives a new vCPU (real mode at F000:FFF0, CS
    /// base 0xFFFF0000): firmware boot.
    Reset,
}

#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    #[error("cannot set up vCPU {id}: {what}: {source}")]
    Setup {
        id: u8,
        what: &'static str,
        source: kvm_ioctls::Error,
    },
    #[error("cannot write the boot page tables or GDT into guest memory")]
    GuestMemory,
}

fn setup_err(id: u8, what: &'static str) -> impl Fn(kvm_ioctls::Error) -> VcpuError {
    move |source| VcpuError::Setup { id, what, source }
}

const X86_CR0_PE: u64 = 1;
const X86_CR0_ET: u64 = 0x10;
const X86_CR0_PG: u64 = 1 << 31;
const X86_CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

/// GDT entries: null, null, code (0x10), data (0x18), TSS (0x20).
fn gdt(long: bool) -> [u64; 5] {
    let code = if long {
        0x00af_9b00_0000_ffff
    } else {
        0x00cf_9b00_0000_ffff
    };
    [0, 0, code, 0x00cf_9300_0000_ffff, 0x0080_8b00_0000_0000]
}

fn segment(entry: u64, selector: u16) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_: ((entry >> 40) & 0xf) as u8,
        present: ((entry >> 47) & 1) as u8,
        dpl: ((entry >> 45) & 3) as u8,
        db: ((entry >> 54) & 1) as u8,
        s: ((entry >> 44) & 1) as u8,
        l: ((entry >> 53) & 1) as u8,
        g: ((entry >> 55) & 1) as u8,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// Write the GDT (and for long mode, identity page tables for 4 GiB).
pub fn write_boot_structures(mem: &GuestMemory, entry: BootEntry) -> Result<(), VcpuError> {
    if entry == BootEntry::Reset {
        return Ok(());
    }
    let long = matches!(entry, BootEntry::Long64 { .. });
    for (i, e) in gdt(long).iter().enumerate() {
        mem.write_obj(*e, GuestAddress(GDT_ADDR + 8 * i as u64))
            .map_err(|_| VcpuError::GuestMemory)?;
    }
    if long {
        let w = |v: u64, a: u64| {
            mem.write_obj(v, GuestAddress(a))
                .map_err(|_| VcpuError::GuestMemory)
        };
        w(PDPT_ADDR | 3, PML4_ADDR)?;
        for d in 0..4u64 {
            w((PD_ADDR + d * 0x1000) | 3, PDPT_ADDR + d * 8)?;
            for i in 0..512u64 {
                let phys = (d << 30) | (i << 21);
                w(phys | 0x83, PD_ADDR + d * 0x1000 + i * 8)?;
            }
        }
    }
    Ok(())
}

/// Registers for the boot vCPU.
pub fn setup_boot_registers(vcpu: &VcpuFd, entry: BootEntry) -> Result<(), VcpuError> {
    if entry == BootEntry::Reset {
        return Ok(());
    }
    let e = setup_err(0, "registers");
    let long = matches!(entry, BootEntry::Long64 { .. });
    let table = gdt(long);
    let mut sregs = vcpu.get_sregs().map_err(&e)?;
    sregs.gdt.base = GDT_ADDR;
    sregs.gdt.limit = (table.len() * 8 - 1) as u16;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.cs = segment(table[2], 0x10);
    let data = segment(table[3], 0x18);
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = segment(table[4], 0x20);
    sregs.tr.limit = 0x67;
    sregs.tr.g = 0;
    let mut regs = vcpu.get_regs().map_err(&e)?;
    regs.rflags = 2;
    match entry {
        BootEntry::Flat32 { entry, ebx } => {
            sregs.cr0 = X86_CR0_PE | X86_CR0_ET;
            sregs.cr4 = 0;
            sregs.efer = 0;
            regs.rip = entry;
            regs.rbx = ebx;
        }
        BootEntry::Long64 { entry, rsi } => {
            sregs.cr3 = PML4_ADDR;
            sregs.cr4 = X86_CR4_PAE;
            sregs.cr0 = X86_CR0_PE | X86_CR0_ET | X86_CR0_PG;
            sregs.efer = EFER_LME | EFER_LMA;
            regs.rip = entry;
            regs.rsi = rsi;
            regs.rsp = BOOT_STACK_TOP;
            regs.rbp = BOOT_STACK_TOP;
        }
        BootEntry::Reset => unreachable!("returned above"),
    }
    vcpu.set_sregs(&sregs).map_err(&e)?;
    vcpu.set_regs(&regs).map_err(&e)?;
    Ok(())
}

const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
const MSR_IA32_TSC: u32 = 0x10;

/// CPUID, MSRs, FPU and LAPIC for any vCPU.
pub fn setup_common(vcpu: &VcpuFd, id: u8, cpuid: &kvm_bindings::CpuId) -> Result<(), VcpuError> {
    vcpu.set_cpuid2(cpuid).map_err(setup_err(id, "CPUID"))?;
    let msrs = Msrs::from_entries(&[
        // Fast strings, as firmware leaves it.
        kvm_msr_entry {
            index: MSR_IA32_MISC_ENABLE,
            data: 1,
            ..Default::default()
        },
        // All vCPUs start with the same TSC so Linux keeps it as a clock.
        kvm_msr_entry {
            index: MSR_IA32_TSC,
            data: 0,
            ..Default::default()
        },
    ])
    .expect("two MSR entries fit");
    vcpu.set_msrs(&msrs).map_err(setup_err(id, "MSRs"))?;
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(setup_err(id, "FPU"))?;
    // LINT0 = ExtINT (the PIC), LINT1 = NMI, as a PC BIOS leaves them.
    let mut lapic = vcpu.get_lapic().map_err(setup_err(id, "LAPIC"))?;
    set_lvt(&mut lapic, 0x350, 0x7 << 8);
    set_lvt(&mut lapic, 0x360, 0x4 << 8);
    vcpu.set_lapic(&lapic).map_err(setup_err(id, "LAPIC"))?;
    Ok(())
}

fn set_lvt(lapic: &mut kvm_bindings::kvm_lapic_state, offset: usize, mode: u32) {
    let mut b = [0u8; 4];
    for (i, x) in b.iter_mut().enumerate() {
        *x = lapic.regs[offset + i] as u8;
    }
    let v = (u32::from_le_bytes(b) & !0x700) | mode;
    for (i, x) in v.to_le_bytes().iter().enumerate() {
        lapic.regs[offset + i] = *x as _;
    }
}

/// What a vCPU thread needs to run.
pub struct VcpuContext {
    pub id: u8,
    pub pio: Arc<Bus>,
    pub mmio: Arc<Bus>,
    pub stop: Arc<StopSignal>,
    /// Set by the main loop when every vCPU must leave KVM_RUN.
    pub exiting: Arc<AtomicBool>,
    /// When the monitor started building the VM; the boot vCPU logs the
    /// delay to its first exit (the benchmark's "first guest instruction").
    pub started: std::time::Instant,
    /// Where the vCPU parks when the monitor pauses the VM.
    pub(crate) gate: Arc<crate::pause::PauseGate>,
}

/// Run until the VM stops. Errors are reported through the stop signal.
pub fn run_loop(mut vcpu: VcpuFd, ctx: VcpuContext) {
    let mut first_exit = ctx.id == 0;
    while !ctx.exiting.load(Ordering::Acquire) {
        // Checked before every entry, the first included: a vCPU can be
        // held before it ever runs.
        if ctx.gate.is_requested() {
            ctx.gate.park(ctx.id, &vcpu);
            continue;
        }
        let result = vcpu.run();
        if first_exit && !matches!(&result, Err(e) if e.errno() == libc::EINTR) {
            first_exit = false;
            tracing::info!(
                "first guest exit {:.2} ms after the monitor started",
                ctx.started.elapsed().as_secs_f64() * 1000.0
            );
        }
        match result {
            Ok(exit) => match exit {
                VcpuExit::IoIn(port, data) => {
                    if !ctx.pio.read(port as u64, data) {
                        data.fill(0xff);
                    }
                }
                VcpuExit::IoOut(port, data) => {
                    ctx.pio.write(port as u64, data);
                }
                VcpuExit::MmioRead(addr, data) => {
                    if !ctx.mmio.read(addr, data) {
                        data.fill(0xff);
                    }
                }
                VcpuExit::MmioWrite(addr, data) => {
                    ctx.mmio.write(addr, data);
                }
                VcpuExit::Shutdown => {
                    // A triple fault: what a PC does is reset (the monitor
                    // decides; with no_reboot it is a guest crash).
                    ctx.stop.stop(StopReason::TripleFault);
                }
                VcpuExit::SystemEvent(kind, _) => match kind {
                    KVM_SYSTEM_EVENT_SHUTDOWN => ctx.stop.stop(StopReason::Poweroff),
                    KVM_SYSTEM_EVENT_RESET => ctx.stop.stop(StopReason::Reset),
                    other => ctx
                        .stop
                        .stop(StopReason::Failed(format!("vCPU {}: unexpected system event {other}", ctx.id))),
                },
                VcpuExit::Hlt => {
                    // Only without an in-kernel LAPIC; treat as the end.
                    ctx.stop.stop(StopReason::Poweroff);
                }
                VcpuExit::Intr => {}
                VcpuExit::FailEntry(reason, cpu) => ctx.stop.stop(StopReason::GuestCrash(format!(
                    "vCPU {}: KVM could not enter the guest (hardware reason {reason:#x}, cpu {cpu})",
                    ctx.id
                ))),
                VcpuExit::InternalError => ctx.stop.stop(StopReason::GuestCrash(format!(
                    "vCPU {}: KVM internal error (the guest ran an instruction KVM cannot emulate)",
                    ctx.id
                ))),
                other => ctx.stop.stop(StopReason::Failed(format!(
                    "vCPU {}: unhandled exit {other:?}",
                    ctx.id
                ))),
            },
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                vcpu.set_kvm_immediate_exit(0);
            }
            Err(e) => {
                ctx.stop
                    .stop(StopReason::Failed(format!("vCPU {}: KVM_RUN failed: {e}", ctx.id)));
            }
        }
        if ctx.stop.reason().is_some() {
            break;
        }
    }
}
