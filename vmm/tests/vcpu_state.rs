//! A vCPU's state taken out of one VM and given to another continues the
//! guest where it stopped. A hand-made real-mode guest counts in AX and
//! writes each count to port 0x80; after its first count the vCPU and the
//! VM's in-kernel devices are captured, sent through the state file, and
//! given to a second VM with a copy of guest memory, whose first count is
//! 2. Runs on this machine's own /dev/kvm (PVM runs such guests) and fails
//! when /dev/kvm cannot be opened.

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};
use snapshot::{Meta, Snapshot};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

const MEM: usize = 0x10000;
const CODE_AT: u64 = 0x1000;
/// inc ax; out 0x80, al; jmp back to inc ax
const COUNTER: &[u8] = &[0x40, 0xe6, 0x80, 0xeb, 0xfb];
/// An MSR the guest never touches, set to a value nobody else would.
const MSR_STAR: u32 = 0xc000_0081;

fn kvm() -> Kvm {
    Kvm::new().unwrap_or_else(|e| {
        panic!("/dev/kvm cannot be opened ({e}): this test needs KVM's API (PVM is enough)")
    })
}

fn vm_with_memory(kvm: &Kvm, mem: &GuestMemoryMmap) -> VmFd {
    let vm = kvm.create_vm().expect("create a VM");
    vm.create_irq_chip().expect("irqchip");
    vm.create_pit2(Default::default()).expect("PIT");
    let host = mem.get_host_address(GuestAddress(0)).unwrap() as u64;
    let region = kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: 0,
        memory_size: MEM as u64,
        userspace_addr: host,
        flags: 0,
    };
    // SAFETY: `mem` outlives the VM in every test here.
    unsafe { vm.set_user_memory_region(region) }.expect("memory region");
    vm
}

/// Run until the guest writes port 0x80; the byte written.
fn next_count(vcpu: &mut VcpuFd) -> u8 {
    loop {
        match vcpu.run().expect("KVM_RUN") {
            VcpuExit::IoOut(0x80, data) => return data[0],
            VcpuExit::IoOut(..) | VcpuExit::IoIn(..) => {}
            other => panic!("unexpected exit {other:?}"),
        }
    }
}

#[test]
fn a_vcpu_moved_to_a_new_vm_continues_where_it_stopped() {
    let kvm = kvm();
    let msrs = vmm::snapshot::msr_index_list(&kvm).expect("MSR list");
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM)]).unwrap();
    mem.write_slice(COUNTER, GuestAddress(CODE_AT)).unwrap();

    let vm = vm_with_memory(&kvm, &mem);
    let mut vcpu = vm.create_vcpu(0).unwrap();
    let cpuid = kvm
        .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
        .unwrap();
    vcpu.set_cpuid2(&cpuid).unwrap();
    let mut sregs = vcpu.get_sregs().unwrap();
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    vcpu.set_sregs(&sregs).unwrap();
    let mut regs = vcpu.get_regs().unwrap();
    regs.rip = CODE_AT;
    regs.rax = 0;
    regs.rflags = 2;
    vcpu.set_regs(&regs).unwrap();
    let star = kvm_bindings::Msrs::from_entries(&[kvm_bindings::kvm_msr_entry {
        index: MSR_STAR,
        data: 0x0023_0010_0000_0000,
        ..Default::default()
    }])
    .unwrap();
    assert_eq!(vcpu.set_msrs(&star).unwrap(), 1);
    assert_eq!(next_count(&mut vcpu), 1);

    let state = vmm::snapshot::capture_vcpu(0, &vcpu, &msrs).expect("capture the vCPU");
    let vm_state = vmm::snapshot::capture_vm(&vm).expect("capture the VM");
    assert!(
        state
            .msrs
            .iter()
            .any(|m| m.index == MSR_STAR && m.data == 0x0023_0010_0000_0000),
        "MSR_STAR was saved"
    );
    let file = snapshot::encode(&Snapshot {
        meta: Meta {
            writer_version: "test".into(),
            taken_unix: 0,
            cpu_vendor: String::new(),
            tsc_khz: 0,
        },
        vcpus: vec![state],
        vm: vm_state,
        devices: Vec::new(),
        memory: Vec::new(),
        launch: Vec::new(),
    });
    let back = snapshot::decode(&file).expect("decode");
    // The first VM runs on: its state must not leak into the second.
    assert_eq!(next_count(&mut vcpu), 2);

    let copy = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM)]).unwrap();
    let mut bytes = vec![0u8; MEM];
    mem.read_slice(&mut bytes, GuestAddress(0)).unwrap();
    copy.write_slice(&bytes, GuestAddress(0)).unwrap();
    let vm2 = vm_with_memory(&kvm, &copy);
    vmm::snapshot::restore_vm(&vm2, &back.vm, 1_000_000).expect("restore the VM");
    let mut vcpu2 = vm2.create_vcpu(0).unwrap();
    vmm::snapshot::restore_vcpu(&vm2, &vcpu2, &back.vcpus[0]).expect("restore the vCPU");
    assert_eq!(
        next_count(&mut vcpu2),
        2,
        "the restored guest continues after its first count"
    );
    assert_eq!(next_count(&mut vcpu2), 3);
    let again = vmm::snapshot::capture_vcpu(0, &vcpu2, &msrs).unwrap();
    assert!(again
        .msrs
        .iter()
        .any(|m| m.index == MSR_STAR && m.data == 0x0023_0010_0000_0000));
    let clock = vm2.get_clock().unwrap().clock;
    assert!(
        clock >= back.vm.clock.clock + 1_000_000,
        "kvmclock moved on by the rest: {clock} vs {}",
        back.vm.clock.clock
    );
}

/// The monitor pauses a running VM, reads its state and memory, and lets
/// it run on: the same counting guest (32-bit, under the real monitor with
/// its thread filters) counts on between two captures, and the memory file
/// holds the guest's code where the snapshot says and is sparse. Then the
/// first snapshot is restored in a new VM, which counts on from there; a
/// snapshot of another shape or a cut memory file is refused.
#[test]
fn a_running_vm_is_captured_and_runs_on() {
    use std::time::Duration;
    let _ = kvm();
    let load_addr = 0x10_0000u64;
    let dir = tempfile::tempdir().unwrap();
    let config = counting_config(&dir.path().join("console"));
    let (control, vm) = start(move |c| vmm::run_controlled(config, c));
    let first = control
        .capture(Some(&dir.path().join("mem1")), Duration::from_secs(20))
        .expect("first capture");
    std::fs::write(dir.path().join("state1"), snapshot::encode(&first.snapshot)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let second = control
        .capture(None, Duration::from_secs(20))
        .expect("second capture");
    control.kill();
    assert_eq!(vm.join().unwrap().unwrap(), vmm::ExitStatus::Stopped);

    let (a, b) = (
        &first.snapshot.vcpus[0].regs,
        &second.snapshot.vcpus[0].regs,
    );
    assert!(
        (load_addr..load_addr + 5).contains(&a.rip),
        "rip {:#x}",
        a.rip
    );
    assert!(
        b.rax > a.rax,
        "the guest counted on: {} then {}",
        a.rax,
        b.rax
    );
    let regions = &first.snapshot.memory;
    assert_eq!(regions.iter().map(|r| r.size).sum::<u64>(), 64 << 20);
    let r = regions
        .iter()
        .find(|r| (r.guest_addr..r.guest_addr + r.size).contains(&load_addr))
        .expect("a region holds the code");
    let file = std::fs::read(dir.path().join("mem1")).unwrap();
    let at = (r.file_offset + load_addr - r.guest_addr) as usize;
    assert_eq!(&file[at..at + COUNTER.len()], COUNTER);
    let meta = std::fs::metadata(dir.path().join("mem1")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert!(
        meta.blocks() * 512 < 8 << 20,
        "the memory file is sparse: {} bytes allocated",
        meta.blocks() * 512
    );
    eprintln!(
        "paused for {:?} (with a 64 MiB memory file), then {:?}",
        first.paused_for, second.paused_for
    );

    // The first snapshot continues in a new VM, from its state file and its
    // memory file mapped copy-on-write.
    let saved = snapshot::decode(&std::fs::read(dir.path().join("state1")).unwrap()).unwrap();
    let from = vmm::RestoreFrom {
        snapshot: saved.clone(),
        memory_file: dir.path().join("mem1"),
        elapsed_ns: 5_000_000,
    };
    let cfg = counting_config(&dir.path().join("console2"));
    let (control, vm) = start(move |c| vmm::restore_controlled(cfg, from, c));
    std::thread::sleep(Duration::from_millis(20));
    let restored = control
        .capture(None, Duration::from_secs(20))
        .expect("capture the restored VM");
    control.kill();
    assert_eq!(vm.join().unwrap().unwrap(), vmm::ExitStatus::Stopped);
    let r = &restored.snapshot.vcpus[0].regs;
    assert!(
        (load_addr..load_addr + 5).contains(&r.rip),
        "rip {:#x}",
        r.rip
    );
    assert!(
        r.rax > a.rax,
        "the restored guest counted on from {}: {}",
        a.rax,
        r.rax
    );
    assert!(
        std::fs::read(dir.path().join("mem1")).unwrap() == file,
        "the memory file is never written"
    );

    // A snapshot of another VM shape, or with its memory file cut, is
    // refused before any guest code runs.
    let mut two = counting_config(&dir.path().join("console3"));
    two.vcpus = 2;
    let from = vmm::RestoreFrom {
        snapshot: saved.clone(),
        memory_file: dir.path().join("mem1"),
        elapsed_ns: 0,
    };
    let err = vmm::restore_controlled(two, from, &vmm::VmControl::new()).unwrap_err();
    assert!(
        err.to_string().contains("1 vCPUs, the VM to restore has 2"),
        "{err}"
    );
    let cut = dir.path().join("mem-cut");
    std::fs::write(&cut, &file[..file.len() / 2]).unwrap();
    let from = vmm::RestoreFrom {
        snapshot: saved,
        memory_file: cut,
        elapsed_ns: 0,
    };
    let err = vmm::restore_controlled(
        counting_config(&dir.path().join("c4")),
        from,
        &vmm::VmControl::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("needs bytes"), "{err}");
}

type VmThread = std::thread::JoinHandle<Result<vmm::ExitStatus, vmm::VmmError>>;

/// Run `f` (which runs a VM) on its own thread; return once the vCPUs run.
fn start(
    f: impl FnOnce(&vmm::VmControl) -> Result<vmm::ExitStatus, vmm::VmmError> + Send + 'static,
) -> (vmm::VmControl, VmThread) {
    use std::time::{Duration, Instant};
    let control = vmm::VmControl::new();
    let c = control.clone();
    let vm = std::thread::spawn(move || f(&c));
    let t0 = Instant::now();
    while !control.is_running() {
        if vm.is_finished() {
            panic!("the VM ended before it ran: {:?}", vm.join().unwrap());
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the VM did not start"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    (control, vm)
}

fn counting_config(console: &std::path::Path) -> vmm::VmConfig {
    let mut config = vmm::VmConfig::new(vmm::Kernel::Raw {
        code: COUNTER.to_vec(),
        load_addr: 0x10_0000,
    });
    config.memory_mib = 64;
    config.entropy = false;
    config.no_reboot = true;
    config.console = vmm::ConsoleConfig {
        stdio: false,
        log: Some(console.to_path_buf()),
    };
    config
}

/// A vCPU blocked in KVM_RUN (an AP waiting for its startup IPI) is kicked
/// out and parked like a running one; both vCPUs' states are captured and
/// restored, and the restored boot vCPU counts on.
#[test]
fn a_vm_with_a_waiting_second_vcpu_is_captured_and_restored() {
    use std::time::Duration;
    let _ = kvm();
    let dir = tempfile::tempdir().unwrap();
    let mut config = counting_config(&dir.path().join("console"));
    config.vcpus = 2;
    let (control, vm) = start(move |c| vmm::run_controlled(config, c));
    let first = control
        .capture(Some(&dir.path().join("mem")), Duration::from_secs(20))
        .expect("capture");
    control.kill();
    vm.join().unwrap().unwrap();
    let vcpus = &first.snapshot.vcpus;
    assert_eq!(vcpus.len(), 2);
    assert_eq!(
        vcpus[1].mp_state.mp_state,
        kvm_bindings::KVM_MP_STATE_UNINITIALIZED,
        "the AP never got its startup IPI"
    );
    let from = vmm::RestoreFrom {
        snapshot: first.snapshot.clone(),
        memory_file: dir.path().join("mem"),
        elapsed_ns: 0,
    };
    let mut cfg = counting_config(&dir.path().join("console2"));
    cfg.vcpus = 2;
    let (control, vm) = start(move |c| vmm::restore_controlled(cfg, from, c));
    std::thread::sleep(Duration::from_millis(20));
    let again = control
        .capture(None, Duration::from_secs(20))
        .expect("capture the restored VM");
    control.kill();
    vm.join().unwrap().unwrap();
    assert!(again.snapshot.vcpus[0].regs.rax > vcpus[0].regs.rax);
    assert_eq!(
        again.snapshot.vcpus[1].mp_state.mp_state,
        kvm_bindings::KVM_MP_STATE_UNINITIALIZED
    );
}

/// With virtio devices on the bus (a disk, a NIC and the entropy source,
/// which this guest never drives): each is captured by its slot and restored on
/// a VM of the same shape; a VM whose slot holds another kind of device
/// refuses the snapshot.
#[test]
fn virtio_devices_are_captured_by_slot_and_must_match_at_restore() {
    use std::sync::Arc;
    use std::time::Duration;
    let _ = kvm();
    let dir = tempfile::tempdir().unwrap();
    let with_devices = |console: &str| {
        let mut c = counting_config(&dir.path().join(console));
        c.entropy = true;
        c.disks = vec![vmm::DiskConfig {
            source: Arc::new(block_source::MemorySource::new(vec![0u8; 1 << 20], false)),
            read_only: false,
            id: "disk0".into(),
        }];
        c.nics = vec![vmm::NicConfig::new(
            [2, 0, 0, 0, 0, 9],
            Box::new(devices::net_backend::none::NoneBackend),
        )];
        c
    };
    let config = with_devices("console");
    let (control, vm) = start(move |c| vmm::run_controlled(config, c));
    let first = control
        .capture(Some(&dir.path().join("mem")), Duration::from_secs(20))
        .expect("capture");
    control.kill();
    vm.join().unwrap().unwrap();
    let ids: Vec<&str> = first
        .snapshot
        .devices
        .iter()
        .map(|d| d.id.as_str())
        .collect();
    assert_eq!(
        ids,
        ["pci:00:01.0", "pci:00:02.0", "pci:00:03.0", "serial0"]
    );

    let from = |snap: &snapshot::Snapshot| vmm::RestoreFrom {
        snapshot: snap.clone(),
        memory_file: dir.path().join("mem"),
        elapsed_ns: 0,
    };
    let cfg = with_devices("console2");
    let f = from(&first.snapshot);
    let (control, vm) = start(move |c| vmm::restore_controlled(cfg, f, c));
    std::thread::sleep(Duration::from_millis(20));
    let again = control
        .capture(None, Duration::from_secs(20))
        .expect("capture the restored VM");
    control.kill();
    vm.join().unwrap().unwrap();
    assert!(again.snapshot.vcpus[0].regs.rax > first.snapshot.vcpus[0].regs.rax);
    assert_eq!(again.snapshot.devices.len(), 4);

    // Without the disk, slot 1 holds the entropy device: refused.
    let mut other = counting_config(&dir.path().join("console3"));
    other.entropy = true;
    let err =
        vmm::restore_controlled(other, from(&first.snapshot), &vmm::VmControl::new()).unwrap_err();
    assert!(err.to_string().contains("pci:00:01.0"), "{err}");
}
