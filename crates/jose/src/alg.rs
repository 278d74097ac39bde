use serde::{Deserialize, Serialize};

/// A JWS algorithm pforte signs with or accepts. `none` and the HMAC family do not exist
/// here, so they cannot be selected by accident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Alg {
    ES256,
    ES384,
    EdDSA,
    RS256,
    PS256,
}

impl Alg {
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::EdDSA => "EdDSA",
            Alg::RS256 => "RS256",
            Alg::PS256 => "PS256",
        }
    }

    /// Parses a JOSE `alg` value. Unknown values (including `none` and `HS*`) are `None`.
    pub fn parse(s: &str) -> Option<Alg> {
        match s {
            "ES256" => Some(Alg::ES256),
            "ES384" => Some(Alg::ES384),
            "EdDSA" => Some(Alg::EdDSA),
            "RS256" => Some(Alg::RS256),
            "PS256" => Some(Alg::PS256),
            _ => None,
        }
    }

    /// Whether pforte can generate keys for and sign with this algorithm.
    pub fn can_sign(self) -> bool {
        matches!(self, Alg::ES256 | Alg::EdDSA | Alg::RS256)
    }
}

impl std::fmt::Display for Alg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
