//! `run -it` with a real pty, driven through tmux as a person would type.

use berth_e2e::{eventually, Daemon};
use std::process::Command;

/// A tmux session running one command, torn down on drop.
struct Tmux(String);

impl Tmux {
    fn start(name: &str, command: &str) -> Tmux {
        let _ = Command::new("tmux").args(["kill-session", "-t", name]).output();
        let ok = Command::new("tmux")
            .args(["new-session", "-d", "-s", name, "-x", "100", "-y", "30", command])
            .status()
            .expect("tmux is installed by scripts/deps.sh --test");
        assert!(ok.success());
        Tmux(name.to_string())
    }

    fn send(&self, keys: &str) {
        Command::new("tmux").args(["send-keys", "-t", &self.0, keys, "Enter"]).status().unwrap();
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux").args(["capture-pane", "-p", "-t", &self.0]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn resize(&self, cols: u16, rows: u16) {
        Command::new("tmux")
            .args(["resize-window", "-t", &self.0, "-x", &cols.to_string(), "-y", &rows.to_string()])
            .status()
            .unwrap();
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.0]).output();
    }
}

fn interactive_shell(d: &Daemon, client: &str, session: &str) {
    let cmd = format!(
        "{client_env}={host} {client} run -it --name {session} busybox sh",
        client_env = if client.ends_with("docker") { "DOCKER_HOST" } else { "BERTH_HOST" },
        host = d.host(),
    );
    let t = Tmux::start(session, &cmd);
    assert!(eventually(10, || t.screen().contains("/ #")), "no prompt: {}", t.screen());
    t.send("stty size; tty; echo term=$TERM");
    assert!(eventually(5, || t.screen().contains("term=xterm")), "{}", t.screen());
    let screen = t.screen();
    assert!(screen.contains("30 100"), "initial window size: {screen}");
    assert!(screen.contains("/dev/pts/0"), "{screen}");
    t.resize(120, 40);
    std::thread::sleep(std::time::Duration::from_millis(300));
    t.send("stty size");
    assert!(eventually(5, || t.screen().contains("40 120")), "resize not seen: {}", t.screen());
    t.send("exit 5");
    assert!(eventually(10, || d.ok(&["inspect", "-f", "{{.State.Status}}", session]) == "exited"));
    assert_eq!(d.ok(&["inspect", "-f", "{{.State.ExitCode}} {{.Config.Tty}}", session]), "5 true");
}

#[test]
fn berth_run_it_gives_a_real_terminal() {
    let d = Daemon::start();
    let berth = berth_e2e::bin_dir().join("berth");
    interactive_shell(&d, berth.to_str().unwrap(), "berth-tty");
}

#[test]
fn docker_run_it_gives_a_real_terminal() {
    let d = Daemon::start();
    let docker = berth_e2e::docker_cli();
    interactive_shell(&d, docker.to_str().unwrap(), "docker-tty");
}
