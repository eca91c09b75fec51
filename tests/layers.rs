//! The layering of DESIGN.md, read from the code (issue 28): a stage takes the types of the
//! stages before it and never reaches into a later one, and no stage imports `config`, `error`
//! or `cmd` (configuration, the one error and exit codes are at the top).
//!
//! Every `crate::<module>` path outside comments, in every file of `src/` but the top's
//! (`config/`, `error.rs`, `cmd/`) and the crate roots (`lib.rs`, `main.rs`), is an edge from
//! the file's top module to `<module>`. An edge to a module of the same rank or a later one
//! fails the test. Since every edge goes to a lower rank, the graph has no circle.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each module of the library and its rank, in the order data flows (lib.rs lists them so):
/// a module may use only modules of a lower rank. `units` is a leaf: it uses nothing. `config`,
/// `error` and `cmd` are the top: they may use every stage, and no stage may use them.
const RANKS: &[(&str, u32)] = &[
    ("units", 0),
    ("plan", 1),
    ("zendesk", 2),
    ("table", 3),
    ("lake", 4),
    ("verify", 5),
    ("run", 6),
    ("status", 7),
    ("ddl", 7),
    ("ops", 7),
    ("metrics", 7),
    ("config", 9),
    ("error", 9),
    ("cmd", 10),
];

fn rank(module: &str) -> Option<u32> {
    RANKS.iter().find(|(m, _)| *m == module).map(|&(_, r)| r)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every Rust file under `src`, with its path relative to `src`.
fn sources(src: &Path) -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files
        .into_iter()
        .map(|path| {
            let relative = path
                .strip_prefix(src)
                .unwrap()
                .to_string_lossy()
                .to_string();
            (relative, path)
        })
        .collect()
}

/// The modules `text` names as `crate::<module>`, outside comments.
fn used_modules(text: &str) -> BTreeSet<String> {
    names_after(&without_comments(text), "crate::")
}

/// `text` without its line comments.
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every edge against the layering, as (file under `src/`, module).
fn violations(src: &Path) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (relative, path) in sources(src) {
        let top = relative.split('/').next().unwrap().trim_end_matches(".rs");
        let Some(own) = rank(top) else {
            continue; // lib.rs, main.rs: the crate roots
        };
        if ["config", "error", "cmd"].contains(&top) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for used in used_modules(&text) {
            let later = rank(&used).is_some_and(|r| r >= own) && used != top;
            if later || used == "cmd" {
                out.insert((relative.clone(), used));
            }
        }
    }
    out
}

#[test]
fn no_stage_reaches_into_a_later_one_nor_into_config_or_error() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(
        found.is_empty(),
        "edges against the layering (a stage using a later stage, config, error or cmd): {found:?}"
    );
}

#[test]
fn every_module_of_the_library_has_a_rank_in_lib_rs_order() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    for module in &declared {
        assert!(
            rank(module).is_some(),
            "lib.rs declares {module}, which has no rank here"
        );
    }
    // The stages come in the order of their ranks.
    let stages: Vec<u32> = declared
        .iter()
        .filter_map(|m| rank(m))
        .filter(|&r| r <= 6)
        .collect();
    assert!(stages.windows(2).all(|w| w[0] <= w[1]), "{declared:?}");
}

#[test]
fn the_reader_of_use_lines_finds_what_a_line_names() {
    let text = "use crate::lake::Committer;\n// crate::run in a comment\nlet x = crate::plan::window::Grid::DAILY; // crate::error";
    let used: Vec<String> = used_modules(text).into_iter().collect();
    assert_eq!(used, ["lake", "plan"]);
}

#[test]
fn an_edge_against_the_layering_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    let write = |path: &str, text: &str| {
        let path = src.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("units/mod.rs", "use crate::plan::window::Grid;\n");
    write("plan/window.rs", "use crate::units::time::Timestamp;\n");
    write(
        "lake/commit.rs",
        "use crate::config::ExportConfig;\nuse crate::run::Summary;\n",
    );
    write(
        "run/guard.rs",
        "use crate::cmd::exit;\nuse crate::lake::Held;\n",
    );
    write("cmd/exit.rs", "use crate::run::Summary;\n");
    let found: Vec<(String, String)> = violations(src).into_iter().collect();
    let pair = |f: &str, m: &str| (f.to_string(), m.to_string());
    assert_eq!(
        found,
        [
            pair("lake/commit.rs", "config"),
            pair("lake/commit.rs", "run"),
            pair("run/guard.rs", "cmd"),
            pair("units/mod.rs", "plan"),
        ]
    );
}

/// The code of `text` before its tests (`#[cfg(test)]`), without comments.
fn code_before_tests(text: &str) -> String {
    without_comments(text.split("#[cfg(test)]").next().unwrap_or(""))
}

/// The names following `prefix` in `text` (`super::` gives `stream` for `super::stream::X`).
fn names_after(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let after = &rest[at + prefix.len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            names.insert(name);
        }
        rest = after;
    }
    names
}

/// Edges between the children of each module (`run/stream.rs` → `run/routing.rs`), from
/// `super::` paths in a child's own file and `crate::<module>::` paths anywhere in it.
fn sibling_edges(src: &Path) -> BTreeSet<(String, String)> {
    let mut edges = BTreeSet::new();
    for (relative, path) in sources(src) {
        let parts: Vec<&str> = relative.trim_end_matches(".rs").split('/').collect();
        let parts: Vec<&str> = match parts.split_last() {
            Some((&"mod", rest)) => rest.to_vec(),
            _ => parts,
        };
        let [top, child, ..] = parts[..] else {
            continue;
        };
        let code = code_before_tests(&std::fs::read_to_string(&path).unwrap());
        let mut used = names_after(&code, &format!("crate::{top}::"));
        if parts.len() == 2 {
            used.extend(names_after(&code, "super::"));
        }
        for other in used {
            let exists = src.join(top).join(format!("{other}.rs")).exists()
                || src.join(top).join(&other).is_dir();
            if other != child && exists {
                edges.insert((format!("{top}/{child}"), format!("{top}/{other}")));
            }
        }
    }
    edges
}

/// A circle in `edges`, if there is one, as the path around it.
fn circle(edges: &BTreeSet<(String, String)>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeSet<(String, String)>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for (_, to) in edges.iter().filter(|(from, _)| from == node) {
            if let Some(found) = visit(to, edges, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .iter()
        .find_map(|(from, _)| visit(from, edges, &mut Vec::new(), &mut done))
}

#[test]
fn no_circle_among_the_files_of_a_module() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = sibling_edges(&src);
    assert!(!edges.is_empty(), "the reader of paths found no edge");
    assert_eq!(
        circle(&edges),
        None,
        "files of one module that import one another"
    );
}

#[test]
fn a_circle_is_found() {
    let edge = |a: &str, b: &str| (a.to_string(), b.to_string());
    let chain: BTreeSet<_> = [
        edge("run/workers", "run/stream"),
        edge("run/stream", "run/routing"),
    ]
    .into_iter()
    .collect();
    assert_eq!(circle(&chain), None);
    let mut looped = chain.clone();
    looped.insert(edge("run/routing", "run/workers"));
    assert_eq!(
        circle(&looped).map(|c| c.len()),
        Some(4),
        "{:?}",
        circle(&looped)
    );
}
