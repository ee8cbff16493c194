//! The build's JSON stream, as dockerd 20.10 writes it: one object per chunk, each followed by
//! "\r\n", strings escaped as Go's encoder escapes them (`<` is `\u003c`).
//!
//! Stages may run at once, but the transcript must read as a sequential build: each stage
//! writes into its own [`StageOut`], and the [`Printer`] forwards the sections in file order,
//! the current one live and the later ones once their turn comes.

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::BuildError;

/// The ANSI colour dockerd wraps a RUN's stderr in.
const STDERR_START: &str = "\u{1b}[91m";
const STDERR_END: &str = "\u{1b}[0m";

/// JSON as Go's `encoding/json` writes it: `<`, `>`, `&`, U+2028 and U+2029 escaped. They can
/// only occur inside strings, so escaping the serialized text is exact.
pub fn go_json(v: &Value) -> String {
    let s = v.to_string();
    if !s.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

fn line(v: Value) -> Bytes {
    Bytes::from(go_json(&v) + "\r\n")
}

/// `{"stream": text}`.
pub fn stream_line(text: &str) -> Bytes {
    line(json!({ "stream": text }))
}

/// `{"aux":{"ID":"sha256:…"}}`: the image a stage made (the CLI's `--iidfile` takes the last).
pub fn aux_line(id: &str) -> Bytes {
    line(json!({ "aux": { "ID": id } }))
}

/// The failure that ends the stream; `code` only for a RUN's exit code.
pub fn error_line(e: &BuildError) -> Bytes {
    let message = e.to_string();
    let detail = match e {
        BuildError::Step {
            code: Some(code), ..
        } if *code != 0 => json!({ "code": code, "message": message }),
        _ => json!({ "message": message }),
    };
    line(json!({ "errorDetail": detail, "error": message }))
}

/// Where one section of the transcript (the meta ARGs, one stage, the tail) is written.
#[derive(Clone)]
pub struct StageOut(mpsc::UnboundedSender<Bytes>);

impl StageOut {
    /// A section and the receiving end the printer reads.
    pub fn new() -> (StageOut, mpsc::UnboundedReceiver<Bytes>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (StageOut(tx), rx)
    }

    /// Text as one `stream` message.
    pub fn text(&self, text: &str) {
        let _ = self.0.send(stream_line(text));
    }

    /// `Step N/M : <text>` then `\n`, two messages as dockerd sends them.
    pub fn step(&self, n: usize, total: usize, text: &str) {
        self.text(&format!("Step {n}/{total} : {text}"));
        self.text("\n");
    }

    /// A RUN's stdout, as the container wrote it.
    pub fn stdout(&self, bytes: &[u8]) {
        self.text(&String::from_utf8_lossy(bytes));
    }

    /// A RUN's stderr, wrapped in red.
    pub fn stderr(&self, bytes: &[u8]) {
        self.text(&format!(
            "{STDERR_START}{}{STDERR_END}",
            String::from_utf8_lossy(bytes)
        ));
    }

    pub fn aux(&self, id: &str) {
        let _ = self.0.send(aux_line(id));
    }

    /// An already-encoded JSON line (pull progress), passed through.
    pub fn raw(&self, line: Bytes) {
        let _ = self.0.send(line);
    }
}

/// The 12 hex digits dockerd prints for an ID.
pub fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

/// Where the response goes: the HTTP body, or (`q=1`) a buffer that is only sent when the
/// build fails.
pub struct Sink {
    tx: mpsc::Sender<Bytes>,
    quiet: bool,
    buffered: Vec<Bytes>,
}

impl Sink {
    pub fn new(tx: mpsc::Sender<Bytes>, quiet: bool) -> Sink {
        Sink {
            tx,
            quiet,
            buffered: Vec::new(),
        }
    }

    /// Sends (or buffers) one message; `false` once the client is gone.
    pub async fn send(&mut self, line: Bytes) -> bool {
        if self.quiet {
            self.buffered.push(line);
            return !self.tx.is_closed();
        }
        self.tx.send(line).await.is_ok()
    }

    /// The end of a failed build: the buffered transcript (quiet mode) and the error.
    pub async fn fail(mut self, e: &BuildError) {
        for line in std::mem::take(&mut self.buffered) {
            if self.tx.send(line).await.is_err() {
                return;
            }
        }
        let _ = self.tx.send(error_line(e)).await;
    }

    /// The end of a successful build: in quiet mode only the image ID.
    pub async fn succeed(self, image_id: &str) {
        if self.quiet {
            let _ = self.tx.send(stream_line(&format!("{image_id}\n"))).await;
        }
    }
}

/// Forwards sections in order: everything of section 0 until its writers are gone, then
/// section 1, and so on. Returns `false` when the client went away.
pub async fn print_in_order(
    sink: &mut Sink,
    sections: Vec<mpsc::UnboundedReceiver<Bytes>>,
) -> bool {
    for mut section in sections {
        while let Some(line) = section.recv().await {
            if !sink.send(line).await {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(b: &Bytes) -> &str {
        std::str::from_utf8(b).unwrap()
    }

    #[test]
    fn messages_are_docker_bytes() {
        assert_eq!(
            text(&stream_line(" ---> 114596fac294\n")),
            "{\"stream\":\" ---\\u003e 114596fac294\\n\"}\r\n"
        );
        assert_eq!(
            text(&aux_line("sha256:75dc")),
            "{\"aux\":{\"ID\":\"sha256:75dc\"}}\r\n"
        );
        let run = BuildError::Step {
            message: "The command '/bin/sh -c echo >&2; exit 3' returned a non-zero code: 3".into(),
            code: Some(3),
        };
        assert_eq!(
            text(&error_line(&run)),
            "{\"errorDetail\":{\"code\":3,\"message\":\"The command '/bin/sh -c echo \\u003e\\u00262; exit 3' returned a non-zero code: 3\"},\"error\":\"The command '/bin/sh -c echo \\u003e\\u00262; exit 3' returned a non-zero code: 3\"}\r\n"
        );
        assert_eq!(
            text(&error_line(&BuildError::msg("COPY failed: no source files were specified"))),
            "{\"errorDetail\":{\"message\":\"COPY failed: no source files were specified\"},\"error\":\"COPY failed: no source files were specified\"}\r\n"
        );
    }

    #[tokio::test]
    async fn stderr_is_red_and_steps_are_two_messages() {
        let (out, mut rx) = StageOut::new();
        out.step(1, 2, "FROM busybox");
        out.stderr(b"to-stderr\n");
        drop(out);
        let mut got = Vec::new();
        while let Some(b) = rx.recv().await {
            got.push(String::from_utf8(b.to_vec()).unwrap());
        }
        assert_eq!(
            got,
            [
                "{\"stream\":\"Step 1/2 : FROM busybox\"}\r\n",
                "{\"stream\":\"\\n\"}\r\n",
                "{\"stream\":\"\\u001b[91mto-stderr\\n\\u001b[0m\"}\r\n"
            ]
        );
    }

    #[tokio::test]
    async fn sections_print_in_file_order_whatever_order_they_are_written() {
        let (a, ra) = StageOut::new();
        let (b, rb) = StageOut::new();
        b.text("b1");
        a.text("a1");
        b.text("b2");
        let (tx, mut rx) = mpsc::channel(16);
        let mut sink = Sink::new(tx, false);
        let printer = tokio::spawn(async move { print_in_order(&mut sink, vec![ra, rb]).await });
        a.text("a2");
        drop(a);
        drop(b);
        assert!(printer.await.unwrap());
        let mut got = Vec::new();
        while let Ok(l) = rx.try_recv() {
            got.push(String::from_utf8(l.to_vec()).unwrap());
        }
        let texts: Vec<String> = got
            .iter()
            .map(|l| {
                serde_json::from_str::<Value>(l.trim_end()).unwrap()["stream"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(texts, ["a1", "a2", "b1", "b2"]);
    }

    #[tokio::test]
    async fn quiet_sends_only_the_id_or_everything_on_failure() {
        let (tx, mut rx) = mpsc::channel(16);
        let mut sink = Sink::new(tx, true);
        assert!(sink.send(stream_line("Step 1/1 : FROM busybox")).await);
        sink.succeed("sha256:abc").await;
        assert_eq!(
            text(&rx.recv().await.unwrap()),
            "{\"stream\":\"sha256:abc\\n\"}\r\n"
        );
        assert!(rx.recv().await.is_none());

        let (tx, mut rx) = mpsc::channel(16);
        let mut sink = Sink::new(tx, true);
        sink.send(stream_line("x")).await;
        sink.fail(&BuildError::msg("boom")).await;
        assert_eq!(text(&rx.recv().await.unwrap()), "{\"stream\":\"x\"}\r\n");
        assert!(text(&rx.recv().await.unwrap()).starts_with("{\"errorDetail\""));
    }
}
