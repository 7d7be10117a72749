//! Tests for the GRUB interpreter, on generated Debian and Fedora configs.
use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn expansion_splits_unquoted_and_drops_empty() {
    let e = env(&[("a", "x y"), ("e", "")]);
    let w = |s: &str| match &parse(s)[0] {
        Stmt::Cmd(w) => expand_all(w, &e),
        _ => panic!(),
    };
    assert_eq!(w("cmd $a \"$a\" $e z"), vec!["cmd", "x", "y", "x y", "z"]);
    assert_eq!(w("cmd p${a}q"), vec!["cmd", "px", "yq"]);
}

#[test]
fn tests_evaluate() {
    let v = |s: &[&str]| eval_test(s.iter().map(|s| s.to_string()).collect());
    assert!(v(&["x", "=", "x", "]"]));
    assert!(!v(&["", "]"]));
    assert!(v(&["!", "-z", "a", "]"]));
    assert!(v(&["-s", "/boot/grub/grubenv", "]"]));
    assert!(v(&["3", "-gt", "1"]));
}

#[test]
fn submenu_path_and_ids() {
    let cfg = "set default='1>1'\nmenuentry A --id a { linux /a }\nsubmenu S --id s {\n menuentry B --id b { linux /b }\n menuentry C --id c { linux /c x=1\n initrd /ic }\n}\n";
    let m = read_menu(cfg, &HashMap::new());
    let c = choose(&m, &m.items).unwrap();
    assert_eq!(c.entry.kernel, "/c");
    assert_eq!(c.entry.initrds, vec!["/ic"]);
    assert_eq!(c.entry.args, "x=1");
    let m2 = GrubMenu {
        default: "s>b".into(),
        ..m.clone()
    };
    assert_eq!(choose(&m2, &m2.items).unwrap().entry.kernel, "/b");
    let m3 = GrubMenu {
        default: "A".into(),
        ..m.clone()
    };
    assert_eq!(choose(&m3, &m3.items).unwrap().entry.kernel, "/a");
    let m4 = GrubMenu {
        default: "nope".into(),
        ..m
    };
    let c = choose(&m4, &m4.items).unwrap();
    assert_eq!(c.entry.kernel, "/a");
    assert!(c.reason.contains("falls back"));
}

#[test]
fn search_sets_root_per_entry() {
    let cfg = "menuentry X {\n set root='hd0,msdos1'\n search --no-floppy --fs-uuid --set=root abcd\n linux ($root)/vmlinuz ro\n}\n";
    let m = read_menu(cfg, &HashMap::new());
    let c = choose(&m, &m.items).unwrap();
    assert_eq!(c.entry.device.as_deref(), Some("uuid=abcd"));
    assert_eq!(c.entry.kernel, "(uuid=abcd)/vmlinuz");
}

const DEBIAN: &str = include_str!("../../tests/data/debian-bookworm-grub.cfg");
const UUID: &str = "6f0b8f1e-5e2a-4b3c-9d8e-7f6a5b4c3d2e";

#[test]
fn debian_generated_default_is_first_entry() {
    let m = read_menu(DEBIAN, &HashMap::new());
    assert_eq!(m.default, "0");
    assert_eq!(m.items.len(), 2);
    let MenuItem::Submenu { id, items, .. } = &m.items[1] else {
        panic!("{:?}", m.items[1])
    };
    assert_eq!(id.as_deref(), Some(&*format!("gnulinux-advanced-{UUID}")));
    assert_eq!(items.len(), 4);
    let c = choose(&m, &m.items).unwrap();
    assert_eq!(c.entry.title, "Debian GNU/Linux");
    assert_eq!(
        c.entry.id.as_deref(),
        Some(&*format!("gnulinux-simple-{UUID}"))
    );
    assert_eq!(c.entry.kernel, "/boot/vmlinuz-6.1.0-13-amd64");
    assert_eq!(c.entry.initrds, vec!["/boot/initrd.img-6.1.0-13-amd64"]);
    assert_eq!(
        c.entry.args,
        format!("root=UUID={UUID} ro console=tty0 console=ttyS0,115200n8 quiet")
    );
    assert_eq!(c.entry.device, Some(format!("uuid={UUID}")));
}

#[test]
fn debian_saved_entry_walks_into_submenu() {
    let env = crate::config::grubenv::parse(include_bytes!("../../tests/data/debian-grubenv"));
    let cfg = include_str!("../../tests/data/debian-bookworm-grub-saved.cfg");
    let m = read_menu(cfg, &env);
    assert_eq!(m.default_source, "grubenv saved_entry");
    let c = choose(&m, &m.items).unwrap();
    assert_eq!(c.entry.kernel, "/boot/vmlinuz-6.1.0-12-amd64");
    assert!(c.reason.contains("1 \"Advanced options for Debian GNU/Linux\" > 2 \"Debian GNU/Linux, with Linux 6.1.0-12-amd64\""), "{}", c.reason);
}

#[test]
fn next_entry_wins_over_default() {
    let env: HashMap<String, String> = [("next_entry".to_string(), "1>1".to_string())].into();
    let m = read_menu(DEBIAN, &env);
    assert_eq!(m.default_source, "grubenv next_entry");
    assert!(choose(&m, &m.items).unwrap().entry.args.contains("single"));
}

#[test]
fn fedora_blscfg_placeholder_and_saved_default() {
    let env = crate::config::grubenv::parse(include_bytes!(
        "../../tests/data/fedora-bls/boot/grub2/grubenv"
    ));
    let m = read_menu(
        include_str!("../../tests/data/fedora-bls/boot/grub2/grub.cfg"),
        &env,
    );
    assert_eq!(
        m.items,
        vec![MenuItem::Bls {
            root: Some("uuid=9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a".into())
        }]
    );
    assert_eq!(
        m.default,
        "8a4f7c2e1b9d4e3f8c6a5b4d3e2f1a0b-6.5.6-300.fc39.x86_64"
    );
}

#[test]
fn hostile_scripts_stay_bounded() {
    // Doubling a value, thousands of variables, then many entries copying them.
    let mut cfg = String::from("set a=xxxxxxxxxxxxxxxx\n");
    cfg.push_str(&"set a=$a$a$a$a\n".repeat(200));
    for i in 0..2000 {
        cfg.push_str(&format!("set v{i}=$a\n"));
    }
    cfg.push_str(&"menuentry x { linux /k $a }\n".repeat(20_000));
    let m = read_menu(&cfg, &HashMap::new());
    assert!(m.items.len() < 20_000, "the statement budget must stop it");
    if let Some(MenuItem::Entry { boot: Some(b), .. }) = m.items.first() {
        assert!(b.args.len() <= MAX_VALUE + 1);
    }
}

#[test]
fn efi_stubs_hand_over_with_root_and_prefix() {
    // Debian's signed GRUB stub, as grub-install writes it on the ESP.
    let debian = "search.fs_uuid 0b1c2d3e-aaaa-4bbb-8ccc-123456789abc root hd0,gpt2 \nset prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n";
    let m = read_menu(debian, &env(&[]));
    assert!(m.items.is_empty());
    let n = m.next.unwrap();
    assert_eq!(n.command, "configfile");
    assert_eq!(
        n.path,
        "(uuid=0b1c2d3e-aaaa-4bbb-8ccc-123456789abc)/boot/grub/grub.cfg"
    );
    assert_eq!(
        n.root.as_deref(),
        Some("uuid=0b1c2d3e-aaaa-4bbb-8ccc-123456789abc")
    );
    // Fedora's, with --set=dev and an export.
    let fedora = "search --no-floppy --root-dev-only --fs-uuid --set=dev 1111-2222\nset prefix=($dev)/grub2\nexport $prefix\nconfigfile $prefix/grub.cfg\nmenuentry never { linux /x }\n";
    let m = read_menu(fedora, &env(&[]));
    assert!(m.items.is_empty(), "nothing after configfile runs");
    assert_eq!(m.next.unwrap().path, "(uuid=1111-2222)/grub2/grub.cfg");
    // The followed file starts with the stub's root and prefix.
    let from = NextConfig {
        command: "configfile".into(),
        path: "/boot/grub/grub.cfg".into(),
        root: Some("hd0,gpt2".into()),
        prefix: Some("(hd0,gpt2)/boot/grub".into()),
    };
    let m = read_menu_from(
        "menuentry L { linux $prefix/../vmlinuz }\n",
        &env(&[]),
        Some(&from),
    );
    let c = choose(&m, &m.items).unwrap();
    assert_eq!(c.entry.kernel, "(hd0,gpt2)/boot/grub/../vmlinuz");
    assert_eq!(c.entry.device.as_deref(), Some("hd0,gpt2"));
}

#[test]
fn source_after_entries_or_inside_them_is_not_a_hand_over() {
    let m = read_menu(
        "menuentry A { linux /a }\nif [ -f $prefix/custom.cfg ]; then source $prefix/custom.cfg; fi\nmenuentry B { configfile /x; linux /b }\n",
        &env(&[]),
    );
    assert_eq!(m.next, None);
    assert_eq!(m.items.len(), 2, "source does not stop the script");
    let m = read_menu("source /a.cfg\nmenuentry A { linux /a }\n", &env(&[]));
    assert_eq!(m.next.as_ref().map(|n| n.path.as_str()), Some("/a.cfg"));
}
