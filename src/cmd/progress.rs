//! Progress bars on a terminal, silence otherwise.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;

/// A byte-count bar that follows whichever file is being processed.
pub struct ByteProgress {
    bar: Option<ProgressBar>,
    current: Mutex<String>,
}

impl ByteProgress {
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:30!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        });
        ByteProgress {
            bar,
            current: Mutex::new(String::new()),
        }
    }

    pub fn update(&self, name: &str, done: u64, total: u64) {
        let Some(bar) = &self.bar else { return };
        if let Ok(mut current) = self.current.lock() {
            if *current != name {
                *current = name.to_string();
                bar.set_message(name.to_string());
                bar.set_length(total);
            }
        }
        bar.set_position(done);
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
