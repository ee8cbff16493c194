//! The embedded DNS server of containers on user-defined networks, as Docker's: it listens on
//! 127.0.0.11:53 (UDP and TCP) inside the container's network namespace, answers A queries
//! for the names the daemon knows (containers and aliases on the container's networks),
//! gives an empty answer to AAAA queries for those names, and forwards everything else to the
//! upstream resolvers (the container's `--dns`, else the host's `resolv.conf`).
//!
//! The sockets are opened by a thread that entered the container's namespace; they stay in it
//! when the daemon's tokio runtime serves them. Queries are forwarded from the container's
//! namespace too, as Docker does, except to the host's own loopback resolvers
//! (systemd-resolved), which only the host's namespace reaches.

use simple_dns::rdata::{RData, A};
use simple_dns::{Packet, PacketFlag, ResourceRecord, CLASS, QTYPE, RCODE, TYPE};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;

/// Answers "which addresses does `name` have, for the container `container`?"; an empty
/// list means the name is not the daemon's, and the query is forwarded.
pub type Lookup = Arc<dyn Fn(&str, &str) -> Vec<Ipv4Addr> + Send + Sync>;

/// TTL of the answers for local names (Docker's `respTTL`).
const ANSWER_TTL: u32 = 600;
/// How long an upstream gets to answer (Docker's `extIOTimeout`).
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(4);
/// Docker forwards to at most three upstream servers.
const MAX_UPSTREAMS: usize = 3;
/// Large enough for any UDP DNS message with EDNS.
const MAX_UDP: usize = 65535;

/// The server's address inside the container.
pub const LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(crate::etc_files::EMBEDDED_DNS), 53);

/// The listening sockets of one server, not yet served.
pub struct Sockets {
    pub udp: std::net::UdpSocket,
    pub tcp: std::net::TcpListener,
}

/// Opens the UDP and TCP sockets on `addr` inside the network namespace pinned at `netns`.
///
/// A short-lived thread enters the namespace and binds: `setns` moves only the calling
/// thread, and a socket keeps the namespace it was made in.
pub fn bind_in_netns(netns: &Path, addr: SocketAddr) -> io::Result<Sockets> {
    let ns = std::fs::File::open(netns)?;
    std::thread::spawn(move || -> io::Result<Sockets> {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
        bind(addr)
    })
    .join()
    .unwrap_or_else(|_| Err(io::Error::other("dns bind thread panicked")))
}

/// Opens the UDP and TCP sockets on `addr` in the calling thread's namespace.
pub fn bind(addr: SocketAddr) -> io::Result<Sockets> {
    let udp = std::net::UdpSocket::bind(addr)?;
    // Same port for TCP: with port 0 take the one UDP got.
    let tcp = std::net::TcpListener::bind(udp.local_addr()?)?;
    udp.set_nonblocking(true)?;
    tcp.set_nonblocking(true)?;
    Ok(Sockets { udp, tcp })
}

/// A running server; dropping it stops it and closes its sockets.
pub struct Server {
    tasks: JoinSet<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// One upstream resolver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upstream {
    pub addr: SocketAddr,
    /// A loopback resolver of the host's own `resolv.conf` (systemd-resolved, dnsmasq):
    /// asked from the host's namespace. Any other is asked from the container's, as Docker
    /// does, so the query takes the container's route.
    pub host_loopback: bool,
}

/// Whose server this is and where it forwards.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The container whose names the lookup answers for.
    pub container: String,
    /// The container's network namespace, where queries to non-loopback upstreams leave
    /// from; `None` leaves from the daemon's own.
    pub netns: Option<std::path::PathBuf>,
    /// Upstream resolvers (at most three are used, as Docker); none on internal networks,
    /// where names the daemon does not know get SERVFAIL.
    pub upstreams: Vec<Upstream>,
    /// The container set `ndots` itself: an unknown single-label name then gets an empty
    /// answer instead of being forwarded, so the client goes on with its search domains.
    pub ndots_set: bool,
}

/// What a server needs to answer.
#[derive(Clone)]
struct Resolver {
    settings: Arc<Settings>,
    /// The container's namespace, held open for forwarding sockets.
    netns: Option<Arc<std::fs::File>>,
    lookup: Lookup,
}

/// Serves `sockets` on the current tokio runtime.
pub fn serve(sockets: Sockets, mut settings: Settings, lookup: Lookup) -> io::Result<Server> {
    settings.upstreams.truncate(MAX_UPSTREAMS);
    let netns = match &settings.netns {
        Some(path) => Some(Arc::new(std::fs::File::open(path)?)),
        None => None,
    };
    let resolver = Resolver {
        settings: Arc::new(settings),
        netns,
        lookup,
    };
    let udp = UdpSocket::from_std(sockets.udp)?;
    let tcp = TcpListener::from_std(sockets.tcp)?;
    let mut tasks = JoinSet::new();
    tasks.spawn(serve_udp(udp, resolver.clone()));
    tasks.spawn(serve_tcp(tcp, resolver));
    Ok(Server { tasks })
}

async fn serve_udp(sock: UdpSocket, resolver: Resolver) {
    let sock = Arc::new(sock);
    let mut buf = vec![0u8; MAX_UDP];
    // Each query is answered on a task of its own, so a slow upstream holds up no one; the
    // set is dropped (and its tasks aborted) with this one.
    let mut inflight = JoinSet::new();
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(_) => continue,
        };
        while inflight.try_join_next().is_some() {}
        let (query, sock, resolver) = (buf[..n].to_vec(), sock.clone(), resolver.clone());
        inflight.spawn(async move {
            if let Some(reply) = resolver.answer(&query, Transport::Udp).await {
                let _ = sock.send_to(&reply, peer).await;
            }
        });
    }
}

async fn serve_tcp(listener: TcpListener, resolver: Resolver) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        while conns.try_join_next().is_some() {}
        conns.spawn(serve_conn(stream, resolver.clone()));
    }
}

/// One TCP client: length-prefixed messages until it closes.
async fn serve_conn(mut stream: TcpStream, resolver: Resolver) {
    while let Ok(query) = read_framed(&mut stream).await {
        let Some(reply) = resolver.answer(&query, Transport::Tcp).await else {
            return;
        };
        if write_framed(&mut stream, &reply).await.is_err() {
            return;
        }
    }
}

async fn read_framed(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let len = stream.read_u16().await? as usize;
    let mut msg = vec![0u8; len];
    stream.read_exact(&mut msg).await?;
    Ok(msg)
}

async fn write_framed(stream: &mut TcpStream, msg: &[u8]) -> io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| io::Error::other("DNS message too long"))?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(msg);
    stream.write_all(&framed).await
}

#[derive(Debug, Clone, Copy)]
enum Transport {
    Udp,
    Tcp,
}

impl Resolver {
    /// The reply to one query message; `None` for what is not a DNS query at all.
    async fn answer(&self, query: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let packet = Packet::parse(query).ok()?;
        if packet.has_flags(PacketFlag::RESPONSE) {
            return None;
        }
        if let Some(reply) = self.local_answer(&packet) {
            return Some(reply);
        }
        if self.settings.ndots_set && is_single_label_address_query(&packet) {
            let mut reply = reply_to(&packet);
            reply.questions = packet.questions.clone();
            return reply.build_bytes_vec().ok();
        }
        for upstream in &self.settings.upstreams {
            let netns = if upstream.host_loopback {
                None
            } else {
                self.netns.clone()
            };
            let forwarded = match transport {
                Transport::Udp => forward_udp(upstream.addr, netns, query).await,
                Transport::Tcp => forward_tcp(upstream.addr, netns, query).await,
            };
            // A reply that is not one (wrong ID) counts as no reply: try the next server.
            if let Ok(reply) = forwarded {
                if reply.len() >= 2 && reply[..2] == query[..2] {
                    return Some(reply);
                }
            }
        }
        // Nobody could answer, as Docker: SERVFAIL.
        error_reply(&packet, RCODE::ServerFailure)
    }

    /// The answer for a name the daemon knows, or `None` to forward the query.
    fn local_answer(&self, query: &Packet) -> Option<Vec<u8>> {
        let [question] = &query.questions[..] else {
            return None;
        };
        let wants_a = matches!(question.qtype, QTYPE::TYPE(TYPE::A));
        let wants_aaaa = matches!(question.qtype, QTYPE::TYPE(TYPE::AAAA));
        if !wants_a && !wants_aaaa {
            return None;
        }
        let name = question
            .qname
            .to_string()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let addrs = (self.lookup)(&self.settings.container, &name);
        if addrs.is_empty() {
            return None;
        }
        let mut reply = reply_to(query);
        reply.questions.push(question.clone());
        // A known name without an IPv6 address: an empty answer, so clients do not go on
        // to ask the outside world about a container.
        if wants_a {
            for ip in addrs {
                reply.answers.push(ResourceRecord::new(
                    question.qname.clone(),
                    CLASS::IN,
                    ANSWER_TTL,
                    RData::A(A::from(ip)),
                ));
            }
        }
        reply.build_bytes_vec().ok()
    }
}

/// An A or AAAA query for a name without a dot (`web`, not `web.example`).
fn is_single_label_address_query(query: &Packet) -> bool {
    let [q] = &query.questions[..] else {
        return false;
    };
    matches!(q.qtype, QTYPE::TYPE(TYPE::A) | QTYPE::TYPE(TYPE::AAAA))
        && !q.qname.to_string().trim_end_matches('.').contains('.')
}

/// An empty reply with the query's ID, opcode and recursion-desired bit.
fn reply_to<'a>(query: &Packet) -> Packet<'a> {
    let mut reply = Packet::new_reply(query.id());
    reply.set_flags(PacketFlag::RECURSION_AVAILABLE);
    if query.has_flags(PacketFlag::RECURSION_DESIRED) {
        reply.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    reply
}

fn error_reply(query: &Packet, rcode: RCODE) -> Option<Vec<u8>> {
    let mut reply = reply_to(query);
    reply.questions = query.questions.clone();
    *reply.rcode_mut() = rcode;
    reply.build_bytes_vec().ok()
}

/// Runs `make` on a new thread inside `netns` (or here, without one) and returns what it
/// made: a socket keeps the namespace it was created in. Never a pool thread: one that
/// entered a container's namespace must not run anything else.
async fn in_netns<T: Send + 'static>(
    netns: Option<Arc<std::fs::File>>,
    make: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let Some(ns) = netns else { return make() };
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let made = nix::sched::setns(&*ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(io::Error::from)
            .and_then(|()| make());
        let _ = tx.send(made);
    });
    rx.await
        .unwrap_or_else(|_| Err(io::Error::other("forwarding thread failed")))
}

async fn forward_udp(
    upstream: SocketAddr,
    netns: Option<Arc<std::fs::File>>,
    query: &[u8],
) -> io::Result<Vec<u8>> {
    let local: SocketAddr = if upstream.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .map_err(io::Error::other)?;
    let sock = in_netns(netns, move || {
        let s = std::net::UdpSocket::bind(local)?;
        s.set_nonblocking(true)?;
        Ok(s)
    })
    .await?;
    let sock = UdpSocket::from_std(sock)?;
    sock.connect(upstream).await?;
    sock.send(query).await?;
    let mut buf = vec![0u8; MAX_UDP];
    let n = tokio::time::timeout(UPSTREAM_TIMEOUT, sock.recv(&mut buf))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    buf.truncate(n);
    Ok(buf)
}

async fn forward_tcp(
    upstream: SocketAddr,
    netns: Option<Arc<std::fs::File>>,
    query: &[u8],
) -> io::Result<Vec<u8>> {
    let exchange = async {
        let mut stream = match netns {
            None => TcpStream::connect(upstream).await?,
            Some(ns) => {
                let s = in_netns(Some(ns), move || {
                    let s = std::net::TcpStream::connect_timeout(&upstream, UPSTREAM_TIMEOUT)?;
                    s.set_nonblocking(true)?;
                    Ok(s)
                })
                .await?;
                TcpStream::from_std(s)?
            }
        };
        write_framed(&mut stream, query).await?;
        read_framed(&mut stream).await
    };
    tokio::time::timeout(UPSTREAM_TIMEOUT, exchange)
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use simple_dns::{Name, Question, QCLASS};

    fn query(id: u16, name: &str, qtype: TYPE) -> Vec<u8> {
        let mut q = Packet::new_query(id);
        q.set_flags(PacketFlag::RECURSION_DESIRED);
        q.questions.push(Question::new(
            Name::new_unchecked(name),
            QTYPE::TYPE(qtype),
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
        q.build_bytes_vec().unwrap()
    }

    fn settings(container: &str, upstreams: &[SocketAddr]) -> Settings {
        Settings {
            container: container.into(),
            netns: None,
            upstreams: upstreams
                .iter()
                .map(|&addr| Upstream {
                    addr,
                    host_loopback: true,
                })
                .collect(),
            ndots_set: false,
        }
    }

    fn lookup() -> Lookup {
        Arc::new(|container: &str, name: &str| match (container, name) {
            ("c1", "web") | ("c1", "web.mynet") => vec![Ipv4Addr::new(172, 18, 0, 2)],
            _ => Vec::new(),
        })
    }

    /// A fake upstream on loopback: answers every query NXDOMAIN, over UDP and TCP, and
    /// counts what it got.
    async fn fake_upstream() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        fake_upstream_on(bind("127.0.0.1:0".parse().unwrap()).unwrap())
    }

    fn fake_upstream_on(sockets: Sockets) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let addr = sockets.udp.local_addr().unwrap();
        let udp = UdpSocket::from_std(sockets.udp).unwrap();
        let tcp = TcpListener::from_std(sockets.tcp).unwrap();
        let nx = |q: &[u8]| error_reply(&Packet::parse(q).unwrap(), RCODE::NameError).unwrap();
        let count = seen.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let (n, peer) = udp.recv_from(&mut buf).await.unwrap();
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                udp.send_to(&nx(&buf[..n]), peer).await.unwrap();
            }
        });
        let count = seen.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = tcp.accept().await.unwrap();
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let q = read_framed(&mut s).await.unwrap();
                write_framed(&mut s, &nx(&q)).await.unwrap();
            }
        });
        (addr, seen)
    }

    async fn ask_udp(server: SocketAddr, msg: &[u8]) -> Vec<u8> {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sock.send_to(msg, server).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), sock.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        buf.truncate(n);
        buf
    }

    fn a_records(reply: &Packet) -> Vec<Ipv4Addr> {
        reply
            .answers
            .iter()
            .filter_map(|rr| match &rr.rdata {
                RData::A(a) => Some(Ipv4Addr::from(a.address)),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn answers_known_names_and_forwards_the_rest() {
        let (upstream, seen) = fake_upstream().await;
        let sockets = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = sockets.udp.local_addr().unwrap();
        let _server = serve(sockets, settings("c1", &[upstream]), lookup()).unwrap();

        let raw = ask_udp(addr, &query(7, "WEB.", TYPE::A)).await;
        let reply = Packet::parse(&raw).unwrap();
        assert_eq!((reply.id(), reply.rcode()), (7, RCODE::NoError));
        assert!(reply.has_flags(PacketFlag::RESPONSE | PacketFlag::RECURSION_AVAILABLE));
        assert_eq!(a_records(&reply), [Ipv4Addr::new(172, 18, 0, 2)]);
        assert_eq!(reply.answers[0].ttl, ANSWER_TTL);

        let raw = ask_udp(addr, &query(8, "web", TYPE::AAAA)).await;
        let reply = Packet::parse(&raw).unwrap();
        assert_eq!((reply.rcode(), reply.answers.len()), (RCODE::NoError, 0));
        assert_eq!(
            seen.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "local names never leave"
        );

        let raw = ask_udp(addr, &query(9, "example.invalid", TYPE::A)).await;
        let reply = Packet::parse(&raw).unwrap();
        assert_eq!((reply.id(), reply.rcode()), (9, RCODE::NameError));
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);

        // Another container's names are not this one's.
        let sockets = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let other = sockets.udp.local_addr().unwrap();
        let _s2 = serve(sockets, settings("c2", &[upstream]), lookup()).unwrap();
        let reply = ask_udp(other, &query(10, "web", TYPE::A)).await;
        assert_eq!(Packet::parse(&reply).unwrap().rcode(), RCODE::NameError);
    }

    #[tokio::test]
    async fn serves_tcp_and_forwards_over_tcp() {
        let (upstream, seen) = fake_upstream().await;
        let sockets = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = sockets.tcp.local_addr().unwrap();
        let _server = serve(sockets, settings("c1", &[upstream]), lookup()).unwrap();
        let mut s = TcpStream::connect(addr).await.unwrap();
        write_framed(&mut s, &query(1, "web.mynet", TYPE::A))
            .await
            .unwrap();
        let reply = read_framed(&mut s).await.unwrap();
        assert_eq!(
            a_records(&Packet::parse(&reply).unwrap()),
            [Ipv4Addr::new(172, 18, 0, 2)]
        );
        write_framed(&mut s, &query(2, "elsewhere.invalid", TYPE::A))
            .await
            .unwrap();
        let reply = read_framed(&mut s).await.unwrap();
        assert_eq!(Packet::parse(&reply).unwrap().rcode(), RCODE::NameError);
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn with_ndots_set_single_labels_stay_inside() {
        let (upstream, seen) = fake_upstream().await;
        let sockets = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = sockets.udp.local_addr().unwrap();
        let settings = Settings {
            ndots_set: true,
            ..settings("c1", &[upstream])
        };
        let _server = serve(sockets, settings, lookup()).unwrap();
        let raw = ask_udp(addr, &query(4, "printer", TYPE::A)).await;
        let reply = Packet::parse(&raw).unwrap();
        assert_eq!((reply.rcode(), reply.answers.len()), (RCODE::NoError, 0));
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 0);
        let reply = ask_udp(addr, &query(5, "printer.invalid", TYPE::A)).await;
        assert_eq!(Packet::parse(&reply).unwrap().rcode(), RCODE::NameError);
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn servfail_when_no_upstream_answers() {
        let sockets = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = sockets.udp.local_addr().unwrap();
        let _server = serve(sockets, settings("c1", &[]), lookup()).unwrap();
        let reply = ask_udp(addr, &query(3, "x.invalid", TYPE::A)).await;
        let reply = Packet::parse(&reply).unwrap();
        assert_eq!((reply.id(), reply.rcode()), (3, RCODE::ServerFailure));
    }

    #[tokio::test]
    async fn forwards_from_the_containers_namespace_unless_host_loopback() {
        let dir = std::env::temp_dir().join(format!("berth-dns-fwd-test-{}", std::process::id()));
        let ns = dir.join("ns");
        crate::create_netns(&ns).expect("create netns (needs root)");
        // An upstream on the namespace's own loopback: only reachable from inside it.
        let (inside, seen) =
            fake_upstream_on(bind_in_netns(&ns, "127.0.0.1:0".parse().unwrap()).unwrap());
        let sockets = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let (udp_addr, tcp_addr) = (
            sockets.udp.local_addr().unwrap(),
            sockets.tcp.local_addr().unwrap(),
        );
        let settings = Settings {
            netns: Some(ns.clone()),
            upstreams: vec![Upstream {
                addr: inside,
                host_loopback: false,
            }],
            ..settings("c1", &[])
        };
        let _server = serve(sockets, settings, lookup()).unwrap();
        let reply = ask_udp(udp_addr, &query(6, "x.invalid", TYPE::A)).await;
        let udp_rcode = Packet::parse(&reply).unwrap().rcode();
        let mut s = TcpStream::connect(tcp_addr).await.unwrap();
        write_framed(&mut s, &query(7, "y.invalid", TYPE::A))
            .await
            .unwrap();
        let reply = read_framed(&mut s).await.unwrap();
        let tcp_rcode = Packet::parse(&reply).unwrap().rcode();
        crate::remove_netns(&ns).unwrap();
        let _ = std::fs::remove_dir(&dir);
        assert_eq!((udp_rcode, tcp_rcode), (RCODE::NameError, RCODE::NameError));
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn listens_inside_a_pinned_namespace() {
        let dir = std::env::temp_dir().join(format!("berth-dns-test-{}", std::process::id()));
        let ns = dir.join("ns");
        crate::create_netns(&ns).expect("create netns (needs root)");
        let sockets = bind_in_netns(&ns, LISTEN).expect("bind 127.0.0.11:53 in the namespace");
        let _server = serve(sockets, settings("c1", &[]), lookup()).unwrap();
        let out = tokio::process::Command::new("nsenter")
            .arg(format!("--net={}", ns.display()))
            .args(["busybox", "nslookup", "web", "127.0.0.11"])
            .output()
            .await;
        crate::remove_netns(&ns).unwrap();
        let _ = std::fs::remove_dir(&dir);
        let out = out.expect("nsenter and busybox (util-linux, busybox-static)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("172.18.0.2"),
            "nslookup in the namespace: {text}"
        );
    }
}
