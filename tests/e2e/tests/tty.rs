//! `run -it` with a real pty, driven through tmux as a person would type.

use berth_e2e::{eventually, Daemon, Tmux};

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
