//! Unit tests of fw_cfg: the selector/data protocol, the file directory and
//! DMA, driven as SeaBIOS drives them.

use super::*;
use vm_memory::GuestMemoryMmap;

fn select(dev: &mut FwCfg, key: u16) {
    dev.write(SELECTOR, &key.to_le_bytes());
}

fn read_bytes(dev: &mut FwCfg, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| {
            let mut b = [0u8];
            dev.read(DATA, &mut b);
            b[0]
        })
        .collect()
}

fn memory() -> GuestMemoryMmap<()> {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).expect("guest memory")
}

/// Start the DMA request described at `at`, as SeaBIOS does (two outl of
/// the big-endian halves).
fn start_dma(dev: &mut FwCfg, at: u64) {
    dev.write(DMA_HIGH, &((at >> 32) as u32).to_be_bytes());
    dev.write(DMA_LOW, &(at as u32).to_be_bytes());
}

fn put_desc(mem: &GuestMemoryMmap<()>, at: u64, control: u32, len: u32, addr: u64) {
    let mut d = Vec::new();
    d.extend_from_slice(&control.to_be_bytes());
    d.extend_from_slice(&len.to_be_bytes());
    d.extend_from_slice(&addr.to_be_bytes());
    mem.write_slice(&d, GuestAddress(at)).unwrap();
}

fn control_of(mem: &GuestMemoryMmap<()>, at: u64) -> u32 {
    let mut b = [0u8; 4];
    mem.read_slice(&mut b, GuestAddress(at)).unwrap();
    u32::from_be_bytes(b)
}

#[test]
fn signature_id_and_machine_items() {
    let mut dev = FwCfg::new(None);
    select(&mut dev, keys::SIGNATURE);
    assert_eq!(read_bytes(&mut dev, 4), b"QEMU");
    assert_eq!(read_bytes(&mut dev, 2), [0, 0], "zeros past the end");
    select(&mut dev, keys::ID);
    assert_eq!(
        read_bytes(&mut dev, 4),
        1u32.to_le_bytes(),
        "no DMA without memory"
    );
    dev.set_machine(1 << 30, 2);
    select(&mut dev, keys::RAM_SIZE);
    assert_eq!(read_bytes(&mut dev, 8), (1u64 << 30).to_le_bytes());
    select(&mut dev, keys::NB_CPUS);
    assert_eq!(read_bytes(&mut dev, 2), [2, 0]);
    // Selecting again starts from the beginning.
    select(&mut dev, keys::SIGNATURE);
    assert_eq!(read_bytes(&mut dev, 1), b"Q");
    select(&mut dev, keys::SIGNATURE);
    assert_eq!(read_bytes(&mut dev, 1), b"Q");
    // An unknown key reads as zeros.
    select(&mut dev, 0x1234);
    assert_eq!(read_bytes(&mut dev, 3), [0, 0, 0]);
}

#[test]
fn the_file_directory_lists_files_sorted_with_their_keys() {
    let mut dev = FwCfg::new(None);
    let boot = dev
        .add_file("bootorder", b"/pci@i0cf8/*@5\n".to_vec())
        .unwrap();
    let e820 = dev
        .add_file(
            "etc/e820",
            e820_file(&[(0, 0x9fc00, 1), (0x10_0000, 0x3ff0_0000, 1)]),
        )
        .unwrap();
    assert_eq!((boot, e820), (0x20, 0x21));
    select(&mut dev, keys::FILE_DIR);
    let count = u32::from_be_bytes(read_bytes(&mut dev, 4).try_into().unwrap());
    assert_eq!(count, 2);
    let mut entries = Vec::new();
    for _ in 0..count {
        let e = read_bytes(&mut dev, 64);
        let size = u32::from_be_bytes(e[0..4].try_into().unwrap());
        let key = u16::from_be_bytes(e[4..6].try_into().unwrap());
        let name =
            String::from_utf8(e[8..].iter().take_while(|b| **b != 0).copied().collect()).unwrap();
        entries.push((name, key, size));
    }
    assert_eq!(
        entries,
        [
            ("bootorder".to_string(), 0x20, 15),
            ("etc/e820".to_string(), 0x21, 40)
        ]
    );
    select(&mut dev, e820);
    let first = read_bytes(&mut dev, 20);
    assert_eq!(&first[8..16], &0x9fc00u64.to_le_bytes());
    assert_eq!(&first[16..20], &1u32.to_le_bytes());
}

#[test]
fn bad_file_names_are_refused() {
    let mut dev = FwCfg::new(None);
    assert!(matches!(
        dev.add_file("", vec![]),
        Err(FwCfgError::BadName(_))
    ));
    assert!(matches!(
        dev.add_file(&"x".repeat(56), vec![]),
        Err(FwCfgError::BadName(_))
    ));
    dev.add_file(&"x".repeat(55), vec![]).unwrap();
    assert_eq!(
        dev.add_file(&"x".repeat(55), vec![]),
        Err(FwCfgError::Duplicate("x".repeat(55)))
    );
}

#[test]
fn writes_to_the_data_port_change_nothing() {
    let mut dev = FwCfg::new(None);
    select(&mut dev, keys::SIGNATURE);
    dev.write(DATA, &[0xff]);
    assert_eq!(read_bytes(&mut dev, 4), b"QEMU");
}

#[test]
fn dma_select_and_read_then_status_cleared() {
    let mem = memory();
    let mut dev = FwCfg::new(Some(mem.clone()));
    select(&mut dev, keys::ID);
    assert_eq!(read_bytes(&mut dev, 4), 3u32.to_le_bytes(), "DMA offered");
    let mut sig = [0u8; 4];
    dev.read(DMA_HIGH, &mut sig);
    assert_eq!(&sig, b"QEMU");
    dev.add_file("etc/test", (0u8..100).collect()).unwrap();
    // Read 10 bytes of key 0x20 into 0x2000 with one request.
    put_desc(&mem, 0x1000, 0x20 << 16 | DMA_SELECT | DMA_READ, 10, 0x2000);
    start_dma(&mut dev, 0x1000);
    assert_eq!(control_of(&mem, 0x1000), 0, "done, no error");
    let mut got = [0u8; 10];
    mem.read_slice(&mut got, GuestAddress(0x2000)).unwrap();
    assert_eq!(got, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // Skip 80, then read 20: the last 10 are past the end and read as zeros.
    put_desc(&mem, 0x1000, DMA_SKIP, 80, 0);
    start_dma(&mut dev, 0x1000);
    put_desc(&mem, 0x1000, DMA_READ, 20, 0x3000);
    start_dma(&mut dev, 0x1000);
    let mut tail = [0xffu8; 20];
    mem.read_slice(&mut tail, GuestAddress(0x3000)).unwrap();
    assert_eq!(&tail[..10], &[90, 91, 92, 93, 94, 95, 96, 97, 98, 99]);
    assert_eq!(&tail[10..], &[0; 10]);
}

#[test]
fn dma_errors_are_reported_in_the_control_field() {
    let mem = memory();
    let mut dev = FwCfg::new(Some(mem.clone()));
    // A write: items are read-only.
    put_desc(&mem, 0x1000, DMA_WRITE, 4, 0x2000);
    start_dma(&mut dev, 0x1000);
    assert_eq!(control_of(&mem, 0x1000), DMA_ERROR);
    // A read to memory that does not exist.
    put_desc(
        &mem,
        0x1000,
        keys::SIGNATURE as u32 | DMA_SELECT | DMA_READ,
        4,
        0xffff_0000,
    );
    start_dma(&mut dev, 0x1000);
    assert_eq!(control_of(&mem, 0x1000), DMA_ERROR);
    // A huge length that wraps the address space fails, and quickly.
    put_desc(&mem, 0x1000, DMA_READ, u32::MAX, u64::MAX - 4);
    start_dma(&mut dev, 0x1000);
    assert_eq!(control_of(&mem, 0x1000), DMA_ERROR);
    // A descriptor outside memory is ignored without a panic.
    start_dma(&mut dev, 0xdead_0000_0000);
}

#[test]
fn no_dma_without_memory() {
    let mut dev = FwCfg::new(None);
    let mut b = [0xffu8; 4];
    dev.read(DMA_HIGH, &mut b);
    assert_eq!(b, [0; 4]);
    start_dma(&mut dev, 0x1000); // ignored
}

#[test]
fn a_huge_skip_is_instant_and_reads_after_it_are_zeros() {
    let mem = memory();
    let mut dev = FwCfg::new(Some(mem.clone()));
    let t0 = std::time::Instant::now();
    put_desc(
        &mem,
        0x1000,
        keys::SIGNATURE as u32 | DMA_SELECT | DMA_SKIP,
        u32::MAX,
        0,
    );
    start_dma(&mut dev, 0x1000);
    assert_eq!(control_of(&mem, 0x1000), 0);
    assert!(t0.elapsed() < std::time::Duration::from_secs(1));
    assert_eq!(read_bytes(&mut dev, 2), [0, 0]);
}
