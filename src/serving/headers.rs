//! Header rules of the front, pure: request ids (azmlinfsrv's), key auth and CORS.

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};

use hyper::HeaderMap;
use hyper::header::HeaderValue;
use sha2::{Digest, Sha256};

/// azmlinfsrv's limit on request-id headers; longer ones get 431.
pub const REQUEST_ID_LIMIT: usize = 100;

/// The id headers a response carries, from azmlinfsrv's `_init_headers`.
#[derive(Debug, PartialEq)]
pub struct RequestIds {
    /// `x-request-id`: the client's, or a new UUID4.
    pub request_id: HeaderValue,
    /// `x-ms-request-id` (deprecated): the client's own, else the client id, else `request_id`.
    pub ms_request_id: HeaderValue,
    /// `x-ms-client-request-id`: the client's, else its legacy `x-ms-request-id`; absent if neither.
    pub client_request_id: Option<HeaderValue>,
}

/// Computes the id headers, or the 431 message when one is longer than 100 characters.
/// `new_id` is called only when the client sent no `x-request-id`.
pub fn request_ids(
    headers: &HeaderMap,
    new_id: impl FnOnce() -> HeaderValue,
) -> Result<RequestIds, &'static str> {
    let non_empty = |name: &str| headers.get(name).filter(|v| !v.is_empty()).cloned();
    let request_id = match headers.get("x-request-id") {
        Some(id) => id.clone(),
        None => new_id(),
    };
    if request_id.len() > REQUEST_ID_LIMIT {
        return Err("x-request-id must not exceed 100 characters");
    }
    let legacy = non_empty("x-ms-request-id");
    let client = non_empty("x-ms-client-request-id");
    let (ms_request_id, client_request_id) = match legacy {
        Some(legacy) => {
            let client = client.unwrap_or_else(|| legacy.clone());
            (legacy, Some(client))
        }
        None => (client.clone().unwrap_or_else(|| request_id.clone()), client),
    };
    if ms_request_id.len() > REQUEST_ID_LIMIT
        || client_request_id
            .as_ref()
            .is_some_and(|c| c.len() > REQUEST_ID_LIMIT)
    {
        return Err("x-ms-request-id and x-ms-client-request-id must not exceed 100 characters");
    }
    Ok(RequestIds {
        request_id,
        ms_request_id,
        client_request_id,
    })
}

thread_local! {
    static ID_STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(std::thread::current().id()));
}

/// A random (version 4) UUID as a header value. Request ids need uniqueness, not secrecy, so a
/// per-thread SplitMix64 seeded from the OS replaces a `getrandom` call per request.
pub fn new_uuid4() -> HeaderValue {
    let next = || {
        ID_STATE.with(|state| {
            let mut z = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
            state.set(z);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
    };
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&next().to_le_bytes());
    bytes[8..].copy_from_slice(&next().to_le_bytes());
    let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid.hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).expect("a UUID is a valid header value")
}

/// Checks `Authorization: Bearer <key>` against the accepted keys' SHA-256 digests. Every digest
/// is compared in full, so the time taken does not depend on which one (or how much) matched.
pub fn key_accepted(headers: &HeaderMap, accepted: &[[u8; 32]]) -> bool {
    let Some(value) = headers.get(hyper::header::AUTHORIZATION) else {
        return false;
    };
    let value = value.as_bytes();
    let Some(key) = value
        .get(7..)
        .filter(|_| value[..7].eq_ignore_ascii_case(b"bearer "))
    else {
        return false;
    };
    let key = key.trim_ascii();
    if key.is_empty() {
        return false;
    }
    let digest: [u8; 32] = Sha256::digest(key).into();
    let mut matched = 0u8;
    for candidate in accepted {
        let mut diff = 0u8;
        for (a, b) in digest.iter().zip(candidate) {
            diff |= a ^ b;
        }
        matched |= std::hint::black_box(diff == 0) as u8;
    }
    matched == 1
}

/// CORS as azmlinfsrv configures flask-cors: the listed origins (or `*`), methods GET and POST.
#[derive(Debug, Default)]
pub struct Cors {
    origins: Vec<String>,
    any: bool,
}

impl Cors {
    pub fn new(origins: &[String]) -> Cors {
        Cors {
            any: origins.iter().any(|o| o == "*"),
            origins: origins
                .iter()
                .filter(|o| *o != "*")
                .map(|o| o.to_ascii_lowercase())
                .collect(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.any || !self.origins.is_empty()
    }

    /// Adds the CORS response headers when the request's Origin is allowed.
    pub fn apply(&self, request: &HeaderMap, response: &mut HeaderMap) {
        let Some(origin) = request.get(hyper::header::ORIGIN) else {
            return;
        };
        let allowed = self.any
            || origin.to_str().is_ok_and(|o| {
                self.origins
                    .iter()
                    .any(|allowed| allowed.eq_ignore_ascii_case(o))
            });
        if !allowed {
            return;
        }
        response.insert(hyper::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        response.append(hyper::header::VARY, HeaderValue::from_static("Origin"));
        if is_preflight(request) {
            response.insert(
                hyper::header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST"),
            );
            if let Some(asked) = request.get(hyper::header::ACCESS_CONTROL_REQUEST_HEADERS) {
                response.insert(hyper::header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
            }
        }
    }
}

/// A CORS preflight: browsers send it without credentials, so key auth cannot apply to it.
pub fn is_preflight(request: &HeaderMap) -> bool {
    request.contains_key(hyper::header::ORIGIN)
        && request.contains_key(hyper::header::ACCESS_CONTROL_REQUEST_METHOD)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn fixed() -> HeaderValue {
        HeaderValue::from_static("new-id")
    }

    #[test]
    fn request_ids_follow_azmlinfsrv() {
        let ids = request_ids(&HeaderMap::new(), fixed).unwrap();
        assert_eq!(
            (ids.request_id.clone(), ids.ms_request_id.clone()),
            (fixed(), fixed())
        );
        assert_eq!(ids.client_request_id, None);

        let ids = request_ids(
            &headers(&[("x-request-id", "r"), ("x-ms-client-request-id", "c")]),
            fixed,
        )
        .unwrap();
        assert_eq!(ids.request_id, "r");
        assert_eq!(ids.ms_request_id, "c");
        assert_eq!(ids.client_request_id.unwrap(), "c");

        let ids = request_ids(&headers(&[("x-ms-request-id", "legacy")]), fixed).unwrap();
        assert_eq!(ids.request_id, "new-id");
        assert_eq!(ids.ms_request_id, "legacy");
        assert_eq!(ids.client_request_id.unwrap(), "legacy");
    }

    #[test]
    fn request_ids_longer_than_100_are_refused() {
        let long = "x".repeat(101);
        assert_eq!(
            request_ids(&headers(&[("x-request-id", &long)]), fixed),
            Err("x-request-id must not exceed 100 characters")
        );
        assert!(request_ids(&headers(&[("x-ms-client-request-id", &long)]), fixed).is_err());
        assert!(request_ids(&headers(&[("x-ms-request-id", &long)]), fixed).is_err());
        assert!(request_ids(&headers(&[("x-request-id", &"x".repeat(100))]), fixed).is_ok());
    }

    #[test]
    fn uuid4s_are_well_formed_and_distinct() {
        let a = new_uuid4();
        let b = new_uuid4();
        assert_ne!(a, b);
        let text = a.to_str().unwrap();
        let parsed = uuid::Uuid::parse_str(text).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(text.len(), 36);
    }

    #[test]
    fn keys_are_checked_by_digest_with_a_bearer_scheme() {
        let digest: [u8; 32] = Sha256::digest(b"s3cret").into();
        let other: [u8; 32] = Sha256::digest(b"other").into();
        let accepted = [other, digest];
        assert!(key_accepted(
            &headers(&[("authorization", "Bearer s3cret")]),
            &accepted
        ));
        assert!(key_accepted(
            &headers(&[("authorization", "bearer  s3cret ")]),
            &accepted
        ));
        assert!(!key_accepted(
            &headers(&[("authorization", "Bearer wrong")]),
            &accepted
        ));
        assert!(!key_accepted(
            &headers(&[("authorization", "s3cret")]),
            &accepted
        ));
        assert!(!key_accepted(
            &headers(&[("authorization", "Bearer ")]),
            &accepted
        ));
        assert!(!key_accepted(&HeaderMap::new(), &accepted));
    }

    #[test]
    fn cors_echoes_allowed_origins_and_answers_preflights() {
        let cors = Cors::new(&["https://a.example".to_string()]);
        let mut out = HeaderMap::new();
        cors.apply(&headers(&[("origin", "https://evil.example")]), &mut out);
        assert!(out.is_empty());

        let preflight = headers(&[
            ("origin", "https://A.example"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "content-type, authorization",
            ),
        ]);
        cors.apply(&preflight, &mut out);
        assert_eq!(out["access-control-allow-origin"], "https://A.example");
        assert_eq!(out["access-control-allow-methods"], "GET, POST");
        assert_eq!(
            out["access-control-allow-headers"],
            "content-type, authorization"
        );
        assert_eq!(out["vary"], "Origin");
        assert!(is_preflight(&preflight));

        let any = Cors::new(&["*".to_string()]);
        let mut out = HeaderMap::new();
        any.apply(&headers(&[("origin", "https://b.example")]), &mut out);
        assert_eq!(out["access-control-allow-origin"], "https://b.example");
        assert!(!Cors::new(&[]).enabled());
    }
}
