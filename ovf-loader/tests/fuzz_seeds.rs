//! Every committed input of the ovf-loader fuzz targets
//! (`ovf-loader/fuzz/seeds`, `.../regressions`), replayed as the targets do.

#[path = "../fuzz/harness/chunks.rs"]
mod chunks;
#[path = "../../tests/support/fuzz_inputs.rs"]
mod fuzz_inputs;
#[path = "../fuzz/harness/gzip.rs"]
mod gzip;

use std::path::Path;

fn fuzz_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz"))
}

#[test]
fn descriptor_inputs() {
    for (path, data) in fuzz_inputs::inputs(fuzz_dir(), "descriptor") {
        eprintln!("{}", path.display());
        if let Ok(env) = ovf_loader::model::parse_descriptor(&data) {
            for vs in env.systems() {
                let _ = ovf_loader::machine_spec(&env, Some(&vs.id), None);
            }
        }
    }
}

#[test]
fn tar_index_inputs() {
    for (path, data) in fuzz_inputs::inputs(fuzz_dir(), "tar_index") {
        let members = ovf_loader::tar_index::index(&data[..])
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for m in members {
            assert!(m.offset + m.size <= data.len() as u64);
        }
    }
}

#[test]
fn manifest_inputs() {
    for (path, data) in fuzz_inputs::inputs(fuzz_dir(), "manifest") {
        eprintln!("{}", path.display());
        let _ = ovf_loader::manifest::parse("fuzz.mf", &data);
    }
}

#[test]
fn certificate_inputs() {
    const MANIFEST: &[u8] = b"SHA256(vm.ovf)= 00\n";
    for (path, data) in fuzz_inputs::inputs(fuzz_dir(), "certificate") {
        let checked = ovf_loader::cert::check("fuzz.cert", &data, "vm.mf", MANIFEST, Some(&data));
        eprintln!("{}: {:?}", path.display(), checked.as_ref().err());
        if path.ends_with("self-signed-rsa.cert") {
            // Signed correctly; trusted only because it is given as trust.
            assert!(checked.is_ok(), "{checked:?}");
        }
    }
}

#[test]
fn gzip_inputs() {
    for (path, data) in fuzz_inputs::inputs(fuzz_dir(), "gzip") {
        eprintln!("{}", path.display());
        gzip::run(&data);
    }
}

#[test]
fn chunks_inputs() {
    for (path, data) in fuzz_inputs::inputs(fuzz_dir(), "chunks") {
        eprintln!("{}", path.display());
        chunks::run(&data);
    }
}
