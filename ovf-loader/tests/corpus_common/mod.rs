//! Reads the shared corpus index (`../shared/corpus/ovf/SOURCES.md`).
//!
//! The corpus lives beside the repository, not in it. Each entry is a line
//! `- \`ovf/…\` (kind, N bytes) ← …` followed by a description line; a
//! description containing `INVALID` or `NEG` marks a file its source treats
//! as negative.

use std::path::PathBuf;

pub struct CorpusEntry {
    pub path: PathBuf,
    /// Path relative to `corpus/`.
    pub name: String,
    pub negative: bool,
}

pub fn corpus_dir() -> PathBuf {
    let dir = std::env::var_os("OVF_RUN_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    assert!(
        dir.join("ovf/SOURCES.md").is_file(),
        "the shared corpus is missing at {} (set OVF_RUN_CORPUS to its folder)",
        dir.display()
    );
    dir
}

pub fn entries() -> Vec<CorpusEntry> {
    let dir = corpus_dir();
    let sources = std::fs::read_to_string(dir.join("ovf/SOURCES.md")).unwrap();
    let lines: Vec<&str> = sources.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.strip_prefix("- `ovf/") else {
            continue;
        };
        let Some(end) = rest.find('`') else { continue };
        let name = format!("ovf/{}", &rest[..end]);
        let description = lines.get(i + 1).copied().unwrap_or_default();
        let negative = description.trim_start().starts_with("- ")
            && (description.contains("INVALID") || description.contains("NEG"));
        out.push(CorpusEntry {
            path: dir.join(&name),
            name,
            negative,
        });
    }
    // The index must cover the folder: a file added without an entry is a test bug.
    let listed: std::collections::BTreeSet<_> = out.iter().map(|e| e.path.clone()).collect();
    for file in walk(&dir.join("ovf")) {
        if file.file_name().is_some_and(|n| n == "SOURCES.md") {
            continue;
        }
        assert!(
            listed.contains(&file),
            "{} is in the corpus but not in SOURCES.md",
            file.display()
        );
    }
    out
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
