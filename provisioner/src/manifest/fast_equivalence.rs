//! The fast path (`load` + `to_snapshot_loaded`) must give what the generic
//! path (`parse_str` + `to_snapshot`) gives: the same snapshot, the same
//! warnings in the same order, or the same error. Checked on the examples,
//! on them as one JSON list, on hand-made edge cases and on random
//! mutations of the JSON, with one thread and with several.

use std::path::Path;

use serde_json::Value;

use super::convert::build;
use super::load::Loaded;
use super::{parse_str, to_snapshot};

/// The generic path's answer, printed.
fn generic(text: &str) -> String {
    match parse_str("in.json", text) {
        Err(e) => format!("load error: {e}"),
        Ok(docs) => match to_snapshot(docs) {
            Err(e) => format!("input error: {e}"),
            Ok(s) => format!("{s:#?}"),
        },
    }
}

/// The fast path's answer, printed; `per_thread` objects per thread.
fn fast(text: &str, threads: usize, per_thread: usize) -> String {
    let mut loaded = Loaded::default();
    if let Err(e) = loaded.add_source("in.json".into(), text.to_string()) {
        return format!("load error: {e}");
    }
    match build(Vec::new(), loaded, threads, per_thread) {
        Err(e) => format!("input error: {e}"),
        Ok(s) => format!("{s:#?}"),
    }
}

#[track_caller]
fn same(text: &str) {
    let want = generic(text);
    for (threads, per_thread) in [(1, 1), (3, 1), (2, 2_000)] {
        let got = fast(text, threads, per_thread);
        assert!(
            got == want,
            "fast path ({threads} threads) differs on\n{text}\n--- generic:\n{want}\n--- fast:\n{got}"
        );
    }
}

/// Every object of the examples, as one JSON `List`.
fn examples_as_json_list() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut items = Vec::new();
    for dir in ["demo", "seed"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
            .expect("examples")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).expect("example");
            same(&text);
            for d in parse_str("x", &text).expect("example parses") {
                items.push(d.value);
            }
        }
    }
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    serde_json::to_string_pretty(&list).expect("json")
}

#[test]
fn examples_read_the_same_both_ways() {
    let list = examples_as_json_list();
    same(&list);
    // One object per document, and concatenated objects.
    let v: Value = serde_json::from_str(&list).expect("json");
    let items = v["items"].as_array().expect("items");
    let docs: Vec<String> = items.iter().map(|i| i.to_string()).collect();
    same(&docs.join("\n---\n"));
    same(&docs.join("\n"));
    same(&docs.join("\r\n"));
}

#[test]
fn edge_cases_read_the_same_both_ways() {
    let ns = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}}"#;
    let pv = r#"{"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"pv"},"spec":{"capacity":{"storage":"1Gi"},"accessModes":["ReadWriteOnce"],"hostPath":{"path":"/x"}}}"#;
    let cases = [
        ns.to_string(),
        format!("{ns}{ns}"),
        format!("{ns}\n{pv}\n{pv}"),
        format!(r#"{{"kind":"List","items":[{ns},{pv},{ns}]}}"#),
        format!(r#"{{"kind":"List","items":[{ns},null]}}"#),
        format!(r#"{{"kind":"List","items":[{ns},"x"]}}"#),
        format!(r#"{{"kind":"PodList","items":[{pv}],"kind":"Thing"}}"#),
        format!(r#"{{"items":[{pv}],"kind":"ConfigMapList"}}"#),
        format!("[{ns}]"),
        format!("{ns} 5"),
        format!("{ns} null {pv}"),
        format!("{ns}\n---\n{{\"kind\":\n---\n{pv}"),
        // Unknown fields, numbers, escapes, bad values.
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a","lables":{"x":"y"}}}"#.into(),
        r#"{"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"pv"},"spec":{"capacity":{"storage":5}}}"#.into(),
        r#"{"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"pv"},"spec":{"capacity":{"storage":1e3}}}"#.into(),
        r#"{"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"pv"},"spec":{"capacity":{"storage":"5Qi"}}}"#.into(),
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a\u0062"}}"#.into(),
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"Bad_Name"}}"#.into(),
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":""}}"#.into(),
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a","labels":{"k":"bad value"}}}"#.into(),
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"Bad_NS"}}"#.into(),
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","ports":[{"containerPort":80}]}]}}"#.into(),
        r#"{"apiVersion":"v2","kind":"Namespace","metadata":{"name":"a"}}"#.into(),
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}"#.into(),
        r#"{"apiVersion":"v1","metadata":{"name":"s"}}"#.into(),
        r#"{"apiVersion":"v1","kind":"Namespace","kind":"Namespace","metadata":{"name":"a"}}"#.into(),
        r#"{"apiVersion":"storage.k8s.io/v1","kind":"CSINode","metadata":{"name":"n"},"spec":{"drivers":[{"name":"d","nodeID":"n","allocatable":{"count":-1}}]}}"#.into(),
        r#"{"apiVersion":"storage.k8s.io/v1","kind":"CSINode","metadata":{"name":"n"},"spec":{"drivers":[{"name":"d","nodeID":"n","allocatable":{"count":3}}]}}"#.into(),
        "\u{feff}{}".into(),
        "{}".into(),
        "{ }\n".into(),
    ];
    for c in &cases {
        same(c);
    }
}

/// A small xorshift generator, so failures are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutations_read_the_same_both_ways() {
    let base = examples_as_json_list();
    // Pieces that make the mutations interesting: syntax, numbers, escapes,
    // unknown fields, other kinds and values.
    let pieces = [
        "\"",
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "1",
        "-2.5",
        "1e9",
        "null",
        "\\u0041",
        "\\n",
        "\"extra\":1,",
        "\"kind\":\"Pod\",",
        "\"Gi\"",
        "true",
        " ",
        "\n---\n",
        "\"x\"",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..400 {
        let mut text = base.clone().into_bytes();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(text.len());
            match rng.below(3) {
                0 => {
                    let end = (at + 1 + rng.below(8)).min(text.len());
                    text.drain(at..end);
                }
                1 => {
                    let p = pieces[rng.below(pieces.len())];
                    text.splice(at..at, p.bytes());
                }
                _ => {
                    let p = pieces[rng.below(pieces.len())];
                    let end = (at + p.len()).min(text.len());
                    text.splice(at..end, p.bytes());
                }
            }
        }
        if let Ok(text) = String::from_utf8(text) {
            same(&text);
        }
    }
}
