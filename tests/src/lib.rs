//! End-to-end test support: whole Convene instances on loopback, driven over HTTP.
//!
//! [`TestInstance::spawn`] starts an instance on port 0 with a fresh database (SQLite in a
//! temporary folder, or a new PostgreSQL database when [`Backend::Postgres`]) and a real SMTP
//! server ([`smtp`]) that its mail goes to. [`Browser`] is a cookie-keeping HTTP client that
//! fills in CSRF tokens the way a browser's form would.

pub mod mailhttp;
pub mod smtp;

use std::path::PathBuf;
use std::sync::Once;

use convene::app::Instance;
use convene::config::{ConfigArgs, FileConfig, Settings};
use reqwest::StatusCode;
use reqwest::redirect::Policy;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Whether every optional part must be present (CI): then a skip is a failure.
pub fn require_all() -> bool {
    std::env::var("CONVENE_TEST_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// The PostgreSQL server for tests, if configured. Prints a skip notice when absent.
pub fn postgres_url(test: &str) -> Option<String> {
    match std::env::var("CONVENE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                !require_all(),
                "CONVENE_TEST_REQUIRE_ALL=1 but CONVENE_TEST_POSTGRES_URL is not set ({test})"
            );
            eprintln!("SKIPPED {test} on PostgreSQL: set CONVENE_TEST_POSTGRES_URL to run it");
            None
        }
    }
}

/// The machine the tests run on. Most tests share it (each holds a read guard while it runs);
/// a test whose outcome depends on timing a busy machine cannot keep (a call of several people
/// in Chromium with real encoders) takes it alone, waiting for those running to finish while
/// no new ones start (the lock is fair).
static MACHINE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Runs beside other ordinary tests; see [`machine_alone`].
pub async fn share_machine() -> tokio::sync::RwLockReadGuard<'static, ()> {
    MACHINE.read().await
}

/// Runs with no other test that shares the machine; take it before starting anything.
pub async fn machine_alone() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    MACHINE.write().await
}

/// Defines `NAME_sqlite` and `NAME_postgres` tests from one async body taking a [`Backend`].
#[macro_export]
macro_rules! on_both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let _share = $crate::share_machine().await;
                ($body)($crate::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let _share = $crate::share_machine().await;
                if $crate::postgres_url(stringify!($name)).is_some() {
                    ($body)($crate::Backend::Postgres).await;
                }
            }
        }
    };
}

fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn random_suffix() -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().r#gen();
    format!("{n:016x}")
}

/// A running instance with its own database and mailbox.
pub struct TestInstance {
    pub base: String,
    pub mailbox: smtp::Mailbox,
    pub settings: Settings,
    pub data_dir: PathBuf,
    /// The instance's clock, kept across restarts; see [`TestInstance::advance_clock`].
    pub clock: convene::clock::Clock,
    instance: Option<Instance>,
}

impl TestInstance {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Spawns with settings adjusted by `tweak` (e.g. open Space creation).
    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> Self {
        install_crypto();
        // `CONVENE_TEST_LOG=debug` shows the instances' logs (once per test binary).
        if let Ok(filter) = std::env::var("CONVENE_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let (smtp_port, mailbox) = smtp::start().await;
        let data_dir = std::env::temp_dir().join(format!("convene-test-{}", random_suffix()));
        let database_url = match backend {
            Backend::Sqlite => format!("sqlite://{}", data_dir.join("convene.db").display()),
            Backend::Postgres => fresh_postgres_database().await,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a port");
        let port = listener.local_addr().expect("local addr").port();
        let args = ConfigArgs {
            listen: Some(([127, 0, 0, 1], port).into()),
            public_url: Some(format!("http://localhost:{port}")),
            data_dir: Some(data_dir.clone()),
            database_url: Some(database_url),
            smtp_url: Some(format!("smtp://127.0.0.1:{smtp_port}")),
            instance_name: Some("Test Commons".into()),
            ..ConfigArgs::default()
        };
        let mut settings = Settings::resolve(&args, FileConfig::default()).expect("settings");
        // Media on loopback, each peer on a port the system picks.
        settings.media_udp_ports = (0, 0);
        tweak(&mut settings);
        let clock = convene::clock::Clock::system();
        let instance = Instance::start_with_clock(settings.clone(), listener, clock.clone())
            .await
            .expect("instance starts");
        Self {
            base: format!("http://localhost:{port}"),
            mailbox,
            settings,
            data_dir,
            clock,
            instance: Some(instance),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn browser(&self) -> Browser {
        Browser::new(&self.base)
    }

    /// Moves the instance's time forward (codes, invitations and elections expire or open
    /// as they would after that long).
    pub fn advance_clock(&self, seconds: i64) {
        self.clock.advance(seconds);
    }

    pub fn state(&self) -> &convene::app::AppState {
        &self.instance.as_ref().expect("instance is running").state
    }

    /// Runs `convene admin …` in-process against this instance's database, exactly as the
    /// binary would from another terminal (the command line runs no SFU of its own).
    pub async fn admin(&self, args: &[&str]) {
        use clap::Parser;
        let mut argv = vec![
            "convene".to_string(),
            "--database-url".to_string(),
            self.settings.database_url.clone(),
            "--data-dir".to_string(),
            self.data_dir.display().to_string(),
            "admin".to_string(),
        ];
        argv.extend(args.iter().map(ToString::to_string));
        let cli = convene::cli::Cli::try_parse_from(&argv).expect("admin arguments parse");
        let Some(convene::cli::Command::Admin { json, command }) = cli.command else {
            panic!("an admin command");
        };
        convene::cli::admin(&cli.config, json, command)
            .await
            .expect("admin command succeeds");
    }

    /// Stops the instance (its port closes, its database stays).
    pub async fn stop(&mut self) {
        if let Some(instance) = self.instance.take() {
            instance.shutdown().await.expect("clean shutdown");
        }
    }

    /// Stops the instance and starts it again on the same port and database.
    pub async fn restart(&mut self) {
        if let Some(instance) = self.instance.take() {
            instance.shutdown().await.expect("clean shutdown");
        }
        let listener = tokio::net::TcpListener::bind(self.settings.listen)
            .await
            .expect("rebind the same port");
        self.instance = Some(
            Instance::start_with_clock(self.settings.clone(), listener, self.clock.clone())
                .await
                .expect("instance restarts"),
        );
    }

    /// Signs up a new Passport through the pages, reading the code from the mailbox.
    pub async fn sign_up(&self, email: &str, handle: &str, name: &str) -> Browser {
        let browser = self.browser();
        let before = self.mailbox.to(email).len();
        let page = browser.get("/signup").await;
        assert_eq!(page.status, StatusCode::OK);
        let page = browser
            .submit(
                "/signup",
                &[("email", email), ("handle", handle), ("display_name", name)],
            )
            .await;
        assert_eq!(
            page.status,
            StatusCode::OK,
            "sign-up form accepted: {}",
            page.body
        );
        let mail = self.mailbox.wait_for(email, before + 1).await;
        let code = code_in(&mail.body);
        let page = browser
            .submit("/verify", &[("email", email), ("code", &code)])
            .await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.body.contains(&format!("@{handle}")),
            "signed in as @{handle}"
        );
        browser
    }

    /// Signs in an existing Passport by code.
    pub async fn sign_in(&self, email: &str) -> Browser {
        let browser = self.browser();
        let before = self.mailbox.to(email).len();
        browser.get("/signin").await;
        let page = browser.submit("/signin", &[("email", email)]).await;
        assert_eq!(page.status, StatusCode::OK);
        let mail = self.mailbox.wait_for(email, before + 1).await;
        let code = code_in(&mail.body);
        let page = browser
            .submit("/verify", &[("email", email), ("code", &code)])
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        browser
    }
}

impl Drop for TestInstance {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// The six-digit code in a sign-in email.
pub fn code_in(body: &str) -> String {
    body.lines()
        .find_map(|l| l.trim().strip_prefix("Your code: "))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no code in mail: {body}"))
}

/// The first link in an email that starts with `prefix`.
pub fn link_in(body: &str, prefix: &str) -> String {
    body.split_whitespace()
        .find(|w| w.starts_with(prefix))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no link {prefix}… in mail: {body}"))
}

async fn fresh_postgres_database() -> String {
    let base = std::env::var("CONVENE_TEST_POSTGRES_URL").expect("postgres url");
    let name = format!("convene_t_{}", random_suffix());
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&base)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .expect("create a test database");
    pool.close().await;
    let mut url = url::Url::parse(&base).expect("postgres url parses");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// A page as a test sees it.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub body: String,
    /// The path it ended on after redirects.
    pub path: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Page {
    /// The value of the hidden CSRF field on this page.
    pub fn csrf(&self) -> Option<String> {
        let at = self.body.find("name=\"csrf\"")?;
        let rest = &self.body[at..];
        let v = rest.find("value=\"")? + 7;
        let end = rest[v..].find('"')?;
        Some(rest[v..v + end].to_string())
    }
}

/// A cookie-keeping client that submits forms with their CSRF token, like a browser.
pub struct Browser {
    pub client: reqwest::Client,
    base: String,
    csrf: std::sync::Mutex<Option<String>>,
}

impl Browser {
    pub fn new(base: &str) -> Self {
        Self::with_headers(base, reqwest::header::HeaderMap::new())
    }

    /// A browser whose every request says it was forwarded for `client` by a proxy.
    pub fn forwarded_for(base: &str, client: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            client.parse().expect("an address header"),
        );
        Self::with_headers(base, headers)
    }

    fn with_headers(base: &str, headers: reqwest::header::HeaderMap) -> Self {
        install_crypto();
        Self {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(Policy::none())
                .default_headers(headers)
                .build()
                .expect("http client"),
            base: base.to_string(),
            csrf: std::sync::Mutex::new(None),
        }
    }

    async fn read(&self, response: reqwest::Response) -> Page {
        let status = response.status();
        let path = response.url().path().to_string();
        let headers = response.headers().clone();
        let body = response.text().await.expect("body");
        let page = Page {
            status,
            body,
            path,
            headers,
        };
        if let Some(token) = page.csrf()
            && let Ok(mut csrf) = self.csrf.lock()
        {
            *csrf = Some(token);
        }
        page
    }

    /// GET, following redirects.
    pub async fn get(&self, path: &str) -> Page {
        let mut path = path.to_string();
        for _ in 0..5 {
            let response = self
                .client
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .expect("GET");
            if response.status().is_redirection() {
                path = location(&response);
                continue;
            }
            return self.read(response).await;
        }
        panic!("too many redirects");
    }

    /// POSTs a form without following the redirect.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let token = self
            .csrf
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .unwrap_or_default();
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        if !fields.iter().any(|(k, _)| *k == "csrf") {
            form.push(("csrf", &token));
        }
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .form(&form)
            .send()
            .await
            .expect("POST");
        self.read(response).await
    }

    /// POSTs a form and follows its redirect, as a browser does.
    pub async fn submit(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let page = self.post(path, fields).await;
        if page.status.is_redirection() {
            let to = page
                .headers
                .get("location")
                .and_then(|v| v.to_str().ok())
                .expect("redirect has a location")
                .to_string();
            return self.get(&to).await;
        }
        page
    }
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("redirect has a location")
        .to_string()
}
