//! Hostile folder packages (issue 15, items 4, 5, 7 and 8): gzip bombs stop
//! at the declared capacity, FIFOs are refused without blocking, chunked
//! files cut short are errors, a package's own files are recognised, and
//! the verification cache notices bytes changed with the mtime put back.

#[path = "../../tests/support/peak_alloc.rs"]
mod peak_alloc;

use disk_image::CacheDir;
use ovf_loader::disks::open_disk;
use ovf_loader::verify_cache::VerifyCache;
use ovf_loader::{machine_spec, Package};
use peak_alloc::{measure, time_bound, MIB};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// A one-disk descriptor whose References/File carries `file_attrs`.
fn descriptor(file_attrs: &str, capacity: u64) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References><File ovf:href="disk.img" ovf:id="file1" {file_attrs}/></References>
  <DiskSection><Info>disks</Info><Disk ovf:capacity="{capacity}" ovf:diskId="d1" ovf:fileRef="file1"/></DiskSection>
  <VirtualSystem ovf:id="t"><Info>t</Info>
    <VirtualHardwareSection><Info>hw</Info>
      <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>256</rasd:VirtualQuantity></Item>
      <Item><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/d1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>"#
    )
}

fn write_package(dir: &Path, file_attrs: &str, capacity: u64) -> PathBuf {
    let ovf = dir.join("vm.ovf");
    std::fs::write(&ovf, descriptor(file_attrs, capacity)).unwrap();
    ovf
}

/// Open the package's disk 0 with a cache under `dir`.
fn open_disk0(ovf: &Path, dir: &Path) -> Result<u64, String> {
    let pkg = Package::open(ovf).map_err(|e| e.to_string())?;
    let spec = machine_spec(&pkg.envelope, None, None).map_err(|e| e.to_string())?;
    let cache = CacheDir::new(dir.join("cache"));
    open_disk(&pkg, &spec.disks[0], &cache)
        .map(|d| d.capacity())
        .map_err(|e| e.to_string())
}

/// Run `f` on another thread; a hang fails the test instead of blocking it.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("did not finish within {secs} s (blocked?)"))
}

#[test]
fn gzip_bomb_stops_at_the_declared_capacity() {
    let dir = tempfile::tempdir().unwrap();
    // One gzip member of 1 MiB of a non-zero byte, 1024 times over: gzip
    // readers join members, so about 1 MB inflates to 1 GiB.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![0x5a_u8; 1 << 20]).unwrap();
    let bomb = gz.finish().unwrap().repeat(1024);
    std::fs::write(dir.path().join("disk.img"), &bomb).unwrap();
    let ovf = write_package(
        dir.path(),
        &format!(r#"ovf:size="{}" ovf:compression="gzip""#, bomb.len()),
        MIB as u64,
    );
    let path = dir.path().to_path_buf();
    let (result, cost) = measure(|| open_disk0(&ovf, &path));
    let err = result.expect_err("a 1 GiB inflation for a 1 MiB disk must be refused");
    eprintln!("{} byte bomb: {cost:?}: {err}", bomb.len());
    assert!(err.contains("declared capacity"), "{err}");
    assert!(
        cost.elapsed < time_bound(Duration::from_secs(5)),
        "{cost:?}"
    );
    assert!(cost.peak_bytes < 64 * MIB, "{cost:?}");
    // The inflated copy is an anonymous file: nothing is left in the cache.
    let left = std::fs::read_dir(dir.path().join("cache")).unwrap().count();
    assert_eq!(left, 0);
}

#[test]
fn gzip_within_the_capacity_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&vec![1u8; 2 << 20]).unwrap();
    let data = gz.finish().unwrap();
    std::fs::write(dir.path().join("disk.img"), &data).unwrap();
    let ovf = write_package(
        dir.path(),
        &format!(r#"ovf:size="{}" ovf:compression="gzip""#, data.len()),
        2 << 20,
    );
    assert_eq!(open_disk0(&ovf, dir.path()), Ok(2 << 20));
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn fifo_disk_and_descriptor_are_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    mkfifo(&dir.path().join("disk.img"));
    let ovf = write_package(dir.path(), "", MIB as u64);
    let d = dir.path().to_path_buf();
    let err = within(10, move || open_disk0(&ovf, &d)).expect_err("a FIFO disk");
    assert!(err.contains("named pipe"), "{err}");

    let fifo_ovf = dir.path().join("pipe.ovf");
    mkfifo(&fifo_ovf);
    let err = within(10, move || {
        Package::open(&fifo_ovf).err().map(|e| e.to_string())
    })
    .expect("a FIFO descriptor must be refused");
    assert!(err.contains("named pipe"), "{err}");
}

#[test]
fn chunked_file_cut_short_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let chunk = 1u64 << 20;
    let write_chunks = |sizes: &[u64]| {
        for i in 0..4 {
            let _ = std::fs::remove_file(dir.path().join(format!("disk.img.{i:09}")));
        }
        for (i, &n) in sizes.iter().enumerate() {
            let name = dir.path().join(format!("disk.img.{i:09}"));
            std::fs::write(name, vec![7u8; n as usize]).unwrap();
        }
    };
    let attrs = format!(r#"ovf:size="{}" ovf:chunkSize="{chunk}""#, 3 * chunk);
    let ovf = write_package(dir.path(), &attrs, 3 * chunk);
    write_chunks(&[chunk, chunk, chunk]);
    assert_eq!(open_disk0(&ovf, dir.path()), Ok(3 * chunk));
    // The last chunk missing.
    write_chunks(&[chunk, chunk]);
    let err = open_disk0(&ovf, dir.path()).unwrap_err();
    assert!(
        err.contains("bytes but the descriptor says") || err.contains("chunk"),
        "{err}"
    );
    // A middle chunk cut short, the total made up by a longer last one.
    write_chunks(&[chunk, chunk / 2, chunk + chunk / 2]);
    let err = open_disk0(&ovf, dir.path()).unwrap_err();
    assert!(err.contains("chunk 1"), "{err}");
    // No declared size: a missing last chunk could not be noticed.
    let ovf = write_package(
        dir.path(),
        &format!(r#"ovf:chunkSize="{chunk}""#),
        3 * chunk,
    );
    write_chunks(&[chunk, chunk]);
    let err = open_disk0(&ovf, dir.path()).unwrap_err();
    assert!(err.contains("must declare its total ovf:size"), "{err}");
}

#[test]
fn own_files_are_found_by_inode_and_by_folder_and_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("disk.img"), vec![0u8; 4096]).unwrap();
    let ovf = write_package(dir.path(), "", 4096);
    let pkg = Package::open(&ovf).unwrap();
    use ovf_loader::own_files::package_file_at;
    let d = dir.path();
    assert!(package_file_at(&pkg, &d.join("disk.img")).is_some());
    assert!(package_file_at(&pkg, &d.join("./disk.img")).is_some());
    assert!(package_file_at(&pkg, &d.join("vm.ovf")).is_some());
    std::fs::create_dir(d.join("other")).unwrap();
    std::os::unix::fs::symlink(d.join("disk.img"), d.join("other/link.img")).unwrap();
    assert!(package_file_at(&pkg, &d.join("other/link.img")).is_some());
    std::fs::hard_link(d.join("disk.img"), d.join("other/hard.img")).unwrap();
    assert!(package_file_at(&pkg, &d.join("other/hard.img")).is_some());
    std::os::unix::fs::symlink(d, d.join("other/up")).unwrap();
    assert!(package_file_at(&pkg, &d.join("other/up/disk.img")).is_some());
    assert!(package_file_at(&pkg, &d.join("other/new.raw")).is_none());
    assert!(package_file_at(&pkg, &d.join("out.raw")).is_none());
}

#[test]
fn verify_cache_notices_bytes_changed_with_mtime_put_back() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    std::fs::write(&disk, vec![1u8; 1 << 20]).unwrap();
    let ovf = write_package(dir.path(), "", 1 << 20);
    let cache = VerifyCache::at(&dir.path().join("verified"));
    let pkg = Package::open(&ovf).unwrap();
    cache.remember(&pkg, "opts");
    assert!(cache.is_verified(&pkg, "opts"));
    let mtime = std::fs::metadata(&disk).unwrap().modified().unwrap();
    // Same size, one byte changed, modification time put back.
    std::thread::sleep(Duration::from_millis(20));
    let f = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"X", 12345).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    assert_eq!(std::fs::metadata(&disk).unwrap().modified().unwrap(), mtime);
    let pkg = Package::open(&ovf).unwrap();
    assert!(
        !cache.is_verified(&pkg, "opts"),
        "the tampered package must be hashed again"
    );
}
