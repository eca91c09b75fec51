//! The layering of DESIGN.md, read from the code (issue 28): a stage takes the types of the
//! stages before it and never reaches into a later one, and no stage imports `config`, `error`
//! or the binary's `cmd` (configuration and exit codes are at the top).
//!
//! Every `crate::<module>` path outside comments, in every file of `src/` but the binary's
//! (`main.rs`, `cmd/`), is an edge from the file's top module to `<module>`. An edge to a module
//! of the same rank or a later one fails the test, unless it is one of [`NOT_YET`]: the edges the
//! code has today, which issue 28 removes one by one. An entry of [`NOT_YET`] that the code no
//! longer has fails the test too, so the list only shrinks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each module of the library and its rank, in the order data flows (lib.rs lists them so):
/// a module may use only modules of a lower rank. `config` and `error` are the top: they may
/// use every stage, and no stage may use them.
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
    ("demo", 8),
    ("config", 9),
    ("error", 9),
];

/// The edges against the layering that the code still has (file under `src/`, module it
/// uses): issue 28's work list. Each comes out of this list when its edge comes out of the code.
const NOT_YET: &[(&str, &str)] = &[
    // Stages that parse CLI text or take the command's config (stage-owned defaults, #28).
    ("demo.rs", "config"),
    ("run/error.rs", "config"),
    ("run/guard.rs", "config"),
    ("run/mod.rs", "config"),
    ("run/pending.rs", "config"),
    ("run/policy.rs", "config"),
    ("run/repair.rs", "config"),
    // `run` picks an exit code (cmd/exit.rs, #28).
    ("run/guard.rs", "error"),
    // A test of the lake's commit checks its result with verify.
    ("lake/hostile.rs", "verify"),
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

/// The modules `text` names as `crate::<module>`, outside comments.
fn used_modules(text: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                used.insert(name);
            }
            rest = after;
        }
    }
    used
}

/// Every edge against the layering, as (file under `src/`, module).
fn violations(src: &Path) -> BTreeSet<(String, String)> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut out = BTreeSet::new();
    for path in files {
        let relative = path
            .strip_prefix(src)
            .unwrap()
            .to_string_lossy()
            .to_string();
        let top = relative.split('/').next().unwrap().trim_end_matches(".rs");
        let Some(own) = rank(top) else {
            continue; // lib.rs, main.rs, cmd/: the binary and the crate root
        };
        if ["config", "error"].contains(&top) {
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
    let allowed: BTreeSet<(String, String)> = NOT_YET
        .iter()
        .map(|&(f, m)| (f.to_string(), m.to_string()))
        .collect();
    let new: Vec<_> = found.difference(&allowed).collect();
    assert!(
        new.is_empty(),
        "edges against the layering (a stage using a later stage, config or error): {new:?}"
    );
    let gone: Vec<_> = allowed.difference(&found).collect();
    assert!(
        gone.is_empty(),
        "edges the code no longer has: take them out of NOT_YET: {gone:?}"
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
