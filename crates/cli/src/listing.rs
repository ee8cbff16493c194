//! The output of docker's list commands (`ps`, `images`, `network ls`, ...): a `--format`
//! (or the command's default) that starts with `table` gives an aligned table under a
//! header row; any other format gives one template line per item.

use crate::commands::Failure;
use crate::format::Table;
use crate::json::Value;
use crate::template::{self, MethodFn, Shape, Template};

/// Collects a list command's rows and renders them at the end, so that a template error
/// in any row leaves nothing printed (as docker, which buffers its tabwriter).
pub struct ListPrinter {
    tpl: Template,
    /// The Go type of docker's row context, named in unknown-field errors.
    context_type: &'static str,
    /// `Some` for a `table` format (its header already in), `None` for plain lines.
    table: Option<Table>,
    plain: String,
}

impl ListPrinter {
    /// Parses `format` for rows that stand for docker's Go type `context_type` (such as
    /// `*formatter.imageContext`); `title` names the column of a `{{.Field}}` in the
    /// table header. Template errors are docker's formatter errors (exit 1).
    pub fn new(
        format: &str,
        context_type: &'static str,
        title: &dyn Fn(&str) -> String,
    ) -> Result<ListPrinter, Failure> {
        let (is_table, body) = template::strip_table(format);
        // Docker lets `\t` and `\n` be typed literally in a format.
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        let tpl = Template::parse(&body)
            .map(Template::formatter_rows)
            .map_err(|e| Failure::new(1, format!("template parsing error: {e}")))?;
        let table = is_table.then(|| {
            // Docker runs the row template on a map of the columns' titles.
            let titles = tpl
                .root_fields()
                .into_iter()
                .map(|f| {
                    let t = title(&f);
                    (f, Value::String(t))
                })
                .collect();
            let mut table = Table::new();
            table.line(&tpl.render_header(&Value::Object(titles)));
            table
        });
        Ok(ListPrinter {
            tpl,
            context_type,
            table,
            plain: String::new(),
        })
    }

    /// Adds the row for one item: the template run on `data`, with `method` answering
    /// calls such as `.Label "key"`. A template that fails on the data exits 1, worded
    /// as docker's formatter words it.
    pub fn row(&mut self, data: &Value, method: MethodFn<'_>) -> Result<(), Failure> {
        let line = self
            .tpl
            .render_as(data, method, Shape::Struct(self.context_type))
            .map_err(|e| Failure::new(1, format!("template parsing error: {e}")))?;
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
        let mut out = ListPrinter::new(format, "*test.context", &|f| f.to_uppercase())?;
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
        assert_eq!(parse.code, 1);
        assert_eq!(
            parse.message,
            "template parsing error: template: :1: unclosed action"
        );
        let Err(render) = print("{{.Label \"x\"}}", &["a"]) else {
            panic!("rendered")
        };
        assert_eq!(render.code, 1);
        // The table prefix and literal `\t` are gone before Go sees the template.
        let Err(unknown) = print("table {{.Name}}\\t{{.Nope}}", &["a"]) else {
            panic!("rendered")
        };
        assert_eq!(
            unknown.message,
            "template parsing error: template: :1:12: executing \"\" at <.Nope>: \
             can't evaluate field Nope in type *test.context"
        );
        // Without rows nothing is executed, as in docker.
        assert_eq!(print("{{.Nope}}", &[]).unwrap(), "");
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
