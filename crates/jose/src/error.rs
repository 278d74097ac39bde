use crate::Alg;

/// Everything that can go wrong in this crate. Messages name the offending value so that a
/// 4xx error description (or a log line) tells the reader what to fix.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoseError {
    // --- keys -------------------------------------------------------------------------------
    #[error("pforte cannot sign with `{0}` (signing algorithms: ES256, EdDSA, RS256)")]
    CannotSign(Alg),

    #[error("{alg} key generation failed")]
    KeyGeneration { alg: Alg },

    #[error("not a valid {alg} private key in PKCS#8 DER: {reason}")]
    InvalidPrivateKey { alg: Alg, reason: String },

    #[error("invalid JWK: {0}")]
    InvalidJwk(String),

    #[error("JWK `use` is `{0}`; only `sig` keys can verify signatures")]
    JwkNotForSigning(String),

    #[error("RSA key has {bits} bits; between 2048 and 8192 required")]
    RsaKeySize { bits: usize },

    #[error("signing failed")]
    Signing,

    #[error("claims could not be serialised: {0}")]
    Claims(String),

    // --- tokens -----------------------------------------------------------------------------
    #[error("token is {len} bytes; the limit is {max}")]
    TokenTooLong { len: usize, max: usize },

    #[error("malformed token: {0}")]
    MalformedToken(String),

    #[error("token alg `{alg}` is not allowed (allowed: {allowed})")]
    AlgNotAllowed { alg: String, allowed: String },

    #[error("token header has `crit`; no critical header extensions are supported")]
    CritHeader,

    #[error("no {alg} verification key{}", kid.as_ref().map(|k| format!(" with kid `{k}`")).unwrap_or_default())]
    NoMatchingKey { alg: Alg, kid: Option<String> },

    #[error("token signature is invalid")]
    BadSignature,

    #[error("token payload is not a JSON object")]
    PayloadNotObject,

    // --- sealing ----------------------------------------------------------------------------
    #[error("master key must be 32 bytes, got {0} bytes")]
    MasterKeyLength(usize),

    #[error("master key is not valid base64 (standard or URL-safe alphabet expected)")]
    MasterKeyEncoding,

    #[error("sealed data is {0} bytes; too short to hold version, nonce and tag")]
    SealedTooShort(usize),

    #[error("sealed data has unknown format version {0}")]
    SealVersion(u8),

    #[error(
        "sealed data could not be opened: wrong master key, wrong context (aad) or tampered data"
    )]
    OpenFailed,

    #[error("the system random number generator failed")]
    Random,

    #[error("encryption failed")]
    Seal,
}
