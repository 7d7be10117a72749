//! Every descriptor in the shared corpus: negatives are rejected with a
//! message, the others parse.

mod corpus_common;

use ovf_loader::model::parse_descriptor;

#[test]
fn every_corpus_descriptor_parses_or_is_rejected_as_marked() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for entry in corpus_common::entries() {
        let ext = entry
            .path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        if ext != "ovf" && ext != "xml" {
            continue;
        }
        checked += 1;
        let bytes = std::fs::read(&entry.path).unwrap();
        match (parse_descriptor(&bytes), entry.negative) {
            (Ok(_), false) => {}
            (Err(e), true) => {
                assert!(!e.message.is_empty());
                eprintln!("rejected as expected: {}: {e}", entry.name);
            }
            (Ok(_), true) => failures.push(format!("{}: marked negative but parsed", entry.name)),
            (Err(e), false) => failures.push(format!("{}: {e}", entry.name)),
        }
    }
    assert!(checked > 50, "only {checked} descriptors found");
    assert!(
        failures.is_empty(),
        "{} of {checked} descriptors wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
