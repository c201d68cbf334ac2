//! The layer order of the crate's top-level modules, checked against the
//! code: every `crate::<module>` path outside comments is an import of that
//! module, and a module may import only modules of lower layers. Inside
//! `http/` and `store/sqlite/`, files must not import each other in a
//! circle. The edges that still point the wrong way are listed in
//! [`KNOWN_BACK_EDGES`] and [`KNOWN_FILE_CYCLES`]: each is work to do, a
//! new one fails the test, and so does a listed one that is gone (remove it
//! from the list). Test-only: it reads the sources, it runs nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, lowest first; a module may import the modules of the layers
/// before its own (and its own submodules).
const LAYERS: &[&[&str]] = &[
    &["redaction"],
    &["config"],
    &["domain", "telemetry"],
    &["metrics"],
    &["bus", "store"],
    &["security"],
    &["push"],
    &["service"],
    &["maintenance", "admin"],
    &["gateway"],
    &["serve"],
    &["state"],
    &["http"],
    &["startup"],
];

/// Imports that still point up, and why they are still there.
const KNOWN_BACK_EDGES: &[(&str, &str)] = &[
    // The exporter of `/metrics` reads the bus; it moves above the bus when
    // the instruments and the exporter are split.
    ("metrics", "bus"),
];

/// Circles between the files of one folder that are still there (each
/// pair in name order).
const KNOWN_FILE_CYCLES: &[(&str, &str, &str)] = &[
    // The OpenAPI document lists the handlers of `ops`, two of which serve
    // it and the AsyncAPI document built from it (a route declared with its
    // document entry would end this).
    ("http", "asyncapi", "openapi"),
    ("http", "asyncapi", "ops"),
    ("http", "openapi", "ops"),
    // The cache and the SQL share helpers both ways.
    ("store/sqlite", "cache", "sql"),
];

/// The name after every `prefix` (`crate::` or `super::`) in `source`,
/// outside comments and other crates' paths.
fn paths<'a>(source: &'a str, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    source
        .lines()
        .map(|line| line.split_once("//").map_or(line, |(code, _)| code))
        .flat_map(move |line| {
            line.match_indices(prefix).filter_map(move |(at, _)| {
                let before = line[..at].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    return None;
                }
                let rest = &line[at + prefix.len()..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                (end > 0).then(|| &rest[..end])
            })
        })
}

/// The top-level module of a file path relative to `src/` (`None` for the
/// crate roots and this file).
fn top_module(relative: &Path) -> Option<String> {
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main" | "layering")).then(|| name.to_owned())
}

/// Every `.rs` file below `dir`, with its path relative to `root`.
fn rust_files(root: &Path, dir: &Path, out: &mut Vec<(std::path::PathBuf, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let source = std::fs::read_to_string(&path).unwrap_or_default();
            let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            out.push((relative, source));
        }
    }
}

/// Module → the other top-level modules it imports.
fn module_edges(files: &[(std::path::PathBuf, String)]) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (relative, source) in files {
        let Some(from) = top_module(relative) else {
            continue;
        };
        let entry = edges.entry(from.clone()).or_default();
        for to in paths(source, "crate::") {
            if to != from {
                entry.insert(to.to_owned());
            }
        }
    }
    edges
}

/// File → sibling files it imports (`super::<sibling>` or the full
/// `crate::…::<sibling>`), inside `folder` (a path relative to `src/`).
/// `mod.rs` is the folder itself, not a sibling.
fn file_edges(
    files: &[(std::path::PathBuf, String)],
    folder: &str,
) -> BTreeMap<String, BTreeSet<String>> {
    let folder = Path::new(folder);
    let siblings: BTreeSet<String> = files
        .iter()
        .filter(|(p, _)| p.parent() == Some(folder))
        .filter_map(|(p, _)| p.file_stem()?.to_str().map(str::to_owned))
        .filter(|stem| stem != "mod")
        .collect();
    let full = format!("crate::{}::", folder.display()).replace('/', "::");
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, source) in files {
        if path.parent() != Some(folder) {
            continue;
        }
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if stem == "mod" {
            continue;
        }
        let entry = edges.entry(stem.to_owned()).or_default();
        for to in paths(source, "super::").chain(paths(source, &full)) {
            if to != stem && siblings.contains(to) {
                entry.insert(to.to_owned());
            }
        }
    }
    edges
}

/// What is wrong with `edges` under `layers`, given the `known` back-edges:
/// a module without a layer, an edge that points up and is not known, and
/// a known edge that is gone.
fn layer_violations(
    edges: &BTreeMap<String, BTreeSet<String>>,
    layers: &[&[&str]],
    known: &[(&str, &str)],
) -> Vec<String> {
    let rank = |m: &str| layers.iter().position(|layer| layer.contains(&m));
    let mut problems = Vec::new();
    let mut seen_known = BTreeSet::new();
    for (from, tos) in edges {
        let Some(from_rank) = rank(from) else {
            problems.push(format!("module `{from}` has no layer in LAYERS"));
            continue;
        };
        for to in tos {
            let Some(to_rank) = rank(to) else {
                problems.push(format!("module `{to}` has no layer in LAYERS"));
                continue;
            };
            if to_rank < from_rank {
                continue;
            }
            if known.contains(&(from.as_str(), to.as_str())) {
                seen_known.insert((from.clone(), to.clone()));
            } else {
                problems.push(format!(
                    "`{from}` imports `{to}`, which is not in a lower layer"
                ));
            }
        }
    }
    for (from, to) in known {
        if !seen_known.contains(&((*from).to_owned(), (*to).to_owned())) {
            problems.push(format!(
                "`{from}` → `{to}` is listed as a known back-edge but is gone: remove it from the list"
            ));
        }
    }
    problems
}

/// The pairs of files that import each other, directly or through others
/// (each pair once, in name order).
fn circular_pairs(edges: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<(String, String)> {
    let reach = |start: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![start.to_owned()];
        while let Some(next) = todo.pop() {
            for to in edges.get(&next).into_iter().flatten() {
                if seen.insert(to.clone()) {
                    todo.push(to.clone());
                }
            }
        }
        seen
    };
    let mut pairs = BTreeSet::new();
    for (from, tos) in edges {
        for to in tos {
            if from < to && reach(to).contains(from) {
                pairs.insert((from.clone(), to.clone()));
            } else if to < from && reach(to).contains(from) {
                pairs.insert((to.clone(), from.clone()));
            }
        }
    }
    pairs
}

/// The sources of the crate, relative to its `src/`.
fn sources() -> Vec<(std::path::PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &root, &mut files);
    files
}

#[test]
fn every_module_imports_only_lower_layers() {
    let files = sources();
    assert!(files.len() > 20, "the sources were not found");
    let problems = layer_violations(&module_edges(&files), LAYERS, KNOWN_BACK_EDGES);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_files_import_each_other_in_a_circle_inside_http_and_store_sqlite() {
    let files = sources();
    let mut problems = Vec::new();
    for folder in ["http", "store/sqlite"] {
        let found = circular_pairs(&file_edges(&files, folder));
        let known: BTreeSet<(String, String)> = KNOWN_FILE_CYCLES
            .iter()
            .filter(|(f, _, _)| *f == folder)
            .map(|(_, a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
        for (a, b) in found.difference(&known) {
            problems.push(format!("{folder}: `{a}` and `{b}` import each other"));
        }
        for (a, b) in known.difference(&found) {
            problems.push(format!(
                "{folder}: `{a}` ↔ `{b}` is listed as a known circle but is gone: remove it"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checks_catch_a_new_cycle() {
    let file = |path: &str, source: &str| (std::path::PathBuf::from(path), source.to_owned());
    // `store` reaching up into `service` closes a circle with
    // `service → store`.
    let files = vec![
        file("service/mod.rs", "use crate::store::DynStore;"),
        file(
            "store/mod.rs",
            "use crate::service::Error; // crate::http in a comment",
        ),
        file(
            "domain/mod.rs",
            "// use crate::store::nothing;\nlet x = my_crate::store::y;",
        ),
    ];
    let edges = module_edges(&files);
    assert_eq!(
        edges["domain"],
        BTreeSet::new(),
        "comments and other crates' paths are not imports"
    );
    let layers: &[&[&str]] = &[&["domain"], &["store"], &["service"]];
    assert_eq!(
        layer_violations(&edges, layers, &[]),
        vec!["`store` imports `service`, which is not in a lower layer".to_owned()]
    );
    assert!(layer_violations(&edges, layers, &[("store", "service")]).is_empty());
    assert_eq!(layer_violations(&edges, &[&["domain"]], &[]).len(), 2);
    // Two files of one folder through a third.
    let files = vec![
        file("http/a.rs", "use super::b::X;"),
        file("http/b.rs", "use super::c::Y;"),
        file("http/c.rs", "use super::a::Z; use super::mod_helpers;"),
        file("http/mod.rs", "use self::a::Z;"),
    ];
    let pairs = circular_pairs(&file_edges(&files, "http"));
    let names: Vec<_> = pairs.iter().map(|(a, b)| format!("{a}-{b}")).collect();
    assert_eq!(names, ["a-b", "a-c", "b-c"]);
}
