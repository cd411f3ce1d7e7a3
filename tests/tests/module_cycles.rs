//! No import cycles between the top-level modules (files or folders) of weir's crates: each
//! module may use only modules below it, so a newcomer can read a crate bottom up and a
//! boundary cannot quietly erode. A module's dependencies are the `crate::<module>` paths in
//! its code (comments are skipped); submodules of one folder count as their folder.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use weir_e2e::workspace_root;

/// `module -> (dependency -> a file that uses it)` for the crate whose sources are in `src`.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read the source folder") {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("inside src");
            let first = rel
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .unwrap_or_default()
                .trim_end_matches(".rs")
                .to_string();
            if first == "lib" || first == "main" || first == "bin" {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read a source file");
            let deps = graph.entry(first.clone()).or_default();
            for dep in crate_paths(&text) {
                if dep != first {
                    deps.entry(dep).or_insert_with(|| rel.display().to_string());
                }
            }
        }
    }
    graph
}

/// The modules named by `crate::x` and `crate::{x, y::z}` paths outside comments.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or_default();
                for part in inner.split(',') {
                    let name: String = part
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        out.insert(name);
                    }
                }
            } else {
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
            rest = after;
        }
    }
    out
}

/// A cycle of the graph, if it has one, as the modules along it.
fn find_cycle(graph: &BTreeMap<String, BTreeMap<String, String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeMap<String, String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(2) => return None,
            Some(1) => {
                let start = path.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(node.to_string(), 1);
        path.push(node.to_string());
        if let Some(deps) = graph.get(node) {
            for d in deps.keys() {
                if let Some(c) = visit(d, graph, state, path) {
                    return Some(c);
                }
            }
        }
        path.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, graph, &mut state, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

#[test]
fn the_checker_finds_a_cycle_and_ignores_comments() {
    let mut g: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        g.entry(from.into())
            .or_default()
            .insert(to.into(), String::new());
    }
    assert_eq!(
        find_cycle(&g),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    g.get_mut("c").unwrap().remove("a");
    assert_eq!(find_cycle(&g), None);
    let paths =
        crate_paths("use crate::{expr::col, plan};\n// crate::table\nx = crate::runtime::job::X;");
    assert_eq!(
        paths.into_iter().collect::<Vec<_>>(),
        ["expr", "plan", "runtime"]
    );
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let root = workspace_root();
    for krate in ["engine", "metrics", "udf-python"] {
        let graph = module_graph(&root.join(krate).join("src"));
        assert!(graph.len() > 1, "{krate}: no modules found");
        if let Some(cycle) = find_cycle(&graph) {
            let steps: Vec<String> = cycle
                .windows(2)
                .map(|w| format!("{} -> {} (in {})", w[0], w[1], graph[&w[0]][&w[1]]))
                .collect();
            panic!(
                "{krate} has an import cycle: {}; move what both need below both",
                steps.join(", ")
            );
        }
    }
}
