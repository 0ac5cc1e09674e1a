//! Reading manifests: files, directories (their `.yaml`, `.yml` and `.json`
//! files, in name order, not recursive — as `kubectl -f DIR`) and `-` for
//! standard input. A file holds one or more YAML documents separated by `---`
//! lines, or JSON objects; `kind: List` (and any `*List` with `items`) is
//! flattened into its items.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use thiserror::Error;

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
        match self.item {
            Some(i) => format!("{}: document {} item {i}", self.source, self.index),
            None => format!("{}: document {}", self.source, self.index),
        }
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

pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<Document>, LoadError> {
    let mut docs = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| LoadError::Io {
                    path: "-".into(),
                    source,
                })?;
            docs.extend(parse_str("-", &text)?);
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
                docs.extend(read_file(&f)?);
            }
        } else if path.is_file() {
            docs.extend(read_file(path)?);
        } else {
            return Err(LoadError::NotFound {
                path: path.display().to_string(),
            });
        }
    }
    Ok(docs)
}

fn io_err(path: &Path, source: std::io::Error) -> LoadError {
    LoadError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn read_file(path: &Path) -> Result<Vec<Document>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    parse_str(&path.display().to_string(), &text)
}

/// Splits on `---` separator lines, as kubectl's YAML reader does.
fn split_documents(text: &str) -> Vec<String> {
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let is_separator = line.starts_with("---")
            && line[3..]
                .chars()
                .next()
                .is_none_or(|c| c == ' ' || c == '\t' || c == '#');
        if is_separator {
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
        let trimmed = chunk.trim_start();
        let values: Vec<Value> = if trimmed.starts_with('{') || trimmed.starts_with('[') {
            // JSON (possibly several concatenated objects); fall back to YAML,
            // which also accepts flow-style documents that are not strict JSON.
            let parsed: Result<Vec<Value>, _> = serde_json::Deserializer::from_str(&chunk)
                .into_iter::<Value>()
                .collect();
            match parsed {
                Ok(v) => v,
                Err(_) => vec![parse_yaml(source, index + 1, &chunk)?],
            }
        } else {
            vec![parse_yaml(source, index + 1, &chunk)?]
        };
        for value in values {
            index += 1;
            push_value(source, index, value, &mut out)?;
        }
    }
    Ok(out)
}

fn parse_yaml(source: &str, index: usize, chunk: &str) -> Result<Value, LoadError> {
    serde_saphyr::from_str::<Value>(chunk).map_err(|e| LoadError::Syntax {
        source_name: source.to_string(),
        index,
        message: e.to_string(),
    })
}

fn kind_of(v: &Value) -> &'static str {
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
