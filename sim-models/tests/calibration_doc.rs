//! The calibration document (`docs/` at the workspace root) and the
//! citations of it in the Rust sources.
//!
//! - Every row of the document's figure tables (header `| id | ...`) has a
//!   unique id of lowercase letters, digits and dashes.
//! - Every mention of the document in a Rust source of the workspace is a
//!   citation with row ids: the document's path followed by ", row" and one
//!   id in backticks, or ", rows" and several (separated by ", ", " and ",
//!   ", and "); comment markers and line breaks between the words are
//!   ignored. A mention without a row id fails, and so does an id that is
//!   not a row of the document.
//! - Every test the document lists as calibration or validation (the tables
//!   with header `| test | rows |`) exists as a function in the sources, and
//!   the rows it names exist.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The document's file name; a mention is any occurrence of it.
const NAME: &str = "calibration.md";
/// The path a citation must give.
const CITED_PATH: &str = "docs/calibration.md";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("sim-models sits in the workspace")
        .to_path_buf()
}

/// Rust files under `dir`, skipping `target` and hidden directories.
fn rust_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_sources(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// The lines of a source joined into one text, each without its leading
/// whitespace and comment marker (`//!`, `///`, `//`), so a citation may
/// wrap across comment lines.
fn joined(text: &str) -> String {
    text.lines()
        .map(|l| {
            let l = l.trim_start();
            let l = ["//!", "///", "//"]
                .iter()
                .find_map(|m| l.strip_prefix(m))
                .unwrap_or(l);
            l.trim()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The ids in backticks at the start of `s`: "`a`", "`a`, `b` and `c`".
fn backticked_list(mut s: &str) -> Vec<&str> {
    let mut ids = Vec::new();
    while let Some(rest) = s.strip_prefix('`') {
        let Some(end) = rest.find('`') else { break };
        ids.push(&rest[..end]);
        s = &rest[end + 1..];
        match [", and `", " and `", ", `"]
            .iter()
            .find_map(|sep| s.strip_prefix(&sep[..sep.len() - 1]))
        {
            Some(next) => s = next,
            None => break,
        }
    }
    ids
}

/// The row ids cited after one mention of the document; `Err` says what is
/// wrong with the mention.
fn cited_rows(before: &str, after: &str) -> Result<Vec<String>, String> {
    if !before.ends_with(&CITED_PATH[..CITED_PATH.len() - NAME.len()]) {
        return Err(format!("cite the document as `{CITED_PATH}`"));
    }
    let rest = after.strip_prefix(',').unwrap_or(after).trim_start();
    let list = rest
        .strip_prefix("rows ")
        .or_else(|| rest.strip_prefix("row "))
        .ok_or_else(|| format!("`{CITED_PATH}` without a row id (write \", row `id`\")"))?;
    let ids = backticked_list(list);
    if ids.is_empty() {
        return Err(format!(
            "`{CITED_PATH}`: the row id must follow in backticks"
        ));
    }
    Ok(ids.into_iter().map(str::to_string).collect())
}

/// Table rows of the document whose table header's first cell is `first`:
/// the cells of each row.
fn table_rows(doc: &str, first: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut inside = false;
    for line in doc.lines() {
        let line = line.trim();
        if !line.starts_with('|') {
            inside = false;
            continue;
        }
        let cells: Vec<String> = line
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect();
        if cells[0] == first {
            inside = true;
        } else if inside && !cells[0].starts_with("---") {
            rows.push(cells);
        }
    }
    rows
}

fn row_ids(doc: &str, problems: &mut Vec<String>) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for cells in table_rows(doc, "id") {
        let id = cells[0].trim_matches('`');
        let well_formed = cells[0].starts_with('`')
            && cells[0].ends_with('`')
            && !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !well_formed {
            problems.push(format!(
                "document: row id {} is not `lowercase-with-dashes`",
                cells[0]
            ));
        } else if !ids.insert(id.to_string()) {
            problems.push(format!("document: row id `{id}` appears twice"));
        }
    }
    ids
}

#[test]
fn every_citation_names_a_row_of_the_calibration_document() {
    let root = workspace();
    let doc_path = root.join(CITED_PATH);
    let doc =
        fs::read_to_string(&doc_path).unwrap_or_else(|e| panic!("{}: {e}", doc_path.display()));
    let mut problems = Vec::new();
    let ids = row_ids(&doc, &mut problems);
    assert!(ids.len() > 40, "only {} rows parsed", ids.len());

    let mut files = Vec::new();
    rust_sources(&root, &mut files);
    files.sort();
    let this_file = root.join("sim-models/tests/calibration_doc.rs");
    let mut sources = Vec::new();
    let mut citations = 0;
    for path in files.iter().filter(|p| **p != this_file) {
        let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let shown = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string();
        let flat = joined(&text);
        for (at, _) in flat.match_indices(NAME) {
            let context = around(&flat, at);
            match cited_rows(&flat[..at], &flat[at + NAME.len()..]) {
                Ok(cited) => {
                    citations += 1;
                    for id in cited.iter().filter(|id| !ids.contains(*id)) {
                        problems.push(format!(
                            "{shown}: row `{id}` is not in {CITED_PATH} (\"...{context}...\")"
                        ));
                    }
                }
                Err(why) => problems.push(format!("{shown}: {why} (\"...{context}...\")")),
            }
        }
        sources.push(text);
    }
    assert!(citations > 40, "only {citations} citations found");

    for cells in table_rows(&doc, "test") {
        // "`crate` `module::tests::name`", then notes.
        let names = backtick_items(&cells[0]);
        let Some(test) = names.get(1).and_then(|n| n.rsplit("::").next()) else {
            problems.push(format!(
                "document: test row without a test name: {}",
                cells[0]
            ));
            continue;
        };
        let def = format!("fn {test}(");
        if !sources.iter().any(|s| s.contains(&def)) {
            problems.push(format!("document: test `{test}` is not in the sources"));
        }
        for id in backtick_items(cells.get(1).map_or("", String::as_str)) {
            if !ids.contains(id) {
                problems.push(format!(
                    "document: test `{test}` names row `{id}`, which does not exist"
                ));
            }
        }
    }

    assert!(
        problems.is_empty(),
        "{} problem(s) with the calibration document or its citations:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// About 30 characters before and 60 after byte `at` of `s`.
fn around(s: &str, at: usize) -> &str {
    let mut start = at.saturating_sub(30);
    while !s.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (at + 60).min(s.len());
    while !s.is_char_boundary(end) {
        end += 1;
    }
    &s[start..end]
}

/// Every item in backticks in `cell`.
fn backtick_items(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

#[test]
fn citation_parsing() {
    let ok = |before: &str, after: &str| cited_rows(before, after).unwrap();
    assert_eq!(ok("see docs/", ", row `a-1`)."), ["a-1"]);
    assert_eq!(ok("(docs/", " rows `a`, `b` and `c`; x"), ["a", "b", "c"]);
    assert_eq!(ok("(docs/", ", rows `a`, and `b`"), ["a", "b"]);
    assert_eq!(ok("(docs/", ", rows `a`, which"), ["a"]);
    assert!(cited_rows("see shared/", ", row `a`").is_err());
    assert!(cited_rows("see ", ", row `a`").is_err());
    assert!(cited_rows("see docs/", " section \"DNS\"").is_err());
    assert!(cited_rows("see docs/", ", row \"DNS\"").is_err());
    assert_eq!(
        joined("//! a (docs/x,\n    /// row `b`)"),
        "a (docs/x, row `b`)"
    );
}
