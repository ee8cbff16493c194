//! Who has the embedded DNS server ([`Engine::uses_embedded_dns`], the one rule), and how a
//! running container without it (one started on the default bridge) that is connected to a
//! user-defined network gets it then, as under Docker: libnetwork
//! starts the sandbox's resolver when the first endpoint that needs one joins, and rebuilds
//! `/etc/resolv.conf` from the file as it stands: 127.0.0.11 in place of its nameservers
//! (which become the servers the resolver forwards to), its search domains and options kept,
//! `ndots:0` added unless it sets ndots.

use crate::engine::{lock, Engine, Error, Result};
use crate::state::Record;
use berth_net::{dns, etc_files};
use std::sync::Arc;

impl Engine {
    /// Starts the embedded DNS server of running container `rec`, just connected to a
    /// user-defined network, unless it has one; then points its resolv.conf at it (in that
    /// order, so the file never names a server that is not listening).
    pub(super) fn join_embedded_dns(self: &Arc<Self>, rec: &Record) -> Result<()> {
        if lock(&self.dns_servers).contains_key(&rec.id) {
            return Ok(());
        }
        let path = self.paths.container_dir(&rec.id).join("resolv.conf");
        let current = std::fs::read_to_string(&path)?;
        let (file, upstreams) =
            etc_files::resolv_conf_embedded(&current, &etc_files::DnsSettings::default());
        self.serve_embedded_dns(rec, upstreams, ndots_set(&current))?;
        // Written in place (not renamed over): the container bind-mounts this very file.
        std::fs::write(&path, file)?;
        Ok(())
    }

    /// Docker's rule for the embedded DNS server, the one place berth decides it: a
    /// container has one, and a resolv.conf naming 127.0.0.11, when it is attached to a
    /// user-defined network — by its network mode or by `network connect`, before its start
    /// or while it runs — so start, restart, connect and live restore all ask this. As
    /// under Docker, `network disconnect` of its last user-defined network changes nothing
    /// until the next start: the server keeps answering (names on no network now) and the
    /// file keeps naming it; the next start writes the host's servers again.
    pub(crate) fn uses_embedded_dns(&self, id: &str) -> bool {
        let st = self.nets();
        st.containers.get(id).is_some_and(|c| {
            c.attachments.iter().any(|a| {
                st.networks
                    .get(&a.network_id)
                    .is_some_and(|n| !n.predefined)
            })
        })
    }

    fn serve_embedded_dns(
        self: &Arc<Self>,
        rec: &Record,
        upstreams: Vec<dns::Upstream>,
        ndots_set: bool,
    ) -> Result<()> {
        let netns = self.paths.netns(&rec.id);
        let sockets = dns::bind_in_netns(&netns, dns::LISTEN)
            .map_err(|e| Error::Internal(format!("embedded DNS server: {e}")))?;
        let settings = dns::Settings {
            container: rec.id.clone(),
            netns: Some(netns),
            upstreams,
            ndots_set,
        };
        let engine = Arc::downgrade(self);
        let lookup: dns::Lookup = Arc::new(move |container: &str, name: &str| {
            engine
                .upgrade()
                .map(|e| e.resolve_on_networks(container, name))
                .unwrap_or_default()
        });
        let server = dns::serve(sockets, settings, lookup)
            .map_err(|e| Error::Internal(format!("embedded DNS server: {e}")))?;
        lock(&self.dns_servers).insert(rec.id.clone(), server);
        Ok(())
    }
}

/// Whether a resolv.conf sets `ndots` above 0 itself.
fn ndots_set(resolv_conf: &str) -> bool {
    etc_files::ResolvConf::parse(resolv_conf)
        .options
        .iter()
        .filter_map(|o| o.strip_prefix("ndots:")?.parse::<u32>().ok())
        .any(|n| n > 0)
}
