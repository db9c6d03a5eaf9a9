//! A token request's form (RFC 8693 §2.1), read before anything is asked of the deployment: what
//! the token endpoint acts on ([`TokenRequest`]), or why it refuses ([`FormRefusal`]).

use tokenward::core::ScopeSet;
use tokenward::core::chrono::TimeDelta;

const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
pub(crate) const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
/// The most parameters a request may have (RFC 8693 defines ten).
const MAX_PARAMS: usize = 16;

/// A token request, read: the subject token, the scopes asked for, and the lifetime (`None`: the
/// federation's longest).
pub(crate) struct TokenRequest {
    pub(crate) subject: String,
    pub(crate) scopes: ScopeSet,
    pub(crate) ttl: Option<TimeDelta>,
}

/// Why a request's form is refused: each answered with its RFC 6749 §5.2 error and a short,
/// fixed description (never what the request held).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FormRefusal {
    NotForm,
    TooManyParameters,
    Repeated,
    UnsupportedGrant,
    NoSubject,
    SubjectType,
    RequestedType,
    Delegation,
    NoScope,
    ExpiresIn,
}

impl FormRefusal {
    /// The RFC 6749 §5.2 error code.
    pub(crate) fn error(self) -> &'static str {
        match self {
            Self::UnsupportedGrant => "unsupported_grant_type",
            Self::NoScope => "invalid_scope",
            _ => "invalid_request",
        }
    }

    /// The description.
    pub(crate) fn description(self) -> &'static str {
        match self {
            Self::NotForm => "the body must be application/x-www-form-urlencoded",
            Self::TooManyParameters => "too many parameters",
            Self::Repeated => "a parameter is given more than once",
            Self::UnsupportedGrant => "only token exchange is supported",
            Self::NoSubject => "subject_token is required",
            Self::SubjectType => "subject_token_type must be a JWT or an ID token",
            Self::RequestedType => "only access tokens are issued",
            Self::Delegation => "delegation (actor_token) is not supported",
            Self::NoScope => "scope is required: the scopes asked for",
            Self::ExpiresIn => "expires_in must be a positive number of seconds",
        }
    }
}

/// Reads a token request: a form body (by its `content_type`) of at most [`MAX_PARAMS`]
/// parameters, each once (RFC 6749 §3.2), looked up in a set — a body of thousands of tiny
/// parameters costs no more than reading it.
pub(crate) fn read(content_type: Option<&str>, body: &[u8]) -> Result<TokenRequest, FormRefusal> {
    let is_form = content_type.is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
    });
    if !is_form {
        return Err(FormRefusal::NotForm);
    }
    let mut params: Vec<(String, String)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if params.len() == MAX_PARAMS {
            return Err(FormRefusal::TooManyParameters);
        }
        if !seen.insert(k.clone()) {
            return Err(FormRefusal::Repeated);
        }
        params.push((k.into_owned(), v.into_owned()));
    }
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if get("grant_type") != Some(GRANT) {
        return Err(FormRefusal::UnsupportedGrant);
    }
    let Some(subject) = get("subject_token").filter(|s| !s.is_empty()) else {
        return Err(FormRefusal::NoSubject);
    };
    if !matches!(get("subject_token_type"), Some(JWT | ID_TOKEN)) {
        return Err(FormRefusal::SubjectType);
    }
    if get("requested_token_type").is_some_and(|t| t != ACCESS_TOKEN) {
        return Err(FormRefusal::RequestedType);
    }
    if get("actor_token").is_some() || get("actor_token_type").is_some() {
        return Err(FormRefusal::Delegation);
    }
    let Some(scopes) = get("scope").and_then(|s| ScopeSet::parse(s).ok()).filter(|s| !s.is_empty()) else {
        return Err(FormRefusal::NoScope);
    };
    let ttl = match get("expires_in") {
        None => None,
        Some(s) => Some(
            s.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .and_then(TimeDelta::try_seconds)
                .ok_or(FormRefusal::ExpiresIn)?,
        ),
    };
    Ok(TokenRequest { subject: subject.to_owned(), scopes, ttl })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

    fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
        url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish().into_bytes()
    }

    #[test]
    fn a_request_is_read_or_refused_for_its_first_fault() {
        let good = [
            ("grant_type", GRANT),
            ("subject_token", "eyJ.x.y"),
            ("subject_token_type", JWT),
            ("scope", "deploy:service/api/web:release"),
        ];
        let r = read(Some("application/x-www-form-urlencoded; charset=utf-8"), &form(&good)).unwrap();
        assert_eq!(
            (r.subject.as_str(), r.scopes.to_string().as_str(), r.ttl),
            ("eyJ.x.y", "deploy:service/api/web:release", None)
        );
        let with = |extra: &[(&str, &str)]| form(&[&good[..], extra].concat());
        assert_eq!(read(FORM, &with(&[("expires_in", "600")])).unwrap().ttl, Some(TimeDelta::minutes(10)));
        for (body, content_type, refusal) in [
            (form(&good), Some("application/json"), FormRefusal::NotForm),
            (form(&good), None, FormRefusal::NotForm),
            (with(&[("scope", "x")]), FORM, FormRefusal::Repeated),
            (
                [form(&good), (0..13).map(|i| format!("&p{i}=")).collect::<String>().into_bytes()].concat(),
                FORM,
                FormRefusal::TooManyParameters,
            ),
            (form(&good[1..]), FORM, FormRefusal::UnsupportedGrant),
            (form(&[good[0], good[2], good[3]]), FORM, FormRefusal::NoSubject),
            (form(&[good[0], good[1], good[3]]), FORM, FormRefusal::SubjectType),
            (with(&[("requested_token_type", JWT)]), FORM, FormRefusal::RequestedType),
            (with(&[("actor_token", "x")]), FORM, FormRefusal::Delegation),
            (form(&good[..3]), FORM, FormRefusal::NoScope),
            (with(&[("expires_in", "0")]), FORM, FormRefusal::ExpiresIn),
            (with(&[("expires_in", "99999999999999999999")]), FORM, FormRefusal::ExpiresIn),
        ] {
            assert_eq!(read(content_type, &body).err(), Some(refusal), "{}", String::from_utf8_lossy(&body));
        }
    }

    proptest! {
        /// Any body, form-encoded or not: read, or refused with a typed reason; never a panic.
        #[test]
        fn any_body_is_read_or_refused(body in prop::collection::vec(any::<u8>(), 0..1024), form in any::<bool>()) {
            let content_type = if form { FORM } else { Some("text/plain") };
            match read(content_type, &body) {
                Ok(r) => prop_assert!(form && !r.subject.is_empty() && !r.scopes.is_empty()),
                Err(refusal) => prop_assert!(!refusal.error().is_empty() && !refusal.description().is_empty()),
            }
        }
    }
}
