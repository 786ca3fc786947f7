//! Settings: defaults, then a TOML file (`--config`), then `CONVENE_*` environment variables,
//! then command-line flags, each overriding the one before.
//!
//! The raw layers ([`ConfigArgs`], [`FileConfig`]) are all optional; [`Settings::resolve`]
//! validates them into one [`Settings`] that the rest of the program trusts.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use url::Url;

/// How long, by default, a reverse proxy may reuse a public page (seconds): long enough to
/// absorb a burst of link previews, short enough that an edit shows soon everywhere.
pub const DEFAULT_PUBLIC_MAX_AGE: u32 = 2;
/// Inbox deliveries one remote instance may make per minute on average: five a second is far
/// above what a busy Mastodon server sends one peer, and far below what verifying costs.
pub const DEFAULT_INBOX_RATE: u32 = 300;
/// Deliveries one remote instance may make at once (a queue draining after an outage).
pub const DEFAULT_INBOX_BURST: u32 = 100;

/// Settings shared by every subcommand; clap reads each from its flag or its environment
/// variable.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// TOML file with any of the settings below (keys as the flags, with underscores).
    #[arg(long, global = true, env = "CONVENE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to serve HTTP on [default: 127.0.0.1:8080].
    #[arg(long, global = true, env = "CONVENE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// The instance's public URL, its identity [default: http://localhost:PORT].
    #[arg(long, global = true, env = "CONVENE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Folder for the SQLite database and the mail folder [default: ./data].
    #[arg(long, global = true, env = "CONVENE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// sqlite://… or postgres://… [default: sqlite://DATA_DIR/convene.db].
    #[arg(long, global = true, env = "CONVENE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The instance's name, shown in the header and in emails [default: Convene].
    #[arg(long, global = true, env = "CONVENE_INSTANCE_NAME")]
    pub instance_name: Option<String>,
    /// SMTP server for outgoing mail, e.g. smtp://user:pass@host:587?tls=required. Without it,
    /// mail is written as .eml files under DATA_DIR/outbox.
    #[arg(long, global = true, env = "CONVENE_SMTP_URL")]
    pub smtp_url: Option<String>,
    /// Sender address for mail [default: Convene <noreply@DOMAIN>].
    #[arg(long, global = true, env = "CONVENE_MAIL_FROM")]
    pub mail_from: Option<String>,
    /// Let every Passport create Spaces, not only operators [default: false].
    #[arg(long, global = true, env = "CONVENE_OPEN_SPACE_CREATION")]
    pub open_space_creation: Option<bool>,
    /// Reverse proxies whose X-Forwarded-For / Forwarded headers name the client, comma
    /// separated addresses or networks (e.g. 127.0.0.1,10.0.0.0/8) [default: none].
    #[arg(
        long,
        global = true,
        env = "CONVENE_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Option<Vec<String>>,
    /// This process's address for the other processes sharing the database, which hand it the
    /// signaling of the gatherings it holds [default: http://LISTEN].
    #[arg(long, global = true, env = "CONVENE_NODE_URL")]
    pub node_url: Option<String>,
    /// Seconds a process's claim on a gathering lasts unless renewed; when a process dies, its
    /// gatherings move after this long [default: 30].
    #[arg(long, global = true, env = "CONVENE_GATHERING_LEASE_SECONDS")]
    pub gathering_lease_seconds: Option<u64>,
    /// Bearer token that opens /metrics to any address; without it /metrics answers only
    /// clients on this machine (loopback) [default: none].
    #[arg(long, global = true, env = "CONVENE_METRICS_TOKEN")]
    pub metrics_token: Option<String>,
    /// First UDP port for media [default: 40000].
    #[arg(long, global = true, env = "CONVENE_MEDIA_UDP_PORT_MIN")]
    pub media_udp_port_min: Option<u16>,
    /// Last UDP port for media; equal to the first, every participant shares that one
    /// port, above it each gets a port of the range [default: the first].
    #[arg(long, global = true, env = "CONVENE_MEDIA_UDP_PORT_MAX")]
    pub media_udp_port_max: Option<u16>,
    /// Media threads, each serving whole Rooms [default: one per core].
    #[arg(long, global = true, env = "CONVENE_MEDIA_THREADS")]
    pub media_threads: Option<usize>,
    /// The public IP announced in media candidates, for a host behind 1:1 NAT.
    #[arg(long, global = true, env = "CONVENE_MEDIA_PUBLIC_IP")]
    pub media_public_ip: Option<IpAddr>,
    /// Local IP the media server binds [default: the listen address's IP].
    #[arg(long, global = true, env = "CONVENE_MEDIA_BIND_IP")]
    pub media_bind_ip: Option<IpAddr>,
    /// Where people can get the source of the Convene this instance runs (the AGPL's offer),
    /// linked from every page's footer [default: the Convene project].
    #[arg(long, global = true, env = "CONVENE_SOURCE_URL")]
    pub source_url: Option<String>,
    /// STUN/TURN servers handed to browsers, comma separated:
    /// stun:stun.example.org:3478 or turn:USER:PASSWORD@turn.example.org:3478?transport=udp.
    #[arg(
        long,
        global = true,
        env = "CONVENE_ICE_SERVERS",
        value_delimiter = ','
    )]
    pub ice_servers: Option<Vec<String>>,
    /// Database connections at most [default: SQLite 2 per core, 4 to 16; PostgreSQL 4 per
    /// core, 8 to 32].
    #[arg(long, global = true, env = "CONVENE_DB_MAX_CONNECTIONS")]
    pub db_max_connections: Option<u32>,
    /// Milliseconds a cached Space (its page and its Rooms' pages) is served before it is
    /// reloaded [default: 2000].
    #[arg(long, global = true, env = "CONVENE_PAGE_CACHE_TTL_MS")]
    pub page_cache_ttl_ms: Option<u64>,
    /// Milliseconds past that lifetime a cached Space may still be served while one request
    /// reloads it [default: 10000].
    #[arg(long, global = true, env = "CONVENE_PAGE_CACHE_STALE_MS")]
    pub page_cache_stale_ms: Option<u64>,
    /// Spaces the page cache keeps at most [default: 1024].
    #[arg(long, global = true, env = "CONVENE_PAGE_CACHE_ENTRIES")]
    pub page_cache_entries: Option<usize>,
    /// Seconds a reverse proxy or browser may reuse a public page shown to anonymous visitors
    /// (`Cache-Control: public, max-age`); 0 makes them revalidate every time [default: 2].
    #[arg(long, global = true, env = "CONVENE_PUBLIC_MAX_AGE")]
    pub public_max_age: Option<u32>,
    /// Seconds a worker holds a claimed job (mail, deliveries) before another process may take
    /// it over; also how long a crashed process delays its jobs [default: 120].
    #[arg(long, global = true, env = "CONVENE_QUEUE_LEASE_SECONDS")]
    pub queue_lease_seconds: Option<u64>,
    /// Let federation fetch from and deliver to loopback and private addresses (development
    /// and tests on one machine; never on a public instance) [default: false].
    #[arg(
        long,
        global = true,
        env = "CONVENE_FEDERATION_ALLOW_PRIVATE_ADDRESSES"
    )]
    pub federation_allow_private_addresses: Option<bool>,
    /// Serve actor documents (but the instance actor's) and collections to signed GETs only:
    /// unsigned 401, a blocked signer 403 [default: false].
    #[arg(long, global = true, env = "CONVENE_FEDERATION_AUTHORIZED_FETCH")]
    pub federation_authorized_fetch: Option<bool>,
    /// Activities one remote instance may deliver to the inboxes per minute, on average; 0
    /// for no limit [default: 300].
    #[arg(long, global = true, env = "CONVENE_FEDERATION_INBOX_RATE")]
    pub federation_inbox_rate: Option<u32>,
    /// Activities one remote instance may deliver at once before that rate applies
    /// [default: 100].
    #[arg(long, global = true, env = "CONVENE_FEDERATION_INBOX_BURST")]
    pub federation_inbox_burst: Option<u32>,
}

/// The same settings from a TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub public_url: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub instance_name: Option<String>,
    pub smtp_url: Option<String>,
    pub mail_from: Option<String>,
    pub open_space_creation: Option<bool>,
    pub trusted_proxies: Option<Vec<String>>,
    pub node_url: Option<String>,
    pub gathering_lease_seconds: Option<u64>,
    pub metrics_token: Option<String>,
    pub media_udp_port_min: Option<u16>,
    pub media_udp_port_max: Option<u16>,
    pub media_threads: Option<usize>,
    pub media_public_ip: Option<IpAddr>,
    pub media_bind_ip: Option<IpAddr>,
    pub source_url: Option<String>,
    pub ice_servers: Option<Vec<String>>,
    pub db_max_connections: Option<u32>,
    pub page_cache_ttl_ms: Option<u64>,
    pub page_cache_stale_ms: Option<u64>,
    pub page_cache_entries: Option<usize>,
    pub public_max_age: Option<u32>,
    pub queue_lease_seconds: Option<u64>,
    pub federation_allow_private_addresses: Option<bool>,
    pub federation_authorized_fetch: Option<bool>,
    pub federation_inbox_rate: Option<u32>,
    pub federation_inbox_burst: Option<u32>,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// Always without a trailing slash.
    pub public_url: Url,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub instance_name: String,
    pub smtp_url: Option<String>,
    pub mail_from: String,
    pub open_space_creation: bool,
    /// Proxies trusted to name the client in forwarding headers.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Opens /metrics to non-loopback clients that present it.
    pub metrics_token: Option<String>,
    /// Where the other processes on this database reach this one (no trailing slash).
    pub node_url: String,
    /// How long a claim on a gathering lasts unless renewed, in seconds.
    pub gathering_lease_seconds: u64,
    pub media_udp_ports: (u16, u16),
    /// `None`: one per core.
    pub media_threads: Option<usize>,
    pub media_public_ip: Option<IpAddr>,
    pub media_bind_ip: IpAddr,
    pub ice_servers: Vec<String>,
    pub source_url: String,
    /// The database pool's size.
    pub db_max_connections: u32,
    /// Lifetimes and size of the page cache.
    pub page_cache: crate::cache::Policy,
    /// `max-age` of public pages for anonymous visitors, in seconds.
    pub public_max_age: u32,
    /// How long a worker holds a claimed job; see [`crate::jobs::QueueConfig::lease`].
    pub queue_lease: std::time::Duration,
    /// Whether federation may reach loopback and private addresses.
    pub federation_allow_private_addresses: bool,
    /// Whether actor documents and collections need a signed GET (the instance actor never).
    pub federation_authorized_fetch: bool,
    /// Inbox deliveries per remote instance: the average rate per minute (0: no limit) and
    /// the burst.
    pub federation_inbox_rate: u32,
    pub federation_inbox_burst: u32,
}

impl Settings {
    /// Reads the file named by `--config` (if any) and merges all layers.
    pub fn load(args: &ConfigArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Self::resolve(args, file)
    }

    pub fn resolve(args: &ConfigArgs, file: FileConfig) -> anyhow::Result<Self> {
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let public_url = match args.public_url.clone().or(file.public_url) {
            Some(url) => parse_public_url(&url)?,
            None => default_public_url(listen)?,
        };
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("data"));
        let database_url = match args.database_url.clone().or(file.database_url) {
            Some(url) => url,
            None => format!("sqlite://{}", data_dir.join("convene.db").display()),
        };
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres:")
            || database_url.starts_with("postgresql:"))
        {
            bail!("database_url must start with sqlite:// or postgres://");
        }
        let domain = public_url.host_str().unwrap_or("localhost").to_string();
        let media_udp_port_min = args
            .media_udp_port_min
            .or(file.media_udp_port_min)
            .unwrap_or(40000);
        let media_udp_ports = (
            media_udp_port_min,
            args.media_udp_port_max
                .or(file.media_udp_port_max)
                .unwrap_or(media_udp_port_min),
        );
        // 0 and 0: one port the system chooses (development and tests).
        if media_udp_ports.0 > media_udp_ports.1
            || (media_udp_ports.0 == 0) != (media_udp_ports.1 == 0)
        {
            bail!("media_udp_port_min must be a port no greater than media_udp_port_max");
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let db_max_connections = match args.db_max_connections.or(file.db_max_connections) {
            Some(0) => bail!("db_max_connections must be at least 1"),
            Some(n) => n,
            None => crate::db::default_max_connections(crate::db::dialect_of(&database_url), cores),
        };
        let defaults = crate::cache::DEFAULT_POLICY;
        let page_cache = crate::cache::Policy {
            ttl: args
                .page_cache_ttl_ms
                .or(file.page_cache_ttl_ms)
                .map_or(defaults.ttl, Duration::from_millis),
            max_stale: args
                .page_cache_stale_ms
                .or(file.page_cache_stale_ms)
                .map_or(defaults.max_stale, Duration::from_millis),
            max_entries: match args.page_cache_entries.or(file.page_cache_entries) {
                Some(0) => bail!("page_cache_entries must be at least 1"),
                Some(n) => n,
                None => defaults.max_entries,
            },
        };
        let queue_lease = std::time::Duration::from_secs(
            args.queue_lease_seconds
                .or(file.queue_lease_seconds)
                .unwrap_or(120),
        );
        // A handler gets half the lease; under 4 s an SMTP exchange could not finish in it.
        if queue_lease.as_secs() < 4 {
            bail!("queue_lease_seconds must be at least 4");
        }
        Ok(Self {
            listen,
            public_url,
            data_dir,
            database_url,
            instance_name: args
                .instance_name
                .clone()
                .or(file.instance_name)
                .unwrap_or_else(|| "Convene".to_string()),
            smtp_url: args.smtp_url.clone().or(file.smtp_url),
            mail_from: args
                .mail_from
                .clone()
                .or(file.mail_from)
                .unwrap_or_else(|| format!("Convene <noreply@{domain}>")),
            open_space_creation: args
                .open_space_creation
                .or(file.open_space_creation)
                .unwrap_or(false),
            trusted_proxies: args
                .trusted_proxies
                .clone()
                .or(file.trusted_proxies)
                .unwrap_or_default()
                .iter()
                .map(|raw| parse_network(raw.trim()))
                .collect::<anyhow::Result<_>>()?,
            metrics_token: args
                .metrics_token
                .clone()
                .or(file.metrics_token)
                .filter(|t| !t.is_empty()),
            node_url: match args.node_url.clone().or(file.node_url) {
                Some(url) => parse_public_url(&url)?
                    .as_str()
                    .trim_end_matches('/')
                    .to_string(),
                None => format!("http://{listen}"),
            },
            gathering_lease_seconds: match args
                .gathering_lease_seconds
                .or(file.gathering_lease_seconds)
            {
                Some(0) => bail!("gathering_lease_seconds must be at least 1"),
                Some(n) => n,
                None => 30,
            },
            media_udp_ports,
            media_threads: args.media_threads.or(file.media_threads).filter(|n| *n > 0),
            media_public_ip: args.media_public_ip.or(file.media_public_ip),
            media_bind_ip: args
                .media_bind_ip
                .or(file.media_bind_ip)
                .unwrap_or(listen.ip()),
            ice_servers: args
                .ice_servers
                .clone()
                .or(file.ice_servers)
                .unwrap_or_default(),
            source_url: args
                .source_url
                .clone()
                .or(file.source_url)
                .unwrap_or_else(|| convene_web::view::DEFAULT_SOURCE_URL.to_string()),
            db_max_connections,
            page_cache,
            public_max_age: args
                .public_max_age
                .or(file.public_max_age)
                .unwrap_or(DEFAULT_PUBLIC_MAX_AGE),
            queue_lease,
            federation_allow_private_addresses: args
                .federation_allow_private_addresses
                .or(file.federation_allow_private_addresses)
                .unwrap_or(false),
            federation_authorized_fetch: args
                .federation_authorized_fetch
                .or(file.federation_authorized_fetch)
                .unwrap_or(false),
            federation_inbox_rate: args
                .federation_inbox_rate
                .or(file.federation_inbox_rate)
                .unwrap_or(DEFAULT_INBOX_RATE),
            federation_inbox_burst: match args
                .federation_inbox_burst
                .or(file.federation_inbox_burst)
            {
                Some(0) => bail!("federation_inbox_burst must be at least 1"),
                Some(n) => n,
                None => DEFAULT_INBOX_BURST,
            },
        })
    }

    /// The host (and port, if any) that names this instance: `@name@domain`.
    pub fn domain(&self) -> String {
        match (self.public_url.host_str(), self.public_url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            (None, _) => "localhost".to_string(),
        }
    }

    /// An absolute URL for a path on this instance.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.public_url.as_str().trim_end_matches('/'), path)
    }

    /// Whether cookies must be marked Secure (the public URL is https).
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// The configured STUN/TURN servers in the SFU's form, credentials split from the URL.
    pub fn ice_servers(&self) -> anyhow::Result<Vec<convene_media::IceServer>> {
        self.ice_servers
            .iter()
            .map(|raw| parse_ice_server(raw.trim()))
            .collect()
    }

    pub fn mail_folder(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }
}

/// `10.0.0.0/8`, or a single address (`127.0.0.1`, `::1`).
fn parse_network(raw: &str) -> anyhow::Result<ipnet::IpNet> {
    if let Ok(net) = raw.parse::<ipnet::IpNet>() {
        return Ok(net);
    }
    raw.parse::<IpAddr>()
        .map(ipnet::IpNet::from)
        .with_context(|| format!("trusted proxy {raw:?} is not an address or network"))
}

/// `stun:host:port`, `turn:host:port?transport=udp` or `turn:USER:PASSWORD@host:port`.
fn parse_ice_server(raw: &str) -> anyhow::Result<convene_media::IceServer> {
    let Some((scheme, rest)) = raw.split_once(':') else {
        bail!("ICE server {raw:?} must start with stun:, turn: or turns:");
    };
    if !matches!(scheme, "stun" | "stuns" | "turn" | "turns") {
        bail!("ICE server {raw:?} must start with stun:, turn: or turns:");
    }
    let (credentials, address) = match rest.rsplit_once('@') {
        Some((creds, address)) => (Some(creds), address),
        None => (None, rest),
    };
    if address.is_empty() {
        bail!("ICE server {raw:?} has no host");
    }
    let (username, credential) = match credentials {
        Some(creds) => {
            let (user, password) = creds
                .split_once(':')
                .with_context(|| format!("ICE server {raw:?}: write USER:PASSWORD@host"))?;
            (Some(user.to_string()), Some(password.to_string()))
        }
        None => (None, None),
    };
    Ok(convene_media::IceServer {
        urls: vec![format!("{scheme}:{address}")],
        username,
        credential,
    })
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("in config file {}", path.display()))
}

fn parse_public_url(raw: &str) -> anyhow::Result<Url> {
    let url = Url::parse(raw).with_context(|| format!("public_url {raw:?} is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("public_url must be an http:// or https:// URL with a host");
    }
    if url.path() != "/" || url.query().is_some() {
        bail!("public_url must not have a path or query (serve Convene at the root of a host)");
    }
    Ok(url)
}

fn default_public_url(listen: SocketAddr) -> anyhow::Result<Url> {
    let host = if listen.ip().is_loopback() || listen.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        match listen.ip() {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        }
    };
    parse_public_url(&format!("http://{host}:{}", listen.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_configuration() -> anyhow::Result<()> {
        let s = Settings::resolve(&ConfigArgs::default(), FileConfig::default())?;
        assert_eq!(s.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(s.public_url.as_str(), "http://localhost:8080/");
        assert_eq!(s.database_url, "sqlite://data/convene.db");
        assert_eq!(s.domain(), "localhost:8080");
        assert!(!s.open_space_creation);
        assert!((4..=16).contains(&s.db_max_connections));
        assert_eq!(s.page_cache, crate::cache::DEFAULT_POLICY);
        assert_eq!(s.public_max_age, DEFAULT_PUBLIC_MAX_AGE);
        assert!(!s.federation_authorized_fetch);
        assert_eq!(
            (s.federation_inbox_rate, s.federation_inbox_burst),
            (DEFAULT_INBOX_RATE, DEFAULT_INBOX_BURST)
        );
        Ok(())
    }

    #[test]
    fn federation_safety_settings_come_from_the_layers() -> anyhow::Result<()> {
        let file: FileConfig = toml::from_str(
            "federation_authorized_fetch = true\nfederation_inbox_rate = 60\n\
             federation_inbox_burst = 5\n",
        )?;
        let args = ConfigArgs {
            federation_inbox_rate: Some(0),
            ..Default::default()
        };
        let s = Settings::resolve(&args, file)?;
        assert!(s.federation_authorized_fetch);
        assert_eq!((s.federation_inbox_rate, s.federation_inbox_burst), (0, 5));
        let zero_burst = ConfigArgs {
            federation_inbox_burst: Some(0),
            ..Default::default()
        };
        assert!(Settings::resolve(&zero_burst, FileConfig::default()).is_err());
        Ok(())
    }

    #[test]
    fn pool_and_cache_sizes_come_from_the_layers() -> anyhow::Result<()> {
        let file: FileConfig = toml::from_str(
            "db_max_connections = 3\npage_cache_ttl_ms = 500\npage_cache_stale_ms = 0\n\
             page_cache_entries = 10\npublic_max_age = 0\n",
        )?;
        let args = ConfigArgs {
            db_max_connections: Some(5),
            ..Default::default()
        };
        let s = Settings::resolve(&args, file)?;
        assert_eq!(s.db_max_connections, 5);
        assert_eq!(s.page_cache.ttl, Duration::from_millis(500));
        assert_eq!(s.page_cache.max_stale, Duration::ZERO);
        assert_eq!(s.page_cache.max_entries, 10);
        assert_eq!(s.public_max_age, 0);
        let zero = ConfigArgs {
            db_max_connections: Some(0),
            ..Default::default()
        };
        assert!(Settings::resolve(&zero, FileConfig::default()).is_err());
        let pg = ConfigArgs {
            database_url: Some("postgres://x/y".into()),
            ..Default::default()
        };
        assert!(Settings::resolve(&pg, FileConfig::default())?.db_max_connections >= 8);
        Ok(())
    }

    #[test]
    fn flags_override_the_file() -> anyhow::Result<()> {
        let file: FileConfig = toml::from_str(
            "public_url = \"https://convene.example.org\"\ninstance_name = \"Town\"\n",
        )?;
        let args = ConfigArgs {
            instance_name: Some("Village".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&args, file)?;
        assert_eq!(s.instance_name, "Village");
        assert_eq!(s.domain(), "convene.example.org");
        assert!(s.secure_cookies());
        assert_eq!(s.url("/spaces/x"), "https://convene.example.org/spaces/x");
        Ok(())
    }

    #[test]
    fn ice_servers_carry_their_credentials() -> anyhow::Result<()> {
        let turn = parse_ice_server("turn:ada:s3cret@turn.example.org:3478?transport=udp")?;
        assert_eq!(
            turn.urls,
            vec!["turn:turn.example.org:3478?transport=udp".to_string()]
        );
        assert_eq!(turn.username.as_deref(), Some("ada"));
        assert_eq!(turn.credential.as_deref(), Some("s3cret"));
        let stun = parse_ice_server("stun:stun.example.org:3478")?;
        assert!(stun.username.is_none());
        assert!(parse_ice_server("http://x").is_err());
        assert!(parse_ice_server("turn:nopassword@host").is_err());
        Ok(())
    }

    #[test]
    fn bad_values_are_refused() {
        let unknown: Result<FileConfig, _> = toml::from_str("lisen = \"x\"");
        assert!(unknown.is_err());
        let args = ConfigArgs {
            public_url: Some("ftp://x".into()),
            ..Default::default()
        };
        assert!(Settings::resolve(&args, FileConfig::default()).is_err());
        let args = ConfigArgs {
            database_url: Some("mysql://x".into()),
            ..Default::default()
        };
        assert!(Settings::resolve(&args, FileConfig::default()).is_err());
    }
}
