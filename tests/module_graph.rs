//! The front door's modules import each other as a DAG: no file under `src/` reaches back to a
//! file that imports it (issue 25). A file depends on another when its code (not its comments,
//! not its `#[cfg(test)]` module) names a path into it: `crate::a::b`, `super::x`, a child
//! module's `x::…` from a `mod.rs`, or a name `lib.rs` re-exports from it. `lib.rs` only declares
//! and re-exports, so it is not a node.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file (`src/policy/mod.rs` → `["policy"]`, `src/kms.rs` → `["kms"]`).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src/").with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The code of a file: comments and the test module left out.
fn code_of(text: &str) -> String {
    let end = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
    text[..end]
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path the code names (`a::b::C`), brace groups expanded one level (`a::{b, c::D}`).
fn paths(code: &str) -> Vec<Vec<String>> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let bytes: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if ident(bytes[i]) && (i == 0 || !(ident(bytes[i - 1]) || bytes[i - 1] == ':')) {
            let mut path = Vec::new();
            let mut j = i;
            loop {
                let start = j;
                while j < bytes.len() && ident(bytes[j]) {
                    j += 1;
                }
                path.push(bytes[start..j].iter().collect::<String>());
                if j + 2 < bytes.len() && bytes[j] == ':' && bytes[j + 1] == ':' {
                    j += 2;
                    if bytes[j] == '{' {
                        let close = bytes[j..].iter().position(|&c| c == '}').map_or(bytes.len(), |p| j + p);
                        let inner: String = bytes[j + 1..close].iter().collect();
                        for part in inner.split(',') {
                            let mut p = path.clone();
                            p.extend(part.trim().split("::").map(|s| s.trim().to_owned()));
                            out.push(p);
                        }
                        j = close;
                        path.clear();
                        break;
                    }
                    if !ident(bytes[j]) {
                        break;
                    }
                } else {
                    break;
                }
            }
            if path.len() > 1 {
                out.push(path);
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn src_modules_import_each_other_without_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeMap<Vec<String>, PathBuf> =
        files.iter().map(|f| (module_of(&src, f), f.clone())).collect();
    // What lib.rs re-exports, by name: `pub use module::{A, B}` names module's file.
    let lib = code_of(&std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs"));
    let mut reexports: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in lib.lines().map(str::trim).filter(|l| l.starts_with("pub use ")) {
        for p in paths(line) {
            if modules.contains_key(&p[..1]) {
                reexports.insert(p.last().expect("a name").clone(), p[..1].to_vec());
            }
        }
    }
    // The longest prefix of a module path that is a file.
    let resolve = |path: &[String]| -> Option<Vec<String>> {
        (1..=path.len()).rev().map(|n| path[..n].to_vec()).find(|m| modules.contains_key(m))
    };
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, file) in &modules {
        if module.is_empty() {
            continue; // lib.rs
        }
        let is_dir = file.ends_with("mod.rs");
        let here: Vec<String> = if is_dir { module.clone() } else { module[..module.len() - 1].to_vec() };
        let code = code_of(&std::fs::read_to_string(file).expect("readable"));
        for p in paths(&code) {
            let absolute: Vec<String> = match p[0].as_str() {
                "crate" if p.len() == 2 => match reexports.get(&p[1]) {
                    Some(m) => m.clone(),
                    None => continue,
                },
                "crate" => p[1..].to_vec(),
                "super" => {
                    let mut parent = here.clone();
                    let mut rest = &p[..];
                    // `super` from `a/b.rs` is `a`; from `a/mod.rs` it is the crate.
                    if is_dir {
                        parent.pop();
                    }
                    rest = &rest[1..];
                    while rest.first().is_some_and(|s| s == "super") {
                        parent.pop();
                        rest = &rest[1..];
                    }
                    parent.extend(rest.iter().cloned());
                    parent
                }
                "self" => here.iter().chain(&p[1..]).cloned().collect(),
                child
                    if is_dir && modules.contains_key(&[module.clone(), vec![child.to_owned()]].concat()) =>
                {
                    module.iter().chain(&p).cloned().collect()
                }
                _ => continue,
            };
            if let Some(to) = resolve(&absolute)
                && to != *module
                && !to.is_empty()
            {
                edges.entry(module.clone()).or_default().insert(to);
            }
        }
    }
    // Depth-first search for a back edge; report the circle it closes.
    fn visit(
        m: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        stack: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        if let Some(i) = stack.iter().position(|s| s == m) {
            return Some(stack[i..].iter().cloned().chain([m.clone()]).collect());
        }
        if !done.insert(m.clone()) {
            return None;
        }
        stack.push(m.clone());
        for to in edges.get(m).into_iter().flatten() {
            if let Some(circle) = visit(to, edges, stack, done) {
                return Some(circle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for m in modules.keys() {
        let circle = visit(m, &edges, &mut Vec::new(), &mut done);
        let shown = circle.map(|c| c.iter().map(|m| m.join("::")).collect::<Vec<_>>().join(" → "));
        assert_eq!(shown, None, "src/ modules import each other in a circle");
    }
    // The graph was read at all: the builder depends on the deployment it opens.
    assert!(edges[&vec!["builder".to_owned()]].contains(&vec!["deployment".to_owned()]));
}
