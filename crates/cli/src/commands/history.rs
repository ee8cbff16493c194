//! `berth history` (and `berth image history`): an image's layers in docker's table.

use clap::{ArgAction, Args};

use crate::client::{self, Client};
use crate::commands::{CmdResult, Failure};
use crate::format;
use crate::json::Value;
use crate::listing::{no_methods, ListPrinter};

/// `berth history`
#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// Pretty-print images using a Go template
    #[arg(long = "format", value_name = "string")]
    pub format: Option<String>,
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long = "human", action = ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_value = "true", default_missing_value = "true")]
    pub human: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// The image
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

/// One row of `GET /images/{name}/history`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Entry {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Created")]
    pub created: i64,
    #[serde(rename = "CreatedBy", default)]
    pub created_by: String,
    #[serde(rename = "Size", default)]
    pub size: i64,
    #[serde(rename = "Comment", default)]
    pub comment: String,
}

const DEFAULT_FORMAT: &str =
    "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";

/// Column titles; docker titles CreatedSince "CREATED AT" when it shows dates (`-H=false`).
fn title(field: &str, human: bool) -> String {
    match field {
        "ID" => "IMAGE",
        "CreatedSince" if human => "CREATED",
        "CreatedSince" | "CreatedAt" => "CREATED AT",
        "CreatedBy" => "CREATED BY",
        "Size" => "SIZE",
        "Comment" => "COMMENT",
        other => return other.to_uppercase(),
    }
    .to_string()
}

/// Go's `time.Format(time.RFC3339)` in local time: `Z` for UTC, else `+hh:mm`.
fn rfc3339(unix: i64) -> String {
    use chrono::{Local, TimeZone};
    match Local.timestamp_opt(unix, 0).single() {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        None => unix.to_string(),
    }
}

/// The template context of one row, as docker's history formatter fills it.
pub fn context(e: &Entry, human: bool, trunc: bool) -> Value {
    let s = Value::String;
    let id = if trunc && e.id != "<missing>" {
        format::short_id(&e.id)
    } else {
        e.id.clone()
    };
    let created_by = e.created_by.replace('\t', " ");
    let created_by = if trunc {
        format::ellipsis(&created_by, 45)
    } else {
        created_by
    };
    let created_since = if human {
        format::ago(e.created)
    } else {
        rfc3339(e.created)
    };
    let size = if human {
        format::human_size(e.size, 3)
    } else {
        e.size.to_string()
    };
    Value::Object(vec![
        ("Comment".into(), s(e.comment.clone())),
        ("CreatedAt".into(), s(rfc3339(e.created))),
        ("CreatedBy".into(), s(created_by)),
        ("CreatedSince".into(), s(created_since)),
        ("ID".into(), s(id)),
        ("Size".into(), s(size)),
    ])
}

/// Renders `entries` through `fmt` (a `table …` or plain template).
pub fn render(entries: &[Entry], fmt: &str, human: bool, trunc: bool) -> Result<String, Failure> {
    let mut out = ListPrinter::new(fmt, "*image.historyContext", &|f| title(f, human))?;
    for e in entries {
        out.row(&context(e, human, trunc), &no_methods)?;
    }
    Ok(out.finish())
}

/// `berth history`
pub async fn run(client: &Client, args: HistoryArgs) -> CmdResult {
    let path = format!("/images/{}/history", client::enc_path(&args.image));
    let entries: Vec<Entry> = client.get(&path).await?;
    let fmt = match args.format.as_deref() {
        _ if args.quiet => "{{.ID}}",
        Some(f) if !f.is_empty() && f != "table" => f,
        _ => DEFAULT_FORMAT,
    };
    print!("{}", render(&entries, fmt, args.human, !args.no_trunc)?);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                id: "sha256:5d29bc371fc299d3349b34c8eb08e5661425b71fd39af5c58a38848f24dd7f61"
                    .into(),
                created: 1_795_323_721,
                created_by: "/bin/sh -c #(nop)\tCMD [\"sh\"] and a long tail that docker cuts off"
                    .into(),
                size: 0,
                comment: String::new(),
            },
            Entry {
                id: "<missing>".into(),
                created: 1_795_323_721,
                created_by: String::new(),
                size: 1_984_132,
                comment: "Imported from -".into(),
            },
        ]
    }

    #[test]
    fn table_like_docker() {
        let out = render(&entries(), DEFAULT_FORMAT, true, true).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("IMAGE          CREATED"), "{out}");
        assert!(lines[0].contains("CREATED BY"), "{out}");
        assert!(lines[1].starts_with("5d29bc371fc2   "), "{out}");
        assert!(
            lines[1].contains("/bin/sh -c #(nop) CMD [\"sh\"] and a long tail…   0B"),
            "{out}"
        );
        assert!(lines[2].starts_with("<missing>      "), "{out}");
        assert!(lines[2].ends_with("   1.98MB    Imported from -"), "{out}");
        assert!(lines[1].ends_with("…   0B        "), "{out}");
    }

    #[test]
    fn not_human_prints_dates_and_bytes() {
        std::env::set_var("TZ", "UTC");
        let out = render(&entries()[1..], DEFAULT_FORMAT, false, false).unwrap();
        assert!(out.starts_with("IMAGE       CREATED AT"), "{out}");
        assert!(out.contains("2026-11-22T05:02:01Z"), "{out}");
        assert!(out.contains("1984132"), "{out}");
        let out = render(&entries(), "{{json .}}", true, true).unwrap();
        assert!(out.contains(r#""ID":"5d29bc371fc2","Size":"0B"}"#), "{out}");
    }
}
