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
        let id = rec.id.as_str();
        if lock(&self.dns_servers).contains_key(id) {
            return Ok(());
        }
        let path = self.paths.container_dir(id).join("resolv.conf");
        let current = std::fs::read_to_string(&path)?;
        let (file, upstreams) =
            etc_files::resolv_conf_embedded(&current, &etc_files::DnsSettings::default());
        let ndots_set = etc_files::ResolvConf::parse(&current)
            .options
            .iter()
            .filter_map(|o| o.strip_prefix("ndots:")?.parse::<u32>().ok())
            .any(|n| n > 0);
        let netns = self.paths.netns(id);
        let sockets = dns::bind_in_netns(&netns, dns::LISTEN)
            .map_err(|e| Error::Internal(format!("embedded DNS server: {e}")))?;
        let settings = dns::Settings {
            container: id.to_string(),
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
        // Written in place (not renamed over): the container bind-mounts this very file.
        std::fs::write(&path, file)?;
        lock(&self.dns_servers).insert(id.to_string(), server);
        Ok(())
    }
}
