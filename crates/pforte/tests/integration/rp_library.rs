//! The whole code + PKCE flow driven by a real relying-party library (`openidconnect`), so
//! that pforte is checked against someone else's reading of the specifications: discovery,
//! login, token response, ID-token validation (signature via JWKS, `iss`, `aud`, `exp`,
//! nonce, `at_hash`), userinfo, refresh, introspection, revocation and RP-initiated logout.

use std::future::Future;
use std::pin::Pin;

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClaimName, CoreClaimType,
    CoreClient, CoreClientAuthMethod, CoreErrorResponseType, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode,
    CoreResponseType, CoreRevocableToken, CoreSubjectIdentifierType, CoreTokenResponse,
    CoreUserInfoClaims,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AdditionalProviderMetadata, AsyncHttpClient, AuthorizationCode,
    ClientId, ClientSecret, CsrfToken, EndSessionUrl, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, HttpClientError, HttpRequest, HttpResponse, IntrospectionUrl, IssuerUrl,
    LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    PostLogoutRedirectUrl, ProviderMetadata, RedirectUrl, RefreshToken, RequestTokenError,
    RevocationUrl, Scope, StandardErrorResponse, TokenIntrospectionResponse, TokenResponse,
    UserInfoError,
};
use pforte_testkit::{Browser, Callback, TestServer, callback};
use reqwest::header::SET_COOKIE;
use serde::{Deserialize, Serialize};

const REDIRECT: &str = "http://127.0.0.1:8082/callback";
const POST_LOGOUT: &str = "http://127.0.0.1:8082/";
const INTROSPECTOR: &str = "token-exchange-client";
const INTROSPECTOR_SECRET: &str = "dev-exchange-secret-change-me";

/// The relying party's HTTP transport: reqwest without redirects (a client must never follow
/// a provider's redirect with its credentials).
///
/// `openidconnect` refuses a revocation endpoint that is not `https` (RFC 7009 §2). The test
/// server speaks plain HTTP on 127.0.0.1, so this transport stands in for a TLS-terminating
/// proxy in front of it: an `https://127.0.0.1:…` request is sent as `http://127.0.0.1:…`.
/// Nothing else is rewritten.
pub struct RpHttp {
    client: reqwest::Client,
}

impl RpHttp {
    pub fn new() -> Self {
        RpHttp {
            client: pforte_testkit::http_client(),
        }
    }
}

impl<'c> AsyncHttpClient<'c> for RpHttp {
    type Error = HttpClientError<reqwest::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let mut url = reqwest::Url::parse(&parts.uri.to_string())
                .map_err(|e| HttpClientError::Other(format!("bad request URL: {e}")))?;
            if url.scheme() == "https" && url.host_str() == Some("127.0.0.1") {
                url.set_scheme("http")
                    .map_err(|()| HttpClientError::Other("cannot downgrade the scheme".into()))?;
            }
            let res = self
                .client
                .request(parts.method, url)
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(Box::new)?;
            let mut builder = openidconnect::http::Response::builder()
                .status(res.status())
                .version(res.version());
            for (name, value) in res.headers() {
                builder = builder.header(name, value);
            }
            let bytes = res.bytes().await.map_err(Box::new)?;
            builder.body(bytes.to_vec()).map_err(HttpClientError::Http)
        })
    }
}

/// The endpoints pforte's discovery document lists beyond OpenID Connect Discovery's core set.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct PforteEndpoints {
    pub end_session_endpoint: EndSessionUrl,
    pub revocation_endpoint: RevocationUrl,
    pub introspection_endpoint: IntrospectionUrl,
}

impl AdditionalProviderMetadata for PforteEndpoints {}

pub type PforteProviderMetadata = ProviderMetadata<
    PforteEndpoints,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// `demo-app` as the library builds it from discovery, plus the revocation endpoint.
type RpClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

type TokenError = RequestTokenError<
    HttpClientError<reqwest::Error>,
    StandardErrorResponse<CoreErrorResponseType>,
>;

/// What a relying party keeps between sending the user off and receiving the callback.
struct PendingLogin {
    url: String,
    csrf: CsrfToken,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
}

fn start_login(client: &RpClient, prompt_none: bool) -> PendingLogin {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge);
    if prompt_none {
        req = req.add_prompt(CoreAuthPrompt::None);
    }
    let (url, csrf, nonce) = req.url();
    PendingLogin {
        url: url.to_string(),
        csrf,
        nonce,
        verifier,
    }
}

/// What the relying party checks on every authorization response: its redirect URI, its
/// state, and the issuer (RFC 9207).
fn check_callback(cb: &Callback, pending: &PendingLogin, issuer: &str) {
    assert!(
        cb.location.starts_with(&format!("{REDIRECT}?")),
        "not at the redirect URI: {}",
        cb.location
    );
    assert_eq!(
        cb.get("state"),
        Some(pending.csrf.secret().as_str()),
        "{}",
        cb.location
    );
    assert_eq!(cb.get("iss"), Some(issuer), "{}", cb.location);
}

async fn redeem(
    client: &RpClient,
    http: &RpHttp,
    code: &str,
    verifier: PkceCodeVerifier,
) -> CoreTokenResponse {
    client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(http)
        .await
        .unwrap_or_else(|e| panic!("code redemption failed: {}", describe(&e)))
}

async fn refresh(
    client: &RpClient,
    http: &RpHttp,
    token: &RefreshToken,
) -> Result<CoreTokenResponse, TokenError> {
    client
        .exchange_refresh_token(token)
        .unwrap()
        .request_async(http)
        .await
}

fn describe(e: &TokenError) -> String {
    match e {
        RequestTokenError::ServerResponse(r) => {
            format!("{:?}: {:?}", r.error(), r.error_description())
        }
        RequestTokenError::Parse(e, body) => {
            format!(
                "unparsable response ({e}): {}",
                String::from_utf8_lossy(body)
            )
        }
        other => format!("{other:?}"),
    }
}

fn assert_invalid_grant(result: Result<CoreTokenResponse, TokenError>, what: &str) {
    match result {
        Err(RequestTokenError::ServerResponse(r)) => {
            assert_eq!(
                *r.error(),
                CoreErrorResponseType::InvalidGrant,
                "{what}: {r:?}"
            );
        }
        Err(e) => panic!("{what}: expected invalid_grant, got {}", describe(&e)),
        Ok(_) => panic!("{what}: expected invalid_grant, got tokens"),
    }
}

/// Validates the ID token the way the library does (signature with the discovered JWKS,
/// `iss`, `aud`, `exp`, the nonce rule given) and checks `at_hash` against the access token.
/// Returns `(sub, auth_time)`.
fn validate_id_token(
    client: &RpClient,
    issuer: &str,
    tokens: &CoreTokenResponse,
    nonce: impl openidconnect::NonceVerifier,
) -> (String, i64) {
    let id_token = tokens
        .id_token()
        .expect("no ID token in the token response");
    let verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&verifier, nonce)
        .unwrap_or_else(|e| panic!("the library rejects the ID token: {e:?}"));
    assert_eq!(claims.issuer().as_str(), issuer);
    assert_eq!(
        claims
            .audiences()
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>(),
        ["demo-app"]
    );
    assert_eq!(
        claims.authorized_party().map(|a| a.as_str()),
        Some("demo-app")
    );
    assert_eq!(
        claims.preferred_username().map(|u| u.as_str()),
        Some("alice"),
        "profile scope releases preferred_username"
    );
    assert_eq!(
        claims.email().map(|e| e.as_str()),
        Some("alice@example.org"),
        "email scope releases email"
    );
    assert_eq!(claims.email_verified(), Some(true));

    let expected = claims
        .access_token_hash()
        .expect("the ID token has no at_hash although it comes with an access token");
    let actual = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(&actual, expected, "at_hash does not match the access token");

    let auth_time = claims.auth_time().expect("no auth_time").timestamp();
    (claims.subject().as_str().to_owned(), auth_time)
}

/// RFC 7662 through the library, as the confidential `token-exchange-client`.
async fn introspect(
    introspector: &CoreClient<
        EndpointSet,
        EndpointNotSet,
        EndpointSet,
        EndpointNotSet,
        EndpointMaybeSet,
        EndpointMaybeSet,
    >,
    http: &RpHttp,
    token: &str,
    hint: &str,
) -> openidconnect::core::CoreTokenIntrospectionResponse {
    introspector
        .introspect(&AccessToken::new(token.to_owned()))
        .set_token_type_hint(hint.to_owned())
        .request_async(http)
        .await
        .unwrap_or_else(|e| panic!("introspection failed: {e:?}"))
}

#[tokio::test]
async fn openidconnect_library_drives_the_whole_flow() {
    let server = TestServer::start().await;
    let http = RpHttp::new();
    let issuer = server.url("/realms/demo");

    // Discovery (and the JWKS behind it) as the library reads them.
    let metadata =
        PforteProviderMetadata::discover_async(IssuerUrl::new(issuer.clone()).unwrap(), &http)
            .await
            .unwrap_or_else(|e| panic!("discovery failed: {e:?}"));
    assert_eq!(metadata.issuer().as_str(), issuer);
    assert!(
        !metadata.jwks().keys().is_empty(),
        "discovery fetched no signing keys"
    );
    let endpoints = metadata.additional_metadata().clone();
    let oidc = format!("{issuer}/protocol/openid-connect");
    assert_eq!(
        endpoints.revocation_endpoint.as_str(),
        format!("{oidc}/revoke")
    );
    assert_eq!(
        endpoints.introspection_endpoint.as_str(),
        format!("{oidc}/token/introspect")
    );
    assert_eq!(
        endpoints.end_session_endpoint.as_str(),
        format!("{oidc}/logout")
    );
    // Behind the (simulated) TLS terminator; see `RpHttp`.
    let revocation = RevocationUrl::new(
        endpoints
            .revocation_endpoint
            .as_str()
            .replacen("http://", "https://", 1),
    )
    .unwrap();

    let client: RpClient = CoreClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new("demo-app".into()),
        None,
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap())
    .set_revocation_url(revocation);
    let introspector = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(INTROSPECTOR.into()),
        Some(ClientSecret::new(INTROSPECTOR_SECRET.into())),
    )
    .set_introspection_url(endpoints.introspection_endpoint.clone());

    // Login: the library's authorization URL, alice at the login page.
    let mut browser = Browser::new();
    let pending = start_login(&client, false);
    let form = browser.open_login(&pending.url).await;
    let res = browser
        .submit_login(&server.base_url, &form, "alice", "alice")
        .await;
    let cb = callback(&res);
    check_callback(&cb, &pending, &issuer);
    let code = cb.get("code").expect("no code in the callback").to_owned();

    // Tokens, and the ID token validated by the library.
    let verifier_secret = pending.verifier.secret().clone();
    let tokens = redeem(&client, &http, &code, pending.verifier).await;
    assert_eq!(
        tokens.token_type(),
        &openidconnect::core::CoreTokenType::Bearer
    );
    assert!(tokens.expires_in().is_some());
    let refresh1 = tokens.refresh_token().expect("no refresh token").clone();
    let (sub, auth_time) = validate_id_token(&client, &issuer, &tokens, &pending.nonce);
    // The nonce check is real: another nonce is refused.
    let wrong = Nonce::new("not-the-nonce-of-this-request".into());
    assert!(
        tokens
            .id_token()
            .unwrap()
            .claims(&client.id_token_verifier(), &wrong)
            .is_err(),
        "the ID token validated against a nonce it was not issued for"
    );

    let at = introspect(
        &introspector,
        &http,
        tokens.access_token().secret(),
        "access_token",
    )
    .await;
    assert!(at.active(), "fresh access token inactive: {at:?}");

    // A code is good once, even with the right verifier.
    let replay = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .unwrap()
        .set_pkce_verifier(PkceCodeVerifier::new(verifier_secret))
        .request_async(&http)
        .await;
    assert_invalid_grant(replay, "code replay");
    let at = introspect(
        &introspector,
        &http,
        tokens.access_token().secret(),
        "access_token",
    )
    .await;
    assert!(
        !at.active(),
        "access token of a replayed code still active: {at:?}"
    );
    // ...and its replay revoked what it issued (RFC 6749 §4.1.2), so start a fresh grant
    // from the SSO session: prompt=none must answer with a code and no login page.
    let pending = start_login(&client, true);
    let res = browser.get(&pending.url).await;
    let cb = callback(&res);
    check_callback(&cb, &pending, &issuer);
    assert_eq!(cb.get("error"), None, "{}", cb.location);
    let code = cb
        .get("code")
        .expect("no code from the SSO session")
        .to_owned();
    let revoked_refresh = refresh1;
    let tokens = redeem(&client, &http, &code, pending.verifier).await;
    let (sub2, auth_time2) = validate_id_token(&client, &issuer, &tokens, &pending.nonce);
    assert_eq!(sub2, sub);
    assert_eq!(
        auth_time2, auth_time,
        "SSO keeps the original authentication time"
    );
    assert_invalid_grant(
        refresh(&client, &http, &revoked_refresh).await,
        "refresh token of a grant whose code was replayed",
    );

    // Userinfo through the library (it checks that `sub` is the ID token's).
    let info: CoreUserInfoClaims = client
        .user_info(
            tokens.access_token().clone(),
            Some(openidconnect::SubjectIdentifier::new(sub.clone())),
        )
        .unwrap()
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("userinfo failed: {e:?}"));
    assert_eq!(info.subject().as_str(), sub);
    assert_eq!(info.email().map(|e| e.as_str()), Some("alice@example.org"));
    assert_eq!(info.preferred_username().map(|u| u.as_str()), Some("alice"));

    // Refresh: a new refresh token, a new ID token without a nonce (OIDC Core §12.2).
    let refresh_a = tokens.refresh_token().expect("no refresh token").clone();
    let refreshed = refresh(&client, &http, &refresh_a)
        .await
        .unwrap_or_else(|e| panic!("refresh failed: {}", describe(&e)));
    let refresh_b = refreshed
        .refresh_token()
        .expect("no refresh token after refresh")
        .clone();
    assert_ne!(
        refresh_b.secret(),
        refresh_a.secret(),
        "the refresh token must rotate"
    );
    assert_ne!(
        refreshed.access_token().secret(),
        tokens.access_token().secret()
    );
    let (sub3, auth_time3) =
        validate_id_token(&client, &issuer, &refreshed, |n: Option<&Nonce>| match n {
            None => Ok(()),
            Some(_) => Err("a refreshed ID token should carry no nonce".to_owned()),
        });
    assert_eq!(sub3, sub);
    assert_eq!(
        auth_time3, auth_time,
        "auth_time is the original authentication's"
    );

    // Introspection as the confidential client.
    let at = introspect(
        &introspector,
        &http,
        refreshed.access_token().secret(),
        "access_token",
    )
    .await;
    assert!(at.active(), "fresh access token inactive: {at:?}");
    assert_eq!(at.client_id().map(|c| c.as_str()), Some("demo-app"));
    assert_eq!(at.sub(), Some(sub.as_str()));
    assert_eq!(at.username(), Some("alice"));
    assert_eq!(at.iss(), Some(issuer.as_str()));
    let scopes: Vec<&str> = at
        .scopes()
        .expect("no scope in the introspection response")
        .iter()
        .map(|s| s.as_str())
        .collect();
    for s in ["openid", "email", "profile"] {
        assert!(scopes.contains(&s), "scope {s} missing from {scopes:?}");
    }
    // A refresh token is its own client's credential: another client, even a confidential
    // one, learns nothing about it (its own client introspecting it: negative_token).
    let rt = introspect(&introspector, &http, refresh_b.secret(), "refresh_token").await;
    assert!(
        !rt.active(),
        "demo-app's refresh token shown to another client: {rt:?}"
    );
    assert_eq!(rt.client_id(), None, "{rt:?}");

    // Revocation by the public client of its own refresh token.
    client
        .revoke_token(CoreRevocableToken::RefreshToken(refresh_b.clone()))
        .unwrap()
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("revocation failed: {e:?}"));
    let at = introspect(
        &introspector,
        &http,
        refreshed.access_token().secret(),
        "access_token",
    )
    .await;
    assert!(
        !at.active(),
        "access token of a revoked grant still active: {at:?}"
    );
    assert_invalid_grant(
        refresh(&client, &http, &refresh_b).await,
        "refresh with a revoked refresh token",
    );

    // Revoking tokens does not end the SSO session: a silent login gives a new grant.
    let pending = start_login(&client, true);
    let res = browser.get(&pending.url).await;
    let cb = callback(&res);
    check_callback(&cb, &pending, &issuer);
    let code = cb
        .get("code")
        .expect("no code from the SSO session")
        .to_owned();
    let tokens = redeem(&client, &http, &code, pending.verifier).await;
    validate_id_token(&client, &issuer, &tokens, &pending.nonce);
    let id_token = tokens.id_token().unwrap().clone();
    let session_cookie = browser
        .cookies
        .get("PFORTE_SESSION")
        .expect("no session cookie in the browser")
        .clone();

    // RP-initiated logout, URL built by the library.
    let logout_state = CsrfToken::new_random();
    let logout_url = LogoutRequest::from(endpoints.end_session_endpoint.clone())
        .set_id_token_hint(&id_token)
        .set_post_logout_redirect_uri(PostLogoutRedirectUrl::new(POST_LOGOUT.into()).unwrap())
        .set_state(logout_state.clone())
        .http_get_url();
    let res = browser.get(logout_url.as_str()).await;
    let cleared = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .any(|c| c.starts_with("PFORTE_SESSION=;") && c.contains("Max-Age=0"));
    let back = callback(&res);
    assert!(
        back.location.starts_with(&format!("{POST_LOGOUT}?")),
        "{}",
        back.location
    );
    assert_eq!(back.get("state"), Some(logout_state.secret().as_str()));
    assert!(cleared, "logout did not clear the session cookie");
    assert!(!browser.cookies.contains_key("PFORTE_SESSION"));

    // The session is gone: prompt=none answers login_required, also when the old cookie is
    // presented again.
    for replay_cookie in [false, true] {
        if replay_cookie {
            browser
                .cookies
                .insert("PFORTE_SESSION".into(), session_cookie.clone());
        }
        let pending = start_login(&client, true);
        let res = browser.get(&pending.url).await;
        let cb = callback(&res);
        check_callback(&cb, &pending, &issuer);
        assert_eq!(
            cb.get("error"),
            Some("login_required"),
            "old cookie replayed: {replay_cookie}; {}",
            cb.location
        );
        assert_eq!(cb.get("code"), None);
    }

    // And the tokens of that session are dead.
    let at = introspect(
        &introspector,
        &http,
        tokens.access_token().secret(),
        "access_token",
    )
    .await;
    assert!(!at.active(), "access token outlived the logout: {at:?}");
    let info: Result<CoreUserInfoClaims, _> = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await;
    match info {
        Err(UserInfoError::Response(status, _, _)) => assert_eq!(status, 401),
        other => panic!("userinfo after logout: {other:?}"),
    }
    assert_invalid_grant(
        refresh(&client, &http, tokens.refresh_token().unwrap()).await,
        "refresh after logout",
    );
}
