//! `--prop-file FILE`: property assignments, one `KEY=VALUE` a line.
//!
//! The format (documented in docs/ovf-environment.md):
//! - blank lines and lines whose first non-blank character is `#` are skipped;
//! - `KEY` is everything before the first `=`, without surrounding blanks;
//! - an unquoted `VALUE` is the rest of the line, exactly (no trimming, no
//!   escapes; a CR before the line feed is dropped);
//! - `'…'` single quotes: everything up to the next `'` literally, line feeds
//!   included;
//! - `"…"` double quotes: as in the POSIX shell without expansion: `\"`,
//!   `\\`, `\$` and `` \` `` stand for the character, a backslash before a
//!   line feed joins the lines, any other backslash is kept; line feeds are
//!   kept;
//! - after a closing quote only blanks may follow on the line.
//!
//! The file must be UTF-8 (the OVF environment is UTF-8 XML); it is read
//! whole, up to [`MAX_PROP_FILE_BYTES`].

use super::Assignment;
use std::path::{Path, PathBuf};

/// Larger files are refused (a cloud-init user-data is a few KiB).
pub const MAX_PROP_FILE_BYTES: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PropFileError {
    #[error("--prop-file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--prop-file {}: {size} bytes is more than the {MAX_PROP_FILE_BYTES}-byte limit", path.display())]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{file}:{line}: not UTF-8 text (the OVF environment is UTF-8; convert the file, e.g. with iconv)")]
    NotUtf8 { file: String, line: usize },
    #[error("{file}:{line}: expected KEY=VALUE")]
    NoEquals { file: String, line: usize },
    #[error("{file}:{line}: the {quote} quote opened here is never closed")]
    Unclosed {
        file: String,
        line: usize,
        quote: char,
    },
    #[error("{file}:{line}: text after the closing quote (quote the whole value)")]
    AfterQuote { file: String, line: usize },
}

/// Read and parse a prop file.
pub fn read_prop_file(path: &Path) -> Result<Vec<Assignment>, PropFileError> {
    let io = |source| PropFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size > MAX_PROP_FILE_BYTES {
        return Err(PropFileError::TooLarge {
            path: path.to_path_buf(),
            size,
        });
    }
    let mut bytes = Vec::new();
    use std::io::Read;
    file.take(MAX_PROP_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    parse_prop_file(&path.display().to_string(), &bytes)
}

/// Parse prop-file contents; `file` names it in errors and origins.
pub fn parse_prop_file(file: &str, bytes: &[u8]) -> Result<Vec<Assignment>, PropFileError> {
    let text = std::str::from_utf8(bytes).map_err(|e| PropFileError::NotUtf8 {
        file: file.into(),
        line: 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
    })?;
    let mut p = Parser {
        file,
        chars: text.chars().collect(),
        pos: 0,
        line: 1,
    };
    let mut out = Vec::new();
    while p.pos < p.chars.len() {
        if let Some(a) = p.statement()? {
            out.push(a);
        }
    }
    Ok(out)
}

struct Parser<'a> {
    file: &'a str,
    chars: Vec<char>,
    pos: usize,
    line: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// The rest of the current line, the line feed consumed.
    fn rest_of_line(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self.bump() {
            if c == '\n' {
                break;
            }
            s.push(c);
        }
        if s.ends_with('\r') {
            s.pop();
        }
        s
    }

    fn statement(&mut self) -> Result<Option<Assignment>, PropFileError> {
        let line = self.line;
        let Some(key) = self.key()? else {
            return Ok(None);
        };
        let value = match self.peek() {
            Some(q @ ('\'' | '"')) => {
                self.bump();
                let v = self.quoted(q, line)?;
                let tail = self.rest_of_line();
                if !tail.trim().is_empty() {
                    return Err(PropFileError::AfterQuote {
                        file: self.file.into(),
                        line,
                    });
                }
                v
            }
            _ => self.rest_of_line(),
        };
        Ok(Some(Assignment {
            key,
            value,
            origin: format!("{}:{line}", self.file),
        }))
    }

    /// The key, the `=` consumed; `None` for blank and comment lines.
    fn key(&mut self) -> Result<Option<String>, PropFileError> {
        let line = self.line;
        let mut text = String::new();
        while let Some(c) = self.peek() {
            if c == '\n' {
                break;
            }
            self.bump();
            let key = text.trim();
            if c == '=' && !key.is_empty() && !key.starts_with('#') {
                return Ok(Some(key.to_string()));
            }
            text.push(c);
        }
        self.bump(); // the line feed
        let t = text.trim();
        if t.is_empty() || t.starts_with('#') {
            Ok(None)
        } else {
            Err(PropFileError::NoEquals {
                file: self.file.into(),
                line,
            })
        }
    }

    fn quoted(&mut self, q: char, line: usize) -> Result<String, PropFileError> {
        let mut v = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(PropFileError::Unclosed {
                    file: self.file.into(),
                    line,
                    quote: if q == '"' { '"' } else { '\'' },
                });
            };
            match c {
                c if c == q => return Ok(v),
                '\\' if q == '"' => match self.peek() {
                    Some(e @ ('"' | '\\' | '$' | '`')) => {
                        self.bump();
                        v.push(e);
                    }
                    Some('\n') => {
                        self.bump();
                    }
                    _ => v.push('\\'),
                },
                c => v.push(c),
            }
        }
    }
}
