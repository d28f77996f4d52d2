//! The server crate's layers have one direction: the command families (`src/commands/`) sit on
//! top; everything else (dispatch, the worker and fabric, persistence, eviction, the server
//! state) sits below and is handed what it needs through the command table
//! (`src/command_table.rs`), never by importing the families. And below the families nothing
//! decides what to do by matching a command's name: such knowledge is a field of the command's
//! descriptor.
//!
//! This test reads the sources. Test modules (from `#[cfg(test)]` on) and comments are not
//! checked.

use std::path::{Path, PathBuf};

/// Files that may name the families: the binary, which installs them, and the crate root.
const ABOVE_OR_ROOT: &[&str] = &["main.rs", "lib.rs"];

/// What a file below the families must not contain (a pattern, and why).
const FORBIDDEN: &[(&str, &str)] = &[
    ("crate::commands", "imports the command families"),
    ("super::commands", "imports the command families"),
    ("warpengine::commands", "imports the command families"),
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its test module and comments.
fn code(text: &str) -> String {
    let end = text.find("#[cfg(test)]").unwrap_or(text.len());
    text[..end]
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether a line decides something by a command's name: compares or matches the name of a
/// table row, or looks a command up by a literal name.
fn matches_command_name(line: &str) -> bool {
    let row = |s: &str| ["spec.name", "].name"].iter().any(|r| s.contains(r));
    let compares = [
        ".name ==",
        "== spec.name",
        ".name.ends_with",
        ".name.starts_with",
    ]
    .iter()
    .any(|p| line.contains(p))
        || line.contains(".name.eq_ignore_ascii_case(")
        || line.contains("match spec.name")
        || (line.contains("match TABLE[") && line.contains("].name"))
        || (line.contains("matches!(") && row(line));
    let literal_lookup = ["lookup(b\"", "lookup(\"", "lookup_row(b\"", "lookup_row(\""]
        .iter()
        .any(|p| line.contains(p));
    (compares && row(line)) || literal_lookup
}

fn violations() -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut found = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src");
        let rel_text = rel.to_string_lossy().replace('\\', "/");
        if rel_text.starts_with("commands/") || ABOVE_OR_ROOT.contains(&rel_text.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("source file");
        for (n, line) in code(&text).lines().enumerate() {
            for (pattern, why) in FORBIDDEN {
                if line.contains(pattern) {
                    found.push(format!("src/{rel_text}:{}: {why}: {}", n + 1, line.trim()));
                }
            }
            // The command table is where names are looked up; nowhere else below the families.
            if rel_text != "command_table.rs" && matches_command_name(line) {
                found.push(format!(
                    "src/{rel_text}:{}: decides by a command's name (make it a descriptor field): {}",
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    found
}

#[test]
fn nothing_below_the_command_families_imports_them_or_matches_command_names() {
    let found = violations();
    assert!(found.is_empty(), "layering broken:\n{}", found.join("\n"));
}

#[test]
fn the_checks_catch_what_they_are_for() {
    assert!(matches_command_name(r#"    match spec.name {"#));
    assert!(matches_command_name(
        r#"    let every_db = matches!(spec.name, "move" | "copy");"#
    ));
    assert!(matches_command_name(r#"    if spec.name == "copy" {"#));
    assert!(matches_command_name(
        r#"    if spec.name.ends_with("store") {"#
    ));
    assert!(matches_command_name(
        r#"    let get = commands::lookup(b"get");"#
    ));
    assert!(!matches_command_name(
        r#"    PARAMS.iter().find(|p| p.name.eq_ignore_ascii_case(name))"#
    ));
    assert!(!matches_command_name(r#"    let name = spec.name;"#));
    assert!(!matches_command_name(
        r#"    match guarded(spec.name, || list(server, conn, &args)) {"#
    ));
    assert_eq!(
        code("use a;\n// crate::commands\n#[cfg(test)]\nuse crate::commands;"),
        "use a;\n"
    );
}
