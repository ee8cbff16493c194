//! The part of Go's `text/template` that `--format` flags use in practice: field paths
//! (`{{.State.ExitCode}}`), functions (`json`, `join`, `index`, `upper`, `lower`, `title`,
//! `len`, `println`), pipes (`{{.Names | json}}`), string arguments, and a method hook for
//! docker's `{{.Label "k"}}`, and the control structures `if`, `with` and `range` (with
//! `else`). Anything else (`define`, variables) is refused with an error rather than
//! silently printed wrong.

use crate::json::Value;

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
    /// `{{json .}}` of the whole row HTML-escapes, as docker's formatter contexts do.
    row_json_escapes_html: bool,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Action(Vec<Command>),
    /// `if`/`with`/`range` pipeline, body, and `else` body.
    Block(BlockKind, Vec<Command>, Vec<Part>, Vec<Part>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum BlockKind {
    If,
    With,
    Range,
}

/// A lexed piece of the source: text, or an action's inside.
enum Item {
    Text(String),
    Action(String),
}

/// One command of a pipeline: operands, the first being a function or a value.
type Command = Vec<Operand>;

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    /// `.A.B` (empty path for `.`).
    Field(Vec<String>),
    /// A function name such as `json`.
    Ident(String),
    Str(String),
    Num(i64),
}

/// Answers docker's template methods (`.Label "k"`) for the current row.
pub type MethodFn<'a> = &'a dyn Fn(&str, &[Value]) -> Option<Value>;

/// What every action of one rendering sees besides its dot.
struct Env<'a> {
    method: MethodFn<'a>,
    /// The row whose `json` HTML-escapes (see `Template::row_json_escapes_html`).
    html_escaped_row: Option<&'a Value>,
}

impl Template {
    /// Parses `src`; errors read like Go's `template: …`.
    pub fn parse(src: &str) -> Result<Template, String> {
        let items = lex(src)?;
        let mut pos = 0;
        let (parts, end) = parse_list(&items, &mut pos)?;
        if let Some(word) = end {
            return Err(format!("template: unexpected {{{{{word}}}}}"));
        }
        Ok(Template {
            parts,
            row_json_escapes_html: false,
        })
    }

    /// For the rows of docker's list formatters (`ps`, `images`, `history`, `network ls`,
    /// `volume ls`, `stats`): their Go contexts marshal themselves with `json.Marshal`, which
    /// escapes `<`, `>` and `&`, so `{{json .}}` shows `\u003cnone\u003e` where `{{json .Tag}}`
    /// (a plain string under docker's non-escaping `json`) shows `<none>`.
    pub fn formatter_rows(mut self) -> Template {
        self.row_json_escapes_html = true;
        self
    }

    /// Renders against `data`; `method` answers method calls such as `.Label "k"`.
    pub fn render(&self, data: &Value, method: MethodFn<'_>) -> Result<String, String> {
        let mut out = String::new();
        let env = Env {
            method,
            html_escaped_row: self.row_json_escapes_html.then_some(data),
        };
        render_parts(&self.parts, data, &env, &mut out)?;
        Ok(out)
    }
}

fn lex(src: &str) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut rest = src;
    while let Some(start) = rest.find("{{") {
        let mut text = &rest[..start];
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| "template: unclosed action".to_string())?;
        let mut inner = &after[..end];
        // `{{-` and `-}}` trim the whitespace beside the action.
        if let Some(stripped) = inner.strip_prefix("- ") {
            text = text.trim_end();
            inner = stripped;
        }
        let mut trim_after = false;
        if let Some(stripped) = inner.strip_suffix(" -") {
            trim_after = true;
            inner = stripped;
        }
        if !text.is_empty() {
            items.push(Item::Text(text.to_string()));
        }
        items.push(Item::Action(inner.trim().to_string()));
        rest = &after[end + 2..];
        if trim_after {
            rest = rest.trim_start();
        }
    }
    if !rest.is_empty() {
        items.push(Item::Text(rest.to_string()));
    }
    Ok(items)
}

/// Parses parts until `{{end}}` or `{{else}}` (returned as the terminator) or the end.
fn parse_list(
    items: &[Item],
    pos: &mut usize,
) -> Result<(Vec<Part>, Option<&'static str>), String> {
    let mut parts = Vec::new();
    while *pos < items.len() {
        let item = &items[*pos];
        *pos += 1;
        match item {
            Item::Text(t) => parts.push(Part::Text(t.clone())),
            Item::Action(a) => {
                let (word, rest) = match a.split_once(char::is_whitespace) {
                    Some((w, r)) => (w, r.trim()),
                    None => (a.as_str(), ""),
                };
                match word {
                    "end" => return Ok((parts, Some("end"))),
                    "else" => return Ok((parts, Some("else"))),
                    "if" | "with" | "range" => {
                        let kind = match word {
                            "if" => BlockKind::If,
                            "with" => BlockKind::With,
                            _ => BlockKind::Range,
                        };
                        let pipeline = parse_pipeline(rest)?;
                        let (body, end) = parse_list(items, pos)?;
                        let else_body = match end {
                            Some("end") => Vec::new(),
                            Some(_) => {
                                let (e, end2) = parse_list(items, pos)?;
                                if end2 != Some("end") {
                                    return Err(format!("template: unexpected EOF in {word}"));
                                }
                                e
                            }
                            None => return Err(format!("template: unexpected EOF in {word}")),
                        };
                        parts.push(Part::Block(kind, pipeline, body, else_body));
                    }
                    _ => {
                        if a.starts_with("/*") {
                            continue;
                        }
                        parts.push(Part::Action(parse_pipeline(a)?));
                    }
                }
            }
        }
    }
    Ok((parts, None))
}

/// Go's truth: false, 0, nil and empty strings, lists and maps are false.
fn truthy(v: &Option<Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Int(i)) => *i != 0,
        Some(Value::UInt(u)) => *u != 0,
        Some(Value::Float(f)) => *f != 0.0,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

fn render_parts(
    parts: &[Part],
    data: &Value,
    env: &Env<'_>,
    out: &mut String,
) -> Result<(), String> {
    for part in parts {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Action(pipeline) => match eval_pipeline(pipeline, data, env)? {
                Some(v) => out.push_str(&v.to_template_text()),
                None => out.push_str("<no value>"),
            },
            Part::Block(kind, pipeline, body, else_body) => {
                let v = eval_pipeline(pipeline, data, env)?;
                match kind {
                    BlockKind::If => {
                        let branch = if truthy(&v) { body } else { else_body };
                        render_parts(branch, data, env, out)?;
                    }
                    BlockKind::With => match v.filter(|x| truthy(&Some(x.clone()))) {
                        Some(dot) => render_parts(body, &dot, env, out)?,
                        None => render_parts(else_body, data, env, out)?,
                    },
                    BlockKind::Range => {
                        let elems: Vec<Value> = match v {
                            Some(Value::Array(a)) => a,
                            // Go ranges over a map in key order.
                            Some(Value::Object(mut o)) => {
                                o.sort_by(|a, b| a.0.cmp(&b.0));
                                o.into_iter().map(|(_, v)| v).collect()
                            }
                            None | Some(Value::Null) => Vec::new(),
                            Some(other) => {
                                return Err(format!(
                                    "template: range can't iterate over {}",
                                    other.to_template_text()
                                ))
                            }
                        };
                        if elems.is_empty() {
                            render_parts(else_body, data, env, out)?;
                        }
                        for e in &elems {
                            render_parts(body, e, env, out)?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn tokenize(src: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut chars = src.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut s = String::from("\"");
            let mut closed = false;
            while let Some(c) = chars.next() {
                if c == '\\' {
                    match chars.next() {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some(other) => s.push(other),
                        None => break,
                    }
                } else if c == '"' {
                    closed = true;
                    break;
                } else {
                    s.push(c);
                }
            }
            if !closed {
                return Err("template: unterminated quoted string".into());
            }
            tokens.push(s);
        } else if c == '|' || c == '(' || c == ')' {
            if c != '|' {
                return Err("template: parenthesized pipelines are not supported".into());
            }
            chars.next();
            tokens.push("|".into());
        } else {
            let mut s = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '|' || c == '"' {
                    break;
                }
                s.push(c);
                chars.next();
            }
            tokens.push(s);
        }
    }
    Ok(tokens)
}

fn parse_pipeline(src: &str) -> Result<Vec<Command>, String> {
    let tokens = tokenize(src)?;
    if tokens.is_empty() {
        return Err("template: missing value for command".into());
    }
    let mut commands = Vec::new();
    let mut current: Command = Vec::new();
    for tok in tokens {
        if tok == "|" {
            if current.is_empty() {
                return Err("template: missing command before |".into());
            }
            commands.push(std::mem::take(&mut current));
            continue;
        }
        let op = if let Some(s) = tok.strip_prefix('"') {
            Operand::Str(s.to_string())
        } else if tok == "." {
            Operand::Field(Vec::new())
        } else if let Some(path) = tok.strip_prefix('.') {
            Operand::Field(path.split('.').map(str::to_string).collect())
        } else if let Ok(n) = tok.parse::<i64>() {
            Operand::Num(n)
        } else if tok.starts_with('$')
            || matches!(tok.as_str(), "define" | "block" | "template" | ":=")
        {
            return Err(format!(
                "template: {tok:?} is not supported by berth's --format"
            ));
        } else {
            Operand::Ident(tok)
        };
        current.push(op);
    }
    if current.is_empty() {
        return Err("template: missing command after |".into());
    }
    commands.push(current);
    Ok(commands)
}

fn eval_pipeline(
    pipeline: &[Command],
    data: &Value,
    env: &Env<'_>,
) -> Result<Option<Value>, String> {
    let mut prev: Option<Option<Value>> = None;
    for cmd in pipeline {
        prev = Some(eval_command(cmd, data, env, prev)?);
    }
    Ok(prev.flatten())
}

fn eval_operand(op: &Operand, data: &Value) -> Result<Option<Value>, String> {
    Ok(match op {
        Operand::Field(path) => lookup(data, path),
        Operand::Str(s) => Some(Value::String(s.clone())),
        Operand::Num(n) => Some(Value::Int(*n)),
        Operand::Ident(name) => return Err(format!("template: function {name:?} used as a value")),
    })
}

fn lookup(data: &Value, path: &[String]) -> Option<Value> {
    let mut cur = data;
    for key in path {
        cur = cur.get(key)?;
    }
    Some(cur.clone())
}

fn eval_command(
    cmd: &Command,
    data: &Value,
    env: &Env<'_>,
    piped: Option<Option<Value>>,
) -> Result<Option<Value>, String> {
    let (head, rest) = match cmd.split_first() {
        Some(x) => x,
        None => return Err("template: empty command".into()),
    };
    let mut args: Vec<Option<Value>> = Vec::new();
    for op in rest {
        args.push(eval_operand(op, data)?);
    }
    if let Some(p) = piped {
        args.push(p);
    }
    match head {
        Operand::Ident(name) => call(name, &args, env),
        Operand::Field(path) if !args.is_empty() => {
            // `.Label "k"`: a method of the row, answered by the caller.
            let name = path.join(".");
            let values: Vec<Value> = args.into_iter().map(|a| a.unwrap_or(Value::Null)).collect();
            (env.method)(&name, &values)
                .map(Some)
                .ok_or_else(|| format!("template: can't evaluate field {name}"))
        }
        other => eval_operand(other, data),
    }
}

fn text_of(v: &Option<Value>) -> String {
    v.as_ref()
        .map(Value::to_template_text)
        .unwrap_or_else(|| "<no value>".into())
}

fn call(name: &str, args: &[Option<Value>], env: &Env<'_>) -> Result<Option<Value>, String> {
    let want = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!(
                "template: wrong number of args for {name}: want {n} got {}",
                args.len()
            ))
        }
    };
    match name {
        "json" => {
            want(1)?;
            let v = args[0].clone().unwrap_or(Value::Null);
            let json = v.to_json();
            // `<>&` only occur inside JSON strings, so escaping the text escapes the strings.
            Ok(Some(Value::String(if env.html_escaped_row == Some(&v) {
                json.replace('<', "\\u003c")
                    .replace('>', "\\u003e")
                    .replace('&', "\\u0026")
            } else {
                json
            })))
        }
        "join" => {
            want(2)?;
            let sep = text_of(&args[1]);
            let items = match &args[0] {
                Some(Value::Array(items)) => items
                    .iter()
                    .map(Value::to_template_text)
                    .collect::<Vec<_>>(),
                Some(Value::Null) | None => Vec::new(),
                Some(other) => vec![other.to_template_text()],
            };
            Ok(Some(Value::String(items.join(&sep))))
        }
        "index" => {
            want(2)?;
            let found = match (&args[0], &args[1]) {
                (Some(obj @ Value::Object(_)), Some(Value::String(k))) => obj.get(k).cloned(),
                (Some(Value::Array(items)), Some(Value::Int(i))) => {
                    let idx = usize::try_from(*i)
                        .map_err(|_| format!("template: index out of range: {i}"))?;
                    Some(
                        items
                            .get(idx)
                            .cloned()
                            .ok_or_else(|| format!("template: index out of range: {i}"))?,
                    )
                }
                _ => None,
            };
            Ok(found)
        }
        "upper" => {
            want(1)?;
            Ok(Some(Value::String(text_of(&args[0]).to_uppercase())))
        }
        "lower" => {
            want(1)?;
            Ok(Some(Value::String(text_of(&args[0]).to_lowercase())))
        }
        "title" => {
            want(1)?;
            let s = text_of(&args[0]);
            let mut c = s.chars();
            let t = match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            };
            Ok(Some(Value::String(t)))
        }
        "len" => {
            want(1)?;
            let n = match &args[0] {
                Some(Value::Array(a)) => a.len(),
                Some(Value::Object(o)) => o.len(),
                Some(Value::String(s)) => s.len(),
                _ => return Err("template: len of a value without length".into()),
            };
            Ok(Some(Value::Int(n as i64)))
        }
        "eq" | "ne" => {
            want(2)?;
            let same = text_of(&args[0]) == text_of(&args[1]);
            Ok(Some(Value::Bool(if name == "eq" { same } else { !same })))
        }
        "not" => {
            want(1)?;
            Ok(Some(Value::Bool(!truthy(&args[0]))))
        }
        "println" => {
            let parts: Vec<String> = args.iter().map(text_of).collect();
            Ok(Some(Value::String(parts.join(" ") + "\n")))
        }
        other => Err(format!("template: function {other:?} not defined")),
    }
}

/// Splits docker's `table` prefix off a format: `(is_table, rest)`.
pub fn strip_table(format: &str) -> (bool, &str) {
    match format.strip_prefix("table") {
        Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
            (true, rest.trim_start())
        }
        _ => (false, format),
    }
}

/// Docker's table header for a row template: each `{{.Field}}` becomes its column title
/// (`{{.ID}}` → `CONTAINER ID`), text between actions stays.
pub fn header(tpl: &Template, title: &dyn Fn(&str) -> String) -> String {
    let mut out = String::new();
    for part in &tpl.parts {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Action(pipeline) => {
                let field = pipeline.first().and_then(|cmd| match cmd.first() {
                    Some(Operand::Field(path)) if !path.is_empty() => Some(path.join(".")),
                    _ => None,
                });
                out.push_str(&field.map(|f| title(&f)).unwrap_or_default());
            }
            Part::Block(..) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Value {
        Value::parse(br#"{"Id":"abc","State":{"ExitCode":3,"Running":false},"Names":["/a","/b"],"Config":{"Labels":{"z":"1","a":"2"}}}"#)
            .unwrap()
    }

    fn no_methods(_: &str, _: &[Value]) -> Option<Value> {
        None
    }

    fn render(src: &str) -> Result<String, String> {
        Template::parse(src)?.render(&data(), &no_methods)
    }

    #[test]
    fn json_escapes_html_only_for_formatter_rows() {
        let row = Value::parse(br#"{"Labels":"k=<a&b>","Tag":"<none>"}"#).unwrap();
        let plain = Template::parse("{{json .}} {{json .Tag}}").unwrap();
        assert_eq!(
            plain.render(&row, &no_methods).unwrap(),
            r#"{"Labels":"k=<a&b>","Tag":"<none>"} "<none>""#
        );
        let rows = plain.formatter_rows();
        assert_eq!(
            rows.render(&row, &no_methods).unwrap(),
            r#"{"Labels":"k=\u003ca\u0026b\u003e","Tag":"\u003cnone\u003e"} "<none>""#
        );
    }

    #[test]
    fn fields_and_functions() {
        assert_eq!(render("{{.State.ExitCode}}").unwrap(), "3");
        assert_eq!(
            render("id={{.Id}} run={{ .State.Running }}").unwrap(),
            "id=abc run=false"
        );
        assert_eq!(
            render("{{json .State}}").unwrap(),
            r#"{"ExitCode":3,"Running":false}"#
        );
        assert_eq!(render("{{.Names | json}}").unwrap(), r#"["/a","/b"]"#);
        assert_eq!(render(r#"{{join .Names ","}}"#).unwrap(), "/a,/b");
        assert_eq!(render(r#"{{index .Config.Labels "a"}}"#).unwrap(), "2");
        assert_eq!(render("{{.Config.Labels}}").unwrap(), "map[a:2 z:1]");
        assert_eq!(render("{{.Nope}}").unwrap(), "<no value>");
        assert_eq!(render("{{upper .Id}}").unwrap(), "ABC");
        assert_eq!(render("{{if .Id}}x{{else}}y{{end}}").unwrap(), "x");
        assert_eq!(render("{{if .Nope}}x{{else}}y{{end}}").unwrap(), "y");
        assert_eq!(
            render("{{range .Names}}[{{.}}]{{end}}").unwrap(),
            "[/a][/b]"
        );
        assert_eq!(
            render("{{range .Config.Labels}}{{.}}{{end}}").unwrap(),
            "21"
        );
        assert_eq!(render("{{with .State}}{{.ExitCode}}{{end}}").unwrap(), "3");
        assert_eq!(render(r#"{{if eq .Id "abc"}}yes{{end}}"#).unwrap(), "yes");
        assert!(render("{{if .Id}}x").is_err());
        assert!(render("{{$x := 1}}").is_err());
        assert!(render("{{.Id").is_err());
    }

    #[test]
    fn methods_and_tables() {
        let labels = |name: &str, args: &[Value]| -> Option<Value> {
            (name == "Label" && args == [Value::String("k".into())])
                .then(|| Value::String("v".into()))
        };
        let t = Template::parse(r#"{{.Label "k"}}"#).unwrap();
        assert_eq!(t.render(&data(), &labels).unwrap(), "v");
        assert_eq!(
            strip_table("table {{.ID}}\t{{.Names}}"),
            (true, "{{.ID}}\t{{.Names}}")
        );
        assert_eq!(strip_table("{{.ID}}"), (false, "{{.ID}}"));
        let t = Template::parse("{{.ID}}\t{{.Names}}").unwrap();
        let title = |f: &str| {
            if f == "ID" {
                "CONTAINER ID".to_string()
            } else {
                f.to_uppercase()
            }
        };
        assert_eq!(header(&t, &title), "CONTAINER ID\tNAMES");
    }
}
