//! Where the PVH path spends its time before the vCPUs start: decompress
//! the bzImage on the host, then load the ELF into fresh guest memory with
//! linux-loader (what `vmm::boot::load` does), against a plain copy of the
//! same bytes into fresh guest memory (the floor: page faults plus memcpy),
//! and where guest RAM lands relative to a 2 MiB boundary (KVM can map
//! guest huge pages only when host and guest addresses agree modulo 2 MiB).
//! Usage: pvh_load_timing BZIMAGE [MEMORY_MIB] [RUNS]

use linux_loader::loader::elf::Elf;
use linux_loader::loader::KernelLoader;
use std::io::Cursor;
use std::time::Instant;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let Some(path) = a.get(1) else {
        eprintln!("usage: pvh_load_timing BZIMAGE [MEMORY_MIB] [RUNS]");
        std::process::exit(2);
    };
    let mib: u64 = a.get(2).and_then(|v| v.parse().ok()).unwrap_or(512);
    let runs: usize = a.get(3).and_then(|v| v.parse().ok()).unwrap_or(3);
    let image = std::fs::read(path).expect("read the bzImage");
    for _ in 0..runs {
        let t = Instant::now();
        let elf = vmm::boot::decompress::vmlinux(&image).expect("decompress");
        let decompress = ms(t);

        let mem = vmm::memory::create(mib).expect("guest memory");
        let host = mem.get_host_address(GuestAddress(0)).expect("host address") as usize;
        let t = Instant::now();
        let r = Elf::load(
            &mem,
            None,
            &mut Cursor::new(&elf[..]),
            Some(GuestAddress(vmm::layout::HIMEM_START)),
        )
        .expect("load the ELF");
        let elf_load = ms(t);
        let loaded = r.kernel_end - vmm::layout::HIMEM_START;
        drop(mem);

        let mem = vmm::memory::create(mib).expect("guest memory");
        let t = Instant::now();
        let n = (loaded as usize).min(elf.len());
        mem.write_slice(&elf[..n], GuestAddress(vmm::layout::HIMEM_START))
            .expect("copy");
        let copy = ms(t);
        drop(mem);

        let t = Instant::now();
        drop(elf);
        let free = ms(t);
        println!(
            "decompress_ms {decompress:.1} elf_load_ms {elf_load:.1} plain_copy_ms {copy:.1} (of {} MiB) free_ms {free:.1} guest_ram_host_address_mod_2MiB {:#x}",
            n >> 20,
            host % (2 << 20)
        );
    }
}
