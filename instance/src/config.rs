//! Settings: defaults, then a TOML file (`--config`), then `CONVENE_*` environment variables,
//! then command-line flags, each overriding the one before.
//!
//! The raw layers ([`ConfigArgs`], [`FileConfig`]) are all optional; [`Settings::resolve`]
//! validates them into one [`Settings`] that the rest of the program trusts.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;
use url::Url;

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
    pub media_udp_port_min: Option<u16>,
    pub media_udp_port_max: Option<u16>,
    pub media_threads: Option<usize>,
    pub media_public_ip: Option<IpAddr>,
    pub media_bind_ip: Option<IpAddr>,
    pub source_url: Option<String>,
    pub ice_servers: Option<Vec<String>>,
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
    pub media_udp_ports: (u16, u16),
    /// `None`: one per core.
    pub media_threads: Option<usize>,
    pub media_public_ip: Option<IpAddr>,
    pub media_bind_ip: IpAddr,
    pub ice_servers: Vec<String>,
    pub source_url: String,
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
