//! Credentials from the `Authorization` header: a bearer token (RFC 6750 §2.1, RFC 9110 §11.4)
//! or a DPoP-bound one (RFC 9449 §7.1: the `DPoP` scheme, the same token68 syntax).

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::error::Rejection;

/// How the token was presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// `Authorization: DPoP <token>`, with a `DPoP` proof header.
    Dpop,
}

/// The token of the one `Authorization: Bearer <token68>` header (or `DPoP <token68>` when
/// `dpop` is on).
///
/// - no header, or another scheme: [`Rejection::MissingToken`];
/// - two headers, an oversized one, no token, a character outside token68
///   (`A-Z a-z 0-9 - . _ ~ + /`, then only `=`), or a list of credentials: [`Rejection::InvalidRequest`].
///
/// The scheme is case-insensitive; one or more spaces separate it from the token.
#[cfg(test)]
pub(crate) fn bearer(headers: &HeaderMap, max_len: usize) -> Result<&str, Rejection> {
    credentials(headers, max_len, false).map(|(_, token)| token)
}

/// [`bearer`], also accepting the `DPoP` scheme when `dpop` is on.
pub(crate) fn credentials(
    headers: &HeaderMap,
    max_len: usize,
    dpop: bool,
) -> Result<(Scheme, &str), Rejection> {
    let mut all = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = all.next() else { return Err(Rejection::MissingToken) };
    if all.next().is_some() {
        return Err(Rejection::InvalidRequest("more than one Authorization header"));
    }
    let bytes = value.as_bytes();
    if bytes.len() > max_len {
        return Err(Rejection::InvalidRequest("the Authorization header is too large"));
    }
    let (scheme, rest) = match bytes.iter().position(|&b| b == b' ') {
        Some(i) => (&bytes[..i], &bytes[i..]),
        None => (bytes, &[][..]),
    };
    let scheme = if scheme.eq_ignore_ascii_case(b"bearer") {
        Scheme::Bearer
    } else if dpop && scheme.eq_ignore_ascii_case(b"dpop") {
        Scheme::Dpop
    } else {
        return Err(Rejection::MissingToken);
    };
    let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    let token = &rest[start..];
    if token.is_empty() {
        return Err(Rejection::InvalidRequest("no token after Bearer"));
    }
    let body = token.iter().position(|&b| b == b'=').unwrap_or(token.len());
    let ok = !token[..body].is_empty()
        && token[..body]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
        && token[body..].iter().all(|&b| b == b'=');
    if !ok {
        return Err(Rejection::InvalidRequest("the bearer token is malformed"));
    }
    // token68 is ASCII, so this cannot fail; the error path keeps it total.
    let token =
        std::str::from_utf8(token).map_err(|_| Rejection::InvalidRequest("the bearer token is malformed"))?;
    Ok((scheme, token))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use http::HeaderValue;
    use proptest::prelude::*;

    use super::*;

    fn with(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn the_rfc_6750_forms() {
        assert_eq!(bearer(&with(&[b"Bearer tw_abc.DEF-1~+/=="]), 1024), Ok("tw_abc.DEF-1~+/=="));
        assert_eq!(bearer(&with(&[b"bearer   tw_x"]), 1024), Ok("tw_x"));
        assert_eq!(bearer(&with(&[b"BEARER tw_x"]), 1024), Ok("tw_x"));
        assert_eq!(bearer(&HeaderMap::new(), 1024), Err(Rejection::MissingToken));
        assert_eq!(bearer(&with(&[b"Basic dXNlcjpwYXNz"]), 1024), Err(Rejection::MissingToken));
        assert_eq!(bearer(&with(&[b"Bearertw_x"]), 1024), Err(Rejection::MissingToken));
        // DPoP is another scheme unless the layer accepts it.
        assert_eq!(bearer(&with(&[b"DPoP tw_x"]), 1024), Err(Rejection::MissingToken));
        assert_eq!(credentials(&with(&[b"DPoP tw_x"]), 1024, true), Ok((Scheme::Dpop, "tw_x")));
        assert_eq!(credentials(&with(&[b"dpop tw_x"]), 1024, true), Ok((Scheme::Dpop, "tw_x")));
        assert_eq!(credentials(&with(&[b"Bearer tw_x"]), 1024, true), Ok((Scheme::Bearer, "tw_x")));
        for bad in [
            &b"Bearer"[..],
            b"Bearer ",
            b"Bearer a b",
            b"Bearer a,Basic b",
            b"Bearer =abc",
            b"Bearer ab=c",
            b"Bearer a\"b",
            b"Bearer a\tb",
        ] {
            assert!(
                matches!(bearer(&with(&[bad]), 1024), Err(Rejection::InvalidRequest(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(
            bearer(&with(&[b"Bearer a", b"Bearer b"]), 1024),
            Err(Rejection::InvalidRequest(_))
        ));
        let long = format!("Bearer {}", "a".repeat(2000));
        assert!(matches!(bearer(&with(&[long.as_bytes()]), 1024), Err(Rejection::InvalidRequest(_))));
        // Obsolete text (bytes ≥ 0x80) is a valid header value, not a token.
        assert!(matches!(bearer(&with(&[b"Bearer tw_\xe9"]), 1024), Err(Rejection::InvalidRequest(_))));
    }

    proptest! {
        #[test]
        fn any_header_value_is_an_answer_never_a_panic(v in proptest::collection::vec(any::<u8>(), 0..300), n in 1usize..3) {
            if let Ok(value) = HeaderValue::from_bytes(&v) {
                let mut h = HeaderMap::new();
                for _ in 0..n {
                    h.append(AUTHORIZATION, value.clone());
                }
                match bearer(&h, 256) {
                    Ok(t) => {
                        prop_assert_eq!(n, 1);
                        prop_assert!(v.len() <= 256);
                        prop_assert!(!t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()));
                    }
                    Err(Rejection::MissingToken | Rejection::InvalidRequest(_)) => {}
                    Err(other) => prop_assert!(false, "{other:?}"),
                }
            }
        }
    }
}
