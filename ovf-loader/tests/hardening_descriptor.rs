//! Hostile descriptors (issue 15, items 1 and 2): time and memory of
//! `parse_descriptor` stay linear and bounded, measured in the test.

#[path = "../../tests/support/peak_alloc.rs"]
mod peak_alloc;

use std::time::Duration;

use ovf_loader::model::parse_descriptor;
use peak_alloc::{measure, time_bound, MIB};

const HEAD: &str = "<?xml version=\"1.0\"?><Envelope xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\" xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\">";
const TAIL: &str = "</Envelope>";

/// A descriptor on one line: `HEAD`, `unit` repeated to about `bytes`, `TAIL`.
fn one_line(unit: &str, bytes: usize) -> Vec<u8> {
    let mut doc = String::with_capacity(bytes + 256);
    doc.push_str(HEAD);
    doc.push_str("<Info>");
    doc.push_str("</Info>");
    while doc.len() + unit.len() + TAIL.len() < bytes {
        doc.push_str(unit);
    }
    doc.push_str(TAIL);
    doc.into_bytes()
}

fn check_bounds(what: &str, doc: &[u8], max_peak: usize) {
    let (result, cost) = measure(|| parse_descriptor(doc).map(|_| ()));
    eprintln!(
        "{what}: {} bytes, {:?}, peak {} MiB, {:?}",
        doc.len(),
        cost.elapsed,
        cost.peak_bytes / MIB,
        result.as_ref().err()
    );
    let bound = time_bound(Duration::from_secs(2));
    assert!(
        cost.elapsed < bound,
        "{what}: took {:?} (bound {bound:?})",
        cost.elapsed
    );
    assert!(
        cost.peak_bytes < max_peak,
        "{what}: peak heap {} MiB (bound {} MiB)",
        cost.peak_bytes / MIB,
        max_peak / MIB
    );
}

#[test]
fn one_line_of_entities_is_linear() {
    let mut doc = one_line("", 0);
    // 30 MB of `&amp;` inside one element's text, all on one line.
    let text = "&amp;".repeat(6 << 20);
    let at = HEAD.len() + "<Info>".len();
    doc.splice(at..at, text.bytes());
    check_bounds("30 MB of &amp; on one line", &doc, 200 * MIB);
}

#[test]
fn one_line_of_elements_is_linear() {
    let doc = one_line("<Section/>", 30 << 20);
    check_bounds("30 MB of elements on one line", &doc, 200 * MIB);
}

#[test]
fn short_attributes_are_bounded() {
    let doc = one_line("<X a=\"\" b=\"\" c=\"\" d=\"\"/>\n", 31 << 20);
    check_bounds("31 MB of short attributes", &doc, 200 * MIB);
    let mut many = String::from("<X ");
    for i in 0..1_000_000 {
        many.push_str(&format!("a{i}=\"\" "));
    }
    many.push_str("/>");
    let doc = one_line(&many, many.len() + 512);
    check_bounds("one element with a million attributes", &doc, 200 * MIB);
}

#[test]
fn namespaces_are_bounded() {
    // A namespace URI of megabytes, used by every element.
    let uri = "u".repeat(4 << 20);
    let mut doc = String::from(HEAD);
    doc.push_str(&format!("<Section xmlns:l=\"urn:{uri}\">"));
    for _ in 0..90_000 {
        doc.push_str("<l:a/>");
    }
    doc.push_str("</Section>");
    doc.push_str(TAIL);
    check_bounds(
        "4 MB namespace used 90 000 times",
        doc.as_bytes(),
        200 * MIB,
    );
    // Thousands of declarations in scope of every element.
    let mut doc = String::from(HEAD);
    for i in 0..200 {
        doc.push_str("<Section");
        for j in 0..200 {
            doc.push_str(&format!(" xmlns:p{i}x{j}=\"urn:{i}:{j}\""));
        }
        doc.push('>');
    }
    for _ in 0..90_000 {
        doc.push_str("<q:a/>");
    }
    doc.push_str(&"</Section>".repeat(200));
    doc.push_str(TAIL);
    check_bounds(
        "40 000 namespace declarations in scope",
        doc.as_bytes(),
        200 * MIB,
    );
}
