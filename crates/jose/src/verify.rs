use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, ParsedPublicKey,
    RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256, RsaPublicKeyComponents,
};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::{Alg, JoseError, Jwk, b64};

/// Longest compact token accepted. Real ID tokens are a few KiB; the cap bounds the work an
/// attacker can make us do (base64, JSON, hashing) before a signature check fails.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The protected header of a JWS.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Header {
    pub alg: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cty: Option<String>,
    /// Every other header member, as sent.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Header {
    /// Compares `typ` the way RFC 7515 §4.1.9 says to: case-insensitively, and with the
    /// `application/` prefix optional (`at+jwt` equals `application/at+JWT`).
    pub fn typ_is(&self, expected: &str) -> bool {
        fn short(t: &str) -> &str {
            match t.get(..12) {
                Some(p) if p.eq_ignore_ascii_case("application/") => &t[12..],
                _ => t,
            }
        }
        self.typ
            .as_deref()
            .is_some_and(|t| short(t).eq_ignore_ascii_case(short(expected)))
    }
}

/// A token whose signature checked out. Claims are not validated here (`exp`, `aud`, `iss` …
/// belong to the caller, who knows what to expect).
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedJwt {
    pub header: Header,
    pub claims: Map<String, Value>,
}

/// A public key ready to verify signatures. The key is parsed once; verifying does not touch
/// DER or base64 again. Cheap to clone (the parsed key is reference-counted inside aws-lc).
#[derive(Clone)]
pub struct VerifyingKey {
    kid: Option<String>,
    alg: Option<Alg>,
    material: Material,
}

#[derive(Clone)]
enum Material {
    P256(ParsedPublicKey),
    P384(ParsedPublicKey),
    Ed25519(ParsedPublicKey),
    // One parsed key per padding: aws-lc binds the padding to the parsed key.
    Rsa {
        pkcs1: ParsedPublicKey,
        pss: ParsedPublicKey,
        bits: usize,
    },
}

impl Material {
    fn kty(&self) -> &'static str {
        match self {
            Material::P256(_) | Material::P384(_) => "EC",
            Material::Ed25519(_) => "OKP",
            Material::Rsa { .. } => "RSA",
        }
    }

    fn key_for(&self, alg: Alg) -> Option<&ParsedPublicKey> {
        match (self, alg) {
            (Material::P256(k), Alg::ES256)
            | (Material::P384(k), Alg::ES384)
            | (Material::Ed25519(k), Alg::EdDSA)
            | (Material::Rsa { pkcs1: k, .. }, Alg::RS256)
            | (Material::Rsa { pss: k, .. }, Alg::PS256) => Some(k),
            _ => None,
        }
    }
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("VerifyingKey");
        d.field("kty", &self.material.kty());
        if let Material::Rsa { bits, .. } = &self.material {
            d.field("bits", bits);
        }
        d.field("kid", &self.kid).field("alg", &self.alg).finish()
    }
}

impl VerifyingKey {
    /// Builds a verification key from a public JWK: EC P-256/P-384 (`x`, `y`), OKP Ed25519
    /// (`x`) or RSA (`n`, `e`, 2048–8192 bits). A `use` other than `sig` is refused, and so is
    /// an `alg` that does not fit the key type.
    pub fn from_jwk(jwk: &Jwk) -> Result<VerifyingKey, JoseError> {
        if let Some(use_) = jwk.use_.as_deref()
            && use_ != "sig"
        {
            return Err(JoseError::JwkNotForSigning(printable(use_)));
        }
        let material = match jwk.kty.as_str() {
            "EC" => ec_material(jwk)?,
            "OKP" => okp_material(jwk)?,
            "RSA" => rsa_material(jwk)?,
            other => {
                return Err(JoseError::InvalidJwk(format!(
                    "unsupported kty `{}` (expected EC, OKP or RSA)",
                    printable(other)
                )));
            }
        };
        let alg = match jwk.alg.as_deref() {
            None => None,
            Some(name) => {
                let alg = Alg::parse(name).ok_or_else(|| {
                    JoseError::InvalidJwk(format!("unsupported alg `{}`", printable(name)))
                })?;
                if material.key_for(alg).is_none() {
                    return Err(JoseError::InvalidJwk(format!(
                        "alg `{alg}` does not fit a {} key",
                        material.kty()
                    )));
                }
                Some(alg)
            }
        };
        Ok(VerifyingKey {
            kid: jwk.kid.clone(),
            alg,
            material,
        })
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The key's own `alg`, if its JWK named one.
    pub fn alg(&self) -> Option<Alg> {
        self.alg
    }

    /// `EC`, `OKP` or `RSA`.
    pub fn kty(&self) -> &'static str {
        self.material.kty()
    }

    /// Whether this key may verify `alg`: the key type must fit, and a key that names its own
    /// `alg` verifies that algorithm only.
    pub fn can_verify(&self, alg: Alg) -> bool {
        self.alg.is_none_or(|own| own == alg) && self.material.key_for(alg).is_some()
    }

    /// Verifies a raw signature over `signing_input`.
    pub fn verify(
        &self,
        alg: Alg,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<(), JoseError> {
        let key = self
            .alg
            .is_none_or(|own| own == alg)
            .then(|| self.material.key_for(alg))
            .flatten()
            .ok_or_else(|| JoseError::NoMatchingKey {
                alg,
                kid: self.kid.clone(),
            })?;
        key.verify_sig(signing_input, signature)
            .map_err(|_| JoseError::BadSignature)
    }
}

fn member<'a>(jwk: &'a Jwk, value: &'a Option<String>, name: &str) -> Result<Vec<u8>, JoseError> {
    let text = value.as_deref().ok_or_else(|| {
        JoseError::InvalidJwk(format!("{} key without `{name}`", printable(&jwk.kty)))
    })?;
    b64::decode(text).ok_or_else(|| JoseError::InvalidJwk(format!("`{name}` is not base64url")))
}

fn ec_material(jwk: &Jwk) -> Result<Material, JoseError> {
    let crv = jwk.crv.as_deref().unwrap_or_default();
    let (len, alg) = match crv {
        "P-256" => (32, &ECDSA_P256_SHA256_FIXED),
        "P-384" => (48, &ECDSA_P384_SHA384_FIXED),
        other => {
            return Err(JoseError::InvalidJwk(format!(
                "unsupported EC curve `{}` (expected P-256 or P-384)",
                printable(other)
            )));
        }
    };
    let x = member(jwk, &jwk.x, "x")?;
    let y = member(jwk, &jwk.y, "y")?;
    // RFC 7518 §6.2.1.2: coordinates are full-length, never trimmed.
    if x.len() != len || y.len() != len {
        return Err(JoseError::InvalidJwk(format!(
            "{crv} coordinates must be {len} bytes each"
        )));
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    // aws-lc checks the point is on the curve, which stops invalid-curve attacks.
    let key = ParsedPublicKey::new(alg, &point)
        .map_err(|e| JoseError::InvalidJwk(format!("{crv} point rejected: {e}")))?;
    Ok(if len == 32 {
        Material::P256(key)
    } else {
        Material::P384(key)
    })
}

fn okp_material(jwk: &Jwk) -> Result<Material, JoseError> {
    match jwk.crv.as_deref() {
        Some("Ed25519") => {}
        other => {
            return Err(JoseError::InvalidJwk(format!(
                "unsupported OKP curve `{}` (expected Ed25519)",
                printable(other.unwrap_or_default())
            )));
        }
    }
    let x = member(jwk, &jwk.x, "x")?;
    if x.len() != 32 {
        return Err(JoseError::InvalidJwk("Ed25519 `x` must be 32 bytes".into()));
    }
    let key = ParsedPublicKey::new(&ED25519, &x)
        .map_err(|e| JoseError::InvalidJwk(format!("Ed25519 key rejected: {e}")))?;
    Ok(Material::Ed25519(key))
}

fn rsa_material(jwk: &Jwk) -> Result<Material, JoseError> {
    let n = member(jwk, &jwk.n, "n")?;
    let e = member(jwk, &jwk.e, "e")?;
    // Some libraries emit a leading zero octet (RFC 7518 §6.3.1.1 mentions it); aws-lc wants
    // minimal big-endian integers, so trim rather than refuse.
    let n = trim_leading_zeros(&n);
    let e = trim_leading_zeros(&e);
    if e.is_empty() {
        return Err(JoseError::InvalidJwk("RSA exponent is zero".into()));
    }
    let bits = rsa_bits(n);
    if !(2048..=8192).contains(&bits) {
        return Err(JoseError::RsaKeySize { bits });
    }
    let components = RsaPublicKeyComponents { n, e };
    let rejected =
        |e: aws_lc_rs::error::KeyRejected| JoseError::InvalidJwk(format!("RSA key rejected: {e}"));
    Ok(Material::Rsa {
        pkcs1: components
            .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
            .map_err(rejected)?,
        pss: components
            .to_parsed_public_key(&RSA_PSS_2048_8192_SHA256)
            .map_err(rejected)?,
        bits,
    })
}

fn trim_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// Bit length of a big-endian integer without leading zero octets.
pub(crate) fn rsa_bits(n: &[u8]) -> usize {
    match n.first() {
        None => 0,
        Some(&top) => (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

/// Attacker-controlled text (header `alg`, `kid`, JWK members) goes into error messages, which
/// end up in logs and OAuth `error_description`s. Keep it short and to the characters RFC 6749
/// allows there.
pub(crate) fn printable(s: &str) -> String {
    const MAX: usize = 64;
    let mut out: String = s
        .chars()
        .take(MAX)
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if s.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}

/// The three segments of a compact JWS, after the length and shape checks.
struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
    signing_input: &'a str,
}

fn split(token: &str) -> Result<Parts<'_>, JoseError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JoseError::TokenTooLong {
            len: token.len(),
            max: MAX_TOKEN_LEN,
        });
    }
    let mut it = token.split('.');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(header), Some(payload), Some(signature), None) => Ok(Parts {
            header,
            payload,
            signature,
            signing_input: &token[..header.len() + 1 + payload.len()],
        }),
        _ => Err(JoseError::MalformedToken(format!(
            "expected 3 dot-separated segments (compact JWS), found {}",
            token.split('.').count()
        ))),
    }
}

fn parse_header(segment: &str) -> Result<Header, JoseError> {
    let bytes = b64::decode(segment)
        .ok_or_else(|| JoseError::MalformedToken("header is not base64url".into()))?;
    let mut map: Map<String, Value> = serde_json::from_slice(&bytes)
        .map_err(|_| JoseError::MalformedToken("header is not a JSON object".into()))?;
    let alg = match map.remove("alg") {
        Some(Value::String(alg)) => alg,
        Some(_) => {
            return Err(JoseError::MalformedToken(
                "header `alg` is not a string".into(),
            ));
        }
        None => return Err(JoseError::MalformedToken("header has no `alg`".into())),
    };
    let mut text = |name: &str| match map.remove(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(JoseError::MalformedToken(format!(
            "header `{name}` is not a string"
        ))),
    };
    let typ = text("typ")?;
    let kid = text("kid")?;
    let cty = text("cty")?;
    Ok(Header {
        alg,
        typ,
        kid,
        cty,
        other: map,
    })
}

fn parse_claims(segment: &str) -> Result<Map<String, Value>, JoseError> {
    let bytes = b64::decode(segment)
        .ok_or_else(|| JoseError::MalformedToken("payload is not base64url".into()))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(claims)) => Ok(claims),
        _ => Err(JoseError::PayloadNotObject),
    }
}

/// Reads the header WITHOUT verifying anything. For routing only (which issuer, which key
/// set to fetch); never base a decision that grants access on it.
pub fn decode_unverified_header(token: &str) -> Result<Header, JoseError> {
    parse_header(split(token)?.header)
}

/// Reads the claims WITHOUT verifying anything. For routing only (e.g. reading `iss` to pick
/// the upstream whose keys then verify the token); never trust the values.
pub fn decode_unverified_claims(token: &str) -> Result<Map<String, Value>, JoseError> {
    parse_claims(split(token)?.payload)
}

/// Verifies a compact JWS and returns its header and claims.
///
/// The header `alg` must be one pforte knows and be listed in `allowed`; `none` and HMAC never
/// parse, so a public key is never used as an HMAC secret. Only keys whose type fits `alg`
/// (and whose own `alg`, if any, equals it) are tried; with a header `kid`, only keys with
/// that kid. A `crit` header is refused. The payload must be a JSON object.
pub fn verify_jwt(
    token: &str,
    keys: &[VerifyingKey],
    allowed: &[Alg],
) -> Result<VerifiedJwt, JoseError> {
    let parts = split(token)?;
    let header = parse_header(parts.header)?;
    let alg = Alg::parse(&header.alg)
        .filter(|alg| allowed.contains(alg))
        .ok_or_else(|| JoseError::AlgNotAllowed {
            alg: printable(&header.alg),
            allowed: if allowed.is_empty() {
                "no algorithm".into()
            } else {
                allowed
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })?;
    // We implement no extensions, and RFC 7515 §4.1.11 says a recipient that does not
    // understand a listed one must reject. Presence alone is enough (even `"crit": null`).
    if header.other.contains_key("crit") {
        return Err(JoseError::CritHeader);
    }
    let signature = b64::decode(parts.signature)
        .ok_or_else(|| JoseError::MalformedToken("signature is not base64url".into()))?;

    let mut candidates = keys.iter().filter(|key| {
        key.can_verify(alg)
            && match header.kid.as_deref() {
                Some(kid) => key.kid() == Some(kid),
                None => true,
            }
    });
    let mut tried = false;
    let verified = candidates.any(|key| {
        tried = true;
        key.verify(alg, parts.signing_input.as_bytes(), &signature)
            .is_ok()
    });
    if !tried {
        return Err(JoseError::NoMatchingKey {
            alg,
            kid: header.kid.as_deref().map(printable),
        });
    }
    if !verified {
        return Err(JoseError::BadSignature);
    }
    // Parsed only after the signature holds: unauthenticated JSON gets no more work than needed.
    let claims = parse_claims(parts.payload)?;
    Ok(VerifiedJwt { header, claims })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_bit_length() {
        assert_eq!(rsa_bits(&[]), 0);
        assert_eq!(rsa_bits(&[1]), 1);
        assert_eq!(rsa_bits(&[0x80, 0]), 16);
        let mut n = vec![0xffu8; 256];
        assert_eq!(rsa_bits(&n), 2048);
        n[0] = 0x7f;
        assert_eq!(rsa_bits(&n), 2047);
    }

    #[test]
    fn printable_is_short_and_safe() {
        assert_eq!(printable("HS256"), "HS256");
        assert_eq!(printable("a\"b\\c\nd"), "a?b?c?d");
        let long = "x".repeat(1000);
        assert_eq!(printable(&long).chars().count(), 65);
    }

    #[test]
    fn typ_comparison() {
        let h = Header {
            alg: "ES256".into(),
            typ: Some("application/AT+JWT".into()),
            kid: None,
            cty: None,
            other: Map::new(),
        };
        assert!(h.typ_is("at+jwt"));
        assert!(h.typ_is("application/at+jwt"));
        assert!(!h.typ_is("JWT"));
        let none = Header { typ: None, ..h };
        assert!(!none.typ_is("JWT"));
    }
}
