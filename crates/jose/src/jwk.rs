use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

use crate::{JoseError, b64};

/// A public JSON Web Key (RFC 7517). Only the members pforte needs are modelled; anything else
/// in an incoming JWK is ignored on deserialisation — including private members such as `d`,
/// so a private JWK read by mistake can never be republished with its secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

/// A JWK Set (RFC 7517 §5), as served at `jwks_uri`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl Jwk {
    /// RFC 7638 JWK thumbprint: SHA-256 over the required members in lexicographic order without
    /// whitespace, base64url-encoded. pforte uses it as the `kid` of its own keys, so a kid is
    /// a pure function of the public key.
    pub fn thumbprint(&self) -> Result<String, JoseError> {
        let canonical = self.thumbprint_input()?;
        Ok(b64::encode(
            digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref(),
        ))
    }

    fn thumbprint_input(&self) -> Result<String, JoseError> {
        let members: Vec<(&str, &str)> = match self.kty.as_str() {
            "EC" => vec![
                ("crv", required(&self.crv, "crv")?),
                ("kty", "EC"),
                ("x", required(&self.x, "x")?),
                ("y", required(&self.y, "y")?),
            ],
            // RFC 8037 §2: OKP thumbprints use crv, kty, x.
            "OKP" => vec![
                ("crv", required(&self.crv, "crv")?),
                ("kty", "OKP"),
                ("x", required(&self.x, "x")?),
            ],
            "RSA" => vec![
                ("e", required(&self.e, "e")?),
                ("kty", "RSA"),
                ("n", required(&self.n, "n")?),
            ],
            other => {
                return Err(JoseError::InvalidJwk(format!(
                    "unsupported kty `{other}` (expected EC, OKP or RSA)"
                )));
            }
        };
        // serde_json escapes exactly as RFC 7638 §3 asks (the JSON of the member values).
        let mut out = String::from("{");
        for (i, (name, value)) in members.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&json_string(name)?);
            out.push(':');
            out.push_str(&json_string(value)?);
        }
        out.push('}');
        Ok(out)
    }
}

fn required<'a>(member: &'a Option<String>, name: &str) -> Result<&'a str, JoseError> {
    member
        .as_deref()
        .ok_or_else(|| JoseError::InvalidJwk(format!("missing required member `{name}`")))
}

fn json_string(s: &str) -> Result<String, JoseError> {
    serde_json::to_string(s).map_err(|e| JoseError::InvalidJwk(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

    fn rfc7638_key() -> Jwk {
        serde_json::from_value(serde_json::json!({
            "kty": "RSA",
            "n": RFC7638_N,
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }))
        .unwrap()
    }

    #[test]
    fn rfc7638_section_3_1_example() {
        assert_eq!(
            rfc7638_key().thumbprint().unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn thumbprint_ignores_optional_members() {
        let mut key = rfc7638_key();
        key.kid = None;
        key.alg = None;
        key.use_ = Some("sig".into());
        assert_eq!(
            key.thumbprint().unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn rfc8037_okp_thumbprint() {
        // RFC 8037 Appendix A.3.
        let key = Jwk {
            kty: "OKP".into(),
            crv: Some("Ed25519".into()),
            x: Some("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into()),
            ..Jwk::default()
        };
        assert_eq!(
            key.thumbprint().unwrap(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn thumbprint_needs_required_members() {
        let mut key = rfc7638_key();
        key.e = None;
        let err = key.thumbprint().unwrap_err();
        assert_eq!(err.to_string(), "invalid JWK: missing required member `e`");

        let oct = Jwk {
            kty: "oct".into(),
            ..Jwk::default()
        };
        assert!(matches!(oct.thumbprint(), Err(JoseError::InvalidJwk(_))));
    }

    #[test]
    fn serde_shape() {
        let key = rfc7638_key();
        let json = serde_json::to_value(&key).unwrap();
        assert_eq!(
            json.as_object().unwrap().len(),
            5,
            "None members are skipped"
        );
        assert!(json.get("crv").is_none());

        let with_use: Jwk =
            serde_json::from_str(r#"{"kty":"EC","use":"sig","d":"secret","crv":"P-256"}"#).unwrap();
        assert_eq!(with_use.use_.as_deref(), Some("sig"));
        let back = serde_json::to_string(&with_use).unwrap();
        assert!(back.contains(r#""use":"sig""#));
        assert!(!back.contains("secret"), "private members are dropped");

        let set: Jwks =
            serde_json::from_str(r#"{"keys":[{"kty":"RSA","n":"AQ","e":"AQAB"}]}"#).unwrap();
        assert_eq!(set.keys.len(), 1);
    }
}
