//! The fast path's first step: a JSON document is checked for syntax and cut
//! into its top-level values and list items, each kept as a span of the text
//! (`serde_json`'s `RawValue`), without building a tree.
//!
//! The fast path must read exactly what the generic path
//! (`serde_json::Value`, then YAML when that fails) reads. Skipping a value
//! checks less than parsing it does: numbers out of range, `\u` escapes
//! naming lone surrogates and nesting past `serde_json`'s recursion limit
//! pass unseen. So a document holding any `\u` escape, a number that is not
//! a short plain decimal, or deep nesting is left to the generic path
//! ([`scan`] returns `None`), as is one that is not valid JSON.

use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Deeper documents go the generic way: `serde_json` refuses nesting
/// beyond 128 levels when it builds a tree, and not when it skips.
const MAX_DEPTH: usize = 100;
/// Longer numbers go the generic way (an `f64` can overflow).
const MAX_NUMBER_LEN: usize = 18;

/// One top-level value of a JSON document. Spans are byte ranges of the
/// document's text.
#[derive(Debug)]
pub(super) enum Top {
    Null,
    Object(Range<usize>),
    /// A `*List` object's items: an object's span, or what else the item is
    /// (as `load::kind_of` words it).
    List(Vec<Result<Range<usize>, &'static str>>),
    Other(&'static str),
}

#[derive(Debug)]
pub(super) struct Scan {
    pub values: Vec<Top>,
    /// Where the numbers start, in order.
    pub numbers: Vec<usize>,
}

/// Whether `span` holds a number.
pub(super) fn has_number(numbers: &[usize], span: &Range<usize>) -> bool {
    let i = numbers.partition_point(|&n| n < span.start);
    numbers.get(i).is_some_and(|&n| n < span.end)
}

/// The document's top-level values, or `None` when the generic path must
/// read it (see the module doc).
pub(super) fn scan(text: &str) -> Option<Scan> {
    let numbers = plain_numbers(text.as_bytes())?;
    let base = text.as_ptr() as usize;
    let span = |raw: &RawValue| {
        let start = raw.get().as_ptr() as usize - base;
        start..start + raw.get().len()
    };
    let mut values = Vec::new();
    for raw in serde_json::Deserializer::from_str(text).into_iter::<&RawValue>() {
        let raw = raw.ok()?;
        let top = match what(raw.get()) {
            None => Top::Null,
            Some(Ok(())) => {
                let probe: Probe<'_> = serde_json::from_str(raw.get()).ok()?;
                let is_list = probe.kind.as_deref().is_some_and(|k| k.ends_with("List"));
                match probe.items {
                    Some(items) if is_list => Top::List(
                        items
                            .into_iter()
                            .map(|item| match what(item.get()) {
                                Some(Ok(())) => Ok(span(item)),
                                Some(Err(found)) => Err(found),
                                None => Err("null"),
                            })
                            .collect(),
                    ),
                    _ => Top::Object(span(raw)),
                }
            }
            Some(Err(found)) => Top::Other(found),
        };
        values.push(top);
    }
    Some(Scan { values, numbers })
}

/// `None` for null, `Ok` for an object, else what the value is.
fn what(raw: &str) -> Option<Result<(), &'static str>> {
    Some(match raw.as_bytes().first() {
        Some(b'n') => return None,
        Some(b'{') => Ok(()),
        Some(b'[') => Err("a list"),
        Some(b'"') => Err("a string"),
        Some(b't' | b'f') => Err("a boolean"),
        _ => Err("a number"),
    })
}

/// The offsets of the numbers outside strings, or `None` when the text
/// holds something only a full parse checks (see the module doc).
fn plain_numbers(b: &[u8]) -> Option<Vec<usize>> {
    let mut numbers = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                loop {
                    let off = b[i..].iter().position(|&c| c == b'"' || c == b'\\')?;
                    i += off;
                    if b[i] == b'"' {
                        break;
                    }
                    if b.get(i + 1) == Some(&b'u') {
                        return None;
                    }
                    i += 2;
                }
                i += 1;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return None;
                }
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < b.len() && matches!(b[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                if !is_plain_decimal(&b[start..i]) {
                    return None;
                }
                numbers.push(start);
            }
            _ => i += 1,
        }
    }
    Some(numbers)
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?`, short.
fn is_plain_decimal(n: &[u8]) -> bool {
    if n.len() > MAX_NUMBER_LEN {
        return false;
    }
    let n = n.strip_prefix(b"-").unwrap_or(n);
    let (int, frac) = match n.iter().position(|&c| c == b'.') {
        Some(p) => (&n[..p], Some(&n[p + 1..])),
        None => (n, None),
    };
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    digits(int) && (int == b"0" || int[0] != b'0') && frac.is_none_or(digits)
}

/// What `load::push_value` reads of a top-level object: whether it is a
/// list (`kind` a string ending in `List`, `items` an array). A key given
/// twice counts with its last value, as in a `serde_json::Value`.
struct Probe<'a> {
    kind: Option<String>,
    items: Option<Vec<&'a RawValue>>,
}

impl<'de> Deserialize<'de> for Probe<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Probe<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Probe<'de>, A::Error> {
                let mut probe = Probe {
                    kind: None,
                    items: None,
                };
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Kind => probe.kind = map.next_value::<MaybeString>()?.0,
                        Key::Items => probe.items = map.next_value::<MaybeArray<'de>>()?.0,
                        Key::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(probe)
            }
        }
        d.deserialize_map(V)
    }
}

enum Key {
    Kind,
    Items,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, k: &str) -> Result<Key, E> {
                Ok(match k {
                    "kind" => Key::Kind,
                    "items" => Key::Items,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// A string, or `None` for any other value.
struct MaybeString(Option<String>);

impl<'de> Deserialize<'de> for MaybeString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyValue(|v: Seen<'de>| match v {
            Seen::Str(s) => MaybeString(Some(s)),
            _ => MaybeString(None),
        }))
    }
}

/// An array's elements as text, or `None` for any other value.
struct MaybeArray<'a>(Option<Vec<&'a RawValue>>);

impl<'de> Deserialize<'de> for MaybeArray<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyValue(|v: Seen<'de>| match v {
            Seen::Array(items) => MaybeArray(Some(items)),
            _ => MaybeArray(None),
        }))
    }
}

/// What [`AnyValue`] saw; scalars and objects are skipped.
enum Seen<'a> {
    Str(String),
    Array(Vec<&'a RawValue>),
    Other,
}

/// Consumes any value, keeping a string or an array's raw elements.
struct AnyValue<F>(F);

impl<'de, T, F: FnOnce(Seen<'de>) -> T> Visitor<'de> for AnyValue<F> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        Ok((self.0)(Seen::Str(s.to_string())))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<T, E> {
        Ok((self.0)(Seen::Other))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<T, E> {
        Ok((self.0)(Seen::Other))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<T, E> {
        Ok((self.0)(Seen::Other))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<T, E> {
        Ok((self.0)(Seen::Other))
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Ok((self.0)(Seen::Other))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            items.push(item);
        }
        Ok((self.0)(Seen::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok((self.0)(Seen::Other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_objects_and_other_values() {
        let text = r#"{"kind":"List","items":[{"a":1},null,[1]]} null {"kind":"X","items":[]} 5"#;
        let s = scan(text).expect("fast path");
        assert_eq!(s.values.len(), 4);
        match &s.values[0] {
            Top::List(items) => {
                assert_eq!(items[0].clone().map(|r| &text[r]), Ok(r#"{"a":1}"#));
                assert_eq!(items[1], Err("null"));
                assert_eq!(items[2], Err("a list"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(s.values[1], Top::Null));
        assert!(
            matches!(&s.values[2], Top::Object(r) if text[r.clone()].starts_with("{\"kind\":\"X\""))
        );
        assert!(matches!(s.values[3], Top::Other("a number")));
        assert_eq!(s.numbers.len(), 3);
    }

    #[test]
    fn what_only_a_full_parse_checks_goes_the_generic_way() {
        for text in [
            r#"{"a":"\ud800"}"#,
            r#"{"a":1e400}"#,
            r#"{"a":12345678901234567890123}"#,
            r#"{"a":01}"#,
            &format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1)),
            r#"{"a":}"#,
            "{\"a\":\"unterminated",
        ] {
            assert!(scan(text).is_none(), "{text}");
        }
        assert!(scan(r#"{"a":"x\"y\\","b":[-1.5,0,20]}"#).is_some());
    }

    #[test]
    fn last_duplicate_key_wins() {
        let s = scan(r#"{"kind":"List","items":[{}],"kind":"Pod"}"#).expect("fast");
        assert!(matches!(s.values[0], Top::Object(_)));
        let s = scan(r#"{"kind":"Pod","items":[{}],"kind":"PodList"}"#).expect("fast");
        assert!(matches!(s.values[0], Top::List(_)));
    }
}
