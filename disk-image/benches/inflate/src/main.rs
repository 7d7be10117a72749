//! inflate-bench IMAGE.vmdk [MAX_GRAINS]
//!
//! Takes the compressed grains of a streamOptimized VMDK (walking its
//! markers, as `vmdk_sparse`'s recovery scan does) and inflates every one
//! into a 64 KiB buffer with libdeflate and with the flate2 backend this
//! build was made with; prints the best of five rounds for each, in MiB/s
//! of inflated data on one core.

use flate2::{Decompress, FlushDecompress};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn grains(path: &str, max: usize) -> (Vec<Vec<u8>>, usize) {
    let f = std::fs::File::open(path).unwrap();
    let len = f.metadata().unwrap().len();
    let mut h = [0u8; 512];
    f.read_exact_at(&mut h, 0).unwrap();
    assert_eq!(&h[0..4], b"KDMV", "not a VMDK sparse file");
    let grain_bytes = le64(&h, 20) as usize * 512;
    let mut sector = le64(&h, 64);
    let mut out = Vec::new();
    while out.len() < max && sector * 512 + 12 <= len {
        let mut m = [0u8; 16];
        f.read_exact_at(&mut m, sector * 512).unwrap();
        let (val, size, kind) = (le64(&m, 0), le32(&m, 8) as u64, le32(&m, 12));
        if size != 0 {
            let mut g = vec![0u8; size as usize];
            f.read_exact_at(&mut g, sector * 512 + 12).unwrap();
            out.push(g);
            sector = (sector * 512 + 12 + size).div_ceil(512);
        } else if kind == 0 {
            break;
        } else {
            sector += 1 + val;
        }
    }
    (out, grain_bytes)
}

fn best(mut round: impl FnMut() -> u64) -> (Duration, u64) {
    let mut best = Duration::MAX;
    let mut total = 0;
    for _ in 0..5 {
        let t = Instant::now();
        total = round();
        best = best.min(t.elapsed());
    }
    (best, total)
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let max = a.get(2).map(|s| s.parse().unwrap()).unwrap_or(usize::MAX);
    let (gs, unit) = grains(&a[1], max);
    let stored: usize = gs.iter().map(|g| g.len()).sum();
    let mut out = vec![0u8; unit];

    let mut d = libdeflater::Decompressor::new();
    let (t_ld, n_ld) = best(|| {
        gs.iter()
            .map(|g| d.zlib_decompress(g, &mut out).unwrap() as u64)
            .sum()
    });
    let (t_fl, n_fl) = best(|| {
        gs.iter()
            .map(|g| {
                let mut z = Decompress::new(true);
                z.decompress(g, &mut out, FlushDecompress::Finish).unwrap();
                z.total_out()
            })
            .sum()
    });
    assert_eq!(n_ld, n_fl, "backends disagree");
    let backend = if cfg!(feature = "zlib-ng") {
        "zlib-ng"
    } else if cfg!(feature = "zlib-rs") {
        "zlib-rs"
    } else {
        "miniz_oxide"
    };
    let mib = n_ld as f64 / 1048576.0;
    println!(
        "grains={} stored_MiB={:.1} inflated_MiB={mib:.1} libdeflate_MiB/s={:.0} flate2({backend})_MiB/s={:.0} ratio={:.2}",
        gs.len(),
        stored as f64 / 1048576.0,
        mib / t_ld.as_secs_f64(),
        mib / t_fl.as_secs_f64(),
        t_fl.as_secs_f64() / t_ld.as_secs_f64()
    );
}
