//! `berth stats`: containers' CPU, memory, network, block I/O and process counts, as
//! docker's table or a `--format` template, once (`--no-stream`) or redrawn twice a second.
//!
//! Each container is queried on its own connection, all at once; the figures are computed
//! from the daemon's `StatsJSON` exactly as docker-cli computes them.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_api::models::{ContainerStatsResponse, ContainerSummary};
use clap::Args;
use hyper::Method;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::client::{self, Client, ClientError};
use crate::commands::{CmdResult, Failure};
use crate::format;
use crate::json::Value;
use crate::listing::{no_methods, ListPrinter};

/// `berth stats`
#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Pretty-print images using a Go template
    #[arg(long = "format", value_name = "string")]
    pub format: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Docker's default stats table.
const DEFAULT_FORMAT: &str =
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// How often a stream is redrawn, as docker does.
const REDRAW_INTERVAL: Duration = Duration::from_millis(500);

/// A streamed container whose daemon sends nothing this long shows `--` (docker's timeout).
const FRAME_TIMEOUT: Duration = Duration::from_secs(2);

/// Column titles docker prints for each field of the stats context.
fn title(field: &str) -> String {
    match field {
        "Container" => "CONTAINER",
        "Name" => "NAME",
        "ID" => "CONTAINER ID",
        "CPUPerc" => "CPU %",
        "MemUsage" => "MEM USAGE / LIMIT",
        "MemPerc" => "MEM %",
        "NetIO" => "NET I/O",
        "BlockIO" => "BLOCK I/O",
        "PIDs" => "PIDS",
        other => return other.to_uppercase(),
    }
    .to_string()
}

/// One container's figures, as docker-cli derives them from a `StatsJSON`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Figures {
    /// `/name` as the daemon sends it.
    name: String,
    id: String,
    cpu_percent: f64,
    memory: f64,
    memory_limit: f64,
    memory_percent: f64,
    net_rx: f64,
    net_tx: f64,
    block_read: f64,
    block_write: f64,
    pids: u64,
}

impl Figures {
    fn from_stats(v: &ContainerStatsResponse) -> Figures {
        let cpu = v.cpu_stats.clone().unwrap_or_default();
        let pre = v.precpu_stats.clone().unwrap_or_default();
        let mem = v.memory_stats.clone().unwrap_or_default();
        let memory = memory_without_cache(&mem);
        let memory_limit = mem.limit.unwrap_or(0) as f64;
        let (block_read, block_write) = block_io(v);
        let (net_rx, net_tx) = v
            .networks
            .iter()
            .flatten()
            .fold((0.0, 0.0), |(rx, tx), (_, n)| {
                (
                    rx + n.rx_bytes.unwrap_or(0) as f64,
                    tx + n.tx_bytes.unwrap_or(0) as f64,
                )
            });
        Figures {
            name: v.name.clone().unwrap_or_default(),
            id: v.id.clone().unwrap_or_default(),
            cpu_percent: cpu_percent(&cpu, &pre),
            memory,
            memory_limit,
            memory_percent: if memory_limit != 0.0 {
                memory / memory_limit * 100.0
            } else {
                0.0
            },
            net_rx,
            net_tx,
            block_read,
            block_write,
            pids: v.pids_stats.as_ref().and_then(|p| p.current).unwrap_or(0),
        }
    }
}

/// docker-cli's CPU %: the container's share of all the host's CPU time between the two
/// readings, scaled to the CPUs it may use (100 % is one full CPU).
fn cpu_percent(
    cpu: &berth_api::models::ContainerCpuStats,
    pre: &berth_api::models::ContainerCpuStats,
) -> f64 {
    let total = |c: &berth_api::models::ContainerCpuStats| {
        c.cpu_usage
            .as_ref()
            .and_then(|u| u.total_usage)
            .unwrap_or(0)
    };
    let cpu_delta = total(cpu) as f64 - total(pre) as f64;
    let system_delta =
        cpu.system_cpu_usage.unwrap_or(0) as f64 - pre.system_cpu_usage.unwrap_or(0) as f64;
    let mut online = cpu.online_cpus.unwrap_or(0) as f64;
    if online == 0.0 {
        online = cpu
            .cpu_usage
            .as_ref()
            .and_then(|u| u.percpu_usage.as_ref())
            .map_or(0, |p| p.len()) as f64;
    }
    if system_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / system_delta * online * 100.0
    } else {
        0.0
    }
}

/// docker-cli's memory use: without the inactive page cache the kernel can take back
/// (`total_inactive_file` on cgroup v1, `inactive_file` on v2).
fn memory_without_cache(mem: &berth_api::models::ContainerMemoryStats) -> f64 {
    let usage = mem.usage.unwrap_or(0);
    let stats = mem.stats.clone().unwrap_or_default();
    if let Some(&v) = stats.get("total_inactive_file") {
        if v < usage {
            return (usage - v) as f64;
        }
    }
    let v = stats.get("inactive_file").copied().unwrap_or(0);
    if v < usage {
        (usage - v) as f64
    } else {
        usage as f64
    }
}

/// Bytes read and written: docker-cli sums the `io_service_bytes_recursive` entries whose
/// op starts with r or w (v1's `Read`/`Write`, v2's `read`/`write`).
fn block_io(v: &ContainerStatsResponse) -> (f64, f64) {
    let entries = v
        .blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.as_ref());
    let (mut read, mut write) = (0u64, 0u64);
    for e in entries.into_iter().flatten() {
        let value = e.value.unwrap_or(0);
        match e.op.as_deref().and_then(|op| op.chars().next()) {
            Some('r' | 'R') => read += value,
            Some('w' | 'W') => write += value,
            _ => {}
        }
    }
    (read as f64, write as f64)
}

/// What the table shows for one container.
#[derive(Debug, Default)]
struct Row {
    /// The name or ID the user gave (or the short ID when listing every container).
    container: String,
    figures: Figures,
    /// No figures to trust (an error, a stream that ended or went quiet): docker shows `--`.
    invalid: bool,
    error: Option<ClientError>,
}

type Shared = Arc<Mutex<Row>>;

fn lock(row: &Shared) -> std::sync::MutexGuard<'_, Row> {
    row.lock().unwrap_or_else(|p| p.into_inner())
}

/// The template context of one row, with docker's field names and values.
fn context(row: &Row, trunc: bool) -> Value {
    let f = &row.figures;
    // Docker's names start with `/`; without one to drop there is no name to show.
    let name = match f.name.chars().count() {
        0 | 1 => "--".to_string(),
        _ => f.name.chars().skip(1).collect(),
    };
    let id = if trunc {
        format::short_id(&f.id)
    } else {
        f.id.clone()
    };
    let or_dashes = |text: String| if row.invalid { "--".to_string() } else { text };
    let io = |a: f64, b: f64| {
        format!(
            "{} / {}",
            format::human_size(a as i64, 3),
            format::human_size(b as i64, 3)
        )
    };
    let s = Value::String;
    let mem_usage = if row.invalid {
        "-- / --".to_string()
    } else {
        format!(
            "{} / {}",
            format::bytes_size(f.memory as i64),
            format::bytes_size(f.memory_limit as i64)
        )
    };
    // Sorted keys, because `{{json .}}` marshals docker's context as a map.
    Value::Object(vec![
        (
            "BlockIO".into(),
            s(or_dashes(io(f.block_read, f.block_write))),
        ),
        (
            "CPUPerc".into(),
            s(or_dashes(format!("{:.2}%", f.cpu_percent))),
        ),
        ("Container".into(), s(row.container.clone())),
        ("ID".into(), s(id)),
        (
            "MemPerc".into(),
            s(or_dashes(format!("{:.2}%", f.memory_percent))),
        ),
        ("MemUsage".into(), s(mem_usage)),
        ("Name".into(), s(name)),
        ("NetIO".into(), s(or_dashes(io(f.net_rx, f.net_tx)))),
        ("PIDs".into(), s(or_dashes(f.pids.to_string()))),
    ])
}

/// Renders every row through the format (docker's table by default).
fn render(format: &str, rows: &[Shared], trunc: bool) -> Result<String, Failure> {
    let mut out = ListPrinter::new(format, "*container.statsContext", &title)?;
    for row in rows {
        out.row(&context(&lock(row), trunc), &no_methods)?;
    }
    Ok(out.finish())
}

/// Follows one container's stats into `row`, telling `first` once it has a first result
/// (figures or an error). A stream goes on until the daemon ends it.
async fn collect(client: Client, row: Shared, stream: bool, first: mpsc::UnboundedSender<()>) {
    let container = lock(&row).container.clone();
    let path = format!(
        "/containers/{}/stats?stream={}",
        client::enc(&container),
        if stream { "1" } else { "0" }
    );
    let mut first = Some(first);
    let mut reached = || {
        if let Some(tx) = first.take() {
            let _ = tx.send(());
        }
    };
    let fail = |e: ClientError| {
        let mut r = lock(&row);
        r.invalid = true;
        r.error = Some(e);
    };
    let mut body = match client.send(Method::GET, &path, client::empty()).await {
        Ok(resp) => resp.into_body(),
        Err(e) => {
            fail(e);
            reached();
            return;
        }
    };
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let chunk = if stream {
            match tokio::time::timeout(FRAME_TIMEOUT, client::next_chunk(&mut body)).await {
                Ok(chunk) => chunk,
                Err(_) => {
                    let mut r = lock(&row);
                    r.figures = Figures {
                        name: r.figures.name.clone(),
                        id: r.figures.id.clone(),
                        ..Default::default()
                    };
                    r.invalid = true;
                    drop(r);
                    reached();
                    continue;
                }
            }
        } else {
            client::next_chunk(&mut body).await
        };
        let ended = match chunk {
            Ok(Some(data)) => {
                buf.extend_from_slice(&data);
                false
            }
            Ok(None) => true,
            Err(e) => {
                fail(e);
                reached();
                return;
            }
        };
        // Frames are one JSON document per line; at the end, whatever is left is the last.
        while let Some(end) = buf
            .iter()
            .position(|b| *b == b'\n')
            .or((ended && !buf.is_empty()).then_some(buf.len()))
        {
            let line: Vec<u8> = buf.drain(..end).collect();
            if !buf.is_empty() {
                buf.remove(0);
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<ContainerStatsResponse>(&line) {
                Ok(frame) => {
                    let mut r = lock(&row);
                    r.figures = Figures::from_stats(&frame);
                    r.invalid = false;
                    r.error = None;
                }
                Err(e) => fail(ClientError::Io(format!("cannot decode stats: {e}"))),
            }
            reached();
            if !stream {
                return;
            }
        }
        if ended {
            // The daemon ended the stream (the container is gone): docker shows `--`.
            lock(&row).invalid = true;
            reached();
            return;
        }
    }
}

/// The containers being shown, each with its collector.
struct Watched {
    client: Client,
    stream: bool,
    rows: Vec<(Shared, JoinHandle<()>)>,
    first_tx: mpsc::UnboundedSender<()>,
    first_rx: mpsc::UnboundedReceiver<()>,
    /// Collectors started whose first result has not come yet.
    pending: usize,
}

impl Watched {
    fn new(client: &Client, stream: bool) -> Watched {
        let (first_tx, first_rx) = mpsc::unbounded_channel();
        Watched {
            client: client.clone(),
            stream,
            rows: Vec::new(),
            first_tx,
            first_rx,
            pending: 0,
        }
    }

    /// Starts following `container` unless it is already shown.
    fn add(&mut self, container: &str) {
        if self
            .rows
            .iter()
            .any(|(r, _)| lock(r).container == container)
        {
            return;
        }
        let row: Shared = Arc::new(Mutex::new(Row {
            container: container.to_string(),
            ..Default::default()
        }));
        let task = tokio::spawn(collect(
            self.client.clone(),
            row.clone(),
            self.stream,
            self.first_tx.clone(),
        ));
        self.rows.push((row, task));
        self.pending += 1;
    }

    /// Stops showing the containers not in `keep`.
    fn retain(&mut self, keep: &[String]) {
        self.rows.retain(|(row, task)| {
            let kept = keep.contains(&lock(row).container);
            if !kept {
                task.abort();
            }
            kept
        });
    }

    /// Waits until every collector started has a first result.
    async fn first_results(&mut self) {
        while self.pending > 0 {
            if self.first_rx.recv().await.is_none() {
                break;
            }
            self.pending -= 1;
        }
    }

    fn shared(&self) -> Vec<Shared> {
        self.rows.iter().map(|(r, _)| r.clone()).collect()
    }
}

/// The short IDs of the running containers (every container with `all`), newest first.
async fn list(client: &Client, all: bool) -> Result<Vec<String>, ClientError> {
    let query = if all { "?all=1" } else { "" };
    let list: Vec<ContainerSummary> = client.get(&format!("/containers/json{query}")).await?;
    Ok(list
        .iter()
        .filter_map(|c| c.id.as_deref())
        .map(format::short_id)
        .collect())
}

/// `berth stats`
pub async fn run(client: &Client, args: StatsArgs) -> CmdResult {
    let show_all = args.containers.is_empty();
    let stream = !args.no_stream;
    let mut watched = Watched::new(client, stream);
    if show_all {
        for id in list(client, args.all).await? {
            watched.add(&id);
        }
    } else {
        for name in &args.containers {
            watched.add(name);
        }
    }
    watched.first_results().await;
    if !show_all {
        // As docker: containers that were named must all exist, or nothing is shown.
        let mut errors = Vec::new();
        for row in watched.shared() {
            match lock(&row).error.take() {
                Some(e @ ClientError::Connect { .. }) => return Err(e.into()),
                Some(e) => errors.push(e.to_string()),
                None => {}
            }
        }
        if !errors.is_empty() {
            return Err(Failure::new(1, errors.join("\n")));
        }
    }
    let format = match args.format.as_deref() {
        None | Some("") | Some("table") => DEFAULT_FORMAT,
        Some(f) => f,
    };
    let trunc = !args.no_trunc;
    if !stream {
        print!("{}", render(format, &watched.shared(), trunc)?);
        return Ok(0);
    }
    let mut redraw = tokio::time::interval(REDRAW_INTERVAL);
    let mut list_due = false;
    loop {
        redraw.tick().await;
        list_due = !list_due;
        // Every second, follow containers that started (or were created, with -a) and drop
        // those that are gone, as docker does from the daemon's events.
        if show_all && list_due {
            if let Ok(ids) = list(client, args.all).await {
                for id in &ids {
                    watched.add(id);
                }
                watched.retain(&ids);
            }
        }
        let text = render(format, &watched.shared(), trunc)?;
        let mut out = std::io::stdout().lock();
        // Clear the screen and go home, then draw: docker's redraw.
        let _ = write!(out, "\x1b[2J\x1b[H{text}");
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(json: &str) -> ContainerStatsResponse {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn figures_follow_docker_cli_on_cgroup_v1() {
        let f = Figures::from_stats(&frame(
            r#"{"read":"2026-11-22T07:29:48.77940279Z","name":"/web","id":"437fe3a10607172aea9bb2fdd0a7073e",
            "pids_stats":{"current":3},
            "blkio_stats":{"io_service_bytes_recursive":[{"major":254,"minor":0,"op":"Read","value":163840},
              {"major":254,"minor":0,"op":"Write","value":8585216},{"major":254,"minor":0,"op":"Total","value":8749056}]},
            "cpu_stats":{"cpu_usage":{"total_usage":3133379015,"percpu_usage":[1,2]},"system_cpu_usage":18663530000000,"online_cpus":2},
            "precpu_stats":{"cpu_usage":{"total_usage":2136940291},"system_cpu_usage":18661550000000,"online_cpus":2},
            "memory_stats":{"usage":2633728,"limit":67108864,"stats":{"total_inactive_file":1982464,"inactive_file":5,"cache":1982464}},
            "networks":{"eth0":{"rx_bytes":736,"tx_bytes":10},"eth1":{"rx_bytes":64,"tx_bytes":0}}}"#,
        ));
        // (3133379015 - 2136940291) / (18663530000000 - 18661550000000) * 2 * 100
        assert!(
            (f.cpu_percent - 100.650376).abs() < 1e-5,
            "{}",
            f.cpu_percent
        );
        assert_eq!(
            f.memory,
            (2633728 - 1982464) as f64,
            "v1 subtracts total_inactive_file"
        );
        assert!((f.memory_percent - 0.970459).abs() < 1e-5);
        assert_eq!((f.block_read, f.block_write), (163840.0, 8585216.0));
        assert_eq!((f.net_rx, f.net_tx), (800.0, 10.0));
        assert_eq!(f.pids, 3);
        let row = Row {
            container: "web".into(),
            figures: f,
            ..Default::default()
        };
        let ctx = context(&row, true);
        let text = |k: &str| ctx.get(k).unwrap().to_template_text();
        assert_eq!(text("CPUPerc"), "100.65%");
        assert_eq!(text("MemUsage"), "636KiB / 64MiB");
        assert_eq!(text("MemPerc"), "0.97%");
        assert_eq!(text("NetIO"), "800B / 10B");
        assert_eq!(text("BlockIO"), "164kB / 8.59MB");
        assert_eq!(text("PIDs"), "3");
        assert_eq!(text("Name"), "web");
        assert_eq!(text("ID"), "437fe3a10607");
    }

    #[test]
    fn figures_follow_docker_cli_on_cgroup_v2() {
        let f = Figures::from_stats(&frame(
            r#"{"name":"/x","id":"abc","cpu_stats":{"cpu_usage":{"total_usage":500},"system_cpu_usage":2000},
            "precpu_stats":{"cpu_usage":{"total_usage":0}},
            "memory_stats":{"usage":10000,"limit":20000,"stats":{"inactive_file":2000,"file":3000}},
            "blkio_stats":{"io_service_bytes_recursive":[{"major":8,"minor":0,"op":"read","value":1},{"major":8,"minor":0,"op":"write","value":2}]}}"#,
        ));
        assert_eq!(f.memory, 8000.0, "v2 subtracts inactive_file");
        assert_eq!(f.memory_percent, 40.0);
        assert_eq!((f.block_read, f.block_write), (1.0, 2.0));
        // No online_cpus nor per-CPU list: docker-cli then counts no CPUs, so 0 %.
        assert_eq!(f.cpu_percent, 0.0);
    }

    #[test]
    fn stopped_and_failed_rows() {
        let stopped = Figures::from_stats(&frame(
            r#"{"read":"0001-01-01T00:00:00Z","name":"/idle","id":"ed461352b486059c","memory_stats":{},"pids_stats":{},
            "cpu_stats":{"cpu_usage":{"total_usage":0}},"precpu_stats":{"cpu_usage":{"total_usage":0}}}"#,
        ));
        let row = Row {
            container: "idle".into(),
            figures: stopped,
            ..Default::default()
        };
        let rows = vec![Arc::new(Mutex::new(row))];
        let out = render(DEFAULT_FORMAT, &rows, true).unwrap();
        assert_eq!(
            out,
            "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O   BLOCK I/O   PIDS\n\
             ed461352b486   idle      0.00%     0B / 0B             0.00%     0B / 0B   0B / 0B     0\n"
        );
        let gone = Row {
            container: "gone".into(),
            invalid: true,
            ..Default::default()
        };
        let ctx = context(&gone, true);
        assert_eq!(ctx.get("Name").unwrap().to_template_text(), "--");
        assert_eq!(ctx.get("MemUsage").unwrap().to_template_text(), "-- / --");
        assert_eq!(ctx.get("PIDs").unwrap().to_template_text(), "--");
    }

    #[test]
    fn formats() {
        let row = Row {
            container: "web".into(),
            figures: Figures {
                name: "/web".into(),
                id: "0123456789abcdef".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let rows = vec![Arc::new(Mutex::new(row))];
        assert_eq!(
            render("table {{.Container}}\\t{{.PIDs}}", &rows, true).unwrap(),
            "CONTAINER   PIDS\nweb         0\n"
        );
        assert_eq!(
            render("{{.Name}}:{{.ID}}", &rows, false).unwrap(),
            "web:0123456789abcdef\n"
        );
        assert_eq!(
            render("{{json .}}", &rows, true).unwrap(),
            "{\"BlockIO\":\"0B / 0B\",\"CPUPerc\":\"0.00%\",\"Container\":\"web\",\"ID\":\"0123456789ab\",\"MemPerc\":\"0.00%\",\"MemUsage\":\"0B / 0B\",\"Name\":\"web\",\"NetIO\":\"0B / 0B\",\"PIDs\":\"0\"}\n"
        );
        let err = render("{{.Bad", &rows, true).unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (1, "template parsing error: template: :1: unclosed action")
        );
    }
}
