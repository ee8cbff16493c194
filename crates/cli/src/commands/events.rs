//! `berth events`: the daemon's event stream, printed as docker prints it.

use std::io::Write;

use chrono::{Local, TimeZone};
use clap::Args;
use hyper::Method;

use crate::client::{self, Client};
use crate::commands::{ps::filters_json, CmdResult, Failure};
use crate::json::Value;
use crate::template::{Shape, Template};

/// `berth events`
#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Format the output using the given Go template
    #[arg(long = "format", value_name = "string")]
    pub format: Option<String>,
    /// Show all events created since timestamp
    #[arg(long = "since", value_name = "string")]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long = "until", value_name = "string")]
    pub until: Option<String>,
}

pub async fn run(client: &Client, args: EventsArgs) -> CmdResult {
    let template = match args.format.as_deref().filter(|f| !f.is_empty()) {
        Some(f) => Some(checked_template(f).map_err(|e| Failure::new(64, format!("Error parsing format: {e}")))?),
        None => None,
    };
    let mut q = Vec::new();
    let now = chrono::Utc::now();
    for (flag, value) in [("since", &args.since), ("until", &args.until)] {
        if let Some(v) = value {
            let t = crate::timestamp::api_timestamp(flag, v, now).map_err(|e| Failure::new(1, e))?;
            if !t.is_empty() {
                q.push((flag, t));
            }
        }
    }
    if !args.filter.is_empty() {
        q.push(("filters", filters_json(&args.filter)?));
    }
    let resp = client.send(Method::GET, &format!("/events{}", client::query(&q)), client::empty()).await?;
    let mut body = resp.into_body();
    let mut pending = Vec::new();
    let mut out = std::io::stdout();
    while let Some(chunk) = client::next_chunk(&mut body).await? {
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let event = Value::parse(&line).map_err(|e| Failure::new(1, e))?;
            let text = match &template {
                Some(t) => {
                    let (fields, json) = go_message(&event);
                    t.render_struct(&fields, MESSAGE_TYPE, Some(&json))
                        .map_err(|(_, e)| Failure::new(1, e))?
                }
                None => pretty(&event),
            };
            // Each event as it comes: a reader may be waiting for it (`| grep -m1`).
            if writeln!(out, "{text}").and_then(|_| out.flush()).is_err() {
                return Ok(0);
            }
        }
    }
    Ok(0)
}

/// docker's Go type for an event, named in template errors.
const MESSAGE_TYPE: &str = "*events.Message";

/// An event as docker's CLI decodes it into Go's `events.Message`: its fields under their
/// Go names (`.ID`, `.Status`, `.Time`; empty when the daemon left them out), and its
/// `{{json .}}` as Go marshals the struct (JSON names, `omitempty`, sorted attributes).
fn go_message(event: &Value) -> (Value, String) {
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let int = |v: Option<&Value>| match v {
        Some(Value::Int(n)) => *n,
        Some(Value::UInt(n)) => *n as i64,
        _ => 0,
    };
    let actor = event.get("Actor");
    let attributes = match actor.and_then(|a| a.get("Attributes")) {
        Some(Value::Object(members)) => {
            let mut sorted = members.clone();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(sorted)
        }
        _ => Value::Null,
    };
    let actor = Value::Object(vec![
        ("ID".into(), Value::String(text(actor.and_then(|a| a.get("ID"))))),
        ("Attributes".into(), attributes),
    ]);
    let fields = [
        ("Status", "status", Value::String(text(event.get("status")))),
        ("ID", "id", Value::String(text(event.get("id")))),
        ("From", "from", Value::String(text(event.get("from")))),
        ("Type", "Type", Value::String(text(event.get("Type")))),
        ("Action", "Action", Value::String(text(event.get("Action")))),
        ("Actor", "Actor", actor),
        ("Scope", "scope", Value::String(text(event.get("scope")))),
        ("Time", "time", Value::Int(int(event.get("time")))),
        ("TimeNano", "timeNano", Value::Int(int(event.get("timeNano")))),
    ];
    // `omitempty` on all but Type, Action and Actor.
    let omitted = |json: &str, v: &Value| {
        !matches!(json, "Type" | "Action" | "Actor")
            && matches!(v, Value::Int(0)) | matches!(v, Value::String(s) if s.is_empty())
    };
    let json = Value::Object(
        fields
            .iter()
            .filter(|(_, json, v)| !omitted(json, v))
            .map(|(_, json, v)| (json.to_string(), v.clone()))
            .collect(),
    )
    .to_json();
    let go = Value::Object(fields.into_iter().map(|(go, _, v)| (go.to_string(), v)).collect());
    (go, json)
}

/// Parses a `--format` and, as docker, runs it on an empty event, so that an unknown
/// field fails before any event is read.
fn checked_template(format: &str) -> Result<Template, String> {
    let tpl = Template::parse(format)?.with_nested_types(&[("Actor", "events.Actor")]);
    // The fields of Go's `events.Message` (its field names, not its JSON names).
    let empty = Value::parse(
        br#"{"Status":"","ID":"","From":"","Type":"","Action":"","Actor":{"ID":"","Attributes":null},"Scope":"","Time":0,"TimeNano":0}"#,
    )?;
    tpl.render_as(&empty, &|_, _| None, Shape::Struct(MESSAGE_TYPE))?;
    Ok(tpl)
}

/// `2026-11-22T10:00:00.123456789+01:00 container start <id> (image=busybox, name=web)`.
fn pretty(event: &Value) -> String {
    let str_of = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let int_of = |v: Option<&Value>| match v {
        Some(Value::Int(n)) => *n,
        Some(Value::UInt(n)) => *n as i64,
        _ => 0,
    };
    let nanos = int_of(event.get("timeNano"));
    let nanos = if nanos != 0 { nanos } else { int_of(event.get("time")) * 1_000_000_000 };
    let mut line = String::new();
    if nanos != 0 {
        line = Local.timestamp_nanos(nanos).format("%Y-%m-%dT%H:%M:%S%.9f%:z ").to_string().replace("+00:00 ", "Z ");
    }
    let actor = event.get("Actor");
    line.push_str(&format!(
        "{} {} {}",
        str_of(event.get("Type")),
        str_of(event.get("Action")),
        str_of(actor.and_then(|a| a.get("ID")))
    ));
    if let Some(Value::Object(attrs)) = actor.and_then(|a| a.get("Attributes")) {
        if !attrs.is_empty() {
            let mut pairs: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={}", str_of(Some(v)))).collect();
            pairs.sort();
            line.push_str(&format!(" ({})", pairs.join(", ")));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_docker() {
        std::env::set_var("TZ", "UTC");
        let e = Value::parse(
            br#"{"Type":"container","Action":"start","Actor":{"ID":"abc","Attributes":{"name":"web","image":"busybox"}},"time":1700000000,"timeNano":1700000000123456789}"#,
        )
        .unwrap();
        assert_eq!(pretty(&e), "2023-11-14T22:13:20.123456789Z container start abc (image=busybox, name=web)");
    }

    #[test]
    fn templates_see_go_field_names_and_json_sees_go_json() {
        let e = Value::parse(
            br#"{"status":"start","id":"abc","Type":"container","Action":"start","Actor":{"ID":"abc","Attributes":{"name":"web","image":"busybox"}},"scope":"local","time":1700000000,"timeNano":1700000000123456789}"#,
        )
        .unwrap();
        let (fields, json) = go_message(&e);
        let render = |f: &str| checked_template(f).unwrap().render_struct(&fields, MESSAGE_TYPE, Some(&json)).unwrap();
        assert_eq!(render("{{.ID}}|{{.Status}}|{{.From}}|{{.Scope}}|{{.Time}}"), "abc|start||local|1700000000");
        assert_eq!(
            render("{{json .}}"),
            r#"{"status":"start","id":"abc","Type":"container","Action":"start","Actor":{"ID":"abc","Attributes":{"image":"busybox","name":"web"}},"scope":"local","time":1700000000,"timeNano":1700000000123456789}"#
        );
        assert_eq!(
            checked_template("{{.Nope}}").unwrap_err(),
            r#"template: :1:2: executing "" at <.Nope>: can't evaluate field Nope in type *events.Message"#
        );
    }
}
