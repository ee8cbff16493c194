//! A running container without the embedded DNS server (one started on the default bridge)
//! that is connected to a user-defined network gets it then, as under Docker: libnetwork
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

    /// Live restore: the server a `network connect` started died with the old daemon. Its
    /// upstreams were the nameservers of the file the container started with, which are
    /// derived again from the host's and the container's settings.
    pub fn restore_joined_dns(self: &Arc<Self>, rec: &Record) {
        if lock(&self.dns_servers).contains_key(&rec.id) || !self.on_user_network(&rec.id) {
            return;
        }
        let hc = &rec.host_config;
        let flags = etc_files::DnsSettings {
            servers: hc.dns.as_deref().unwrap_or_default(),
            search: hc.dns_search.as_deref().unwrap_or_default(),
            options: hc.dns_options.as_deref().unwrap_or_default(),
        };
        let started_with = etc_files::resolv_conf(&etc_files::read_host_resolv_conf(), &flags);
        let (_, upstreams) =
            etc_files::resolv_conf_embedded(&started_with, &etc_files::DnsSettings::default());
        let current =
            std::fs::read_to_string(self.paths.container_dir(&rec.id).join("resolv.conf"))
                .unwrap_or_default();
        // Connected while stopped and started since: the file never named the server.
        if etc_files::ResolvConf::parse(&current).nameservers
            != [etc_files::EMBEDDED_DNS.to_string()]
        {
            return;
        }
        if let Err(e) = self.serve_embedded_dns(rec, upstreams, ndots_set(&current)) {
            tracing::warn!("container {}: {e}", rec.id);
        }
    }

    /// Whether the container has an endpoint on a user-defined network.
    fn on_user_network(&self, id: &str) -> bool {
        let st = self.nets();
        st.containers.get(id).is_some_and(|c| {
            c.attachments.iter().any(|a| {
                a.active.is_some()
                    && st
                        .networks
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
