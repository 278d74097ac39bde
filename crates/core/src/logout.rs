//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).

use serde::Deserialize;
use serde_json::Value;

use crate::model::{Client, Session, Timestamp};
use crate::secret::hash_token;
use crate::store::{Store, StoreError};
use crate::tokens::{self, Signer};

#[derive(Clone, Debug, Default, Deserialize)]
pub struct LogoutParams {
    pub id_token_hint: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
    pub client_id: Option<String>,
    pub ui_locales: Option<String>,
    /// The confirmation form's CSRF token (see [`confirm_token`]).
    pub confirm: Option<String>,
    /// Set when pforte's own page sent the request again (see the server's logout route).
    pub resent: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum LogoutOutcome {
    /// Logged out; send the browser here (the client's registered URI plus `state`).
    Redirect(String),
    /// Logged out; show the logged-out page.
    LoggedOut,
    /// No proof the request comes from the user or a client: ask the user to confirm.
    Confirm { token: String },
}

#[derive(Debug)]
pub enum LogoutError {
    /// Shown as an error page; never a redirect.
    Page(String),
    Store(StoreError),
}

impl From<StoreError> for LogoutError {
    fn from(e: StoreError) -> Self {
        LogoutError::Store(e)
    }
}

/// The CSRF token of the confirmation form, bound to the browser's session cookie.
pub fn confirm_token(session_cookie: &str) -> String {
    hash_token(&format!("logout-confirm:{session_cookie}"))
}

/// The client's registered post-logout redirect URIs (`##`-separated; `+` means "the
/// redirect URIs"), matched exactly. A client without the attribute gets `+`, as Keycloak
/// gives one imported without it (seen on Keycloak 26.7 with the same realm file): a realm
/// moved from Keycloak keeps its logouts working, and still only to registered URIs.
pub fn post_logout_uri_allowed(client: &Client, uri: &str) -> bool {
    let list = client
        .attributes
        .get("post.logout.redirect.uris")
        .map_or("+", String::as_str);
    list.split("##").any(|entry| {
        if entry == "+" {
            client.redirect_uris.iter().any(|r| r == uri)
        } else {
            entry == uri
        }
    })
}

#[allow(clippy::too_many_arguments)]
pub async fn logout<S: Store>(
    store: &S,
    signer: Signer<'_>,
    params: &LogoutParams,
    session: Option<Session>,
    session_cookie: Option<&str>,
    now: Timestamp,
) -> Result<LogoutOutcome, LogoutError> {
    let hint = match params.id_token_hint.as_deref().filter(|h| !h.is_empty()) {
        Some(h) => Some(
            // An expired ID token is still a fine hint: it proves which client and session.
            tokens::verify_own(h, signer.keys, signer.issuer, "JWT", now, false)
                .map_err(|_| LogoutError::Page("Invalid parameter: id_token_hint".into()))?,
        ),
        None => None,
    };
    let hint_client = hint
        .as_ref()
        .and_then(|c| c.get("azp").and_then(Value::as_str).map(str::to_owned));
    let client_id = match (
        hint_client,
        params.client_id.as_deref().filter(|c| !c.is_empty()),
    ) {
        (Some(h), Some(p)) if h != p => {
            return Err(LogoutError::Page(
                "client_id does not match the id_token_hint".into(),
            ));
        }
        (Some(h), _) => Some(h),
        (None, p) => p.map(str::to_owned),
    };
    let redirect = match params
        .post_logout_redirect_uri
        .as_deref()
        .filter(|u| !u.is_empty())
    {
        None => None,
        Some(uri) => {
            let Some(cid) = &client_id else {
                return Err(LogoutError::Page(
                    "post_logout_redirect_uri needs id_token_hint or client_id".into(),
                ));
            };
            if cid.contains('\0') {
                return Err(LogoutError::Page("Client not found".into()));
            }
            let client = store
                .get_client(&signer.realm.name, cid)
                .await?
                .ok_or_else(|| LogoutError::Page(format!("Client not found: {cid}")))?;
            if !post_logout_uri_allowed(&client, uri) {
                return Err(LogoutError::Page("Invalid redirect uri".into()));
            }
            Some(uri.to_owned())
        }
    };

    let confirmed = match (params.confirm.as_deref(), session_cookie) {
        (Some(t), Some(cookie)) => aws_lc_rs::constant_time::verify_slices_are_equal(
            t.as_bytes(),
            confirm_token(cookie).as_bytes(),
        )
        .is_ok(),
        _ => false,
    };
    // A hint proves the request comes from a client of *this* browser session only when it
    // names that session: any other ID token of the realm (an expired one, another user's)
    // is easy to come by, and a plain cross-site link must not end someone's session.
    // Keycloak forces the confirmation in the same case.
    let hint_names_session = match (&hint, &session) {
        (Some(claims), Some(s)) => claims.get("sid").and_then(Value::as_str) == Some(&*s.id),
        _ => false,
    };
    if !hint_names_session
        && !confirmed
        && let (Some(_), Some(cookie)) = (&session, session_cookie)
    {
        return Ok(LogoutOutcome::Confirm {
            token: confirm_token(cookie),
        });
    }

    // Only the browser's own session ends. A hint alone, without the browser's cookie, ends
    // nothing: an old ID token turns up in logs and histories, and would let anyone log its
    // user out with a plain HTTP request. (A cross-site POST arrives without the SameSite=Lax
    // cookie; the server has the browser send it again from pforte's own page first.)
    if let Some(s) = &session {
        store.delete_session(&s.id).await?;
    }
    Ok(match redirect {
        Some(mut uri) => {
            if let Some(state) = params
                .state
                .as_deref()
                .filter(|s| !s.is_empty() && s.len() <= 4096)
            {
                uri.push(if uri.contains('?') { '&' } else { '?' });
                uri.push_str("state=");
                uri.push_str(&crate::oauth::urlencode(state));
            }
            LogoutOutcome::Redirect(uri)
        }
        None => LogoutOutcome::LoggedOut,
    })
}
