//! The output of docker's list commands (`ps`, `images`, `network ls`, ...): a `--format`
//! (or the command's default) that starts with `table` gives an aligned table under a
//! header row; any other format gives one template line per item.

use crate::commands::inspect::template_failure;
use crate::commands::Failure;
use crate::format::Table;
use crate::json::Value;
use crate::template::{self, MethodFn, Template};

/// Collects a list command's rows and renders them at the end, so that a template error
/// in any row leaves nothing printed (as docker, which buffers its tabwriter).
pub struct ListPrinter {
    tpl: Template,
    /// `Some` for a `table` format (its header already in), `None` for plain lines.
    table: Option<Table>,
    plain: String,
}

impl ListPrinter {
    /// Parses `format`; `title` names the column of a `{{.Field}}` in the table header.
    /// A format that does not parse is docker's template error (exit 64).
    pub fn new(format: &str, title: &dyn Fn(&str) -> String) -> Result<ListPrinter, Failure> {
        let (is_table, body) = template::strip_table(format);
        // Docker lets `\t` and `\n` be typed literally in a format.
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        let tpl = Template::parse(&body)
            .map(Template::formatter_rows)
            .map_err(|e| template_failure(&e))?;
        let table = is_table.then(|| {
            let mut table = Table::new();
            table.line(&template::header(&tpl, title));
            table
        });
        Ok(ListPrinter {
            tpl,
            table,
            plain: String::new(),
        })
    }

    /// Adds the row for one item: the template run on `data`, with `method` answering
    /// calls such as `.Label "key"`. A template that fails on the data exits 1.
    pub fn row(&mut self, data: &Value, method: MethodFn<'_>) -> Result<(), Failure> {
        let line = self
            .tpl
            .render(data, method)
            .map_err(|e| Failure::new(1, e))?;
        match &mut self.table {
            Some(table) => table.line(&line),
            None => {
                self.plain.push_str(&line);
                self.plain.push('\n');
            }
        }
        Ok(())
    }

    /// The rendered output, every line `\n`-terminated.
    pub fn finish(self) -> String {
        match self.table {
            Some(table) => table.render(),
            None => self.plain,
        }
    }
}

/// The `.Label "key"` method of items with labels: the label's value, or "" when unset.
pub fn label_method(
    label: impl Fn(&str) -> Option<String>,
) -> impl Fn(&str, &[Value]) -> Option<Value> {
    move |name, args| match (name, args) {
        ("Label", [Value::String(k)]) => Some(Value::String(label(k).unwrap_or_default())),
        _ => None,
    }
}

/// For items a template may not call methods on.
pub fn no_methods(_: &str, _: &[Value]) -> Option<Value> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str) -> Value {
        Value::Object(vec![("Name".into(), Value::String(name.into()))])
    }

    fn print(format: &str, names: &[&str]) -> Result<String, Failure> {
        let mut out = ListPrinter::new(format, &|f| f.to_uppercase())?;
        for n in names {
            out.row(&item(n), &no_methods)?;
        }
        Ok(out.finish())
    }

    #[test]
    fn table_has_header_and_aligned_columns() {
        assert_eq!(
            print("table {{.Name}}\\t{{.Name}}", &["a", "bb"]).unwrap(),
            "NAME      NAME\na         a\nbb        bb\n"
        );
        assert_eq!(print("table", &["a"]).unwrap(), "\n\n");
    }

    #[test]
    fn plain_format_gives_one_line_per_item() {
        assert_eq!(print("{{.Name}}!", &["a", "bb"]).unwrap(), "a!\nbb!\n");
        assert_eq!(print("{{.Name}}", &[]).unwrap(), "");
    }

    #[test]
    fn errors_as_docker() {
        let Err(parse) = print("{{.Name", &["a"]) else {
            panic!("parsed")
        };
        assert_eq!(parse.code, 64);
        assert!(
            parse.message.starts_with("template parsing error: "),
            "{}",
            parse.message
        );
        let Err(render) = print("{{.Label \"x\"}}", &["a"]) else {
            panic!("rendered")
        };
        assert_eq!(render.code, 1);
    }

    #[test]
    fn label_method_answers_label_calls_only() {
        let method = label_method(|k| (k == "a").then(|| "1".to_string()));
        let key = |k: &str| [Value::String(k.into())];
        assert_eq!(method("Label", &key("a")), Some(Value::String("1".into())));
        assert_eq!(
            method("Label", &key("b")),
            Some(Value::String(String::new()))
        );
        assert_eq!(method("Other", &key("a")), None);
    }
}
