//! Reading manifests: files, directories (their `.yaml`, `.yml` and `.json`
//! files, in name order, not recursive — as `kubectl -f DIR`) and `-` for
//! standard input. A file holds one or more YAML documents separated by `---`
//! lines, or JSON objects; `kind: List` (and any `*List` with `items`) is
//! flattened into its items.
//!
//! [`load`] keeps JSON objects as spans of their file's text
//! ([`Loaded`]): the converter decodes each one straight into its API type,
//! so no generic tree of the whole input is ever built. YAML, and JSON the
//! fast path does not take (see `json_scan`), is parsed into
//! [`serde_json::Value`] documents as [`parse_str`] does.

use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde_json::Value;
use thiserror::Error;

use super::json_scan::{self, Top};

/// One object read from the input, with where it came from.
#[derive(Debug, Clone)]
pub struct Document {
    pub source: String,
    /// 1-based number of the document within its source.
    pub index: usize,
    /// 1-based position within a `List` document.
    pub item: Option<usize>,
    pub value: Value,
}

impl Document {
    pub fn place(&self) -> String {
        self.at().place()
    }

    pub(super) fn at(&self) -> At<'_> {
        At {
            source: &self.source,
            index: self.index,
            item: self.item,
        }
    }
}

/// Where an object was read: its source, document and list item.
#[derive(Debug, Clone, Copy)]
pub(super) struct At<'a> {
    pub source: &'a str,
    pub index: usize,
    pub item: Option<usize>,
}

impl At<'_> {
    pub fn place(&self) -> String {
        match self.item {
            Some(i) => format!("{}: document {} item {i}", self.source, self.index),
            None => format!("{}: document {}", self.source, self.index),
        }
    }
}

/// The input, read and checked for syntax but not yet typed: the texts of
/// the sources and, in input order, their objects.
#[derive(Default)]
pub struct Loaded {
    pub(super) sources: Vec<Source>,
    pub(super) entries: Vec<Entry>,
}

pub(super) struct Source {
    pub name: String,
    pub text: String,
}

pub(super) enum Entry {
    /// Parsed into a generic tree (YAML, or JSON the fast path leaves).
    Parsed(Document),
    /// A JSON object still as text.
    Json(JsonItem),
}

/// A JSON object as a span of `sources[source].text`.
pub(super) struct JsonItem {
    pub source: usize,
    pub index: usize,
    pub item: Option<usize>,
    pub span: Range<usize>,
    /// Whether the object holds a number: quantities written as numbers
    /// take the generic path, which rewrites them as the API reads them.
    pub has_number: bool,
}

impl Loaded {
    /// Number of objects read.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The objects as generic documents, as [`load_paths`] returns them.
    pub fn into_documents(self) -> Vec<Document> {
        let sources = self.sources;
        self.entries
            .into_iter()
            .map(|e| match e {
                Entry::Parsed(d) => d,
                Entry::Json(j) => {
                    let s = &sources[j.source];
                    Document {
                        source: s.name.clone(),
                        index: j.index,
                        item: j.item,
                        // The span was checked to parse as a Value.
                        value: serde_json::from_str(&s.text[j.span.clone()]).unwrap_or(Value::Null),
                    }
                }
            })
            .collect()
    }

    /// Reads one source's text (see [`parse_str`] for what it may hold).
    pub fn add_source(&mut self, name: String, text: String) -> Result<(), LoadError> {
        let source = self.sources.len();
        let mut index = 0;
        for range in document_ranges(&text) {
            let chunk = &text[range.clone()];
            if is_blank(chunk) {
                continue;
            }
            let trimmed = chunk.trim_start();
            if (trimmed.starts_with('{') || trimmed.starts_with('['))
                && let Some(json_scan::Scan { values, numbers }) = json_scan::scan(chunk)
            {
                let shift = |r: &Range<usize>| r.start + range.start..r.end + range.start;
                for top in values {
                    index += 1;
                    let item = |i, span: Range<usize>| {
                        Entry::Json(JsonItem {
                            source,
                            index,
                            item: i,
                            has_number: json_scan::has_number(&numbers, &span),
                            span: shift(&span),
                        })
                    };
                    match top {
                        Top::Null => {}
                        Top::Object(span) => self.entries.push(item(None, span)),
                        Top::List(items) => {
                            for (i, it) in items.into_iter().enumerate() {
                                match it {
                                    Ok(span) => self.entries.push(item(Some(i + 1), span)),
                                    Err(found) => return Err(not_an_object(&name, index, found)),
                                }
                            }
                        }
                        Top::Other(found) => return Err(not_an_object(&name, index, found)),
                    }
                }
                continue;
            }
            // The generic path, on the document exactly as `parse_str` sees it.
            let mut owned = String::with_capacity(chunk.len() + 1);
            for line in chunk.lines() {
                owned.push_str(line);
                owned.push('\n');
            }
            let mut docs = Vec::new();
            parse_chunk(&name, &owned, &mut index, &mut docs)?;
            self.entries.extend(docs.into_iter().map(Entry::Parsed));
        }
        self.sources.push(Source { name, text });
        Ok(())
    }
}

fn not_an_object(source: &str, index: usize, found: &'static str) -> LoadError {
    LoadError::NotAnObject {
        source_name: source.to_string(),
        index,
        found,
    }
}

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{source_name}: document {index}: not valid YAML or JSON: {message}")]
    Syntax {
        source_name: String,
        index: usize,
        message: String,
    },
    #[error(
        "{source_name}: document {index}: expected an object with apiVersion and kind, found {found}"
    )]
    NotAnObject {
        source_name: String,
        index: usize,
        found: &'static str,
    },
    #[error("{path}: not a file, directory or \"-\"")]
    NotFound { path: String },
}

/// Reads files, directories and `-` (standard input) into documents.
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<Document>, LoadError> {
    Ok(load(paths)?.into_documents())
}

/// Reads files, directories and `-` (standard input), keeping JSON objects
/// as text for the converter (see [`Loaded`]).
pub fn load(paths: &[PathBuf]) -> Result<Loaded, LoadError> {
    let mut loaded = Loaded::default();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| LoadError::Io {
                    path: "-".into(),
                    source,
                })?;
            loaded.add_source("-".into(), text)?;
        } else if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|source| io_err(path, source))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && matches!(
                            p.extension().and_then(|e| e.to_str()),
                            Some("yaml" | "yml" | "json")
                        )
                })
                .collect();
            files.sort();
            for f in files {
                read_file(&f, &mut loaded)?;
            }
        } else if path.is_file() {
            read_file(path, &mut loaded)?;
        } else {
            return Err(LoadError::NotFound {
                path: path.display().to_string(),
            });
        }
    }
    Ok(loaded)
}

fn io_err(path: &Path, source: std::io::Error) -> LoadError {
    LoadError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn read_file(path: &Path, loaded: &mut Loaded) -> Result<(), LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    loaded.add_source(path.display().to_string(), text)
}

/// The byte ranges of the documents between `---` separator lines, as
/// kubectl's YAML reader splits them; the same documents as
/// [`split_documents`], without copying them.
fn document_ranges(text: &str) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut at = 0;
    for raw in text.split_inclusive('\n') {
        let line_start = at;
        at += raw.len();
        // As `str::lines` reads a line.
        let line = match raw.strip_suffix('\n') {
            Some(l) => l.strip_suffix('\r').unwrap_or(l),
            None => raw,
        };
        if is_separator(line) {
            ranges.push(start..line_start);
            start = at;
        }
    }
    ranges.push(start..text.len());
    ranges
}

fn is_separator(line: &str) -> bool {
    line.starts_with("---")
        && line[3..]
            .chars()
            .next()
            .is_none_or(|c| c == ' ' || c == '\t' || c == '#')
}

/// Splits on `---` separator lines, as kubectl's YAML reader does.
fn split_documents(text: &str) -> Vec<String> {
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if is_separator(line) {
            docs.push(std::mem::take(&mut current));
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs.push(current);
    docs
}

fn is_blank(doc: &str) -> bool {
    doc.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "..."
    })
}

/// Parses the text of one source into documents.
pub fn parse_str(source: &str, text: &str) -> Result<Vec<Document>, LoadError> {
    let mut out = Vec::new();
    let mut index = 0;
    for chunk in split_documents(text) {
        if is_blank(&chunk) {
            continue;
        }
        parse_chunk(source, &chunk, &mut index, &mut out)?;
    }
    Ok(out)
}

/// Parses one non-blank document (after splitting) into `out`.
fn parse_chunk(
    source: &str,
    chunk: &str,
    index: &mut usize,
    out: &mut Vec<Document>,
) -> Result<(), LoadError> {
    let trimmed = chunk.trim_start();
    let values: Vec<Value> = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        // JSON (possibly several concatenated objects); fall back to YAML,
        // which also accepts flow-style documents that are not strict JSON.
        let parsed: Result<Vec<Value>, _> = serde_json::Deserializer::from_str(chunk)
            .into_iter::<Value>()
            .collect();
        match parsed {
            Ok(v) => v,
            Err(_) => vec![parse_yaml(source, *index + 1, chunk)?],
        }
    } else {
        vec![parse_yaml(source, *index + 1, chunk)?]
    };
    for value in values {
        *index += 1;
        push_value(source, *index, value, out)?;
    }
    Ok(())
}

fn parse_yaml(source: &str, index: usize, chunk: &str) -> Result<Value, LoadError> {
    serde_saphyr::from_str::<Value>(chunk).map_err(|e| LoadError::Syntax {
        source_name: source.to_string(),
        index,
        message: e.to_string(),
    })
}

pub(super) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn push_value(
    source: &str,
    index: usize,
    value: Value,
    out: &mut Vec<Document>,
) -> Result<(), LoadError> {
    match value {
        Value::Null => Ok(()),
        Value::Object(mut map) => {
            let is_list = map
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("List"))
                && map.get("items").is_some_and(Value::is_array);
            if is_list {
                let items = match map.remove("items") {
                    Some(Value::Array(items)) => items,
                    _ => Vec::new(),
                };
                for (i, item) in items.into_iter().enumerate() {
                    if !item.is_object() {
                        return Err(LoadError::NotAnObject {
                            source_name: source.to_string(),
                            index,
                            found: kind_of(&item),
                        });
                    }
                    out.push(Document {
                        source: source.to_string(),
                        index,
                        item: Some(i + 1),
                        value: item,
                    });
                }
            } else {
                out.push(Document {
                    source: source.to_string(),
                    index,
                    item: None,
                    value: Value::Object(map),
                });
            }
            Ok(())
        }
        other => Err(LoadError::NotAnObject {
            source_name: source.to_string(),
            index,
            found: kind_of(&other),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_lists_and_json() {
        let text = "a: 1\nkind: X\n---\n# only a comment\n---\nkind: List\nitems:\n- kind: A\n- kind: B\n--- # trailing\nkind: C\n";
        let docs = parse_str("t", text).expect("parses");
        let kinds: Vec<_> = docs
            .iter()
            .map(|d| d.value["kind"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(kinds, ["X", "A", "B", "C"]);
        assert_eq!(docs[1].item, Some(1));
        assert_eq!(docs[3].index, 3);

        let json = "{\"kind\":\"A\"}\n{\"kind\":\"B\"}";
        assert_eq!(parse_str("j", json).expect("json").len(), 2);
    }

    #[test]
    fn syntax_errors_name_the_document() {
        let err = parse_str("f.yaml", "kind: A\n---\nkind: [unclosed\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("f.yaml: document 2"), "{msg}");
        let err = parse_str("f.yaml", "- 1\n- 2\n").unwrap_err();
        assert!(err.to_string().contains("found a list"), "{err}");
    }
}
