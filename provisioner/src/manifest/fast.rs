//! The fast path for one JSON object: decoded straight from its text into
//! its API type, with no generic tree in between.
//!
//! It gives up (`None`), and the object goes the generic way, whenever the
//! generic way could say or read something else: a kind it does not type,
//! any decoding error (the generic way words errors with the field path),
//! any field the API type does not know (the generic way warns, naming
//! each), and numbers outside a CSINode (the generic way rewrites numbers
//! in quantity maps into strings first). What it takes, it reads exactly as
//! the generic way does; the equivalence tests in `convert` check it.

use serde::de::DeserializeOwned;

use super::convert::Typed;

/// The object's kind and API object, or `None` to go the generic way.
pub(super) fn decode(text: &str, has_number: bool) -> Option<(&'static str, Typed)> {
    let kind = sniff_kind(text)?;
    // Numbers are fine where the generic way leaves them alone: it does not
    // rewrite a CSINode's (its `allocatable.count` is a number).
    if has_number && kind != "CSINode" {
        return None;
    }
    // `kind` is checked again by each API type's decoder (every `kind` key
    // must name its type), so a later duplicate key cannot differ.
    Some(match kind {
        "StorageClass" => ("StorageClass", Typed::StorageClass(typed(text)?)),
        "PersistentVolume" => ("PersistentVolume", Typed::PersistentVolume(typed(text)?)),
        "PersistentVolumeClaim" => (
            "PersistentVolumeClaim",
            Typed::PersistentVolumeClaim(typed(text)?),
        ),
        "Node" => ("Node", Typed::Node(typed(text)?)),
        "CSINode" => ("CSINode", Typed::CsiNode(typed(text)?)),
        "CSIDriver" => ("CSIDriver", Typed::CsiDriver(typed(text)?)),
        "Pod" => ("Pod", Typed::Pod(typed(text)?)),
        "StatefulSet" => ("StatefulSet", Typed::StatefulSet(typed(text)?)),
        "Namespace" => ("Namespace", Typed::Namespace(typed(text)?)),
        "LimitRange" => ("LimitRange", Typed::LimitRange(typed(text)?)),
        "ResourceQuota" => ("ResourceQuota", Typed::ResourceQuota(typed(text)?)),
        // CSIStorageCapacity and the snapshot kinds are few, and read with
        // rewrites or lenient types of their own: the generic way.
        _ => return None,
    })
}

/// Decodes `text` into `T`; `None` on any error or ignored field.
fn typed<T: DeserializeOwned>(text: &str) -> Option<T> {
    let mut ignored = false;
    let mut de = serde_json::Deserializer::from_str(text);
    let t = serde_ignored::deserialize(&mut de, |_| ignored = true).ok()?;
    (!ignored).then_some(t)
}

/// The value of the object's first top-level `kind` key when it is a
/// string without escapes. The loader sent objects with `\u` escapes the
/// generic way, so no other spelling of a key can read `kind`.
fn sniff_kind(text: &str) -> Option<&str> {
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(b, i);
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(b, i)?;
        let key = &b[i + 1..key_end - 1];
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        if key == b"kind" {
            if b.get(i) != Some(&b'"') {
                return None;
            }
            let end = string_end(b, i)?;
            let value = &text[i + 1..end - 1];
            return (!value.contains('\\')).then_some(value);
        }
        i = value_end(b, i)?;
        i = skip_ws(b, i);
        match b.get(i) {
            Some(b',') => i += 1,
            _ => return None,
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
        i += 1;
    }
    i
}

/// The index just past the string starting at `b[i]` (a quote).
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        i += b[i..].iter().position(|&c| c == b'"' || c == b'\\')?;
        if b[i] == b'"' {
            return Some(i + 1);
        }
        i += 2;
    }
}

/// The index just past the (valid) value starting at `b[i]`.
fn value_end(b: &[u8], mut i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match b.get(i)? {
                    b'"' => {
                        i = string_end(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            while !matches!(
                b.get(i),
                None | Some(b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
            ) {
                i += 1;
            }
            Some(i)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_is_the_first_top_level_kind_key() {
        let cases = [
            (r#"{"kind":"Pod"}"#, Some("Pod")),
            (
                r#" { "apiVersion" : "v1" , "metadata":{"kind":"X","a":[1,{"b":"}"}]}, "kind": "Node", "kind":"Pod"}"#,
                Some("Node"),
            ),
            (
                r#"{"spec":"a\"kind","kind":"PersistentVolume"}"#,
                Some("PersistentVolume"),
            ),
            (r#"{"kind":5}"#, None),
            (r#"{"kind":"P\nod"}"#, None),
            (r#"{"metadata":{}}"#, None),
            (r#"{"n":null,"t":true,"x":-1.5,"kind":"Pod"}"#, Some("Pod")),
        ];
        for (text, want) in cases {
            assert_eq!(sniff_kind(text), want, "{text}");
        }
    }

    #[test]
    fn unknown_fields_and_errors_go_the_generic_way() {
        let ok = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}}"#;
        assert!(decode(ok, false).is_some());
        for text in [
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a","nmae":"b"}}"#,
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"},"extra":null}"#,
            r#"{"apiVersion":"v2","kind":"Namespace","metadata":{"name":"a"}}"#,
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":5}}"#,
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"},"kind":"Pod"}"#,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}"#,
        ] {
            assert!(decode(text, false).is_none(), "{text}");
        }
        assert!(decode(ok, true).is_none(), "numbers outside a CSINode");
    }
}
