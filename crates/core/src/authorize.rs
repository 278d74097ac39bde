//! The authorization endpoint (RFC 6749 §4.1, OIDC Core §3.1.2): validating a request,
//! deciding between the SSO session and the login page, issuing codes.

use serde::{Deserialize, Serialize};

use crate::keys::RealmKeys;
use crate::model::{AuthCode, Client, FlowState, Realm, Session, Timestamp};
use crate::oauth::{ErrorCode, MAX_PARAM_LEN, append_query, with_fragment};
use crate::rng::{self, Rng};
use crate::scope;
use crate::secret::hash_token;
use crate::session;
use crate::store::{Store, StoreError};
use crate::tokens;

/// The request as it arrived (query or form). Everything optional: validation decides.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AuthorizeParams {
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub response_type: Option<String>,
    pub response_mode: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub login_hint: Option<String>,
    pub ui_locales: Option<String>,
    pub acr_values: Option<String>,
    /// An ID token naming the user the client expects (see [`session_for_hint`]).
    pub id_token_hint: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseMode {
    Query,
    /// The parameters after `#` (OAuth 2.0 Multiple Response Types §2.1): asked for with
    /// `response_mode=fragment`, and the default of response types that return tokens, so
    /// the refusal of such a request reaches a client that reads the fragment.
    Fragment,
    FormPost,
}

/// A validated authorization request, kept in flow state while the user logs in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub response_mode: ResponseMode,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt_none: bool,
    pub prompt_login: bool,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    pub ui_locales: Option<String>,
    pub acr_values: Option<String>,
}

/// An answer to the client: where, how, and with which parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthResponse {
    pub redirect_uri: String,
    pub mode: ResponseMode,
    pub params: Vec<(String, String)>,
}

impl AuthResponse {
    /// Where a redirect sends the browser: the parameters in the query or the fragment, by
    /// response mode; `None` for `form_post`, which is a page, not a redirect.
    pub fn location(&self) -> Option<String> {
        match self.mode {
            ResponseMode::Query => Some(append_query(&self.redirect_uri, &self.params)),
            ResponseMode::Fragment => Some(with_fragment(&self.redirect_uri, &self.params)),
            ResponseMode::FormPost => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The client or its redirect URI cannot be trusted: show an error page, never redirect.
    Page(String),
    /// A well-identified client gets the error at its redirect URI.
    Redirect(AuthResponse),
}

fn error_response(
    issuer: &str,
    redirect_uri: &str,
    mode: ResponseMode,
    state: Option<&str>,
    code: ErrorCode,
    description: &str,
) -> AuthResponse {
    let mut params = vec![
        ("error".to_owned(), code.as_str().to_owned()),
        ("error_description".to_owned(), description.to_owned()),
    ];
    if let Some(s) = state {
        params.push(("state".into(), s.to_owned()));
    }
    params.push(("iss".into(), issuer.to_owned()));
    AuthResponse {
        redirect_uri: redirect_uri.to_owned(),
        mode,
        params,
    }
}

/// `http://127.0.0.1:<port>/…` or `http://[::1]:<port>/…` without the port, for RFC 8252
/// §7.3 loopback matching. `localhost` is not a loopback IP literal and matches exactly.
fn loopback_without_port(uri: &str) -> Option<(String, String)> {
    let rest = uri.strip_prefix("http://")?;
    let (host_port, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = if let Some(h) = host_port.strip_prefix("[::1]") {
        if !(h.is_empty() || h.starts_with(':')) {
            return None;
        }
        "[::1]"
    } else {
        let host = host_port.split(':').next()?;
        if host != "127.0.0.1" {
            return None;
        }
        "127.0.0.1"
    };
    let port = host_port[host.len()..].strip_prefix(':').unwrap_or("");
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((host.to_owned(), path.to_owned()))
}

/// Exact matching; for public (native) clients a registered loopback URI matches any port.
pub fn redirect_uri_allowed(client: &Client, uri: &str) -> bool {
    if client.redirect_uris.iter().any(|r| r == uri) {
        return true;
    }
    if !client.public_client {
        return false;
    }
    let Some(presented) = loopback_without_port(uri) else {
        return false;
    };
    client
        .redirect_uris
        .iter()
        .filter_map(|r| loopback_without_port(r))
        .any(|registered| registered == presented)
}

fn too_long(v: &Option<String>) -> bool {
    v.as_ref().is_some_and(|s| s.len() > MAX_PARAM_LEN)
}

/// Validates a request. Errors before the redirect URI is trusted are `Page`s.
pub fn validate(
    issuer: &str,
    client: Option<&Client>,
    p: &AuthorizeParams,
) -> Result<AuthRequest, AuthorizeError> {
    let Some(client_id) = p.client_id.as_deref().filter(|c| !c.is_empty()) else {
        return Err(AuthorizeError::Page("The request has no client_id.".into()));
    };
    if client_id.len() > 255 {
        return Err(AuthorizeError::Page("The client_id is too long.".into()));
    }
    let Some(client) = client.filter(|c| c.enabled) else {
        return Err(AuthorizeError::Page(format!(
            "Client not found: {client_id}"
        )));
    };
    let Some(redirect_uri) = p.redirect_uri.as_deref().filter(|r| !r.is_empty()) else {
        return Err(AuthorizeError::Page(
            "The request has no redirect_uri.".into(),
        ));
    };
    if redirect_uri.len() > MAX_PARAM_LEN || !redirect_uri_allowed(client, redirect_uri) {
        return Err(AuthorizeError::Page(
            "Invalid parameter: redirect_uri".into(),
        ));
    }
    let returns_tokens = p
        .response_type
        .as_deref()
        .is_some_and(|t| t.split(' ').any(|v| v == "token" || v == "id_token"));
    let default_mode = if returns_tokens {
        ResponseMode::Fragment
    } else {
        ResponseMode::Query
    };
    let mode = match p.response_mode.as_deref() {
        None | Some("") => default_mode,
        Some("query") => ResponseMode::Query,
        Some("fragment") => ResponseMode::Fragment,
        Some("form_post") => ResponseMode::FormPost,
        Some(_) => {
            return Err(AuthorizeError::Redirect(error_response(
                issuer,
                redirect_uri,
                default_mode,
                p.state
                    .as_deref()
                    .filter(|s| !s.is_empty() && s.len() <= MAX_PARAM_LEN),
                ErrorCode::InvalidRequest,
                "response_mode must be query, fragment or form_post",
            )));
        }
    };
    let state = p.state.as_deref().filter(|s| !s.is_empty());
    if state.is_some_and(|s| s.len() > MAX_PARAM_LEN) {
        return Err(AuthorizeError::Redirect(error_response(
            issuer,
            redirect_uri,
            mode,
            None,
            ErrorCode::InvalidRequest,
            "state is too long",
        )));
    }
    let fail = |code: ErrorCode, d: &str| {
        AuthorizeError::Redirect(error_response(issuer, redirect_uri, mode, state, code, d))
    };

    match p.response_type.as_deref() {
        Some("code") => {}
        None | Some("") => return Err(fail(ErrorCode::InvalidRequest, "response_type is missing")),
        Some(_) => {
            return Err(fail(
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            ));
        }
    }
    if !client.standard_flow_enabled {
        return Err(fail(
            ErrorCode::UnauthorizedClient,
            "the authorization code flow is not enabled for this client",
        ));
    }
    if p.request.is_some() {
        return Err(fail(
            ErrorCode::RequestNotSupported,
            "request objects are not supported",
        ));
    }
    if p.request_uri.is_some() {
        return Err(fail(
            ErrorCode::RequestUriNotSupported,
            "request_uri is not supported",
        ));
    }
    for (name, v) in [
        ("scope", &p.scope),
        ("nonce", &p.nonce),
        ("code_challenge", &p.code_challenge),
        ("login_hint", &p.login_hint),
        ("ui_locales", &p.ui_locales),
        ("acr_values", &p.acr_values),
        ("prompt", &p.prompt),
        ("max_age", &p.max_age),
    ] {
        if too_long(v) {
            return Err(fail(
                ErrorCode::InvalidRequest,
                &format!("{name} is too long"),
            ));
        }
        // NUL cannot be stored (PostgreSQL text) and is in no legitimate value.
        if v.as_deref().is_some_and(|s| s.contains('\0')) {
            return Err(fail(
                ErrorCode::InvalidRequest,
                &format!("{name} contains a NUL character"),
            ));
        }
    }

    // PKCE (RFC 7636): S256 only; required for public clients and where the client says so.
    let challenge = p.code_challenge.as_deref().filter(|c| !c.is_empty());
    let method = p.code_challenge_method.as_deref().filter(|m| !m.is_empty());
    let required = client.public_client
        || client
            .attributes
            .get("pkce.code.challenge.method")
            .is_some_and(|m| m == "S256");
    match (challenge, method) {
        (None, None) if required => {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "Missing parameter: code_challenge (PKCE with S256 is required for this client)",
            ));
        }
        (None, None) => {}
        (None, Some(_)) => {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "code_challenge_method without code_challenge",
            ));
        }
        (Some(_), None) | (Some(_), Some("plain")) => {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "Invalid parameter: code_challenge_method (only S256 is accepted; plain is refused)",
            ));
        }
        (Some(c), Some("S256")) => {
            if c.len() != 43
                || !c
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(fail(
                    ErrorCode::InvalidRequest,
                    "Invalid parameter: code_challenge (must be the base64url SHA-256 of the verifier)",
                ));
            }
        }
        (Some(_), Some(_)) => {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "Invalid parameter: code_challenge_method",
            ));
        }
    }

    let prompts: Vec<&str> = p
        .prompt
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let prompt_none = prompts.contains(&"none");
    if prompt_none && prompts.len() > 1 {
        return Err(fail(
            ErrorCode::InvalidRequest,
            "prompt=none cannot be combined with other values",
        ));
    }
    let max_age = match p.max_age.as_deref().filter(|m| !m.is_empty()) {
        None => None,
        Some(m) => Some(m.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
            fail(
                ErrorCode::InvalidRequest,
                "max_age must be a non-negative integer",
            )
        })?),
    };

    Ok(AuthRequest {
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        response_mode: mode,
        scope: scope::grant(client, p.scope.as_deref()),
        state: state.map(str::to_owned),
        nonce: p.nonce.clone().filter(|n| !n.is_empty()),
        code_challenge: challenge.map(str::to_owned),
        code_challenge_method: challenge.map(|_| "S256".to_owned()),
        prompt_none,
        // select_account asks the user to choose an account (OIDC Core §3.1.2.1): with one
        // account per login, that is the login page, as in Keycloak.
        prompt_login: prompts.contains(&"login") || prompts.contains(&"select_account"),
        max_age,
        login_hint: p.login_hint.clone().filter(|h| !h.is_empty()),
        ui_locales: p.ui_locales.clone().filter(|h| !h.is_empty()),
        acr_values: p.acr_values.clone().filter(|h| !h.is_empty()),
    })
}

/// The login flow in progress: the request plus what binds it to one browser.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoginFlow {
    pub request: AuthRequest,
    /// Hash of the browser-binding cookie the flow was started with.
    pub browser: String,
    /// The CSRF token the login form must return.
    pub csrf: String,
}

pub const FLOW_KIND: &str = "login";

/// What the authorization endpoint does next.
#[derive(Clone, Debug)]
pub enum Next {
    /// Answer the client (a code, or an error such as `login_required`).
    Respond(AuthResponse),
    /// Show the login page for this flow.
    Login {
        flow_id: String,
        flow: Box<LoginFlow>,
    },
}

/// The SSO session, if an `id_token_hint` allows using it. The hint names the user the
/// client expects (OIDC Core §3.1.2.1): the session of anyone else must not answer for
/// them — with `prompt=none` that is `login_required`, otherwise the login page. A hint
/// pforte cannot verify (another issuer's, altered) names no one; an expired one is fine,
/// it still says who.
pub fn session_for_hint(
    session: Option<Session>,
    hint: &str,
    keys: &RealmKeys,
    issuer: &str,
    now: Timestamp,
) -> Option<Session> {
    let claims = tokens::verify_own(hint, keys, issuer, "JWT", now, false).ok()?;
    let sub = claims.get("sub").and_then(serde_json::Value::as_str)?;
    session.filter(|s| s.user_id == sub)
}

/// After validation: use the SSO session if it satisfies the request, else start a login
/// flow bound to `browser` (the browser cookie's value).
#[allow(clippy::too_many_arguments)]
pub async fn start<S: Store>(
    store: &S,
    realm: &Realm,
    issuer: &str,
    req: AuthRequest,
    session: Option<Session>,
    browser: &str,
    now: Timestamp,
    rng: &dyn Rng,
) -> Result<Next, StoreError> {
    // max_age=0 asks for a fresh login like prompt=login (OIDC Core §3.1.2.1): with
    // whole-second timestamps, `now - auth_time <= 0` would still accept a login of this
    // very second.
    let usable = session.filter(|s| {
        !req.prompt_login
            && req
                .max_age
                .is_none_or(|max| max > 0 && now - s.auth_time <= max)
    });
    if let Some(s) = usable {
        // A session answers only for a user who may still log in: a disabled or deleted
        // user's session would hand out codes the token endpoint refuses, and with
        // prompt=none the app could never send the user to the login page again. Such a
        // session is over, and the request goes on as without one.
        let user = store.get_user(&realm.name, &s.user_id).await?;
        if !user.is_some_and(|u| u.enabled) {
            store.delete_session(&s.id).await?;
        } else {
            // Using the session is activity: without this, a user moving between
            // applications by redirect (or an app renewing silently with prompt=none) would
            // hit the idle timeout counted from the login, however active.
            if session::needs_touch(&s, now) {
                store.touch_session(&s.id, now).await?;
            }
            return Ok(Next::Respond(
                issue_code(store, realm, issuer, &req, &s, now, rng).await?,
            ));
        }
    }
    if req.prompt_none {
        return Ok(Next::Respond(error_response(
            issuer,
            &req.redirect_uri,
            req.response_mode,
            req.state.as_deref(),
            ErrorCode::LoginRequired,
            "the user is not logged in and prompt=none was requested",
        )));
    }
    let flow_id = rng::token(rng, 24);
    let flow = LoginFlow {
        request: req,
        browser: hash_token(browser),
        csrf: rng::token(rng, 24),
    };
    let data = serde_json::to_string(&flow).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    store
        .put_flow(&FlowState {
            id: flow_id.clone(),
            realm: realm.name.clone(),
            kind: FLOW_KIND.into(),
            data,
            expires_at: now + realm.access_code_lifespan_login,
        })
        .await?;
    Ok(Next::Login {
        flow_id,
        flow: Box::new(flow),
    })
}

/// Issues a code for `session` and builds the success response (with `iss`, RFC 9207).
pub async fn issue_code<S: Store>(
    store: &S,
    realm: &Realm,
    issuer: &str,
    req: &AuthRequest,
    session: &Session,
    now: Timestamp,
    rng: &dyn Rng,
) -> Result<AuthResponse, StoreError> {
    let code = rng::token(rng, 32);
    store
        .insert_code(&AuthCode {
            code_hash: hash_token(&code),
            realm: realm.name.clone(),
            client_id: req.client_id.clone(),
            user_id: session.user_id.clone(),
            session_id: session.id.clone(),
            grant_id: rng::uuid(rng),
            redirect_uri: req.redirect_uri.clone(),
            scope: req.scope.clone(),
            nonce: req.nonce.clone(),
            code_challenge: req.code_challenge.clone(),
            code_challenge_method: req.code_challenge_method.clone(),
            auth_time: session.auth_time,
            acr: session.acr.clone(),
            expires_at: now + realm.access_code_lifespan,
        })
        .await?;
    let mut params = vec![("code".to_owned(), code)];
    if let Some(s) = &req.state {
        params.push(("state".into(), s.clone()));
    }
    params.push(("session_state".into(), session.id.clone()));
    params.push(("iss".into(), issuer.to_owned()));
    Ok(AuthResponse {
        redirect_uri: req.redirect_uri.clone(),
        mode: req.response_mode,
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://id.example/realms/r";
    const CB: &str = "https://app.example/cb";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn client() -> Client {
        Client {
            redirect_uris: vec![
                CB.into(),
                "http://127.0.0.1/native".into(),
                "http://[::1]/v6".into(),
            ],
            ..Client::test_public()
        }
    }

    fn params(extra: &[(&str, &str)]) -> AuthorizeParams {
        let mut query = vec![
            ("client_id", "c"),
            ("redirect_uri", CB),
            ("response_type", "code"),
            ("state", "s"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ];
        for (k, v) in extra {
            query.retain(|(name, _)| name != k);
            if !v.is_empty() {
                query.push((k, v));
            }
        }
        let mut p = AuthorizeParams::default();
        for (k, v) in query {
            let v = Some(v.to_owned());
            match k {
                "client_id" => p.client_id = v,
                "redirect_uri" => p.redirect_uri = v,
                "response_type" => p.response_type = v,
                "response_mode" => p.response_mode = v,
                "state" => p.state = v,
                "code_challenge" => p.code_challenge = v,
                "code_challenge_method" => p.code_challenge_method = v,
                "prompt" => p.prompt = v,
                "max_age" => p.max_age = v,
                "acr_values" => p.acr_values = v,
                "request" => p.request = v,
                "request_uri" => p.request_uri = v,
                other => panic!("unknown parameter {other}"),
            }
        }
        p
    }

    /// The error a refused request is answered with: `Page(message)` or the redirect's
    /// `error` (after checking that the redirect carries `state` and `iss`).
    fn refusal(client: &Client, extra: &[(&str, &str)]) -> String {
        match validate(ISS, Some(client), &params(extra)) {
            Ok(r) => panic!("accepted: {r:?}"),
            Err(AuthorizeError::Page(m)) => format!("page: {m}"),
            Err(AuthorizeError::Redirect(r)) => {
                let get = |k: &str| {
                    r.params
                        .iter()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.as_str())
                };
                assert_eq!(get("iss"), Some(ISS), "{r:?}");
                assert_eq!(r.redirect_uri, CB);
                get("error").unwrap_or_default().to_owned()
            }
        }
    }

    #[test]
    fn untrusted_clients_and_redirect_uris_get_a_page() {
        let disabled = Client {
            enabled: false,
            ..client()
        };
        assert_eq!(refusal(&disabled, &[]), "page: Client not found: c");
        assert!(matches!(
            validate(ISS, None, &params(&[])),
            Err(AuthorizeError::Page(_))
        ));
        for uri in [
            "https://app.example/cb/",
            "https://app.example/cb?x=1",
            "https://APP.example/cb",
            "http://127.0.0.1:8080/other",
        ] {
            assert_eq!(
                refusal(&client(), &[("redirect_uri", uri)]),
                "page: Invalid parameter: redirect_uri",
                "{uri}"
            );
        }
    }

    #[test]
    fn loopback_ports_vary_for_public_clients_only() {
        for uri in ["http://127.0.0.1:53123/native", "http://[::1]:8080/v6"] {
            let ok = validate(ISS, Some(&client()), &params(&[("redirect_uri", uri)]));
            assert!(ok.is_ok(), "{uri}: {ok:?}");
        }
        let confidential = Client {
            public_client: false,
            ..client()
        };
        assert_eq!(
            refusal(
                &confidential,
                &[("redirect_uri", "http://127.0.0.1:53123/native")]
            ),
            "page: Invalid parameter: redirect_uri"
        );
        // The path must still match, and only IP literals count as loopback.
        assert!(
            validate(
                ISS,
                Some(&client()),
                &params(&[("redirect_uri", "http://127.0.0.1:53123/other")])
            )
            .is_err()
        );
        assert!(
            validate(
                ISS,
                Some(&client()),
                &params(&[("redirect_uri", "http://localhost:53123/native")])
            )
            .is_err()
        );
    }

    #[test]
    fn refusals_at_the_redirect_uri() {
        let c = client();
        for (extra, error) in [
            (vec![("request", "eyJ...")], "request_not_supported"),
            (
                vec![("request_uri", "https://x/r")],
                "request_uri_not_supported",
            ),
            (vec![("prompt", "none login")], "invalid_request"),
            (vec![("max_age", "-1")], "invalid_request"),
            (vec![("max_age", "ten")], "invalid_request"),
            (
                vec![("response_type", "token")],
                "unsupported_response_type",
            ),
            (vec![("response_mode", "jwt")], "invalid_request"),
            (vec![("code_challenge_method", "plain")], "invalid_request"),
            (
                vec![("code_challenge", ""), ("code_challenge_method", "")],
                "invalid_request",
            ),
            (vec![("code_challenge", "short")], "invalid_request"),
        ] {
            assert_eq!(refusal(&c, &extra), error, "{extra:?}");
        }
        let no_flow = Client {
            standard_flow_enabled: false,
            ..client()
        };
        assert_eq!(refusal(&no_flow, &[]), "unauthorized_client");
    }

    #[test]
    fn accepted_parameters_are_kept() {
        let r = validate(
            ISS,
            Some(&client()),
            &params(&[
                ("acr_values", "gematik-ehealth-loa-high"),
                ("max_age", "300"),
                ("prompt", "login"),
            ]),
        )
        .unwrap();
        assert_eq!(r.acr_values.as_deref(), Some("gematik-ehealth-loa-high"));
        assert_eq!(r.max_age, Some(300));
        assert!(r.prompt_login && !r.prompt_none);
        assert_eq!(r.state.as_deref(), Some("s"));
        // A confidential client may leave PKCE out; if it sends S256, it is held to it.
        let confidential = Client {
            public_client: false,
            ..client()
        };
        let r = validate(
            ISS,
            Some(&confidential),
            &params(&[("code_challenge", ""), ("code_challenge_method", "")]),
        )
        .unwrap();
        assert_eq!(r.code_challenge, None);
        let r = validate(ISS, Some(&confidential), &params(&[])).unwrap();
        assert_eq!(r.code_challenge.as_deref(), Some(CHALLENGE));
    }
}
