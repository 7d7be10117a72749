use super::*;
use std::process::Command;

fn checksum_ok(b: &[u8]) -> bool {
    b.iter().fold(0u8, |a, x| a.wrapping_add(*x)) == 0
}

#[test]
fn tables_have_valid_checksums_and_links() {
    let t = build_tables(2, ACPI_TABLES_ADDR, true);
    let rsdp = &t[0].1;
    assert_eq!(&rsdp[0..8], b"RSD PTR ");
    assert!(checksum_ok(&rsdp[0..20]) && checksum_ok(rsdp));
    let xsdt_addr = u64::from_le_bytes(rsdp[24..32].try_into().unwrap());
    let xsdt = &t.iter().find(|(a, _)| *a == xsdt_addr).unwrap().1;
    assert_eq!(&xsdt[0..4], b"XSDT");
    for (_, b) in &t[1..] {
        assert!(checksum_ok(b), "{}", String::from_utf8_lossy(&b[0..4]));
        assert_eq!(
            u32::from_le_bytes(b[4..8].try_into().unwrap()) as usize,
            b.len()
        );
    }
    let madt = &t.iter().find(|(_, b)| &b[0..4] == b"APIC").unwrap().1;
    let lapics = madt[44..].chunks(1).count();
    assert!(lapics > 0);
}

/// `iasl -d` must disassemble every table without errors (acpica-tools).
#[test]
fn tables_disassemble_with_iasl() {
    if Command::new("iasl").arg("-v").output().is_err() {
        panic!("iasl is missing: apt-get install acpica-tools");
    }
    let dir = std::env::temp_dir().join(format!("ovf-run-acpi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let t = build_tables(4, ACPI_TABLES_ADDR, true);
    for (_, b) in &t[1..] {
        let sig = String::from_utf8_lossy(&b[0..4]).to_string();
        let path = dir.join(format!("{sig}.dat"));
        std::fs::write(&path, b).unwrap();
        let out = Command::new("iasl")
            .arg("-d")
            .arg(&path)
            .current_dir(&dir)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "iasl -d {sig} failed:\n{text}");
        assert!(
            !text.contains("Error") || text.contains(" 0 Errors"),
            "{sig}:\n{text}"
        );
        let dsl = std::fs::read_to_string(dir.join(format!("{sig}.dsl"))).unwrap();
        if sig == "DSDT" {
            for needle in [
                "PNP0501",
                "PNP0A08",
                "_S5_",
                "ACPI0013",
                "PNP0C0C",
                "\"VMGENCTR\"",
                "Name (ADDR, Package (0x02)",
                "If ((Arg0 == 0x0A))",
                "Notify (\\_SB.VGEN, 0x80)",
                "Notify (\\_SB.PWRB, 0x80)",
            ] {
                assert!(dsl.contains(needle), "DSDT lacks {needle}:\n{dsl}");
            }
        }
        if sig == "FACP" {
            assert!(dsl.contains("Hardware Reduced (V5) : 1"), "{dsl}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
