//! Small URL rules shared by the whole crate.

use url::Url;

use crate::error::{Error, Result, excerpt};

/// `host[:port]` of an http(s) URL, the port only when it is not the scheme's default; this is
/// what `Host` headers carry and what "same host" means for keys and actors. Lowercased.
pub fn authority(url: &Url) -> Option<String> {
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

/// Parses an absolute `http(s)` URL with a host, refusing anything else (`data:`, `file:`, ...).
pub fn parse_http_url(input: &str) -> Result<Url> {
    let url = Url::parse(input.trim()).map_err(|_| Error::BadUrl(excerpt(input)))?;
    if authority(&url).is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(Error::BadUrl(excerpt(input)));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_keeps_only_unusual_ports() -> Result<()> {
        assert_eq!(
            authority(&parse_http_url("https://A.example:443/x")?).as_deref(),
            Some("a.example")
        );
        assert_eq!(
            authority(&parse_http_url("http://localhost:8081/x")?).as_deref(),
            Some("localhost:8081")
        );
        for bad in [
            "ftp://a.example/",
            "data:text/plain,hi",
            "/relative",
            "https://u:p@a.example/",
        ] {
            assert!(parse_http_url(bad).is_err(), "{bad}");
        }
        Ok(())
    }
}
