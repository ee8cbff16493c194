//! The part of Go's `text/template` that `--format` flags use in practice: field paths
//! (`{{.State.ExitCode}}`), docker's and Go's common functions (`json`, `join`, `split`,
//! `index`, `upper`, `lower`, `title`, `truncate`, `len`, `eq`, `ne`, `not`, `and`, `or`,
//! `print`, `println`), pipes (`{{.Names | json}}`), string and number arguments,
//! variables (`{{$id := .Id}}`, `{{range $k, $v := .Config.Labels}}`, `$`), a method hook
//! for docker's `{{.Label "k"}}`, and `if`, `with` and `range` (with `else`). Other Go
//! constructs (`define`, `template`, parentheses, `printf`) are refused with an error
//! rather than silently printed wrong.
//!
//! Errors read as Go's, byte for byte where scripts see them: parse errors as
//! `template: NAME:LINE: msg`, execution errors as
//! `template: NAME:LINE:COL: executing "NAME" at <node>: msg`. What a missing field does
//! depends on what the data stands for in docker's Go code (see [`Shape`]).

use crate::json::Value;

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    /// Go's template name, shown in errors (`version` for `docker version`, else empty).
    name: String,
    /// The parsed text, to turn node positions into `line:col`.
    src: String,
    parts: Vec<Part>,
    /// `{{json .}}` of the whole row HTML-escapes, as docker's formatter contexts do.
    row_json_escapes_html: bool,
    /// Go field names whose data carries another JSON name (`APIVersion` → `ApiVersion`).
    field_aliases: &'static [(&'static str, &'static str)],
    /// The Go struct types of fields of a struct root (`Server` → `*types.Version`), so
    /// that an unknown field below them is an error naming the type.
    nested_types: &'static [(&'static str, &'static str)],
}

/// What the data stands for in docker's Go code, which decides what a missing field does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape<'a> {
    /// A Go struct of the named type (docker's formatter contexts, `*events.Message`,
    /// `types.Volume`): a field the root does not have is an error naming the type.
    Struct(&'a str),
    /// `docker inspect`'s objects: typed structs first, and when that fails the decoded
    /// JSON with `missingkey=error` (see [`Template::render_inspect`]).
    Inspect,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    /// The variables it declares (`{{$x := .ID}}`, which prints nothing), and its pipeline.
    Action(Vec<String>, Pipeline),
    /// `if`/`with`/`range` declarations, pipeline, body, and `else` body.
    Block(BlockKind, Vec<String>, Pipeline, Vec<Part>, Vec<Part>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum BlockKind {
    If,
    With,
    Range,
}

/// A lexed piece of the source: text, or an action's inside and where that starts.
enum Item {
    Text(String),
    Action(String, usize),
}

type Pipeline = Vec<Command>;

/// One command of a pipeline: operands, the first being a function or a value.
#[derive(Debug, Clone)]
struct Command {
    ops: Vec<Operand>,
    /// Where the command starts, and its text as Go prints the node (`index .A "k"`).
    pos: usize,
    text: String,
}

#[derive(Debug, Clone, PartialEq)]
struct Operand {
    kind: OpKind,
    /// Go's position of the node: the start of a field chain's second link, if any.
    pos: usize,
    text: String,
}

#[derive(Debug, Clone, PartialEq)]
enum OpKind {
    /// `.A.B` (empty path for `.`).
    Field(Vec<String>),
    /// A function name such as `json`.
    Ident(String),
    /// `$x.A.B` (`$` is the root).
    Var(String, Vec<String>),
    Str(String),
    Num(i64),
}

/// Answers docker's template methods (`.Label "k"`) for the current row.
pub type MethodFn<'a> = &'a dyn Fn(&str, &[Value]) -> Option<Value>;

/// The functions docker's templates define: docker's own and Go's builtins. A name
/// outside this list is Go's parse error `function "x" not defined`.
const DEFINED_FUNCS: &[&str] = &[
    "json", "split", "join", "title", "lower", "upper", "pad", "truncate", "and", "call", "html",
    "index", "slice", "js", "len", "not", "or", "print", "printf", "println", "urlquery", "eq",
    "ge", "gt", "le", "lt", "ne",
];

/// docker's header functions: in a table header each returns its (string) argument.
const HEADER_FUNCS: &[&str] = &[
    "json", "split", "join", "title", "lower", "upper", "pad", "truncate",
];

/// Fields that are Go maps in docker's inspect types: a key missing there prints
/// `<no value>` where a missing struct field is an error.
const MAP_FIELDS: &[&str] = &[
    "Labels",
    "ExposedPorts",
    "Volumes",
    "StorageOpt",
    "Sysctls",
    "Tmpfs",
    "PortBindings",
    "Ports",
    "Networks",
    "Data",
    "Options",
    "Containers",
    "DriverOpts",
    "Status",
    "Annotations",
    "Attributes",
];

/// Fields of docker's typed inspect structs that the daemon's JSON leaves out when empty
/// (`json:",omitempty"`): the typed pass still finds them, as their Go zero value, so
/// `{{if .State.Health}}` is false for a container without a health check, not an error.
fn omitted_zero(key: &str) -> Option<Value> {
    match key {
        // Pointers: nil.
        "Health" | "Healthcheck" | "Node" | "SizeRw" | "SizeRootFs" | "StopTimeout"
        | "UsageData" | "IPAMConfig" => Some(Value::Null),
        "ArgsEscaped" | "NetworkDisabled" => Some(Value::Bool(false)),
        "MacAddress" | "StopSignal" | "Domainname" => Some(Value::String(String::new())),
        "Shell" | "OnBuild" => Some(Value::Array(Vec::new())),
        _ => None,
    }
}

/// How field lookups behave during one rendering.
#[derive(Clone, Copy, PartialEq)]
enum Mode<'a> {
    Maps,
    Struct(&'a str),
    /// docker inspect's typed pass: keys missing from Go maps print `<no value>`.
    Typed,
    /// docker inspect's raw pass: decoded JSON with `missingkey=error`.
    Raw,
}

/// What every action of one rendering sees besides its dot.
struct Env<'a> {
    method: MethodFn<'a>,
    mode: Mode<'a>,
    /// Docker's header functions instead of the real ones (table headers).
    header: bool,
    /// The row whose `json` HTML-escapes (see `Template::row_json_escapes_html`).
    html_escaped_row: Option<&'a Value>,
    /// The root and its `{{json .}}`, for Go structs whose JSON names differ from
    /// their field names.
    root_json: Option<(&'a Value, &'a str)>,
    /// See `Template::field_aliases`.
    aliases: &'a [(&'static str, &'static str)],
    /// See `Template::nested_types`.
    nested_types: &'a [(&'static str, &'static str)],
    /// The variables in scope, innermost last; `$` is the root.
    vars: std::cell::RefCell<Vec<(String, Value)>>,
}

/// The current `.`: the root, or what `with`/`range` made it.
#[derive(Clone, Copy)]
struct Dot<'a> {
    value: &'a Value,
    root: bool,
    /// Reached through a Go map field (see `MAP_FIELDS`).
    via_map: bool,
}

/// A failed execution: the node Go names, and its message.
struct ExecError {
    pos: usize,
    node: String,
    msg: String,
}

fn fail<T>(pos: usize, node: &str, msg: impl Into<String>) -> Result<T, ExecError> {
    Err(ExecError {
        pos,
        node: node.to_string(),
        msg: msg.into(),
    })
}

impl Template {
    /// Parses `src` as an unnamed template; errors read like Go's `template: :1: …`.
    pub fn parse(src: &str) -> Result<Template, String> {
        Template::parse_named("", src)
    }

    /// Parses `src` as the template `name` (docker names `version`'s template).
    pub fn parse_named(name: &str, src: &str) -> Result<Template, String> {
        let at_line = |pos: usize, msg: String| {
            let line = 1 + src[..pos.min(src.len())].matches('\n').count();
            format!("template: {name}:{line}: {msg}")
        };
        let items = lex(src).map_err(|(pos, msg)| at_line(pos, msg))?;
        let mut pos = 0;
        let mut vars = vec!["$".to_string()];
        let (parts, end) =
            parse_list(&items, &mut pos, &mut vars).map_err(|(pos, msg)| at_line(pos, msg))?;
        if let Some((word, at)) = end {
            return Err(at_line(at, format!("unexpected {{{{{word}}}}}")));
        }
        Ok(Template {
            name: name.to_string(),
            src: src.to_string(),
            parts,
            row_json_escapes_html: false,
            field_aliases: &[],
            nested_types: &[],
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

    /// Renders against `data` as Go maps (a missing field prints `<no value>`); `method`
    /// answers method calls such as `.Label "k"`.
    #[cfg(test)]
    pub fn render(&self, data: &Value, method: MethodFn<'_>) -> Result<String, String> {
        self.run(data, method, Mode::Maps, false, None)
            .map_err(|(_, e)| e)
    }

    /// For data whose JSON names differ from the Go field names templates use: each
    /// `(field, json)` lets `.field` read the `json` member.
    pub fn with_field_aliases(
        mut self,
        aliases: &'static [(&'static str, &'static str)],
    ) -> Template {
        self.field_aliases = aliases;
        self
    }

    /// Names the Go struct types of fields (see `Template::nested_types`).
    pub fn with_nested_types(mut self, types: &'static [(&'static str, &'static str)]) -> Template {
        self.nested_types = types;
        self
    }

    /// Renders against `data` standing for `shape` in docker's Go code.
    pub fn render_as(
        &self,
        data: &Value,
        method: MethodFn<'_>,
        shape: Shape<'_>,
    ) -> Result<String, String> {
        match shape {
            Shape::Struct(t) => self
                .run(data, method, Mode::Struct(t), false, None)
                .map_err(|(_, e)| e),
            // docker runs the typed object first and, when that fails, the raw JSON
            // with missingkey=error, whose error is the one reported.
            Shape::Inspect => match self.run(data, method, Mode::Typed, false, None) {
                Ok(text) => Ok(text),
                Err(_) => self
                    .run(data, method, Mode::Raw, false, None)
                    .map_err(|(_, e)| e),
            },
        }
    }

    /// Renders a Go struct of type `type_name`, whose `{{json .}}` is `json` when given
    /// (for structs whose JSON names differ from their field names, as
    /// `events.Message`'s do). On failure, the output so far comes with the error, as Go
    /// writes it before failing.
    pub fn render_struct(
        &self,
        data: &Value,
        type_name: &str,
        json: Option<&str>,
    ) -> Result<String, (String, String)> {
        self.run(data, &|_, _| None, Mode::Struct(type_name), false, json)
    }

    /// Docker's table header: the row template run on a map of column titles with the
    /// header functions; an error ends the header where it happened, as in docker.
    pub fn render_header(&self, titles: &Value) -> String {
        let label = |name: &str, args: &[Value]| match (name, args) {
            ("Label", [Value::String(k)]) => Some(Value::String(header_label(k))),
            _ => None,
        };
        match self.run(titles, &label, Mode::Maps, true, None) {
            Ok(text) => text,
            Err((partial, _)) => partial,
        }
    }

    /// The names of the fields the template reads from its root, such as `ID` in
    /// `{{.ID}}` (for building header titles).
    pub fn root_fields(&self) -> Vec<String> {
        let mut names = Vec::new();
        collect_fields(&self.parts, &mut names);
        names
    }

    fn run(
        &self,
        data: &Value,
        method: MethodFn<'_>,
        mode: Mode<'_>,
        header: bool,
        root_json: Option<&str>,
    ) -> Result<String, (String, String)> {
        let mut out = String::new();
        let env = Env {
            method,
            mode,
            header,
            html_escaped_row: self.row_json_escapes_html.then_some(data),
            root_json: root_json.map(|j| (data, j)),
            aliases: self.field_aliases,
            nested_types: self.nested_types,
            vars: std::cell::RefCell::new(vec![("$".to_string(), data.clone())]),
        };
        let dot = Dot {
            value: data,
            root: true,
            via_map: false,
        };
        match render_parts(&self.parts, dot, &env, &mut out) {
            Ok(()) => Ok(out),
            Err(e) => {
                let msg = self.exec_error(&e);
                Err((out, msg))
            }
        }
    }

    /// Go's `template: NAME:LINE:COL: executing "NAME" at <node>: msg`.
    fn exec_error(&self, e: &ExecError) -> String {
        let before = &self.src[..e.pos.min(self.src.len())];
        let line = 1 + before.matches('\n').count();
        let col = match before.rfind('\n') {
            Some(nl) => e.pos - (nl + 1),
            None => e.pos,
        };
        let name = &self.name;
        format!(
            "template: {name}:{line}:{col}: executing \"{name}\" at <{}>: {}",
            e.node, e.msg
        )
    }
}

/// docker's `SubHeaderContext.Label`: the last dot-separated part of the key, with `-`
/// and `_` as spaces (`com.example.my-key` → `my key`).
fn header_label(key: &str) -> String {
    let last = key.rsplit('.').next().unwrap_or(key);
    last.replace(['-', '_'], " ")
}

fn collect_fields(parts: &[Part], names: &mut Vec<String>) {
    for part in parts {
        match part {
            Part::Text(_) => {}
            Part::Action(_, p) => pipeline_fields(p, names),
            Part::Block(_, _, p, body, else_body) => {
                pipeline_fields(p, names);
                collect_fields(body, names);
                collect_fields(else_body, names);
            }
        }
    }
}

fn pipeline_fields(pipeline: &Pipeline, names: &mut Vec<String>) {
    for cmd in pipeline {
        for op in &cmd.ops {
            if let OpKind::Field(path) = &op.kind {
                if let Some(first) = path.first() {
                    if !names.contains(first) {
                        names.push(first.clone());
                    }
                }
            }
        }
    }
}

type ParseError = (usize, String);

fn lex(src: &str) -> Result<Vec<Item>, ParseError> {
    let mut items = Vec::new();
    let mut offset = 0;
    while let Some(found) = src[offset..].find("{{") {
        let start = offset + found;
        let mut text = &src[offset..start];
        let inner_start = start + 2;
        let end = src[inner_start..]
            .find("}}")
            .map(|e| inner_start + e)
            .ok_or_else(|| (start, "unclosed action".to_string()))?;
        let mut inner = &src[inner_start..end];
        let mut inner_offset = inner_start;
        // `{{-` and `-}}` trim the whitespace beside the action.
        if let Some(stripped) = inner.strip_prefix("- ") {
            text = text.trim_end();
            inner = stripped;
            inner_offset += 2;
        }
        let mut trim_after = false;
        if let Some(stripped) = inner.strip_suffix(" -") {
            trim_after = true;
            inner = stripped;
        }
        if !text.is_empty() {
            items.push(Item::Text(text.to_string()));
        }
        items.push(Item::Action(inner.to_string(), inner_offset));
        offset = end + 2;
        if trim_after {
            offset = src.len() - src[offset..].trim_start().len();
        }
    }
    if offset < src.len() {
        items.push(Item::Text(src[offset..].to_string()));
    }
    Ok(items)
}

/// Parses parts until `{{end}}` or `{{else}}` (returned with its position) or the end.
/// `vars` holds the variables in scope; those declared here go out of scope at its end.
fn parse_list(
    items: &[Item],
    pos: &mut usize,
    vars: &mut Vec<String>,
) -> Result<(Vec<Part>, Option<(&'static str, usize)>), ParseError> {
    let scope = vars.len();
    let result = parse_list_in_scope(items, pos, vars);
    vars.truncate(scope);
    result
}

fn parse_list_in_scope(
    items: &[Item],
    pos: &mut usize,
    vars: &mut Vec<String>,
) -> Result<(Vec<Part>, Option<(&'static str, usize)>), ParseError> {
    let mut parts = Vec::new();
    while *pos < items.len() {
        let item = &items[*pos];
        *pos += 1;
        match item {
            Item::Text(t) => parts.push(Part::Text(t.clone())),
            Item::Action(a, at) => {
                let lead = a.len() - a.trim_start().len();
                let a_trim = a.trim();
                let at = at + lead;
                let (word, rest, rest_at) = match a_trim.split_once(char::is_whitespace) {
                    Some((w, r)) => (w, r, at + w.len() + 1),
                    None => (a_trim, "", at + a_trim.len()),
                };
                match word {
                    "end" => return Ok((parts, Some(("end", at)))),
                    "else" => return Ok((parts, Some(("else", at)))),
                    "if" | "with" | "range" => {
                        let kind = match word {
                            "if" => BlockKind::If,
                            "with" => BlockKind::With,
                            _ => BlockKind::Range,
                        };
                        // The block's variables live until its `{{end}}`.
                        let scope = vars.len();
                        let (decl, pipeline) = parse_pipeline(rest, rest_at, vars)?;
                        if decl.len() > 2 && kind == BlockKind::Range {
                            return Err((rest_at, "too many declarations in range".into()));
                        }
                        if decl.len() > 1 && kind != BlockKind::Range {
                            return Err((rest_at, "too many declarations in command".into()));
                        }
                        let eof = |items: &[Item]| {
                            let last = items.last().map(|_| usize::MAX).unwrap_or(0);
                            (last, "unexpected EOF".to_string())
                        };
                        let (body, end) = parse_list(items, pos, vars)?;
                        let else_body = match end {
                            Some(("end", _)) => Vec::new(),
                            Some(_) => {
                                let (e, end2) = parse_list(items, pos, vars)?;
                                match end2 {
                                    Some(("end", _)) => e,
                                    Some((w, at)) => {
                                        return Err((at, format!("unexpected {{{{{w}}}}}")))
                                    }
                                    None => return Err(eof(items)),
                                }
                            }
                            None => return Err(eof(items)),
                        };
                        vars.truncate(scope);
                        parts.push(Part::Block(kind, decl, pipeline, body, else_body));
                    }
                    _ if a_trim.starts_with("/*") => {}
                    _ => {
                        let (decl, pipeline) = parse_pipeline(a_trim, at, vars)?;
                        if decl.len() > 1 {
                            return Err((at, "too many declarations in command".into()));
                        }
                        parts.push(Part::Action(decl, pipeline));
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

/// The node Go names for a pipeline's value: its last command, or its only operand.
fn pipeline_node(pipeline: &Pipeline) -> (usize, String) {
    match pipeline.last() {
        Some(cmd) if cmd.ops.len() == 1 => (cmd.ops[0].pos, cmd.ops[0].text.clone()),
        Some(cmd) => (cmd.pos, cmd.text.clone()),
        None => (0, String::new()),
    }
}

/// Whether a pipeline's value is a Go map field (for the dot of a `with`).
fn pipeline_is_map(pipeline: &Pipeline) -> bool {
    match pipeline.last().map(|c| c.ops.as_slice()) {
        Some(
            [Operand {
                kind: OpKind::Field(path),
                ..
            }],
        ) => path
            .last()
            .is_some_and(|k| MAP_FIELDS.contains(&k.as_str())),
        _ => false,
    }
}

fn render_parts(
    parts: &[Part],
    dot: Dot<'_>,
    env: &Env<'_>,
    out: &mut String,
) -> Result<(), ExecError> {
    // Variables declared in these parts go out of scope at their end.
    let scope = env.vars.borrow().len();
    let result = render_parts_in_scope(parts, dot, env, out);
    env.vars.borrow_mut().truncate(scope);
    result
}

/// Binds `names` (a declaration) to `values` in order.
fn declare(env: &Env<'_>, names: &[String], values: &[Value]) {
    let mut vars = env.vars.borrow_mut();
    for (name, value) in names.iter().zip(values) {
        vars.push((name.clone(), value.clone()));
    }
}

fn render_parts_in_scope(
    parts: &[Part],
    dot: Dot<'_>,
    env: &Env<'_>,
    out: &mut String,
) -> Result<(), ExecError> {
    for part in parts {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Action(decl, pipeline) => {
                let v = eval_pipeline(pipeline, dot, env)?;
                if !decl.is_empty() {
                    declare(env, decl, &[v.unwrap_or(Value::Null)]);
                    continue;
                }
                match v {
                    Some(v) => out.push_str(&v.to_template_text()),
                    None => out.push_str("<no value>"),
                }
            }
            Part::Block(kind, decl, pipeline, body, else_body) => {
                let scope = env.vars.borrow().len();
                let v = eval_pipeline(pipeline, dot, env)?;
                if *kind != BlockKind::Range && !decl.is_empty() {
                    declare(env, decl, &[v.clone().unwrap_or(Value::Null)]);
                }
                match kind {
                    BlockKind::If => {
                        let branch = if truthy(&v) { body } else { else_body };
                        render_parts(branch, dot, env, out)?;
                    }
                    BlockKind::With => match v.filter(|x| truthy(&Some(x.clone()))) {
                        Some(value) => {
                            let inner = Dot {
                                value: &value,
                                root: false,
                                via_map: pipeline_is_map(pipeline),
                            };
                            render_parts(body, inner, env, out)?
                        }
                        None => render_parts(else_body, dot, env, out)?,
                    },
                    BlockKind::Range => {
                        // (key, element) pairs: indexes for lists.
                        let elems: Vec<(Value, Value)> = match v {
                            Some(Value::Array(a)) => a
                                .into_iter()
                                .enumerate()
                                .map(|(i, e)| (Value::Int(i as i64), e))
                                .collect(),
                            // Go ranges over a map in key order.
                            Some(Value::Object(mut o)) => {
                                o.sort_by(|a, b| a.0.cmp(&b.0));
                                o.into_iter().map(|(k, v)| (Value::String(k), v)).collect()
                            }
                            None | Some(Value::Null) => Vec::new(),
                            Some(other) => {
                                let (pos, node) = pipeline_node(pipeline);
                                return fail(
                                    pos,
                                    &node,
                                    format!(
                                        "range can't iterate over {}",
                                        other.to_template_text()
                                    ),
                                );
                            }
                        };
                        if elems.is_empty() {
                            render_parts(else_body, dot, env, out)?;
                        }
                        for (key, e) in &elems {
                            // `range $v :=` binds the element; `range $k, $v :=` both.
                            env.vars.borrow_mut().truncate(scope);
                            match decl.as_slice() {
                                [v] => declare(env, std::slice::from_ref(v), &[e.clone()]),
                                [k, v] => {
                                    declare(env, &[k.clone(), v.clone()], &[key.clone(), e.clone()])
                                }
                                _ => {}
                            }
                            let inner = Dot {
                                value: e,
                                root: false,
                                via_map: false,
                            };
                            render_parts(body, inner, env, out)?;
                        }
                    }
                }
                env.vars.borrow_mut().truncate(scope);
            }
        }
    }
    Ok(())
}

/// Splits an action into tokens with their offsets in the template.
fn tokenize(src: &str, base: usize) -> Result<Vec<(String, usize)>, ParseError> {
    let mut tokens = Vec::new();
    let mut chars = src.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        let at = base + i;
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut s = String::from("\"");
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                if c == '\\' {
                    match chars.next().map(|(_, c)| c) {
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
                return Err((at, "unterminated quoted string".into()));
            }
            tokens.push((s, at));
        } else if c == '|' {
            chars.next();
            tokens.push(("|".into(), at));
        } else if c == '(' || c == ')' {
            return Err((
                at,
                "parenthesized pipelines are not supported by berth's --format".into(),
            ));
        } else {
            let mut s = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() || c == '|' || c == '"' {
                    break;
                }
                s.push(c);
                chars.next();
            }
            tokens.push((s, at));
        }
    }
    Ok(tokens)
}

/// Go prints a string operand quoted.
fn go_quote(s: &str) -> String {
    format!("{s:?}")
}

/// Parses a pipeline and its declaration (`$x :=`, `$k, $v :=`), adding the declared
/// variables to `vars`, after checking the pipeline uses only variables already there.
fn parse_pipeline(
    src: &str,
    base: usize,
    vars: &mut Vec<String>,
) -> Result<(Vec<String>, Pipeline), ParseError> {
    let mut tokens = tokenize(src, base)?;
    let mut decl = Vec::new();
    if let Some(i) = tokens.iter().position(|(t, _)| t == ":=") {
        for (tok, at) in tokens.drain(..=i).take(i) {
            for name in tok.split(',').filter(|n| !n.is_empty()) {
                if !name.starts_with('$') || name.len() < 2 {
                    return Err((at, format!("unexpected {name:?} in command")));
                }
                decl.push(name.to_string());
            }
        }
        if decl.is_empty() {
            return Err((base, "missing variable in declaration".into()));
        }
    }
    let commands = parse_commands(tokens, base, vars)?;
    vars.extend(decl.iter().cloned());
    Ok((decl, commands))
}

fn parse_commands(
    tokens: Vec<(String, usize)>,
    base: usize,
    vars: &[String],
) -> Result<Pipeline, ParseError> {
    if tokens.is_empty() {
        return Err((base, "missing value for command".into()));
    }
    let mut commands = Vec::new();
    let mut current: Vec<Operand> = Vec::new();
    let finish = |ops: Vec<Operand>, commands: &mut Vec<Command>| {
        let text = ops
            .iter()
            .map(|o| o.text.clone())
            .collect::<Vec<_>>()
            .join(" ");
        commands.push(Command {
            pos: ops[0].pos,
            ops,
            text,
        });
    };
    for (tok, at) in tokens {
        if tok == "|" {
            if current.is_empty() {
                return Err((at, "missing value for command".into()));
            }
            finish(std::mem::take(&mut current), &mut commands);
            continue;
        }
        let (kind, pos, text) = if let Some(s) = tok.strip_prefix('"') {
            (OpKind::Str(s.to_string()), at, go_quote(s))
        } else if tok == "." {
            (OpKind::Field(Vec::new()), at, tok.clone())
        } else if let Some(path) = tok.strip_prefix('.') {
            // Go places a field chain at its second link.
            let pos = match path.find('.') {
                Some(dot) => at + 1 + dot,
                None => at,
            };
            (
                OpKind::Field(path.split('.').map(str::to_string).collect()),
                pos,
                tok.clone(),
            )
        } else if let Ok(n) = tok.parse::<i64>() {
            (OpKind::Num(n), at, tok.clone())
        } else if tok.starts_with('$') {
            let mut links = tok.split('.');
            let name = links.next().unwrap_or("$").to_string();
            if !vars.contains(&name) {
                return Err((at, format!("undefined variable {name:?}")));
            }
            let path: Vec<String> = links.map(str::to_string).collect();
            // As a field chain, a variable's chain is placed at its second link.
            let pos = if path.is_empty() { at } else { at + name.len() };
            (OpKind::Var(name, path), pos, tok.clone())
        } else if matches!(tok.as_str(), "define" | "block" | "template" | "=") {
            return Err((at, format!("{tok:?} is not supported by berth's --format")));
        } else if !DEFINED_FUNCS.contains(&tok.as_str()) {
            return Err((at, format!("function {tok:?} not defined")));
        } else if !IMPLEMENTED_FUNCS.contains(&tok.as_str()) {
            return Err((
                at,
                format!("function {tok:?} is not supported by berth's --format"),
            ));
        } else {
            (OpKind::Ident(tok.clone()), at, tok.clone())
        };
        current.push(Operand { kind, pos, text });
    }
    // Go accepts a trailing `|` (`{{.ID | }}`).
    if !current.is_empty() {
        finish(current, &mut commands);
    }
    Ok(commands)
}

/// The functions of `DEFINED_FUNCS` that berth evaluates.
const IMPLEMENTED_FUNCS: &[&str] = &[
    "json", "split", "join", "title", "lower", "upper", "truncate", "and", "index", "len", "not",
    "or", "print", "println", "eq", "ne",
];

fn eval_pipeline(
    pipeline: &Pipeline,
    dot: Dot<'_>,
    env: &Env<'_>,
) -> Result<Option<Value>, ExecError> {
    let mut prev: Option<Option<Value>> = None;
    let mut prev_is_map = false;
    for cmd in pipeline {
        prev = Some(eval_command(cmd, dot, env, prev, prev_is_map)?);
        prev_is_map = matches!(cmd.ops.as_slice(), [op] if is_map_field(op));
    }
    Ok(prev.flatten())
}

/// Whether `op` reads a field that is a Go map in docker's types (see `MAP_FIELDS`).
fn is_map_field(op: &Operand) -> bool {
    matches!(&op.kind, OpKind::Field(path) if path.last().is_some_and(|k| MAP_FIELDS.contains(&k.as_str())))
}

/// Go's `encoding/json` writes a map's keys sorted (struct fields keep their order).
fn sort_keys(v: &mut Option<Value>) {
    if let Some(Value::Object(members)) = v {
        members.sort_by(|a, b| a.0.cmp(&b.0));
    }
}

/// Go's name for the type of a value that has no fields.
fn type_name(v: &Value, mode: Mode<'_>) -> &'static str {
    if matches!(mode, Mode::Typed | Mode::Raw) {
        // Decoded JSON holds `interface {}` values.
        return "interface {}";
    }
    match v {
        Value::Bool(_) => "bool",
        Value::Int(_) | Value::UInt(_) => "int",
        Value::Float(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]string",
        Value::Null | Value::Object(_) => "interface {}",
    }
}

/// Looks up one link of a field chain on `cur`, as Go does for the mode's data.
fn field_of(
    cur: &Value,
    key: &str,
    struct_type: Option<&str>,
    via_map: bool,
    env: &Env<'_>,
) -> Result<Option<Value>, String> {
    let no_entry = || format!("map has no entry for key {key:?}");
    match cur {
        Value::Object(_) => match cur.get(key).or_else(|| {
            let json_name = env.aliases.iter().find(|(field, _)| *field == key)?.1;
            cur.get(json_name)
        }) {
            Some(v) => Ok(Some(v.clone())),
            None => match env.mode {
                Mode::Maps => Ok(None),
                Mode::Struct(_) => match struct_type {
                    Some(t) => Err(format!("can't evaluate field {key} in type {t}")),
                    None => Ok(None),
                },
                Mode::Typed if via_map => Ok(None),
                Mode::Typed => omitted_zero(key).map(Some).ok_or_else(no_entry),
                Mode::Raw => Err(no_entry()),
            },
        },
        // A nil map has no entries; a nil struct pointer has no fields.
        Value::Null => match env.mode {
            Mode::Maps => Ok(None),
            Mode::Struct(_) | Mode::Typed if via_map => Ok(None),
            Mode::Struct(_) => Err(format!(
                "nil pointer evaluating {}.{key}",
                struct_type.unwrap_or("interface {}")
            )),
            Mode::Typed | Mode::Raw => Err(format!("nil pointer evaluating interface {{}}.{key}")),
        },
        other => Err(format!(
            "can't evaluate field {key} in type {}",
            type_name(other, env.mode)
        )),
    }
}

fn eval_field(
    op: &Operand,
    path: &[String],
    dot: Dot<'_>,
    env: &Env<'_>,
) -> Result<Option<Value>, ExecError> {
    let mut cur = Some(dot.value.clone());
    let mut via_map = dot.via_map;
    let mut struct_type = match env.mode {
        Mode::Struct(t) if dot.root => Some(t),
        _ => None,
    };
    for key in path {
        let Some(value) = cur else {
            // A missing link yields Go's invalid value, and so does every link after it.
            return Ok(None);
        };
        cur = field_of(&value, key, struct_type, via_map, env)
            .or_else(|msg| fail(op.pos, &op.text, msg))?;
        via_map = MAP_FIELDS.contains(&key.as_str());
        struct_type = env
            .nested_types
            .iter()
            .find(|(field, _)| field == key)
            .map(|(_, t)| *t);
    }
    Ok(cur)
}

fn eval_operand(op: &Operand, dot: Dot<'_>, env: &Env<'_>) -> Result<Option<Value>, ExecError> {
    match &op.kind {
        OpKind::Field(path) => eval_field(op, path, dot, env),
        OpKind::Var(name, path) => {
            let value = env
                .vars
                .borrow()
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone());
            let Some(value) = value else {
                return fail(op.pos, &op.text, format!("undefined variable: {name}"));
            };
            let var_dot = Dot {
                value: &value,
                root: name == "$",
                via_map: false,
            };
            eval_field(op, path, var_dot, env)
        }
        OpKind::Str(s) => Ok(Some(Value::String(s.clone()))),
        OpKind::Num(n) => Ok(Some(Value::Int(*n))),
        OpKind::Ident(name) => {
            // A function as an argument is called without arguments.
            call(name, &[], env).or_else(|msg| fail(op.pos, &op.text, msg))
        }
    }
}

fn eval_command(
    cmd: &Command,
    dot: Dot<'_>,
    env: &Env<'_>,
    piped: Option<Option<Value>>,
    piped_is_map: bool,
) -> Result<Option<Value>, ExecError> {
    let (head, rest) = match cmd.ops.split_first() {
        Some(x) => x,
        None => return fail(cmd.pos, &cmd.text, "empty command"),
    };
    let mut args: Vec<Option<Value>> = Vec::new();
    for op in rest {
        args.push(eval_operand(op, dot, env)?);
    }
    let has_args = !args.is_empty() || piped.is_some();
    if let Some(p) = piped {
        args.push(p);
    }
    match &head.kind {
        OpKind::Ident(name) => {
            if name == "json" && rest.first().map_or(piped_is_map, is_map_field) {
                if let Some(value) = args.first_mut() {
                    sort_keys(value);
                }
            }
            call(name, &args, env).or_else(|msg| fail(cmd.pos, &cmd.text, msg))
        }
        OpKind::Field(path) if has_args => {
            // `.Label "k"`: a method of the row, answered by the caller.
            let name = path.join(".");
            let values: Vec<Value> = args
                .iter()
                .map(|a| a.clone().unwrap_or(Value::Null))
                .collect();
            if let Some(v) = (env.method)(&name, &values) {
                return Ok(Some(v));
            }
            let msg = match env.mode {
                Mode::Struct(_) if dot.root && dot.value.get(&name).is_some() => {
                    format!(
                        "wrong number of args for {name}: want 0 got {}",
                        values.len()
                    )
                }
                Mode::Struct(t) => format!("can't evaluate field {name} in type {t}"),
                _ => format!("{name} is not a method but has arguments"),
            };
            fail(head.pos, &head.text, msg)
        }
        _ => eval_operand(head, dot, env),
    }
}

fn text_of(v: &Option<Value>) -> String {
    v.as_ref()
        .map(Value::to_template_text)
        .unwrap_or_else(|| "<no value>".into())
}

/// A function's string argument, as Go's reflection demands one.
fn string_arg(v: &Option<Value>) -> Result<String, String> {
    match v {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!(
            "wrong type for value; expected string; got {}",
            type_name(other, Mode::Maps)
        )),
        None => Err("invalid value; expected string".into()),
    }
}

fn call(name: &str, args: &[Option<Value>], env: &Env<'_>) -> Result<Option<Value>, String> {
    let want = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!(
                "wrong number of args for {name}: want {n} got {}",
                args.len()
            ))
        }
    };
    if env.header && HEADER_FUNCS.contains(&name) {
        // docker's header functions return their first argument, which must be a string.
        let n = if matches!(name, "split" | "join" | "truncate") {
            2
        } else if name == "pad" {
            3
        } else {
            1
        };
        want(n)?;
        return Ok(Some(Value::String(string_arg(&args[0])?)));
    }
    match name {
        "json" => {
            want(1)?;
            let v = args[0].clone().unwrap_or(Value::Null);
            if let Some((root, json)) = env.root_json {
                if *root == v {
                    return Ok(Some(Value::String(json.to_string())));
                }
            }
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
        "split" => {
            want(2)?;
            let (s, sep) = (string_arg(&args[0])?, string_arg(&args[1])?);
            let parts: Vec<Value> = if sep.is_empty() {
                s.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                s.split(sep.as_str())
                    .map(|p| Value::String(p.to_string()))
                    .collect()
            };
            Ok(Some(Value::Array(parts)))
        }
        "truncate" => {
            want(2)?;
            let s = string_arg(&args[0])?;
            let n = match &args[1] {
                Some(Value::Int(n)) => (*n).max(0) as usize,
                _ => return Err("wrong type for value; expected int".into()),
            };
            // docker's truncateWithLength cuts by characters, without an ellipsis.
            Ok(Some(Value::String(s.chars().take(n).collect())))
        }
        "index" => {
            want(2)?;
            let found =
                match (&args[0], &args[1]) {
                    (Some(obj @ Value::Object(_)), Some(Value::String(k))) => obj.get(k).cloned(),
                    (Some(Value::Array(items)), Some(Value::Int(i))) => {
                        let idx = usize::try_from(*i)
                            .map_err(|_| format!("error calling index: index out of range: {i}"))?;
                        Some(items.get(idx).cloned().ok_or_else(|| {
                            format!("error calling index: index out of range: {i}")
                        })?)
                    }
                    (Some(Value::Array(_) | Value::String(_)), Some(k)) => {
                        return Err(format!(
                            "error calling index: cannot index slice/array with type {}",
                            type_name(k, Mode::Maps)
                        ))
                    }
                    (None | Some(Value::Null), _) => {
                        return Err("error calling index: index of untyped nil".into())
                    }
                    _ => None,
                };
            Ok(found)
        }
        "upper" => {
            want(1)?;
            Ok(Some(Value::String(string_arg(&args[0])?.to_uppercase())))
        }
        "lower" => {
            want(1)?;
            Ok(Some(Value::String(string_arg(&args[0])?.to_lowercase())))
        }
        "title" => {
            want(1)?;
            let s = string_arg(&args[0])?;
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
                Some(other) => {
                    return Err(format!(
                        "error calling len: len of type {}",
                        type_name(other, env.mode)
                    ))
                }
                None => return Err("error calling len: len of nil pointer".into()),
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
        // Go's `and`/`or` return the first argument that decides, else the last.
        "and" | "or" => {
            if args.is_empty() {
                return Err(format!(
                    "wrong number of args for {name}: want at least 1 got 0"
                ));
            }
            let decides = |a: &Option<Value>| truthy(a) == (name == "or");
            let pick = args
                .iter()
                .find(|a| decides(a))
                .unwrap_or(&args[args.len() - 1]);
            Ok(pick.clone())
        }
        // Go's fmt.Sprint puts spaces only between operands that are not both strings.
        "print" => {
            let mut s = String::new();
            for (i, a) in args.iter().enumerate() {
                let is_str = |v: &Option<Value>| matches!(v, Some(Value::String(_)));
                if i > 0 && !is_str(a) && !is_str(&args[i - 1]) {
                    s.push(' ');
                }
                s.push_str(&text_of(a));
            }
            Ok(Some(Value::String(s)))
        }
        "println" => {
            let parts: Vec<String> = args.iter().map(text_of).collect();
            Ok(Some(Value::String(parts.join(" ") + "\n")))
        }
        other => Err(format!("function {other:?} not defined")),
    }
}

/// Splits docker's `table` prefix off a format: `(is_table, rest)`. As docker, any
/// format that starts with `table` is one, and spaces around the rest are dropped.
pub fn strip_table(format: &str) -> (bool, &str) {
    match format.strip_prefix("table") {
        Some(rest) => (true, rest.trim_matches(' ')),
        None => (false, format.trim_matches(' ')),
    }
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

    fn inspect(src: &str) -> Result<String, String> {
        Template::parse(src)?.render_as(&data(), &no_methods, Shape::Inspect)
    }

    fn row(src: &str) -> Result<String, String> {
        let row = Value::parse(br#"{"ID":"abc","Names":"web"}"#).unwrap();
        Template::parse(src)?.render_as(
            &row,
            &no_methods,
            Shape::Struct("*formatter.ContainerContext"),
        )
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
        // Maps marshal with sorted keys, structs in their fields' order.
        assert_eq!(
            render("{{json .Config.Labels}}").unwrap(),
            r#"{"a":"2","z":"1"}"#
        );
        assert_eq!(
            render("{{.Config.Labels | json}}").unwrap(),
            r#"{"a":"2","z":"1"}"#
        );
        assert_eq!(
            render("{{json .Config}}").unwrap(),
            r#"{"Labels":{"z":"1","a":"2"}}"#
        );
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
        assert_eq!(render(r#"{{split "a:b" ":"}}"#).unwrap(), "[a b]");
        assert_eq!(render(r#"{{truncate .Id 2}}"#).unwrap(), "ab");
        assert_eq!(render(r#"{{or .Nope "d"}} {{and .Id 0}}"#).unwrap(), "d 0");
        assert_eq!(render(r#"{{print 1 2 "x" "y"}}"#).unwrap(), "1 2xy");
        // Variables, as docker's documentation uses them.
        assert_eq!(
            render("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}").unwrap(),
            "a=2;z=1;"
        );
        assert_eq!(
            render("{{range $i, $n := .Names}}{{$i}}{{$n}}{{end}}").unwrap(),
            "0/a1/b"
        );
        assert_eq!(
            render("{{$id := .Id}}{{with .State}}{{$id}}:{{.ExitCode}} {{$.Id}}{{end}}").unwrap(),
            "abc:3 abc"
        );
        assert_eq!(
            render("{{if $s := .State}}{{$s.ExitCode}}{{end}}").unwrap(),
            "3"
        );
        assert_eq!(
            Template::parse("{{range $v := .Names}}{{end}}{{$v}}").unwrap_err(),
            r#"template: :1: undefined variable "$v""#
        );
        // Go accepts a trailing pipe.
        assert_eq!(render("{{.Id | }}").unwrap(), "abc");
    }

    #[test]
    fn parse_errors_read_as_go() {
        let err = |src: &str| Template::parse(src).unwrap_err();
        assert_eq!(err("{{.Id"), "template: :1: unclosed action");
        assert_eq!(err("{{.Id}}\n{{.Id"), "template: :2: unclosed action");
        assert_eq!(err("{{if .Id}}x"), "template: :1: unexpected EOF");
        assert_eq!(err("{{end}}"), "template: :1: unexpected {{end}}");
        assert_eq!(err("{{else}}"), "template: :1: unexpected {{else}}");
        assert_eq!(err("{{}}"), "template: :1: missing value for command");
        assert_eq!(
            err(r#"{{"abc}}"#),
            "template: :1: unterminated quoted string"
        );
        assert_eq!(
            err("{{nofunc .}}"),
            r#"template: :1: function "nofunc" not defined"#
        );
        assert_eq!(
            Template::parse_named("version", "{{.X").unwrap_err(),
            "template: version:1: unclosed action"
        );
        assert!(err("{{printf \"%s\" .Id}}").contains("not supported"));
    }

    #[test]
    fn struct_rows_refuse_unknown_fields_at_their_column() {
        let t = "*formatter.ContainerContext";
        assert_eq!(
            row("{{.Nope}}").unwrap_err(),
            format!(
                r#"template: :1:2: executing "" at <.Nope>: can't evaluate field Nope in type {t}"#
            )
        );
        assert_eq!(
            row("{{.ID}}\t{{json .Nope}}").unwrap_err(),
            format!(
                r#"template: :1:15: executing "" at <.Nope>: can't evaluate field Nope in type {t}"#
            )
        );
        assert_eq!(
            row("a\nb {{.Nope}}").unwrap_err(),
            format!(
                r#"template: :2:4: executing "" at <.Nope>: can't evaluate field Nope in type {t}"#
            )
        );
        assert_eq!(
            row("{{.ID.X}}").unwrap_err(),
            r#"template: :1:5: executing "" at <.ID.X>: can't evaluate field X in type string"#
        );
        assert_eq!(
            row(r#"{{index .ID "k"}}"#).unwrap_err(),
            r#"template: :1:2: executing "" at <index .ID "k">: error calling index: cannot index slice/array with type string"#
        );
        assert_eq!(
            row("{{json}}").unwrap_err(),
            r#"template: :1:2: executing "" at <json>: wrong number of args for json: want 1 got 0"#
        );
        assert_eq!(
            row(r#"{{.ID "x"}}"#).unwrap_err(),
            r#"template: :1:2: executing "" at <.ID>: wrong number of args for ID: want 0 got 1"#
        );
        assert_eq!(
            row("{{range .ID}}{{end}}").unwrap_err(),
            r#"template: :1:8: executing "" at <.ID>: range can't iterate over abc"#
        );
        assert_eq!(row("{{.Names}}").unwrap(), "web");
    }

    #[test]
    fn aliases_and_nested_struct_types() {
        let data = Value::parse(br#"{"Server":{"ApiVersion":"1.41","Labels":null},"Client":null}"#)
            .unwrap();
        let t = |src: &str| {
            Template::parse_named("version", src)
                .unwrap()
                .with_field_aliases(&[("APIVersion", "ApiVersion")])
                .with_nested_types(&[
                    ("Server", "*types.Version"),
                    ("Client", "system.clientVersion"),
                ])
                .render_struct(&data, "system.versionInfo", None)
        };
        assert_eq!(t("{{.Server.APIVersion}}").unwrap(), "1.41");
        // A nil Go map has no entries; a nil struct pointer has no fields.
        assert_eq!(t("{{.Server.Labels.x}}").unwrap(), "<no value>");
        assert_eq!(
            t("x{{.Client.Version}}").unwrap_err(),
            (
                "x".to_string(),
                r#"template: version:1:10: executing "version" at <.Client.Version>: nil pointer evaluating system.clientVersion.Version"#.to_string()
            )
        );
        assert_eq!(
            t("{{.Server.Nope}}").unwrap_err().1,
            r#"template: version:1:9: executing "version" at <.Server.Nope>: can't evaluate field Nope in type *types.Version"#
        );
    }

    #[test]
    fn inspect_fields_omitted_when_empty_are_go_zero_values() {
        let container = Value::parse(br#"{"State":{"Status":"exited"}}"#).unwrap();
        let render =
            |src: &str| Template::parse(src)?.render_as(&container, &no_methods, Shape::Inspect);
        assert_eq!(
            render("{{if .State.Health}}checked{{else}}unchecked{{end}}").unwrap(),
            "unchecked"
        );
        assert_eq!(render("{{.State.Health}}").unwrap(), "<nil>");
        assert!(render("{{.State.Nope}}").is_err());
    }

    #[test]
    fn inspect_errors_as_the_raw_json_fallback() {
        assert_eq!(
            inspect("{{.Nope}}").unwrap_err(),
            r#"template: :1:2: executing "" at <.Nope>: map has no entry for key "Nope""#
        );
        assert_eq!(
            inspect("{{.State.Nope}}").unwrap_err(),
            r#"template: :1:8: executing "" at <.State.Nope>: map has no entry for key "Nope""#
        );
        assert_eq!(
            inspect("{{.State.ExitCode.x}}").unwrap_err(),
            r#"template: :1:8: executing "" at <.State.ExitCode.x>: can't evaluate field x in type interface {}"#
        );
        // A key missing from a Go map (labels) is no error in docker's typed pass.
        assert_eq!(inspect("{{.Config.Labels.zz}}").unwrap(), "<no value>");
        assert_eq!(inspect("{{.Config.Labels.a}}").unwrap(), "2");
    }

    #[test]
    fn headers_run_the_template_on_titles() {
        let titles = Value::Object(vec![
            ("ID".into(), Value::String("CONTAINER ID".into())),
            ("Names".into(), Value::String("NAMES".into())),
        ]);
        let header = |src: &str| Template::parse(src).unwrap().render_header(&titles);
        assert_eq!(header("{{.ID}}\t{{.Names}}"), "CONTAINER ID\tNAMES");
        assert_eq!(
            header(r#"{{.ID}}\{{.Label "com.example.my-key"}}"#),
            r#"CONTAINER ID\my key"#
        );
        assert_eq!(header("{{upper .Names}} {{.Names | lower}}"), "NAMES NAMES");
        assert_eq!(header("{{.Names}} x {{if .Names}}y{{end}}"), "NAMES x y");
        assert_eq!(header(r#"{{"lit"}} {{.Nope}}"#), "lit <no value>");
        // An error ends the header there.
        assert_eq!(header("{{.Names}}\t{{json .}}\t{{.ID}}"), "NAMES\t");
        assert_eq!(
            Template::parse(r#"{{.ID}} {{if .Names}}{{.Label "k"}}{{end}}"#)
                .unwrap()
                .root_fields(),
            vec!["ID".to_string(), "Names".to_string(), "Label".to_string()]
        );
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
        assert_eq!(strip_table("table{{.ID}}  "), (true, "{{.ID}}"));
        assert_eq!(strip_table(" {{.ID}} "), (false, "{{.ID}}"));
    }
}
