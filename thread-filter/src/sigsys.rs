//! The SIGSYS reporter: a denied system call names itself and ends the
//! process.
//!
//! The handler runs on the thread that made the call, under that thread's
//! filter, so it uses only what every list allows (`write`, `exit_group`)
//! and only data prepared before the filter went on: the thread's kind and
//! name sit in a thread-local set at installation.

use std::cell::Cell;
use std::sync::Once;

use crate::lists::{syscall_name, Kind};

/// Exit status after a denied call: 128 + SIGSYS, as a shell reports a
/// process killed by that signal.
pub const EXIT_STATUS: i32 = 128 + libc::SIGSYS;

thread_local! {
    /// (kind, thread name NUL-padded) of the calling thread.
    static WHO: Cell<(Option<Kind>, [u8; 16])> = const { Cell::new((None, [0; 16])) };
}

static HANDLER: Once = Once::new();

/// Remember who this thread is and make sure the handler is installed.
pub fn install_handler(kind: Kind) -> std::io::Result<()> {
    let mut name = [0u8; 16];
    // SAFETY: PR_GET_NAME writes at most 16 bytes into the buffer.
    unsafe { libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr(), 0, 0, 0) };
    WHO.with(|w| w.set((Some(kind), name)));
    let mut result = Ok(());
    HANDLER.call_once(|| {
        // SAFETY: a plain sigaction with an extern "C" handler that only
        // reads a thread-local, formats into a stack buffer and calls
        // write(2) and exit_group(2).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigsys as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) != 0 {
                result = Err(std::io::Error::last_os_error());
            }
        }
    });
    result
}

/// The system call number a SIGSYS from seccomp carries (`si_syscall`: the
/// int after the `void *si_call_addr` at the start of the union, offset 16
/// on 64-bit Linux).
///
/// # Safety
/// `info` must point to the siginfo of a SIGSYS.
unsafe fn si_syscall(info: *const libc::siginfo_t) -> i64 {
    let base = info as *const u8;
    // SAFETY: siginfo_t is 128 bytes; bytes 24..28 hold si_syscall.
    i64::from(unsafe { std::ptr::read_unaligned(base.add(24) as *const i32) })
}

extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes the SIGSYS siginfo.
    let nr = unsafe { si_syscall(info) };
    let (kind, name) = WHO.with(|w| w.get());
    let mut msg = Msg::default();
    msg.push(b"ovf-run: seccomp: thread ");
    msg.push(name.split(|b| *b == 0).next().unwrap_or(b"?"));
    msg.push(b" (");
    msg.push(kind.map_or("unfiltered", Kind::label).as_bytes());
    msg.push(b") made the forbidden system call ");
    msg.push_number(nr);
    msg.push(b" (");
    msg.push(syscall_name(nr).as_bytes());
    msg.push(b"); stopping. This is a bug of ovf-run: please report it; --seccomp=off runs without the filters.\n");
    // SAFETY: write(2) and exit_group(2) are allowed on every filtered thread.
    unsafe {
        libc::write(2, msg.buf.as_ptr().cast(), msg.len);
        libc::syscall(libc::SYS_exit_group, EXIT_STATUS);
    }
}

/// A fixed buffer to format into without allocating.
struct Msg {
    buf: [u8; 512],
    len: usize,
}

impl Default for Msg {
    fn default() -> Self {
        Msg {
            buf: [0; 512],
            len: 0,
        }
    }
}

impl Msg {
    fn push(&mut self, s: &[u8]) {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }

    fn push_number(&mut self, v: i64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut n = v.unsigned_abs();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if v < 0 {
            self.push(b"-");
        }
        self.push(&digits[i..]);
    }
}
