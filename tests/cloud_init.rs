//! The OVF environment reaches cloud-init (issue 14): the cloudinit test
//! appliance (built like Ubuntu's cloud OVAs by `scripts/build-appliance
//! cloudinit`: Debian's cloud-init with `datasource_list: [ OVF, None ]`, no
//! host name on its disk, `ovf:transport="iso"`) boots in the KVM test host
//! with `--prop hostname=sandbox-42 --prop instance-id=i-42` and a base64
//! `user-data` property; cloud-init must find ovf-env.xml on the CD-ROM
//! ovf-run attaches, set the host name and instance id from it, and run the
//! user-data (a file written, a line printed). Driven by
//! `tests/cloud_init/inside.sh` in one test host job.
//!
//! The same job first mounts the environment's ISO image with the test
//! host's own kernel (`mount -t iso9660 -o loop`): the image the library
//! plans for this appliance (with a password full of XML metacharacters)
//! is written to the shared directory here, and the job checks the volume
//! label and that the mounted `ovf-env.xml` is byte for byte the planned
//! document.

use testbed::{appliance_path, runner_or_fail, scratch_dir, RunOptions, Variant};

#[test]
fn cloud_init_takes_hostname_instance_id_and_user_data_from_the_ovf_environment() {
    let runner = runner_or_fail();
    let ova = appliance_path(Variant::Cloudinit).unwrap_or_else(|e| panic!("{e}"));
    let dir = scratch_dir("cloud-init").expect("scratch directory");
    let work = dir.path();
    write_environment_iso(&ova, work);
    let script = testbed::repo_root().join("tests/cloud_init/inside.sh");
    let args = [
        "bash".to_string(),
        script.display().to_string(),
        work.display().to_string(),
        env!("CARGO_BIN_EXE_ovf-run").to_string(),
        ova.display().to_string(),
    ];
    let opts = RunOptions {
        timeout: std::time::Duration::from_secs(1800),
        mem_mib: None,
        share: Some(work.to_path_buf()),
    };
    let out = runner.run(&opts, &args).expect("run scripts/kvm-run");
    let console = std::fs::read_to_string(work.join("console")).unwrap_or_default();
    let stderr = std::fs::read_to_string(work.join("stderr")).unwrap_or_default();
    let ctx = format!(
        "status {}\nstdout:\n{}\nstderr:\n{}\novf-run stderr:\n{stderr}\nconsole:\n{console}",
        out.status, out.stdout, out.stderr
    );
    assert!(
        out.stdout.contains("CLOUD-INIT-TEST iso ok label=OVF ENV ovf-env.xml matches"),
        "the test host's kernel did not mount the environment's ISO image with the planned ovf-env.xml on it:\n{ctx}"
    );
    assert!(
        console.contains("OVF-RUN-CLOUD-READY host=sandbox-42 instance-id=i-42"),
        "cloud-init did not take the host name and instance id from the OVF environment:\n{ctx}"
    );
    assert!(
        console.contains("OVF-RUN-USERDATA written-by-user-data on sandbox-42"),
        "the user-data property did not take effect:\n{ctx}"
    );
    // 143 = 128 + SIGTERM: ovf-run stopped on the script's signal after
    // the guest powered off on the ACPI power button.
    assert!(
        out.status == 0 && out.stdout.contains("CLOUD-INIT-TEST ovf-run exited 143"),
        "the appliance did not stop cleanly:\n{ctx}"
    );
    eprintln!("{}", out.stdout);
}

/// Plan the appliance through the library (nothing started) and write its
/// environment CD-ROM's bytes to `WORK/env.iso` and the planned
/// `ovf-env.xml` to `WORK/env.xml`, for the job to mount and compare.
fn write_environment_iso(ova: &std::path::Path, work: &std::path::Path) {
    use ovf_run::{Appliance, LaunchOptions};
    // Overlays and caches of the plan in this test's own directory.
    std::env::set_var("XDG_CACHE_HOME", work.join("plan-cache"));
    let app = Appliance::open(ova).expect("open the cloudinit appliance");
    let mut opts = LaunchOptions::default();
    opts.accept_eula = true;
    opts.skip_verify = true;
    for (key, value) in [
        ("hostname", "sandbox-42"),
        ("instance-id", "i-42"),
        ("password", "p<a&s>s\"w'o]]>rd"),
    ] {
        opts.properties
            .push(format!("{key}={value}").parse().expect("KEY=VALUE"));
    }
    let plan = app.plan(&opts).expect("plan the cloudinit appliance");
    let xml = plan
        .environment_xml()
        .expect("an environment document")
        .to_vec();
    let text = String::from_utf8(xml.clone()).expect("UTF-8 document");
    assert!(
        text.contains("p&lt;a&amp;s&gt;s&quot;w&apos;o]]&gt;rd"),
        "the password is not escaped in the document:\n{text}"
    );
    let [cd] = plan.cdroms.as_slice() else {
        panic!(
            "one environment CD-ROM expected, the plan has {}",
            plan.cdroms.len()
        );
    };
    let mut image = vec![0u8; cd.source.capacity() as usize];
    cd.source
        .read_at(&mut image, 0)
        .expect("read the CD-ROM image");
    std::fs::write(work.join("env.iso"), image).expect("write env.iso");
    std::fs::write(work.join("env.xml"), xml).expect("write env.xml");
    drop(plan);
    std::env::remove_var("XDG_CACHE_HOME");
}
