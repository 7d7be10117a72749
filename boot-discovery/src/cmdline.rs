//! Kernel command-line edits: point the console at the VMM's serial port
//! and apply the user's `--append` / `--cmdline`.
//!
//! The appliance's own command line is kept word for word except for
//! `console=` settings: those name the hypervisor the appliance was built
//! for (`tty0`, `hvc0`, `ttyS1`...), and ovf-run's console is the first
//! 16550 UART, so anything else would leave the user staring at nothing.

/// The console setting ovf-run's serial port needs.
pub const SERIAL_CONSOLE: &str = "console=ttyS0,115200n8";

/// Split a command line into words, keeping double-quoted values (e.g.
/// `dyndbg="file x +p"`) as one word, as the kernel does.
pub fn split_words(cmdline: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    for c in cmdline.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                cur.push(c);
            }
            c if c.is_whitespace() && !in_quotes => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// Remove every `console=` and put ours in the place of the first one (or
/// at the end of the kernel's part, before a `--` that starts init's args).
pub fn serial_cmdline(original: &str) -> String {
    let words = split_words(original);
    let mut out: Vec<String> = Vec::with_capacity(words.len() + 1);
    let mut placed = false;
    let mut init_args_at = None;
    for w in words {
        if init_args_at.is_none() && w == "--" {
            init_args_at = Some(out.len());
        }
        if init_args_at.is_none() && w.starts_with("console=") {
            if !placed {
                out.push(SERIAL_CONSOLE.to_string());
                placed = true;
            }
            continue;
        }
        out.push(w);
    }
    if !placed {
        let at = init_args_at.unwrap_or(out.len());
        out.insert(at, SERIAL_CONSOLE.to_string());
    }
    out.join(" ")
}

/// What the user asked for on ovf-run's own command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CmdlineOverride {
    /// `--cmdline`: replaces the discovered line entirely (used verbatim,
    /// no console rewrite: the user said exactly what they want).
    pub replace: Option<String>,
    /// `--append`: added after the (console-fixed) discovered line.
    pub append: Vec<String>,
}

/// The line to boot with: `--cmdline` if given, else the entry's own with the
/// serial console fixed; then every `--append` in order.
pub fn final_cmdline(discovered: &str, over: &CmdlineOverride) -> String {
    let mut line = match &over.replace {
        Some(r) => r.trim().to_string(),
        None => serial_cmdline(discovered),
    };
    for a in &over.append {
        let a = a.trim();
        if a.is_empty() {
            continue;
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(a);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_all_consoles_in_place_of_the_first() {
        assert_eq!(
            serial_cmdline("root=UUID=abc ro console=tty0 quiet console=ttyS1,9600"),
            "root=UUID=abc ro console=ttyS0,115200n8 quiet"
        );
    }

    #[test]
    fn adds_console_when_absent_and_keeps_everything_else() {
        assert_eq!(
            serial_cmdline("BOOT_IMAGE=/boot/vmlinuz-6.1.0-13-amd64  root=/dev/sda1 ro quiet"),
            "BOOT_IMAGE=/boot/vmlinuz-6.1.0-13-amd64 root=/dev/sda1 ro quiet console=ttyS0,115200n8"
        );
        assert_eq!(serial_cmdline(""), "console=ttyS0,115200n8");
    }

    #[test]
    fn keeps_quoted_values_and_init_args() {
        assert_eq!(
            serial_cmdline("ro dyndbg=\"file a.c +p\" -- single console=foo"),
            "ro dyndbg=\"file a.c +p\" console=ttyS0,115200n8 -- single console=foo"
        );
    }

    #[test]
    fn append_adds_and_cmdline_replaces() {
        let over = CmdlineOverride {
            replace: None,
            append: vec!["systemd.unit=rescue.target".into()],
        };
        assert_eq!(
            final_cmdline("ro console=tty0", &over),
            "ro console=ttyS0,115200n8 systemd.unit=rescue.target"
        );
        let over = CmdlineOverride {
            replace: Some("root=/dev/vda1 console=hvc0".into()),
            append: vec!["x=1".into()],
        };
        assert_eq!(
            final_cmdline("ro console=tty0", &over),
            "root=/dev/vda1 console=hvc0 x=1"
        );
    }
}
