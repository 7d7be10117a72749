//! Disk image benchmarks; run through `disk-image/bench.sh`, which makes
//! the images and times qemu-img on the same files.
//!
//! bench_disk make RAW BYTES       write a test disk: real files from /usr
//!                                 (compressible), 8 MiB holes every 32 MiB
//! bench_disk seq IMAGE CHUNK      sequential read of the whole disk
//! bench_disk export IMAGE OUT     export_raw, like `qemu-img convert -O raw`
//! bench_disk random IMAGE N       N random 4 KiB reads: latency percentiles
//! bench_disk open OVA MEMBER N    time to open a VMDK tar member, N times

use disk_image::{open_image, open_path, BlockSource, ByteRange, CacheDir, FileRange, NoExtents};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

fn cache() -> CacheDir {
    CacheDir::new(std::env::temp_dir().join("ovf-run-bench"))
}

fn make(out: &Path, size: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(out).unwrap());
    let mut written = 0u64;
    let mut since_hole = 0u64;
    let mut stack = vec![std::path::PathBuf::from("/usr")];
    'outer: while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() {
                let Ok(bytes) = std::fs::read(&p) else {
                    continue;
                };
                let n = (bytes.len() as u64).min(size - written) as usize;
                f.write_all(&bytes[..n]).unwrap();
                written += n as u64;
                since_hole += n as u64;
                // About a fifth of the disk is holes: 8 MiB after each 32 MiB.
                if since_hole >= 32 << 20 {
                    since_hole = 0;
                    let h = (8u64 << 20).min(size - written);
                    f.write_all(&vec![0u8; h as usize]).unwrap();
                    written += h;
                }
                if written >= size {
                    break 'outer;
                }
            }
        }
    }
    // Pad (if /usr is small) with zeros.
    f.flush().unwrap();
    f.get_ref().set_len(size).unwrap();
}

fn seq(src: &dyn BlockSource, chunk: usize) -> (u64, Duration) {
    let mut buf = vec![0u8; chunk];
    let t = Instant::now();
    let mut at = 0u64;
    let mut sum = 0u64;
    while at < src.capacity() {
        let n = ((src.capacity() - at) as usize).min(chunk);
        src.read_at(&mut buf[..n], at).unwrap();
        sum = sum.wrapping_add(buf[n / 2] as u64);
        at += n as u64;
    }
    std::hint::black_box(sum);
    (at, t.elapsed())
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    match a.get(1).map(String::as_str) {
        Some("make") => make(Path::new(&a[2]), a[3].parse().unwrap()),
        Some("seq") => {
            let t = Instant::now();
            let src = open_path(Path::new(&a[2]), &cache()).unwrap();
            let opened = t.elapsed();
            let chunk: usize = a[3].parse().unwrap();
            let (n, e) = seq(&*src, chunk);
            println!(
                "seq chunk={chunk} bytes={n} secs={:.3} MiB/s={:.0} open_us={}",
                e.as_secs_f64(),
                n as f64 / e.as_secs_f64() / 1048576.0,
                opened.as_micros()
            );
        }
        Some("export") => {
            let t = Instant::now();
            let src = open_path(Path::new(&a[2]), &cache()).unwrap();
            disk_image::export_raw(&*src, Path::new(&a[3]), &|_, _| {}).unwrap();
            println!("export secs={:.3}", t.elapsed().as_secs_f64());
        }
        Some("random") => {
            let src = open_path(Path::new(&a[2]), &cache()).unwrap();
            let n: usize = a[3].parse().unwrap();
            let mut x = 0x1234_5678_9abc_def0u64;
            let mut lat = Vec::with_capacity(n);
            let mut buf = [0u8; 4096];
            let blocks = src.capacity() / 4096;
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let t = Instant::now();
                src.read_at(&mut buf, (x % blocks) * 4096).unwrap();
                lat.push(t.elapsed());
            }
            lat.sort();
            let p = |q: f64| lat[((n as f64 * q) as usize).min(n - 1)].as_secs_f64() * 1e6;
            println!(
                "random4k n={n} p50_us={:.1} p90_us={:.1} p99_us={:.1}",
                p(0.5),
                p(0.9),
                p(0.99)
            );
        }
        Some("open") => {
            let ova = FileRange::open(Path::new(&a[2])).unwrap();
            let (off, len) = (a[3].parse().unwrap(), a[4].parse().unwrap());
            let n: usize = a[5].parse().unwrap();
            let mut best = Duration::MAX;
            let mut cap = 0;
            for _ in 0..n {
                let member = ova.slice(off, len, "member").unwrap();
                let t = Instant::now();
                let src = open_image(Box::new(member), None, &NoExtents, &cache()).unwrap();
                let mut first = [0u8; 512];
                src.read_at(&mut first, 0).unwrap();
                best = best.min(t.elapsed());
                cap = src.capacity();
            }
            println!(
                "open capacity={cap} member_bytes={} best_us={}",
                ova.len().min(len),
                best.as_micros()
            );
        }
        _ => eprintln!("usage: see the doc comment of examples/bench_disk.rs"),
    }
}
