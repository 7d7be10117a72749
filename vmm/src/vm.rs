//! One run of the VM: build it from the config, run vCPUs and the event
//! loop until something stops it, tear it down.

use crate::console::{ConsoleSink, StdinInput};
use crate::interrupts::KvmInterrupts;
use crate::layout::{KVM_IDENTITY_MAP_ADDR, KVM_TSS_ADDR};
use crate::vcpu::{self, VcpuContext};
use crate::{
    acpi, boot, cpuid, firmware, memory, signals, RestoreFrom, VmConfig, VmControl, VmmError,
};
use devices::acpi_power::{AcpiPower, ACPI_PM_BASE, ACPI_PM_LEN};
use devices::bus::Bus;
use devices::i8042::{I8042, I8042_BASE, I8042_LEN};
use devices::interrupt::IrqTrigger;
use devices::lifecycle::{StopReason, StopSignal};
use devices::serial::{Serial, COM1_BASE, COM1_IRQ, COM1_LEN};
use event_manager::{EventManager, EventOps, Events, MutEventSubscriber, SubscriberOps};
use kvm_bindings::{kvm_pit_config, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::Kvm;
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vmm_sys_util::epoll::EventSet;

pub enum Outcome {
    Poweroff,
    Reset,
    TripleFault,
    Stopped,
    Crashed(String),
}

fn kvm_err(what: &'static str) -> impl Fn(kvm_ioctls::Error) -> VmmError {
    move |source| VmmError::KvmSetup { what, source }
}

fn dev_err(what: &str) -> impl Fn(std::io::Error) -> VmmError + '_ {
    move |source| VmmError::Device {
        what: what.to_string(),
        source,
    }
}

type Subscriber = Arc<Mutex<dyn MutEventSubscriber + Send>>;

/// Wakes the event loop as soon as a stop reason is recorded.
struct StopWaker(Arc<StopSignal>);

impl MutEventSubscriber for StopWaker {
    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        let _ = self.0.event().read();
    }
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(self.0.event(), EventSet::IN)) {
            tracing::warn!("stop events are polled: {e:?}");
        }
    }
}

/// A new VM generation ID in guest memory (see `vmgenid.rs`).
fn write_generation_id(mem: &memory::GuestMemory) -> Result<(), VmmError> {
    let id = crate::vmgenid::new_id().map_err(dev_err("VM generation ID"))?;
    crate::vmgenid::write_id(mem, &id)
        .map_err(|e| dev_err("VM generation ID")(std::io::Error::other(e.to_string())))?;
    tracing::debug!("VM generation ID {}", hex_id(&id));
    Ok(())
}

fn hex_id(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn run_once(
    config: &VmConfig,
    sink: &ConsoleSink,
    control: &VmControl,
    restore: Option<&RestoreFrom>,
) -> Result<Outcome, VmmError> {
    if config.vcpus == 0 || config.vcpus > 254 {
        return Err(VmmError::VcpuCount(config.vcpus));
    }
    if let Some(from) = restore {
        crate::restore::check(config, from)?;
    }
    let started = Instant::now();
    let kvm = Kvm::new().map_err(VmmError::Kvm)?;
    let vm = Arc::new(kvm.create_vm().map_err(kvm_err("create a VM"))?);
    vm.set_tss_address(KVM_TSS_ADDR as usize)
        .map_err(kvm_err("set the TSS address"))?;
    if let Err(e) = vm.set_identity_map_address(KVM_IDENTITY_MAP_ADDR) {
        tracing::debug!("identity map address not set: {e}");
    }
    vm.create_irq_chip()
        .map_err(kvm_err("create the in-kernel interrupt controller"))?;
    let pit = kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    };
    vm.create_pit2(pit)
        .map_err(kvm_err("create the in-kernel PIT"))?;

    let mem = match restore {
        Some(from) => {
            memory::from_file(config.memory_mib, &from.memory_file, &from.snapshot.memory)?
        }
        None => memory::create(config.memory_mib)?,
    };
    memory::register(&vm, &mem)?;
    let irqs = Arc::new(KvmInterrupts::new(vm.clone()).map_err(dev_err("interrupt routing"))?);

    let stop = Arc::new(StopSignal::new().map_err(dev_err("stop signal"))?);
    let pio = Arc::new(Bus::new());
    let mmio = Arc::new(Bus::new());
    let mut event_manager = EventManager::<Subscriber>::new()
        .map_err(|e| dev_err("event loop")(std::io::Error::other(format!("{e:?}"))))?;

    let serial_irq = IrqTrigger::new().map_err(dev_err("serial"))?;
    irqs.register_line(serial_irq.eventfd(), COM1_IRQ)
        .map_err(dev_err("serial interrupt"))?;
    let serial = match restore {
        Some(from) => {
            let state = crate::restore::find_serial(&from.snapshot)?;
            Serial::from_snapshot(&state, serial_irq, Box::new(sink.clone())).map_err(|e| {
                crate::RestoreError::BadDevice {
                    id: crate::restore::SERIAL_ID.into(),
                    version: crate::restore::SERIAL_VERSION,
                    reason: e.to_string(),
                }
            })?
        }
        None => Serial::new(serial_irq, Box::new(sink.clone())),
    };
    let serial = Arc::new(Mutex::new(serial));
    let bus_err = |e: devices::bus::BusError| dev_err("bus")(std::io::Error::other(e.to_string()));
    pio.insert(serial.clone(), COM1_BASE, COM1_LEN)
        .map_err(bus_err)?;
    pio.insert(
        Arc::new(Mutex::new(I8042::new(stop.clone()))),
        I8042_BASE,
        I8042_LEN,
    )
    .map_err(bus_err)?;
    pio.insert(
        Arc::new(Mutex::new(AcpiPower::new(stop.clone()))),
        ACPI_PM_BASE,
        ACPI_PM_LEN,
    )
    .map_err(bus_err)?;
    let ged = IrqTrigger::new().map_err(dev_err("power button"))?;
    irqs.register_line(ged.eventfd(), crate::layout::GED_IRQ)
        .map_err(dev_err("power button interrupt"))?;
    let genid_changed = IrqTrigger::new().map_err(dev_err("VM generation ID"))?;
    irqs.register_line(genid_changed.eventfd(), crate::vmgenid::VMGENID_IRQ)
        .map_err(dev_err("VM generation ID interrupt"))?;

    let virtio = crate::pci_setup::attach(
        config,
        &mem,
        &vm,
        &irqs,
        &pio,
        &mmio,
        restore.map(|r| &r.snapshot),
    )?;

    tracing::debug!(
        "VM and devices ready {:.1} ms after the monitor started",
        started.elapsed().as_secs_f64() * 1000.0
    );
    // Firmware boot keeps its flash mapping alive until the VM is gone.
    let (setup, _flash) = match &config.kernel {
        // Memory already holds the kernel, ACPI and SMBIOS tables.
        _ if restore.is_some() => (
            boot::BootSetup {
                entry: vcpu::BootEntry::Reset,
                protocol: "restore",
                host_decompress: None,
            },
            None,
        ),
        boot::Kernel::Bios(path) => {
            let (setup, flash) = firmware_boot(config, path, &mem, &vm, &pio)?;
            (setup, Some(flash))
        }
        _ => {
            let rsdp = acpi::write(&mem, config.vcpus).map_err(VmmError::Acpi)?;
            write_generation_id(&mem)?;
            crate::smbios::write(&mem, &config.smbios).map_err(VmmError::Smbios)?;
            let setup = boot::load(
                &mem,
                &config.kernel,
                config.initrd.as_ref(),
                &config.cmdline,
                config.bzimage_mode,
                rsdp,
            )?;
            (setup, None)
        }
    };
    if let Some(d) = setup.host_decompress {
        tracing::info!(
            "kernel decompressed on the host in {:.1} ms",
            d.as_secs_f64() * 1000.0
        );
    }
    tracing::debug!(
        "kernel loaded {:.1} ms after the monitor started",
        started.elapsed().as_secs_f64() * 1000.0
    );
    if restore.is_none() {
        vcpu::write_boot_structures(&mem, setup.entry)?;
    }

    // The owner may hold the start (VmControl::hold) to finish its own
    // setup before any guest code runs.
    if !control.wait_released() {
        return Ok(Outcome::Stopped);
    }
    if let Some(from) = restore {
        // A clone is a new generation: a new ID before any vCPU runs (the
        // guest is told after they run, below).
        write_generation_id(&mem)?;
        // Before any vCPU exists (each starts running as soon as it is set
        // up): the in-kernel PICs, IOAPIC, PIT and the clock.
        crate::snapshot::restore_vm(&vm, &from.snapshot.vm, from.elapsed_ns)
            .map_err(crate::RestoreError::from)?;
    }
    let base_cpuid = cpuid::supported(&kvm).map_err(kvm_err("report its supported CPUID"))?;
    let exiting = Arc::new(AtomicBool::new(false));
    let gate = Arc::new(crate::pause::PauseGate::new(config.vcpus.into()));
    if restore.is_some() {
        // Restored vCPUs wait before their first KVM_RUN until every one
        // has its state and the devices (held paused) serve again.
        gate.request();
    }
    let mut threads = Vec::new();
    for id in 0..config.vcpus {
        let fd = vm
            .create_vcpu(id as u64)
            .map_err(kvm_err("create a vCPU"))?;
        let c = cpuid::for_vcpu(&base_cpuid, id, config.vcpus, &config.cpuid_masks);
        if let Some(from) = restore {
            let saved = &from.snapshot.vcpus[usize::from(id)];
            // Compare like with like: the CPUID KVM reports for a vCPU
            // given this host's (what the snapshot holds is what KVM
            // reported then; PVM, for one, reports more than it was given).
            let here = fd
                .set_cpuid2(&c)
                .and_then(|_| fd.get_cpuid2(kvm_bindings::KVM_MAX_CPUID_ENTRIES))
                .map_err(kvm_err("report a vCPU's CPUID"))?;
            crate::restore::check_cpu(saved, &here)?;
            crate::snapshot::restore_vcpu(&vm, &fd, saved).map_err(crate::RestoreError::from)?;
        } else {
            vcpu::setup_common(&fd, id, &c)?;
            if id == 0 {
                vcpu::setup_boot_registers(&fd, setup.entry)?;
            }
        }
        let ctx = VcpuContext {
            id,
            pio: pio.clone(),
            mmio: mmio.clone(),
            stop: stop.clone(),
            exiting: exiting.clone(),
            started,
            gate: gate.clone(),
        };
        let t = std::thread::Builder::new()
            .name(format!("vcpu{id}"))
            .spawn(move || {
                thread_filter::install_or_log(thread_filter::Kind::Vcpu);
                vcpu::run_loop(fd, ctx)
            })
            .map_err(dev_err("vCPU thread"))?;
        threads.push(t);
    }
    if restore.is_some() {
        crate::pci_setup::resume_all(&virtio);
        gate.resume();
        genid_changed
            .fire()
            .map_err(dev_err("VM generation ID interrupt"))?;
    }
    tracing::info!(
        "VM started in {:.1} ms ({} boot, {} vCPUs, {} MiB)",
        started.elapsed().as_secs_f64() * 1000.0,
        setup.protocol,
        config.vcpus,
        config.memory_mib
    );

    let console_input = config
        .console
        .stdio
        .then(|| Arc::new(Mutex::new(StdinInput::new(serial.clone(), stop.clone()))));
    if let Some(input) = &console_input {
        let subscriber: Subscriber = input.clone();
        event_manager.add_subscriber(subscriber);
    }

    // The kernel and initrd copies, the initramfs inspection and the
    // verification are done: give their freed heap back to the system
    // (glibc keeps freed arenas resident; each instance of a sandbox would
    // carry tens of MiB of garbage).
    // Reading /proc/self/smaps is not free: only when the line is logged.
    let measure = tracing::enabled!(tracing::Level::DEBUG);
    let before = measure.then(|| crate::rss::beyond_guest_memory(&mem).unwrap_or(0));
    // SAFETY: malloc_trim only releases free memory of glibc's arenas.
    unsafe {
        libc::malloc_trim(0);
    }
    if let Some(before) = before {
        tracing::debug!(
            "monitor RSS beyond guest memory {before} KiB, {} KiB after giving freed heap back",
            crate::rss::beyond_guest_memory(&mem).unwrap_or(0)
        );
    }
    let waker: Subscriber = Arc::new(Mutex::new(StopWaker(stop.clone())));
    event_manager.add_subscriber(waker);
    // From here on this thread only runs the loop, stops the VM and (after
    // a reset) builds it again: its filter allows that much (once per
    // thread; a rebuilt VM keeps it).
    thread_filter::install_or_log(thread_filter::Kind::VmLoop);
    control.set_running(true);
    while stop.reason().is_none() {
        if let Err(e) = event_manager.run_with_timeout(50) {
            stop.stop(StopReason::Failed(format!("event loop: {e:?}")));
        }
        if control.killed() {
            stop.stop(StopReason::UserQuit);
        }
        // Console input the UART had no room for goes in as the guest reads.
        if let Some(input) = &console_input {
            input.lock().unwrap_or_else(|e| e.into_inner()).pump();
        }
        if control.take_power_button() {
            tracing::info!("stop requested: pressing the power button");
            let _ = ged.fire();
        }
        if let Some(req) = control.take_capture() {
            let kick = || kick_all(&threads);
            let ctx = crate::capture::CaptureContext {
                kvm: &kvm,
                vm: &vm,
                mem: &mem,
                gate: &gate,
                kick: &kick,
                config,
                serial: &serial,
                virtio: &virtio,
            };
            let result = crate::capture::capture(&ctx, req.memory_file.as_deref(), req.finish);
            if let Ok(c) = &result {
                tracing::info!(
                    "state captured; vCPUs paused for {:.1} ms",
                    c.paused_for.as_secs_f64() * 1000.0
                );
            }
            let _ = req.reply.send(result);
        }
    }
    control.set_running(false);
    // A vCPU parked by a capture that failed half-way must not wait forever.
    gate.resume();

    if let Some(t) = sink.first_output() {
        tracing::info!(
            "first console output {:.1} ms after the monitor started",
            t.duration_since(started).as_secs_f64() * 1000.0
        );
    }
    match crate::rss::beyond_guest_memory(&mem) {
        Ok(kib) => tracing::info!("monitor RSS beyond guest memory: {kib} KiB"),
        Err(e) => tracing::debug!("cannot measure RSS: {e}"),
    }
    exiting.store(true, Ordering::Release);
    for t in threads {
        let give_up = Instant::now() + Duration::from_secs(5);
        while !t.is_finished() && Instant::now() < give_up {
            // SAFETY: the thread is alive (not finished) and the signal has a
            // no-op handler; it only makes KVM_RUN return EINTR.
            unsafe {
                libc::pthread_kill(t.as_pthread_t(), signals::kick_signal());
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        if t.is_finished() {
            let _ = t.join();
        }
    }

    match stop.reason() {
        Some(StopReason::Poweroff) => Ok(Outcome::Poweroff),
        Some(StopReason::Reset) => Ok(Outcome::Reset),
        Some(StopReason::TripleFault) => Ok(Outcome::TripleFault),
        Some(StopReason::GuestCrash(reason)) => Ok(Outcome::Crashed(reason)),
        Some(StopReason::UserQuit) | None => Ok(Outcome::Stopped),
        Some(StopReason::Failed(reason)) => Err(VmmError::Failed {
            reason,
            last_lines: sink.last_lines(15),
        }),
    }
}

/// Interrupt KVM_RUN on every vCPU thread still running.
fn kick_all(threads: &[std::thread::JoinHandle<()>]) {
    for t in threads {
        if !t.is_finished() {
            // SAFETY: the thread is alive (not finished) and the signal has
            // a no-op handler; it only makes KVM_RUN return EINTR.
            unsafe {
                libc::pthread_kill(t.as_pthread_t(), signals::kick_signal());
            }
        }
    }
}

/// Firmware boot: the BIOS image below 1 MiB and at the top of 4 GiB, the
/// fw_cfg device and the CMOS clock; the vCPUs start in their reset state.
fn firmware_boot(
    config: &VmConfig,
    path: &std::path::Path,
    mem: &memory::GuestMemory,
    vm: &kvm_ioctls::VmFd,
    pio: &Arc<Bus>,
) -> Result<(boot::BootSetup, firmware::Flash), VmmError> {
    use devices::fw_cfg::{FW_CFG_BASE, FW_CFG_LEN};
    use devices::rtc::{Rtc, RTC_BASE, RTC_LEN};
    use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
    let image = firmware::read_image(path)?;
    firmware::place(mem, &image)?;
    let flash = firmware::Flash::new(&image)?;
    flash.register(vm, mem.num_regions() as u32)?;
    let info = firmware::FirmwareInfo {
        vcpus: config.vcpus,
        smbios: &config.smbios,
        // The disks take the PCI slots after the host bridge (pci_setup).
        boot_slot: (!config.disks.is_empty()).then_some(1),
    };
    let fw_cfg = firmware::fw_cfg(mem, &info)?;
    let bus_err = |e: devices::bus::BusError| dev_err("bus")(std::io::Error::other(e.to_string()));
    pio.insert(Arc::new(Mutex::new(fw_cfg)), FW_CFG_BASE, FW_CFG_LEN)
        .map_err(bus_err)?;
    let below = boot::e820::low_ram_end(mem);
    let above = mem.iter().map(|r| r.len()).sum::<u64>() - below;
    pio.insert(
        Arc::new(Mutex::new(devices::debugcon::DebugCon::new())),
        devices::debugcon::DEBUGCON_PORT,
        devices::debugcon::DEBUGCON_LEN,
    )
    .map_err(bus_err)?;
    let mut rtc = Rtc::new();
    rtc.set_memory_layout(below, above, config.vcpus);
    pio.insert(Arc::new(Mutex::new(rtc)), RTC_BASE, RTC_LEN)
        .map_err(bus_err)?;
    tracing::info!(
        "firmware boot: {} ({} KiB)",
        path.display(),
        image.len() >> 10
    );
    let setup = boot::BootSetup {
        entry: crate::vcpu::BootEntry::Reset,
        protocol: "bios",
        host_decompress: None,
    };
    Ok((setup, flash))
}
