//! The state file round-trips, and every damaged file is a clear error:
//! each length it can be cut to, a flip of each header byte and of bytes
//! all through the body, another format version, bytes appended, a body
//! that is not a snapshot. Also replays the fuzz target's committed
//! regression inputs (`snapshot/fuzz/regressions/state_file`).

use kvm_bindings::{kvm_cpuid_entry2, kvm_msr_entry};
use snapshot::format::{decode_body, HEADER_LEN, MAGIC};
use snapshot::{decode, encode, DeviceState, MemoryRegion, Meta, Snapshot, StateFileError};
use snapshot::{VcpuState, VmState};

fn sample() -> Snapshot {
    let mut vcpu = VcpuState {
        id: 0,
        cpuid: vec![kvm_cpuid_entry2 {
            function: 7,
            ebx: 0x1234,
            ..Default::default()
        }],
        regs: Default::default(),
        sregs: Default::default(),
        xsave: Default::default(),
        xcrs: Default::default(),
        msrs: vec![kvm_msr_entry {
            index: 0x10,
            data: 0xdead_beef,
            ..Default::default()
        }],
        lapic: Default::default(),
        mp_state: Default::default(),
        events: Default::default(),
        debugregs: Default::default(),
    };
    vcpu.regs.rip = 0xffff_ffff_8100_0000;
    vcpu.sregs.cr3 = 0x1000;
    vcpu.xsave.region[3] = 0x55;
    vcpu.lapic.regs[0x20] = 7;
    let mut vm = VmState {
        pic_master: Default::default(),
        pic_slave: Default::default(),
        ioapic: Default::default(),
        pit: Default::default(),
        clock: Default::default(),
    };
    vm.ioapic.chip_id = 2;
    vm.clock.clock = 123_456_789;
    Snapshot {
        meta: Meta {
            writer_version: "0.1.0".into(),
            taken_unix: 1_800_000_000,
            cpu_vendor: "AuthenticAMD".into(),
            tsc_khz: 2_500_000,
        },
        vcpus: vec![vcpu.clone(), VcpuState { id: 1, ..vcpu }],
        vm,
        devices: vec![DeviceState {
            id: "serial0".into(),
            version: 1,
            data: vec![1, 2, 3],
        }],
        memory: vec![MemoryRegion {
            guest_addr: 0,
            size: 768 << 20,
            file_offset: 0,
        }],
        launch: b"launch record".to_vec(),
    }
}

#[test]
fn a_snapshot_round_trips() {
    let s = sample();
    let back = decode(&encode(&s)).expect("decode");
    assert_eq!(back.meta, s.meta);
    assert_eq!(back.vcpus.len(), 2);
    assert_eq!(back.vcpus[1].id, 1);
    assert_eq!(back.vcpus[0].regs.rip, 0xffff_ffff_8100_0000);
    assert_eq!(back.vcpus[0].sregs.cr3, 0x1000);
    assert_eq!(back.vcpus[0].xsave.region[3], 0x55);
    assert_eq!(back.vcpus[0].lapic.regs[0x20], 7);
    assert_eq!(back.vcpus[0].cpuid[0].ebx, 0x1234);
    assert_eq!(back.vcpus[0].msrs[0].data, 0xdead_beef);
    assert_eq!(back.vm.ioapic.chip_id, 2);
    assert_eq!(back.vm.clock.clock, 123_456_789);
    assert_eq!(back.devices, s.devices);
    assert_eq!(back.memory, s.memory);
    assert_eq!(back.launch, s.launch);
}

#[test]
fn every_cut_is_an_error() {
    let file = encode(&sample());
    for len in 0..file.len() {
        match decode(&file[..len]) {
            Err(StateFileError::Truncated { needed, got }) => {
                assert_eq!(got, len as u64);
                assert!(needed > got);
            }
            other => panic!("cut to {len} of {}: {other:?}", file.len()),
        }
    }
}

#[test]
fn every_flipped_byte_is_an_error() {
    let file = encode(&sample());
    // Every header byte, and every 7th byte of the body (the body is ~10 KiB).
    let positions = (0..HEADER_LEN).chain((HEADER_LEN..file.len()).step_by(7));
    for pos in positions {
        let mut bad = file.clone();
        bad[pos] ^= 0x40;
        let err = decode(&bad).expect_err(&format!("byte {pos} flipped"));
        let expected = match pos {
            0..8 => matches!(err, StateFileError::NotASnapshot),
            8..12 => matches!(err, StateFileError::Version { .. }),
            // A longer length: cut short; a shorter one: bytes after the end.
            12..20 => matches!(
                err,
                StateFileError::Truncated { .. }
                    | StateFileError::TrailingBytes { .. }
                    | StateFileError::TooLarge { .. }
            ),
            _ => matches!(err, StateFileError::Corrupt),
        };
        assert!(expected, "byte {pos} flipped gave {err:?}");
    }
}

#[test]
fn other_versions_and_strangers_are_named() {
    let mut file = encode(&sample());
    file[8..12].copy_from_slice(&7u32.to_le_bytes());
    let err = decode(&file).unwrap_err();
    assert_eq!(
        err,
        StateFileError::Version {
            found: 7,
            supported: 1
        }
    );
    assert!(err.to_string().contains("take the snapshot again"), "{err}");
    assert_eq!(
        decode(b"\x7fELF not a snapshot at all, longer than a header.....").unwrap_err(),
        StateFileError::NotASnapshot
    );
    assert!(matches!(
        decode(&MAGIC[..5]),
        Err(StateFileError::Truncated { .. })
    ));
    let mut longer = encode(&sample());
    longer.extend_from_slice(b"xyz");
    assert_eq!(
        decode(&longer).unwrap_err(),
        StateFileError::TrailingBytes { extra: 3 }
    );
}

#[test]
fn bodies_that_are_not_snapshots_do_not_decode() {
    let body = &encode(&sample())[HEADER_LEN..];
    for len in [0, 1, 10, body.len() / 2, body.len() - 1] {
        assert!(
            matches!(decode_body(&body[..len]), Err(StateFileError::Decode(_))),
            "body cut to {len}"
        );
    }
    // A length prefix claiming billions of vCPUs must fail, not allocate.
    let mut huge = body.to_vec();
    huge.splice(0..0, [0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(decode_body(&huge).is_err());
}

#[test]
fn fuzz_regressions_replay() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/state_file");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return; // none committed yet
    };
    for entry in entries {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let _ = decode(&bytes);
        let _ = decode_body(&bytes);
    }
}

/// The fuzz target's seeds are state files of this format version (after a
/// format change, rewrite them: `SNAPSHOT_WRITE_SEEDS=1 cargo test -p
/// snapshot --test state_file fuzz_seeds`).
#[test]
fn fuzz_seeds_are_current() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/state_file");
    let file = encode(&sample());
    if std::env::var_os("SNAPSHOT_WRITE_SEEDS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("two-vcpus.state"), &file).unwrap();
        std::fs::write(dir.join("two-vcpus.body"), &file[HEADER_LEN..]).unwrap();
    }
    let seed = std::fs::read(dir.join("two-vcpus.state")).expect("committed seed");
    decode(&seed).expect("the seed is a current state file");
    decode_body(&std::fs::read(dir.join("two-vcpus.body")).unwrap()).expect("the body seed");
}
