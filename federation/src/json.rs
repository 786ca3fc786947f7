//! Reading remote JSON without trusting it.
//!
//! Every body from another server goes through [`from_slice`], which first runs a cheap scan
//! over the bytes and refuses, before serde allocates anything:
//! - bodies over [`MAX_BODY_BYTES`] (1 MiB, Mastodon's own `MAX_JSON_SIZE` for activities);
//! - nesting deeper than [`MAX_DEPTH`] (serde_json would stop at 128 on its own, but real
//!   activities are at most about 8 deep: Announce → Create → Note → tag → ...);
//! - arrays or objects with more than [`MAX_ITEMS`] members.
//!
//! Then serde reads the typed shape; a missing field or a wrong type is [`Error::BadJson`].
//! Nothing here panics on any input: the scan only counts, and serde returns errors.

use serde::de::DeserializeOwned;

use crate::error::{Error, Result, excerpt};

/// The largest body read or sent: 1 MiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The deepest nesting of arrays and objects accepted.
pub const MAX_DEPTH: usize = 32;
/// The most members of one array or object accepted.
pub const MAX_ITEMS: usize = 10_000;

/// Refuses bodies that are too big, too deep or too wide, without parsing them.
pub fn check_limits(body: &[u8]) -> Result<()> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Error::TooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    // One counter of separators per open container; bounded by MAX_DEPTH.
    let mut open: Vec<usize> = Vec::with_capacity(MAX_DEPTH);
    let mut in_string = false;
    let mut escaped = false;
    for &byte in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                if open.len() >= MAX_DEPTH {
                    return Err(Error::TooDeep { limit: MAX_DEPTH });
                }
                open.push(0);
            }
            b']' | b'}' => {
                open.pop();
            }
            b',' => {
                if let Some(separators) = open.last_mut() {
                    *separators += 1;
                    if *separators >= MAX_ITEMS {
                        return Err(Error::TooManyItems { limit: MAX_ITEMS });
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks the limits, then deserializes `T`.
pub fn from_slice<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    check_limits(body)?;
    serde_json::from_slice(body).map_err(|e| Error::BadJson(excerpt(e)))
}

/// Serializes a value we send; refuses to produce a body over the limit.
pub fn to_vec<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    let body = serde_json::to_vec(value).map_err(|e| Error::BadJson(excerpt(e)))?;
    if body.len() > MAX_BODY_BYTES {
        return Err(Error::TooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn ordinary_json_passes() -> Result<()> {
        let v: Value = from_slice(br#"{"a":[1,2,{"b":"[[[[,,,"}],"c":"\"{"}"#)?;
        assert_eq!(v["a"][2]["b"], "[[[[,,,");
        assert_eq!(v["c"], "\"{");
        Ok(())
    }

    #[test]
    fn deep_nesting_is_refused_before_serde() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(
            from_slice::<Value>(deep.as_bytes()),
            Err(Error::TooDeep { limit: MAX_DEPTH })
        );
        // Far deeper than serde's own recursion limit, and unbalanced: still an error.
        let hostile = "[{\"a\":".repeat(100_000);
        assert!(from_slice::<Value>(hostile.as_bytes()).is_err());
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(from_slice::<Value>(ok.as_bytes()).is_ok());
    }

    #[test]
    fn huge_arrays_and_bodies_are_refused() {
        let wide = format!("[{}0]", "0,".repeat(MAX_ITEMS));
        assert_eq!(
            from_slice::<Value>(wide.as_bytes()),
            Err(Error::TooManyItems { limit: MAX_ITEMS })
        );
        let big = format!("\"{}\"", "x".repeat(MAX_BODY_BYTES));
        assert_eq!(
            from_slice::<Value>(big.as_bytes()),
            Err(Error::TooLarge {
                limit: MAX_BODY_BYTES
            })
        );
    }

    #[test]
    fn wrong_types_and_garbage_are_errors() {
        #[derive(serde::Deserialize, Debug)]
        struct Shape {
            #[allow(dead_code)]
            n: u32,
        }
        for bad in [
            &br#"{"n":"1"}"#[..],
            br#"{"n":-1}"#,
            br#"{}"#,
            b"",
            b"\xff\xfe",
            b"nul",
        ] {
            assert!(matches!(from_slice::<Shape>(bad), Err(Error::BadJson(_))));
        }
    }
}
