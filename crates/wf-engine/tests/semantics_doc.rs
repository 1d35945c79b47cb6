//! `docs/SEMANTICS.md` is the engine's contract: every rule names the tests behind it, and
//! those tests exist; every `semantics §N` in the code is a link that resolves to a section
//! of it.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn semantics() -> String {
    std::fs::read_to_string(root().join("docs/SEMANTICS.md")).expect("docs/SEMANTICS.md")
}

/// Every `.rs` file under `dir`, skipping build output.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn crate_sources() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(&root().join("crates"), &mut files);
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

/// The GitHub anchor of a heading: lower case, punctuation dropped, spaces to `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The numbered sections: anchor and number.
fn sections(doc: &str) -> Vec<(String, u32)> {
    doc.lines()
        .filter_map(|l| l.strip_prefix("## "))
        .filter_map(|h| {
            let number = h.split('.').next()?.parse().ok()?;
            Some((slug(h), number))
        })
        .collect()
}

/// The list items of sections 2 and up, each with its continuation lines joined.
fn rules(doc: &str) -> Vec<String> {
    let mut rules = Vec::new();
    let mut in_rules = false;
    let mut current: Option<String> = None;
    for line in doc.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            rules.extend(current.take());
            in_rules = heading
                .split('.')
                .next()
                .and_then(|n| n.parse::<u32>().ok())
                >= Some(2);
            continue;
        }
        if !in_rules {
            continue;
        }
        if let Some(item) = line.strip_prefix("- ") {
            rules.extend(current.replace(item.to_owned()));
        } else if line.starts_with("  ") && current.is_some() {
            if let Some(rule) = current.as_mut() {
                rule.push(' ');
                rule.push_str(line.trim());
            }
        } else {
            rules.extend(current.take());
        }
    }
    rules.extend(current);
    rules
}

/// The backticked names after `*Tests:*` in a rule.
fn test_names(rule: &str) -> Vec<String> {
    let Some((_, tests)) = rule.split_once("*Tests:*") else {
        return Vec::new();
    };
    tests
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|name| {
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_rule_of_the_semantics_names_tests_and_every_named_test_exists() {
    let doc = semantics();
    let rules = rules(&doc);
    assert!(rules.len() > 50, "only {} rules found", rules.len());
    let sources = crate_sources();
    let defined: BTreeSet<String> = sources
        .iter()
        .flat_map(|(_, text)| text.split("fn ").skip(1))
        .filter_map(|rest| rest.split(['(', '<']).next())
        .map(str::to_owned)
        .collect();
    let mut missing = Vec::new();
    for rule in &rules {
        let names = test_names(rule);
        assert!(!names.is_empty(), "a rule names no test: {rule}");
        missing.extend(names.into_iter().filter(|n| !defined.contains(n)));
    }
    assert!(
        missing.is_empty(),
        "named tests that do not exist: {missing:?}"
    );
}

/// Resolves `link` relative to the directory of `file`, lexically.
fn resolve(file: &Path, link: &str) -> PathBuf {
    let mut path = file.parent().unwrap().to_path_buf();
    for part in Path::new(link).components() {
        match part {
            Component::ParentDir => {
                path.pop();
            }
            Component::Normal(p) => path.push(p),
            _ => {}
        }
    }
    path
}

fn normal(path: &Path) -> PathBuf {
    resolve(&path.join("x"), ".")
}

#[test]
fn every_semantics_reference_in_the_code_is_a_link_to_a_section_of_docs_semantics_md() {
    let doc = semantics();
    let sections = sections(&doc);
    let target = normal(&root().join("docs/SEMANTICS.md"));
    let mut found = 0;
    let mut bad = Vec::new();
    for (path, text) in crate_sources() {
        if path.ends_with("semantics_doc.rs") {
            continue; // this file
        }
        for (n, line) in text.lines().enumerate() {
            let place = format!("{}:{}", path.display(), n + 1);
            if line.to_lowercase().contains("semantics document") {
                bad.push(format!("{place}: names a document instead of linking it"));
            }
            let mentions = line
                .match_indices("semantics §")
                .chain(line.match_indices("Semantics §"));
            for (at, _) in mentions {
                found += 1;
                // `[semantics §N](path#anchor)` or `[§N](path#anchor)` after it.
                let rest = &line[at + "semantics §".len()..];
                let number: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let Some(link_start) = rest.find("](") else {
                    bad.push(format!("{place}: not a link"));
                    continue;
                };
                let is_link = line[..at].ends_with('[')
                    && rest[..link_start].chars().all(|c| c.is_ascii_digit());
                let link = &rest[link_start + 2..];
                let Some(link) = link.split(')').next().filter(|_| is_link) else {
                    bad.push(format!("{place}: not a link"));
                    continue;
                };
                let (file, anchor) = link.split_once('#').unwrap_or((link, ""));
                if normal(&resolve(&path, file)) != target {
                    bad.push(format!(
                        "{place}: `{file}` does not resolve to docs/SEMANTICS.md"
                    ));
                }
                match sections.iter().find(|(slug, _)| slug == anchor) {
                    None => bad.push(format!("{place}: no section `#{anchor}`")),
                    Some((_, section)) if section.to_string() != number => {
                        bad.push(format!("{place}: §{number} links to section {section}"))
                    }
                    Some(_) => {}
                }
            }
        }
    }
    assert!(found >= 16, "only {found} references found");
    assert!(bad.is_empty(), "{bad:#?}");
}
