//! Which browser origins may read a client's responses (Keycloak's `webOrigins`): an exact
//! origin, `+` for the origins of the client's redirect URIs, or `*` for any.

use crate::model::Client;

/// `scheme://host[:port]` of an absolute http(s) URI.
pub fn origin_of(uri: &str) -> Option<&str> {
    let scheme_end = uri.find("://")?;
    let scheme = &uri[..scheme_end];
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let rest = &uri[scheme_end + 3..];
    let end = rest
        .find(['/', '?', '#'])
        .map_or(uri.len(), |i| scheme_end + 3 + i);
    Some(&uri[..end])
}

pub fn origin_allowed(client: &Client, origin: &str) -> bool {
    client.web_origins.iter().any(|w| match w.as_str() {
        "*" => true,
        "+" => client
            .redirect_uris
            .iter()
            .any(|r| origin_of(r) == Some(origin)),
        exact => exact.trim_end_matches('/') == origin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(web_origins: &[&str]) -> Client {
        Client {
            redirect_uris: vec!["https://app.example/cb".into()],
            web_origins: web_origins.iter().map(|s| (*s).to_owned()).collect(),
            ..Client::test_public()
        }
    }

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("https://app.example:8443/cb?x=1"),
            Some("https://app.example:8443")
        );
        assert_eq!(origin_of("com.example.app:/cb"), None);
        assert!(origin_allowed(
            &client(&["https://app.example"]),
            "https://app.example"
        ));
        assert!(!origin_allowed(
            &client(&["https://app.example"]),
            "https://evil.example"
        ));
        assert!(!origin_allowed(
            &client(&["https://app.example"]),
            "https://app.example.evil"
        ));
        assert!(origin_allowed(&client(&["+"]), "https://app.example"));
        assert!(!origin_allowed(&client(&["+"]), "http://app.example"));
        assert!(origin_allowed(&client(&["*"]), "https://any.example"));
        assert!(!origin_allowed(&client(&[]), "https://app.example"));
    }
}
