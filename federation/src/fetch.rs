//! Outbound HTTP that a hostile peer cannot turn against us.
//!
//! [`FetchClient`] is the only way this crate (and the instance, for federation) talks to
//! other servers. It:
//! - resolves names itself and refuses loopback, private, link-local, unspecified, multicast,
//!   shared (CGNAT), documentation and unique-local addresses, unless [`FetchSettings`] allows
//!   loopback (tests, development with `localhost:PORT`) or private networks. The check runs
//!   in the client's resolver, so it applies to the address actually connected to (no window
//!   for DNS rebinding), and before each request for IP literals, which skip the resolver;
//! - ignores proxy environment variables (a proxy would resolve names for us);
//! - follows at most [`FetchSettings::max_redirects`] redirects by hand, re-checking and
//!   re-signing for each new URL; POSTs (deliveries) never follow redirects;
//! - has a connect timeout and a total timeout for the whole exchange, body included;
//! - reads at most [`FetchSettings::max_body`] bytes (1 MiB), refusing on `Content-Length` or
//!   while streaming, whichever comes first;
//! - asks for `application/activity+json` unless told otherwise, and signs GETs when given a
//!   [`Signer`] (authorized fetch).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

use crate::error::{Error, Result, excerpt};
use crate::json::{self, MAX_BODY_BYTES};
use crate::keys::ActorKeys;
use crate::signature::sign_request;
use crate::urls::parse_http_url;

/// What we ask for when fetching ActivityPub documents.
pub const ACTIVITY_ACCEPT: &str = "application/activity+json, application/ld+json; profile=\"https://www.w3.org/ns/activitystreams\"";

/// Knobs of [`FetchClient`]. The defaults are the production ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSettings {
    /// Allow 127.0.0.0/8 and ::1 (tests, development instances on `localhost:PORT`).
    pub allow_loopback: bool,
    /// Allow private, link-local and unique-local networks (a federation inside one LAN).
    pub allow_private_networks: bool,
    pub connect_timeout: Duration,
    /// For the whole exchange: every redirect, and reading the body.
    pub total_timeout: Duration,
    pub max_redirects: usize,
    pub max_body: usize,
    pub user_agent: String,
}

impl Default for FetchSettings {
    fn default() -> Self {
        Self {
            allow_loopback: false,
            allow_private_networks: false,
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(20),
            max_redirects: 3,
            max_body: MAX_BODY_BYTES,
            user_agent: concat!("convene/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl FetchSettings {
    /// Whether we may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        match classify(ip) {
            Reach::Public => true,
            Reach::Loopback => self.allow_loopback,
            Reach::Private => self.allow_private_networks,
            Reach::Never => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    Public,
    Loopback,
    Private,
    /// Unspecified, multicast, broadcast, documentation, reserved: never a real peer.
    Never,
}

fn classify(ip: IpAddr) -> Reach {
    let v6 = match ip {
        IpAddr::V4(v4) => return classify_v4(v4),
        IpAddr::V6(v6) => v6,
    };
    let s = v6.segments();
    let embedded = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        classify_v4(Ipv4Addr::new(a, b, c, d))
    };
    if v6.is_loopback() {
        Reach::Loopback
    } else if let Some(v4) = v6.to_ipv4_mapped() {
        classify_v4(v4)
    } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64 reaches the embedded IPv4 address.
        embedded(s[6], s[7])
    } else if s[0] == 0x2002 {
        // 6to4 embeds the IPv4 address of its relay.
        embedded(s[1], s[2])
    } else if v6.is_unspecified()
        || v6.is_multicast()
        || s[..6] == [0, 0, 0, 0, 0, 0] // deprecated IPv4-compatible ::a.b.c.d
        || (s[0] == 0x2001 && s[1] == 0x0db8)
    {
        Reach::Never
    } else if s[0] & 0xfe00 == 0xfc00 || s[0] & 0xffc0 == 0xfe80 || s[0] & 0xffc0 == 0xfec0 {
        // Unique local fc00::/7, link-local fe80::/10, old site-local fec0::/10.
        Reach::Private
    } else {
        Reach::Public
    }
}

fn classify_v4(ip: Ipv4Addr) -> Reach {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Reach::Loopback
    } else if ip.is_private() || ip.is_link_local() || (a == 100 && (64..128).contains(&b)) {
        Reach::Private
    } else if ip.is_unspecified()
        || a == 0
        || ip.is_multicast()
        || ip.is_broadcast()
        || a >= 240
        || (a, b, c) == (192, 0, 2)
        || (a, b, c) == (198, 51, 100)
        || (a, b, c) == (203, 0, 113)
        || (a == 198 && (b == 18 || b == 19))
        || (a, b, c) == (192, 0, 0)
    {
        Reach::Never
    } else {
        Reach::Public
    }
}

/// Resolves names with the system resolver and refuses the lot if any address is not
/// permitted (a name that points at both a public and a private address is suspicious).
struct GuardedResolver {
    settings: Arc<FetchSettings>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let settings = Arc::clone(&self.settings);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = resolve_permitted(&settings, &host, 0).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

async fn resolve_permitted(
    settings: &FetchSettings,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Error::Fetch(format!("cannot resolve {}: {e}", excerpt(host))))?
        .collect();
    if addrs.is_empty() {
        return Err(Error::Fetch(format!("{} has no address", excerpt(host))));
    }
    if let Some(bad) = addrs.iter().find(|a| !settings.permits(a.ip())) {
        return Err(Error::Refused(format!(
            "{} resolves to {}",
            excerpt(host),
            bad.ip()
        )));
    }
    Ok(addrs)
}

/// Who signs a request: an actor's key id and keys.
#[derive(Debug, Clone, Copy)]
pub struct Signer<'a> {
    pub key_id: &'a Url,
    pub keys: &'a ActorKeys,
}

/// A response, body read within the cap.
#[derive(Debug, Clone)]
pub struct FetchResponse {
    /// The URL that answered, after redirects.
    pub url: Url,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl FetchResponse {
    /// The body as `T`, if the status is 2xx.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        if !self.status.is_success() {
            return Err(Error::Fetch(format!(
                "{} answered {}",
                self.url, self.status
            )));
        }
        json::from_slice(&self.body)
    }
}

/// The guarded HTTP client. Cheap to clone.
#[derive(Clone)]
pub struct FetchClient {
    client: reqwest::Client,
    settings: Arc<FetchSettings>,
}

impl std::fmt::Debug for FetchClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchClient")
            .field("settings", &self.settings)
            .finish()
    }
}

impl FetchClient {
    pub fn new(settings: FetchSettings) -> Result<Self> {
        // reqwest is built without a bundled TLS provider; the workspace's is ring. Installing
        // fails only if another provider is already installed, which is as good.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let settings = Arc::new(settings);
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver {
                settings: Arc::clone(&settings),
            }))
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.total_timeout)
            .user_agent(settings.user_agent.clone())
            .build()
            .map_err(|e| Error::Fetch(e.to_string()))?;
        Ok(Self { client, settings })
    }

    pub fn settings(&self) -> &FetchSettings {
        &self.settings
    }

    /// The underlying client, with the address guard in its resolver, no proxy, no automatic
    /// redirects and the timeouts. For `activitypub_federation`'s `FederationConfig::client` if
    /// the instance ever uses that crate's own fetching: it then keeps the address guard, but not
    /// this type's body cap and re-checked redirects.
    pub fn guarded_reqwest(&self) -> reqwest::Client {
        self.client.clone()
    }

    /// Refuses a URL whose host is an address we may not reach. Names are checked again, on
    /// the addresses actually used, by the resolver.
    pub async fn check_destination(&self, url: &Url) -> Result<()> {
        let url = parse_http_url(url.as_str())?;
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
            Some(url::Host::Domain(name)) => {
                resolve_permitted(
                    &self.settings,
                    name,
                    url.port_or_known_default().unwrap_or(443),
                )
                .await?;
                Ok(())
            }
            None => Err(Error::BadUrl(excerpt(url))),
        }
    }

    fn check_ip(&self, ip: IpAddr) -> Result<()> {
        if self.settings.permits(ip) {
            Ok(())
        } else {
            Err(Error::Refused(format!("address {ip} is not public")))
        }
    }

    /// GETs an ActivityPub document (`Accept: application/activity+json`), signed when `signer`
    /// is given, following up to the allowed redirects.
    pub async fn get_activity(
        &self,
        url: &Url,
        signer: Option<Signer<'_>>,
    ) -> Result<FetchResponse> {
        self.get(url, ACTIVITY_ACCEPT, signer).await
    }

    /// GETs `url` with the given `Accept` (WebFinger wants `application/jrd+json`).
    pub async fn get(
        &self,
        url: &Url,
        accept: &str,
        signer: Option<Signer<'_>>,
    ) -> Result<FetchResponse> {
        let deadline = self.settings.total_timeout;
        tokio::time::timeout(deadline, self.get_following(url, accept, signer))
            .await
            .map_err(|_| Error::Timeout(excerpt(url)))?
    }

    async fn get_following(
        &self,
        url: &Url,
        accept: &str,
        signer: Option<Signer<'_>>,
    ) -> Result<FetchResponse> {
        let mut current = parse_http_url(url.as_str())?;
        let mut redirects = 0;
        loop {
            self.check_destination(&current).await?;
            let mut request = self
                .client
                .get(current.clone())
                .header(header::ACCEPT, accept);
            if let Some(signer) = signer {
                let signed = sign_request(
                    &Method::GET,
                    &current,
                    None,
                    signer.key_id,
                    signer.keys,
                    SystemTime::now(),
                )?;
                request = request.headers(signed.to_header_map()?);
            }
            let response = request
                .send()
                .await
                .map_err(|e| self.describe(&current, e))?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| {
                        Error::Fetch(format!("{status} without Location from {current}"))
                    })?;
                if redirects >= self.settings.max_redirects {
                    return Err(Error::Fetch(format!(
                        "more than {} redirects from {url}",
                        self.settings.max_redirects
                    )));
                }
                let next = current
                    .join(location)
                    .map_err(|_| Error::BadUrl(excerpt(location)))?;
                current = parse_http_url(next.as_str())?;
                redirects += 1;
                continue;
            }
            return self.read(current, response).await;
        }
    }

    /// POSTs an activity (no redirects followed). Used by [`crate::delivery::deliver`].
    pub async fn post_activity(
        &self,
        url: &Url,
        body: Vec<u8>,
        signer: Signer<'_>,
        now: SystemTime,
    ) -> Result<FetchResponse> {
        let deadline = self.settings.total_timeout;
        let attempt = async {
            let url = parse_http_url(url.as_str())?;
            self.check_destination(&url).await?;
            let signed = sign_request(
                &Method::POST,
                &url,
                Some(&body),
                signer.key_id,
                signer.keys,
                now,
            )?;
            let response = self
                .client
                .post(url.clone())
                .headers(signed.to_header_map()?)
                .header(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(activitypub_federation::FEDERATION_CONTENT_TYPE),
                )
                .header(header::ACCEPT, ACTIVITY_ACCEPT)
                .body(body)
                .send()
                .await
                .map_err(|e| self.describe(&url, e))?;
            self.read(url, response).await
        };
        tokio::time::timeout(deadline, attempt)
            .await
            .map_err(|_| Error::Timeout(excerpt(url)))?
    }

    async fn read(&self, url: Url, mut response: reqwest::Response) -> Result<FetchResponse> {
        let limit = self.settings.max_body;
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err(Error::TooLarge { limit });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.describe(&url, e))? {
            if body.len() + chunk.len() > limit {
                return Err(Error::TooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(FetchResponse {
            url,
            status: response.status(),
            headers: response.headers().clone(),
            body,
        })
    }

    /// Turns a reqwest error into ours, keeping the refusal from the resolver visible.
    fn describe(&self, url: &Url, error: reqwest::Error) -> Error {
        if error.is_timeout() {
            return Error::Timeout(excerpt(url));
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        while let Some(e) = source {
            if let Some(ours) = e.downcast_ref::<Error>() {
                return ours.clone();
            }
            source = e.source();
        }
        Error::Fetch(format!("{}: {}", excerpt(url), excerpt(error)))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::SocketAddr;

    use axum::Router;
    use axum::body::Body;
    use axum::http::HeaderMap;
    use axum::response::{IntoResponse, Redirect, Response};
    use axum::routing::get;

    use super::*;
    use crate::keys::tests::test_keys;
    use crate::signature::{AcceptReplays, InboundRequest, PublicKey, RemoteKey, verify_request};

    /// Serves `router` on 127.0.0.1, port 0; returns the address.
    pub(crate) async fn serve(router: Router) -> Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::Fetch(e.to_string()))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Fetch(e.to_string()))?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(addr)
    }

    pub(crate) fn test_settings() -> FetchSettings {
        FetchSettings {
            allow_loopback: true,
            connect_timeout: Duration::from_secs(2),
            total_timeout: Duration::from_secs(5),
            ..FetchSettings::default()
        }
    }

    fn url(s: &str) -> Result<Url> {
        parse_http_url(s)
    }

    async fn echo_accept(headers: HeaderMap) -> String {
        headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }

    /// Verifies the signature with our own verifier and answers who signed.
    async fn signed_only(headers: HeaderMap) -> Response {
        let key = RemoteKey::new(PublicKey {
            id: "http://localhost/actor#main-key".into(),
            owner: match Url::parse("http://localhost/actor") {
                Ok(u) => u,
                Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            },
            public_key_pem: test_keys().public_key_pem().into(),
        });
        let Ok(key) = key else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        let request = InboundRequest {
            method: &Method::GET,
            path_and_query: "/signed",
            headers: &headers,
            body: b"",
            host: None,
        };
        match verify_request(&request, &key, SystemTime::now(), &AcceptReplays) {
            Ok(v) => v.signer.to_string().into_response(),
            Err(e) => (StatusCode::UNAUTHORIZED, e.to_string()).into_response(),
        }
    }

    fn app() -> Router {
        Router::new()
            .route("/doc", get(echo_accept))
            .route("/signed", get(signed_only))
            .route(
                "/hop/{n}",
                get(
                    |axum::extract::Path(n): axum::extract::Path<u32>| async move {
                        if n == 0 {
                            Redirect::temporary("/doc")
                        } else {
                            Redirect::temporary(&format!("/hop/{}", n - 1))
                        }
                    },
                ),
            )
            .route(
                "/to-private",
                get(|| async { Redirect::temporary("http://10.1.2.3/x") }),
            )
            .route(
                "/to-file",
                get(|| async { Redirect::temporary("file:///etc/passwd") }),
            )
            .route(
                "/to-metadata",
                get(|| async { Redirect::temporary("http://169.254.169.254/latest/meta-data") }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            )
            .route("/big", get(|| async { vec![b'x'; MAX_BODY_BYTES + 1] }))
            .route(
                "/big-stream",
                get(|| async {
                    let chunks = (0..40).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 64 * 1024]));
                    Body::from_stream(futures_util::stream::iter(chunks))
                }),
            )
    }

    #[tokio::test]
    async fn loopback_is_reachable_only_when_allowed() -> Result<()> {
        let addr = serve(app()).await?;
        let client = FetchClient::new(test_settings())?;
        let answer = client
            .get_activity(&url(&format!("http://{addr}/doc"))?, None)
            .await?;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(String::from_utf8_lossy(&answer.body), ACTIVITY_ACCEPT);
        // By name too.
        let by_name = client
            .get_activity(
                &url(&format!("http://localhost:{}/doc", addr.port()))?,
                None,
            )
            .await?;
        assert_eq!(by_name.status, StatusCode::OK);

        let strict = FetchClient::new(FetchSettings::default())?;
        for target in [
            format!("http://{addr}/doc"),
            format!("http://localhost:{}/doc", addr.port()),
        ] {
            let refused = strict.get_activity(&url(&target)?, None).await;
            assert!(
                matches!(refused, Err(Error::Refused(_))),
                "{target}: {refused:?}"
            );
        }
        Ok(())
    }

    #[tokio::test]
    async fn signed_gets_verify_on_the_other_side() -> Result<()> {
        let addr = serve(app()).await?;
        let client = FetchClient::new(test_settings())?;
        let key_id = url("http://localhost/actor#main-key")?;
        let signer = Signer {
            key_id: &key_id,
            keys: test_keys(),
        };
        let target = url(&format!("http://{addr}/signed"))?;
        let answer = client.get_activity(&target, Some(signer)).await?;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        assert_eq!(
            String::from_utf8_lossy(&answer.body),
            "http://localhost/actor"
        );
        let unsigned = client.get_activity(&target, None).await?;
        assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
        Ok(())
    }

    #[tokio::test]
    async fn redirects_are_followed_three_times_and_rechecked() -> Result<()> {
        let addr = serve(app()).await?;
        let client = FetchClient::new(test_settings())?;
        let three = client
            .get_activity(&url(&format!("http://{addr}/hop/2"))?, None)
            .await?;
        assert_eq!(three.status, StatusCode::OK);
        assert_eq!(three.url.path(), "/doc");
        let four = client
            .get_activity(&url(&format!("http://{addr}/hop/3"))?, None)
            .await;
        assert!(
            matches!(four, Err(Error::Fetch(ref m)) if m.contains("redirects")),
            "{four:?}"
        );
        for path in ["/to-private", "/to-metadata"] {
            let private = client
                .get_activity(&url(&format!("http://{addr}{path}"))?, None)
                .await;
            assert!(
                matches!(private, Err(Error::Refused(_))),
                "{path}: {private:?}"
            );
        }
        let file = client
            .get_activity(&url(&format!("http://{addr}/to-file"))?, None)
            .await;
        assert!(matches!(file, Err(Error::BadUrl(_))), "{file:?}");
        Ok(())
    }

    #[tokio::test]
    async fn a_slow_server_times_out() -> Result<()> {
        let addr = serve(app()).await?;
        let client = FetchClient::new(FetchSettings {
            total_timeout: Duration::from_millis(300),
            ..test_settings()
        })?;
        let started = std::time::Instant::now();
        let slow = client
            .get_activity(&url(&format!("http://{addr}/slow"))?, None)
            .await;
        assert!(matches!(slow, Err(Error::Timeout(_))), "{slow:?}");
        assert!(started.elapsed() < Duration::from_secs(3));
        Ok(())
    }

    #[tokio::test]
    async fn oversized_bodies_are_cut_off() -> Result<()> {
        let addr = serve(app()).await?;
        let client = FetchClient::new(test_settings())?;
        for path in ["/big", "/big-stream"] {
            let big = client
                .get_activity(&url(&format!("http://{addr}{path}"))?, None)
                .await;
            assert!(
                matches!(big, Err(Error::TooLarge { .. })),
                "{path}: {big:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn address_classes_follow_the_rules() {
        let strict = FetchSettings::default();
        let dev = test_settings();
        let lan = FetchSettings {
            allow_private_networks: true,
            ..FetchSettings::default()
        };
        let cases: [(&str, bool, bool, bool); 19] = [
            // address, strict, dev (loopback), lan (private)
            ("93.184.216.34", true, true, true),
            ("2606:4700::1111", true, true, true),
            ("127.0.0.1", false, true, false),
            ("::1", false, true, false),
            ("::ffff:127.0.0.1", false, true, false),
            ("10.0.0.1", false, false, true),
            ("172.16.5.4", false, false, true),
            ("192.168.1.1", false, false, true),
            ("169.254.169.254", false, false, true),
            ("100.64.0.1", false, false, true),
            ("fd00::1", false, false, true),
            ("fe80::1", false, false, true),
            ("0.0.0.0", false, false, false),
            ("::", false, false, false),
            ("224.0.0.1", false, false, false),
            ("64:ff9b::a00:1", false, false, true),
            ("2002:7f00:1::1", false, true, false),
            ("::7f00:1", false, false, false),
            ("2001:db8::1", false, false, false),
        ];
        for (ip, s, d, l) in cases {
            let Ok(ip) = ip.parse::<IpAddr>() else {
                panic!("bad test address {ip}");
            };
            assert_eq!(strict.permits(ip), s, "strict {ip}");
            assert_eq!(dev.permits(ip), d, "dev {ip}");
            assert_eq!(lan.permits(ip), l, "lan {ip}");
        }
    }
}
