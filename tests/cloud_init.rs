//! The OVF environment reaches cloud-init (issue 14): the cloudinit test
//! appliance (built like Ubuntu's cloud OVAs by `scripts/build-appliance
//! cloudinit`: Debian's cloud-init with `datasource_list: [ OVF, None ]`, no
//! host name on its disk, `ovf:transport="iso"`) boots in the KVM test host
//! with `--prop hostname=sandbox-42 --prop instance-id=i-42` and a base64
//! `user-data` property; cloud-init must find ovf-env.xml on the CD-ROM
//! ovf-run attaches, set the host name and instance id from it, and run the
//! user-data (a file written, a line printed). Driven by
//! `tests/cloud_init/inside.sh` in one test host job.

use testbed::{appliance_path, runner_or_fail, scratch_dir, RunOptions, Variant};

#[test]
fn cloud_init_takes_hostname_instance_id_and_user_data_from_the_ovf_environment() {
    let runner = runner_or_fail();
    let ova = appliance_path(Variant::Cloudinit).unwrap_or_else(|e| panic!("{e}"));
    let dir = scratch_dir("cloud-init").expect("scratch directory");
    let work = dir.path();
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
