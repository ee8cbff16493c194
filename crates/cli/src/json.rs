//! JSON as docker's CLI shows it: objects keep the daemon's key order (Go marshals struct
//! fields in declaration order, and `serde_json::Value` would sort them), encoding escapes
//! strings like docker's template `json` (Go's encoder without HTML escaping), and indentation
//! follows Go's `json.Indent`.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value whose objects keep their key order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    /// Parses JSON text.
    pub fn parse(data: &[u8]) -> Result<Value, String> {
        serde_json::from_slice(data).map_err(|e| e.to_string())
    }

    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Compact JSON as docker's template `json` writes it: Go's encoder with `SetEscapeHTML(false)`.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::UInt(u) => out.push_str(&u.to_string()),
            Value::Float(f) => out.push_str(&go_float(*f)),
            Value::String(s) => write_string(s, out),
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write_json(out);
                }
                out.push(']');
            }
            Value::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(k, out);
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }

    /// The value as Go's `text/template` prints it: strings bare, maps as `map[k:v]`
    /// (sorted keys, as Go prints maps), lists as `[a b]`, null as `<nil>`.
    pub fn to_template_text(&self) -> String {
        match self {
            Value::Null => "<nil>".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::UInt(u) => u.to_string(),
            Value::Float(f) => go_float(*f),
            Value::String(s) => s.clone(),
            Value::Array(items) => {
                let parts: Vec<String> = items.iter().map(Value::to_template_text).collect();
                format!("[{}]", parts.join(" "))
            }
            Value::Object(members) => {
                let mut sorted: Vec<&(String, Value)> = members.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                let parts: Vec<String> = sorted
                    .iter()
                    .map(|(k, v)| format!("{k}:{}", v.to_template_text()))
                    .collect();
                format!("map[{}]", parts.join(" "))
            }
        }
    }
}

fn go_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Docker's `json` turns off Go's HTML escaping of `<`, `>` and `&`, but Go
            // escapes these two line separators regardless.
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        // One representation per number, so comparisons do not depend on the parser.
        Ok(i64::try_from(v).map(Value::Int).unwrap_or(Value::UInt(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            members.push((k, v));
        }
        Ok(Value::Object(members))
    }
}

/// Re-indents JSON text token by token, like Go's `json.Indent(dst, src, prefix, indent)`:
/// key order and string escapes stay exactly as the daemon sent them, and empty `{}`/`[]`
/// stay on one line.
pub fn indent(src: &[u8], prefix: &str, unit: &str) -> String {
    let mut out = String::with_capacity(src.len() * 2);
    let text = String::from_utf8_lossy(src);
    let chars: Vec<char> = text.chars().collect();
    let mut depth = 0usize;
    let mut i = 0;
    // Set after an opening bracket: the newline is deferred so `{}` and `[]` stay compact.
    let mut need_indent = false;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(prefix);
        for _ in 0..depth {
            out.push_str(unit);
        }
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if need_indent && c != ']' && c != '}' {
            need_indent = false;
            depth += 1;
            newline(&mut out, depth);
        }
        match c {
            '"' => {
                out.push('"');
                i += 1;
                while i < chars.len() {
                    let s = chars[i];
                    out.push(s);
                    i += 1;
                    if s == '\\' {
                        if let Some(&n) = chars.get(i) {
                            out.push(n);
                            i += 1;
                        }
                    } else if s == '"' {
                        break;
                    }
                }
                continue;
            }
            '{' | '[' => {
                out.push(c);
                need_indent = true;
            }
            '}' | ']' => {
                if need_indent {
                    need_indent = false;
                } else {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            ',' => {
                out.push(',');
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            other => out.push(other),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_escapes_like_go() {
        let v = Value::parse(br#"{"b":1,"a":[true,null,"x<y&\u2028"],"c":{}}"#).unwrap();
        assert_eq!(
            v.to_json(),
            r#"{"b":1,"a":[true,null,"x<y&\u2028"],"c":{}}"#
        );
        assert_eq!(v.get("b"), Some(&Value::Int(1)));
        assert_eq!(
            v.to_template_text(),
            "map[a:[true <nil> x<y&\u{2028}] b:1 c:map[]]"
        );
    }

    #[test]
    fn indents_like_go() {
        let src =
            br#"[{"Id":"abc","Args":[],"State":{"Running":false,"Note":"a,b:{c}"},"L":[1,2]}]"#;
        let want = "[\n    {\n        \"Id\": \"abc\",\n        \"Args\": [],\n        \"State\": {\n            \"Running\": false,\n            \"Note\": \"a,b:{c}\"\n        },\n        \"L\": [\n            1,\n            2\n        ]\n    }\n]";
        assert_eq!(indent(src, "", "    "), want);
    }
}
