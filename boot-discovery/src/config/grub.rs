//! GRUB 2 `grub.cfg`: run the parsed script just far enough to learn the
//! menu (titles, ids, `linux`/`initrd` lines, `$root` per entry) and which
//! entry GRUB would boot by default.
//!
//! The interpreter evaluates `set`, `search`, `if` conditions of the `[ ]`
//! kind, `load_env` (the grubenv values are supplied up front), and the
//! bodies of menu entries. It pretends to be a BIOS GRUB with every
//! `feature_*` flag, which is what `grub-mkconfig` output branches on.

use super::grub_script::{parse, BlockKind, Part, Stmt, Word};
use super::BootEntry;
use std::collections::HashMap;

/// One item of a GRUB menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenuItem {
    Entry {
        title: String,
        id: Option<String>,
        boot: Option<BootEntry>,
    },
    Submenu {
        title: String,
        id: Option<String>,
        items: Vec<MenuItem>,
    },
    /// Where `blscfg` ran: Boot Loader Spec entries go here, read from the
    /// device `$root` named then (GRUB's own blscfg module does the same).
    Bls { root: Option<String> },
}

impl MenuItem {
    fn title(&self) -> &str {
        match self {
            MenuItem::Entry { title, .. } | MenuItem::Submenu { title, .. } => title,
            MenuItem::Bls { .. } => "",
        }
    }
    fn id(&self) -> Option<&str> {
        match self {
            MenuItem::Entry { id, .. } | MenuItem::Submenu { id, .. } => id.as_deref(),
            MenuItem::Bls { .. } => None,
        }
    }
}

/// The menu and the default as GRUB would compute them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrubMenu {
    pub items: Vec<MenuItem>,
    /// Value of `default` after the script ran (empty = first entry).
    pub default: String,
    /// Whether `default` came from grubenv's `next_entry`/`saved_entry`.
    pub default_source: String,
    /// The file a `configfile` or `source` at the top level handed over
    /// to before any menu entry was defined: the EFI stub `grub.cfg` an
    /// ESP holds. `None` when the script has its own menu.
    pub next: Option<NextConfig>,
}

/// Where a stub config goes on, expanded as GRUB would at that point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextConfig {
    /// `configfile` or `source`.
    pub command: String,
    /// The path as expanded, maybe with a device: `(uuid=…)/boot/grub/grub.cfg`.
    pub path: String,
    /// `$root` and `$prefix` then, which the next file starts with.
    pub root: Option<String>,
    pub prefix: Option<String>,
}

type Env = HashMap<String, String>;

/// What a BIOS GRUB 2.06 built by a distribution reports about itself.
fn initial_env(grubenv: &HashMap<String, String>) -> Env {
    let mut env: Env = grubenv.clone();
    for f in [
        "feature_menuentry_id",
        "feature_default_font_path",
        "feature_all_video_module",
        "feature_platform_search_hint",
        "feature_timeout_style",
        "feature_chainloader_bpb",
        "feature_ntldr",
        "feature_200_cryptodisk",
        "feature_nativedisk_cmd",
    ] {
        env.insert(f.to_string(), "y".to_string());
    }
    env.insert("grub_platform".into(), "pc".into());
    env.insert("grub_cpu".into(), "i386".into());
    env
}

/// Expand a word into fields: unquoted variables split on whitespace and
/// vanish when empty, quoted text is kept as one field.
fn expand(word: &Word, env: &Env) -> Vec<String> {
    if word.parts.is_empty() {
        return vec![String::new()];
    }
    let mut fields: Vec<String> = Vec::new();
    let mut cur: Option<String> = None;
    for p in &word.parts {
        if cur.as_ref().is_some_and(|c| c.len() > MAX_VALUE) || fields.len() > MAX_VARS {
            break;
        }
        match p {
            Part::Lit(s) => cur.get_or_insert_with(String::new).push_str(s),
            Part::Var { name, quoted: true } => {
                cur.get_or_insert_with(String::new)
                    .push_str(lookup(env, name));
            }
            Part::Var {
                name,
                quoted: false,
            } => {
                let v = lookup(env, name);
                let mut pieces = v.split_whitespace();
                if v.starts_with(char::is_whitespace) {
                    if let Some(c) = cur.take() {
                        fields.push(c);
                    }
                }
                if let Some(first) = pieces.next() {
                    cur.get_or_insert_with(String::new).push_str(first);
                }
                for piece in pieces {
                    if let Some(c) = cur.take() {
                        fields.push(c);
                    }
                    cur = Some(piece.to_string());
                }
                if v.ends_with(char::is_whitespace) && !v.trim().is_empty() {
                    if let Some(c) = cur.take() {
                        fields.push(c);
                    }
                }
            }
        }
    }
    fields.extend(cur);
    fields
}

fn lookup<'a>(env: &'a Env, name: &str) -> &'a str {
    match name {
        "?" => "0",
        _ => env.get(name).map(String::as_str).unwrap_or(""),
    }
}

fn expand_all(words: &[Word], env: &Env) -> Vec<String> {
    words.iter().flat_map(|w| expand(w, env)).collect()
}

/// `[ ... ]` / `test ...`, the forms grub-mkconfig writes. File tests are
/// assumed true: the files they probe (grubenv, fonts) exist on a working
/// install, and nothing that decides the kernel depends on them.
fn eval_test(mut a: Vec<String>) -> bool {
    if a.last().map(String::as_str) == Some("]") {
        a.pop();
    }
    let mut negate = false;
    while a.first().map(String::as_str) == Some("!") {
        negate = !negate;
        a.remove(0);
    }
    let num = |s: &str| s.trim().parse::<i64>().ok();
    let r = match a.as_slice() {
        [] => false,
        [s] => !s.is_empty(),
        [op, s] => match op.as_str() {
            "-n" => !s.is_empty(),
            "-z" => s.is_empty(),
            "-s" | "-f" | "-e" | "-d" => true,
            _ => false,
        },
        [x, op, y] => match op.as_str() {
            "=" | "==" => x == y,
            "!=" => x != y,
            "-eq" | "-ne" | "-lt" | "-gt" | "-le" | "-ge" => match (num(x), num(y)) {
                (Some(x), Some(y)) => match op.as_str() {
                    "-eq" => x == y,
                    "-ne" => x != y,
                    "-lt" => x < y,
                    "-gt" => x > y,
                    "-le" => x <= y,
                    _ => x >= y,
                },
                _ => false,
            },
            _ => false,
        },
        _ => false,
    };
    r != negate
}

/// State of one scope while interpreting.
struct Scope<'a> {
    env: Env,
    items: &'a mut Vec<MenuItem>,
    linux: Option<(String, Vec<String>)>,
    initrds: Vec<String>,
    root_at_linux: Option<String>,
    budget: &'a mut usize,
    /// Only the top level records a hand-over to another file.
    next: Option<&'a mut Option<NextConfig>>,
}

/// Interpret a condition list: the status of its last command.
fn eval_cond(stmts: &[Stmt], env: &Env) -> bool {
    let mut r = false;
    for s in stmts {
        if let Stmt::Cmd(words) = s {
            let w = expand_all(words, env);
            r = match w.first().map(String::as_str) {
                Some("[") | Some("test") => eval_test(w[1..].to_vec()),
                Some("true") => true,
                _ => false,
            };
        }
    }
    r
}

fn run(stmts: &[Stmt], sc: &mut Scope) {
    for s in stmts {
        if *sc.budget == 0 {
            return;
        }
        *sc.budget -= 1;
        match s {
            Stmt::Cmd(words) => command(expand_all(words, &sc.env), sc),
            Stmt::If {
                branches,
                otherwise,
            } => {
                let chosen = branches
                    .iter()
                    .find(|(c, _)| eval_cond(c, &sc.env))
                    .map(|(_, b)| b);
                run(chosen.unwrap_or(otherwise), sc);
            }
            Stmt::Block {
                kind: BlockKind::Function,
                ..
            } => {}
            Stmt::Block { kind, args, body } => {
                // Each block copies the variables: charge that to the budget.
                *sc.budget = sc
                    .budget
                    .saturating_sub(sc.env.len() + env_bytes(&sc.env) / 1024);
                if *sc.budget == 0 {
                    return;
                }
                let args = expand_all(args, &sc.env);
                let (title, id) = title_and_id(&args);
                let mut items = Vec::new();
                let mut inner = Scope {
                    env: sc.env.clone(),
                    items: &mut items,
                    linux: None,
                    initrds: Vec::new(),
                    root_at_linux: None,
                    budget: sc.budget,
                    next: None,
                };
                run(body, &mut inner);
                let boot = inner.linux.take().map(|(kernel, args)| BootEntry {
                    title: title.clone(),
                    id: id.clone(),
                    kernel,
                    initrds: std::mem::take(&mut inner.initrds),
                    args: args.join(" "),
                    device: inner.root_at_linux.take().filter(|r| !r.is_empty()),
                    version: None,
                    efi: false,
                });
                sc.items.push(match kind {
                    BlockKind::Submenu => MenuItem::Submenu { title, id, items },
                    _ => MenuItem::Entry { title, id, boot },
                });
            }
        }
    }
}

fn title_and_id(args: &[String]) -> (String, Option<String>) {
    let mut title = None;
    let mut id = None;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if let Some(v) = a.strip_prefix("--id=") {
            id = Some(v.to_string());
        } else if matches!(
            a.as_str(),
            "--id" | "--class" | "--users" | "--hotkey" | "--source"
        ) {
            if a == "--id" {
                id = args.get(i + 1).cloned();
            }
            i += 1;
        } else if a.starts_with("--") {
        } else if title.is_none() {
            title = Some(a.clone());
        }
        i += 1;
    }
    (title.unwrap_or_default(), id)
}

/// Bounds that keep a hostile script from growing memory: `set a=$a$a`
/// doubles a value per statement.
const MAX_VARS: usize = 1024;
/// Real values (kernel options, ids) are well under a kilobyte.
const MAX_VALUE: usize = 8 * 1024;

/// All variables together; each menu entry copies them.
const MAX_ENV_BYTES: usize = 1 << 20;

fn env_bytes(env: &Env) -> usize {
    env.iter().map(|(k, v)| k.len() + v.len()).sum()
}

fn assign(env: &mut Env, k: &str, v: &str) {
    if env.len() >= MAX_VARS && !env.contains_key(k) {
        return;
    }
    let v = truncate(v);
    let old = env.get(k).map_or(0, |o| k.len() + o.len());
    if env_bytes(env) - old + k.len() + v.len() > MAX_ENV_BYTES {
        return;
    }
    env.insert(k.to_string(), v.to_string());
}

fn truncate(v: &str) -> &str {
    if v.len() <= MAX_VALUE {
        return v;
    }
    let mut end = MAX_VALUE;
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    &v[..end]
}

fn command(w: Vec<String>, sc: &mut Scope) {
    let Some(cmd) = w.first() else { return };
    // `name=value` without `set` is an assignment too (grub-mkconfig uses it).
    if let Some((k, v)) = cmd.split_once('=') {
        if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            assign(&mut sc.env, k, v);
            return;
        }
    }
    match cmd.as_str() {
        "set" => {
            for a in &w[1..] {
                if let Some((k, v)) = a.split_once('=') {
                    assign(&mut sc.env, k, v);
                }
            }
        }
        "unset" => {
            for a in &w[1..] {
                sc.env.remove(a);
            }
        }
        "search" | "search.fs_uuid" | "search.fs_label" | "search.file" => search(&w, sc),
        "linux" | "linux16" | "linuxefi" | "linux32" | "linux64" => {
            if let Some(k) = w.get(1) {
                sc.linux = Some((k.clone(), w[2..].to_vec()));
                sc.root_at_linux = sc.env.get("root").cloned();
            }
        }
        "initrd" | "initrd16" | "initrdefi" | "initrd32" | "initrd64" => {
            sc.initrds = w[1..]
                .iter()
                .filter(|a| !a.starts_with("--"))
                .cloned()
                .collect();
        }
        "blscfg" => sc.items.push(MenuItem::Bls {
            root: sc.env.get("root").cloned(),
        }),
        "configfile" | "source" => hand_over(&w, sc),
        _ => {}
    }
}

/// `configfile FILE` / `source FILE` before any menu entry: record where
/// the menu comes from. `configfile` does not come back (GRUB shows the
/// other file's menu), so interpretation stops there.
fn hand_over(w: &[String], sc: &mut Scope) {
    if sc.next.is_none() || !sc.items.is_empty() {
        return;
    }
    let Some(path) = w.get(1) else { return };
    if let Some(slot) = sc.next.as_deref_mut() {
        *slot = Some(NextConfig {
            command: w[0].clone(),
            path: path.clone(),
            root: sc.env.get("root").cloned(),
            prefix: sc.env.get("prefix").cloned(),
        });
    }
    if w[0] == "configfile" {
        *sc.budget = 0;
    }
}

fn search(w: &[String], sc: &mut Scope) {
    let mut kind = match w[0].as_str() {
        "search.fs_uuid" => "uuid",
        "search.fs_label" => "label",
        _ => "file",
    };
    if w[0] != "search" {
        // search.fs_uuid NAME [VAR]
        if let Some(name) = w.get(1) {
            let var = w.get(2).cloned().unwrap_or_else(|| "root".into());
            sc.env.insert(var, format!("{kind}={name}"));
        }
        return;
    }
    let mut var = None;
    let mut name = None;
    let mut i = 1;
    while i < w.len() {
        let a = w[i].as_str();
        match a {
            "--fs-uuid" | "-u" => kind = "uuid",
            "--label" | "-l" => kind = "label",
            "--file" | "-f" => kind = "file",
            "--set" | "-s" => var = Some("root".to_string()),
            _ if a.starts_with("--set=") => var = Some(a["--set=".len()..].to_string()),
            "--hint" => i += 1,
            _ if a.starts_with('-') => {}
            _ => name = Some(a.to_string()),
        }
        i += 1;
    }
    if let (Some(var), Some(name)) = (var, name) {
        sc.env.insert(var, format!("{kind}={name}"));
    }
}

/// Cap on interpreted statements, so a hostile script cannot spin us.
const STATEMENT_BUDGET: usize = 100_000;

/// Run a `grub.cfg` with the given grubenv values.
pub fn read_menu(cfg: &str, grubenv: &HashMap<String, String>) -> GrubMenu {
    read_menu_from(cfg, grubenv, None)
}

/// Run a `grub.cfg` that a stub's `configfile` led to: `$root` and
/// `$prefix` start as the stub left them.
pub fn read_menu_from(
    cfg: &str,
    grubenv: &HashMap<String, String>,
    from: Option<&NextConfig>,
) -> GrubMenu {
    let script = parse(cfg);
    let mut items = Vec::new();
    let mut budget = STATEMENT_BUDGET;
    let mut next = None;
    let mut env = initial_env(grubenv);
    if let Some(f) = from {
        for (k, v) in [("root", &f.root), ("prefix", &f.prefix)] {
            if let Some(v) = v {
                assign(&mut env, k, v);
            }
        }
    }
    let mut sc = Scope {
        env,
        items: &mut items,
        linux: None,
        initrds: Vec::new(),
        root_at_linux: None,
        budget: &mut budget,
        next: Some(&mut next),
    };
    run(&script, &mut sc);
    let default = sc.env.get("default").cloned().unwrap_or_default();
    let default_source = if grubenv
        .get("next_entry")
        .is_some_and(|v| !v.is_empty() && *v == default)
    {
        "grubenv next_entry".to_string()
    } else if grubenv
        .get("saved_entry")
        .is_some_and(|v| !v.is_empty() && *v == default)
    {
        "grubenv saved_entry".to_string()
    } else {
        "grub.cfg".to_string()
    };
    GrubMenu {
        items,
        default,
        default_source,
        next,
    }
}

/// The entry GRUB boots and a sentence saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice<'a> {
    pub entry: &'a BootEntry,
    pub reason: String,
}

fn find_in<'a>(items: &'a [MenuItem], key: &str) -> Option<(usize, &'a MenuItem)> {
    if let Ok(n) = key.trim().parse::<usize>() {
        return items.get(n).map(|it| (n, it));
    }
    items
        .iter()
        .enumerate()
        .find(|(_, it)| it.id() == Some(key))
        .or_else(|| items.iter().enumerate().find(|(_, it)| it.title() == key))
}

fn first_bootable(items: &[MenuItem]) -> Option<&BootEntry> {
    items.iter().find_map(|it| match it {
        MenuItem::Entry { boot: Some(b), .. } => Some(b),
        MenuItem::Submenu { items, .. } => first_bootable(items),
        _ => None,
    })
}

/// Pick the default entry the way GRUB does: `default` is an index, id or
/// title, with `>` walking into submenus (`1>2`, `gnulinux-advanced-X>gnulinux-6.1-X`).
/// An unknown default falls back to the first entry, as GRUB does.
/// `items` must already have BLS placeholders replaced.
pub fn choose<'a>(menu: &'a GrubMenu, items: &'a [MenuItem]) -> Option<Choice<'a>> {
    let d = menu.default.trim();
    let mut level = items;
    let mut trail = Vec::new();
    let mut found = None;
    if !d.is_empty() {
        for key in d.split('>') {
            match find_in(level, key) {
                Some((n, MenuItem::Submenu { title, items, .. })) => {
                    trail.push(format!("{n} \"{title}\""));
                    level = items;
                    found = None;
                }
                Some((n, MenuItem::Entry { title, boot, .. })) => {
                    trail.push(format!("{n} \"{title}\""));
                    found = boot.as_ref().map(Some);
                    if boot.is_none() {
                        found = Some(None);
                    }
                    break;
                }
                _ => {
                    found = None;
                    trail.clear();
                    break;
                }
            }
        }
    }
    match found {
        Some(Some(entry)) => Some(Choice {
            entry,
            reason: format!(
                "default=\"{d}\" (from {}) selects menu entry {}",
                menu.default_source,
                trail.join(" > ")
            ),
        }),
        Some(None) => first_bootable(items).map(|entry| Choice {
            entry,
            reason: format!(
                "default=\"{d}\" names an entry without a linux line; took the first Linux entry"
            ),
        }),
        None => {
            let entry = if trail.is_empty() {
                first_bootable(items)
            } else {
                first_bootable(level)
            }?;
            let reason = if d.is_empty() || d == "0" {
                "no default set, GRUB boots the first entry".to_string()
            } else if !trail.is_empty() {
                format!(
                    "default=\"{d}\" names submenu {}; took its first entry",
                    trail.join(" > ")
                )
            } else {
                format!("default=\"{d}\" (from {}) matches no entry; GRUB falls back to the first entry", menu.default_source)
            };
            Some(Choice { entry, reason })
        }
    }
}

#[cfg(test)]
#[path = "grub_tests.rs"]
mod tests;
