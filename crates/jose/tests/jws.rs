//! Interop and security tests for signing and verification, through the public API only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_lc_rs::signature::{
    ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PSS_SHA256, RsaKeyPair,
};
use aws_lc_rs::{hmac, rand::SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use pforte_jose::{
    Alg, JoseError, Jwk, Jwks, MAX_TOKEN_LEN, SigningKey, VerifyingKey, decode_unverified_claims,
    decode_unverified_header, verify_jwt,
};
use serde_json::{Value, json};

const SIGNING_ALGS: [Alg; 3] = [Alg::ES256, Alg::EdDSA, Alg::RS256];
const ALL: [Alg; 5] = [Alg::ES256, Alg::ES384, Alg::EdDSA, Alg::RS256, Alg::PS256];

fn claims() -> Value {
    json!({ "iss": "https://id.example", "sub": "alice", "exp": 2_000_000_000 })
}

fn vk(key: &SigningKey) -> VerifyingKey {
    VerifyingKey::from_jwk(&key.public_jwk()).unwrap()
}

/// Builds a compact JWS with an arbitrary header, signed by `sign` over the signing input.
fn forge(header: &Value, payload: &[u8], sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(serde_json::to_vec(header).unwrap()),
        B64.encode(payload)
    );
    let sig = sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig))
}

fn forge_claims(header: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    forge(header, &serde_json::to_vec(&claims()).unwrap(), sign)
}

fn jwk(value: Value) -> Jwk {
    serde_json::from_value(value).unwrap()
}

// --- interop ----------------------------------------------------------------------------------

#[test]
fn signed_tokens_verify_through_the_published_jwk() {
    for alg in SIGNING_ALGS {
        let key = SigningKey::generate(alg).unwrap();
        let token = key.sign_jwt("at+jwt", &claims()).unwrap();

        // Through the JWKS, as a relying party would see it.
        let jwks: Jwks = serde_json::from_str(
            &serde_json::to_string(&Jwks {
                keys: vec![key.public_jwk()],
            })
            .unwrap(),
        )
        .unwrap();
        let keys: Vec<VerifyingKey> = jwks
            .keys
            .iter()
            .map(|j| VerifyingKey::from_jwk(j).unwrap())
            .collect();
        let verified = verify_jwt(&token, &keys, &[alg]).unwrap();
        assert_eq!(Value::Object(verified.claims), claims(), "{alg}");
        assert_eq!(verified.header.alg, alg.as_str());
        assert_eq!(verified.header.kid.as_deref(), Some(key.kid()));
        assert_eq!(verified.header.typ.as_deref(), Some("at+jwt"));
        assert!(verified.header.other.is_empty());

        // And directly, without a JWK round-trip.
        let own = verify_jwt(&token, std::slice::from_ref(key.verifying_key()), &ALL).unwrap();
        assert_eq!(Value::Object(own.claims), claims());
    }
}

#[test]
fn header_is_alg_typ_kid() {
    let key = SigningKey::generate(Alg::ES256).unwrap();
    let token = key.sign_jwt("JWT", &claims()).unwrap();
    let header: Value =
        serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(
        header,
        json!({ "alg": "ES256", "typ": "JWT", "kid": key.kid() })
    );
}

#[test]
fn signature_sizes() {
    let expected = [(Alg::ES256, 64), (Alg::EdDSA, 64), (Alg::RS256, 256)];
    for (alg, len) in expected {
        let key = SigningKey::generate(alg).unwrap();
        let token = key.sign_jwt("JWT", &claims()).unwrap();
        let sig = B64.decode(token.rsplit('.').next().unwrap()).unwrap();
        assert_eq!(sig.len(), len, "{alg}: JOSE signature length");
        assert_eq!(key.sign(b"abc").unwrap().len(), len);
    }
}

#[test]
fn signing_key_survives_pkcs8_and_still_verifies() {
    for alg in SIGNING_ALGS {
        let a = SigningKey::generate(alg).unwrap();
        let b = SigningKey::from_pkcs8(alg, &a.to_pkcs8()).unwrap();
        let token = b.sign_jwt("JWT", &claims()).unwrap();
        verify_jwt(&token, &[vk(&a)], &[alg]).unwrap();
    }
}

#[test]
fn rfc7515_a3_es256_vector_verifies() {
    let key = VerifyingKey::from_jwk(&jwk(json!({
        "kty": "EC", "crv": "P-256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
    })))
    .unwrap();
    let token = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
    let verified = verify_jwt(token, &[key], &[Alg::ES256]).unwrap();
    assert_eq!(verified.claims["iss"], "joe");
    assert_eq!(verified.header.kid, None);
}

#[test]
fn rfc8037_a4_signature_verifies_but_a_sentence_is_not_claims() {
    let key = VerifyingKey::from_jwk(&jwk(json!({
        "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    })))
    .unwrap();
    let token = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
    assert_eq!(
        verify_jwt(token, std::slice::from_ref(&key), &[Alg::EdDSA]),
        Err(JoseError::PayloadNotObject)
    );
    // The signature itself is good: flipping it turns the error into a signature error.
    let bad = token.replace(".hgyY", ".hgyZ");
    assert_eq!(
        verify_jwt(&bad, &[key], &[Alg::EdDSA]),
        Err(JoseError::BadSignature)
    );
}

#[test]
fn rfc7638_example_key_is_usable() {
    let key = VerifyingKey::from_jwk(&jwk(json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"
    })))
    .unwrap();
    assert_eq!(key.kid(), Some("2011-04-29"));
    assert_eq!(key.alg(), Some(Alg::RS256));
    assert!(key.can_verify(Alg::RS256));
    assert!(!key.can_verify(Alg::PS256), "its own alg pins it to RS256");
}

#[test]
fn es384_and_ps256_verify() {
    // Signed with aws-lc directly: pforte verifies these algorithms but does not sign with them.
    let p384 = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
    let point = p384.public_key().as_ref();
    let es384 = VerifyingKey::from_jwk(&jwk(json!({
        "kty": "EC", "crv": "P-384", "kid": "p384",
        "x": B64.encode(&point[1..49]), "y": B64.encode(&point[49..97])
    })))
    .unwrap();
    let token = forge_claims(&json!({"alg": "ES384", "kid": "p384"}), |input| {
        p384.sign(&SystemRandom::new(), input)
            .unwrap()
            .as_ref()
            .to_vec()
    });
    verify_jwt(&token, std::slice::from_ref(&es384), &[Alg::ES384]).unwrap();
    assert!(matches!(
        verify_jwt(&token, &[es384], &[Alg::ES256]),
        Err(JoseError::AlgNotAllowed { .. })
    ));

    let rsa_signing = SigningKey::generate(Alg::RS256).unwrap();
    let rsa = RsaKeyPair::from_pkcs8(&rsa_signing.to_pkcs8()).unwrap();
    let pss_token = forge_claims(&json!({"alg": "PS256"}), |input| {
        let mut sig = vec![0; rsa.public_modulus_len()];
        rsa.sign(&RSA_PSS_SHA256, &SystemRandom::new(), input, &mut sig)
            .unwrap();
        sig
    });
    let mut unpinned = rsa_signing.public_jwk();
    unpinned.alg = None;
    verify_jwt(
        &pss_token,
        &[VerifyingKey::from_jwk(&unpinned).unwrap()],
        &[Alg::PS256],
    )
    .unwrap();
    // The published JWK says RS256, so the same key refuses PS256.
    assert_eq!(
        verify_jwt(&pss_token, &[vk(&rsa_signing)], &[Alg::PS256]),
        Err(JoseError::NoMatchingKey {
            alg: Alg::PS256,
            kid: None
        })
    );
}

// --- security rules: one negative test each ----------------------------------------------------

#[test]
fn tampering_any_character_fails() {
    for alg in SIGNING_ALGS {
        let key = SigningKey::generate(alg).unwrap();
        let keys = [vk(&key)];
        let token = key.sign_jwt("JWT", &claims()).unwrap();
        let bytes = token.as_bytes();
        for i in 0..bytes.len() {
            if bytes[i] == b'.' {
                continue;
            }
            let mut bad = bytes.to_vec();
            bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
            let bad = String::from_utf8(bad).unwrap();
            assert!(
                verify_jwt(&bad, &keys, &ALL).is_err(),
                "{alg}: tampered at {i}"
            );
        }
        // Swapping in another token's payload fails too.
        let other = key.sign_jwt("JWT", &json!({"sub": "mallory"})).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let other_parts: Vec<&str> = other.split('.').collect();
        let spliced = format!("{}.{}.{}", parts[0], other_parts[1], parts[2]);
        assert_eq!(
            verify_jwt(&spliced, &keys, &ALL),
            Err(JoseError::BadSignature)
        );
    }
}

#[test]
fn another_key_with_the_same_kid_does_not_verify() {
    for alg in SIGNING_ALGS {
        let a = SigningKey::generate(alg).unwrap();
        let b = SigningKey::generate(alg).unwrap();
        let mut impostor = b.public_jwk();
        impostor.kid = Some(a.kid().to_string());
        let token = a.sign_jwt("JWT", &claims()).unwrap();
        assert_eq!(
            verify_jwt(
                &token,
                &[VerifyingKey::from_jwk(&impostor).unwrap()],
                &[alg]
            ),
            Err(JoseError::BadSignature),
            "{alg}"
        );
    }
}

#[test]
fn rs256_header_with_an_ec_kid_fails() {
    let ec = SigningKey::generate(Alg::ES256).unwrap();
    let rsa = SigningKey::generate(Alg::RS256).unwrap();
    let token = forge_claims(&json!({"alg": "RS256", "kid": ec.kid()}), |input| {
        rsa.sign(input).unwrap()
    });
    assert_eq!(
        verify_jwt(&token, &[vk(&ec), vk(&rsa)], &[Alg::ES256, Alg::RS256]),
        Err(JoseError::NoMatchingKey {
            alg: Alg::RS256,
            kid: Some(ec.kid().into())
        })
    );
}

#[test]
fn key_type_must_fit_the_alg() {
    // Every (key, claimed alg) pair where the key type does not fit: signed with the real key
    // so only the type check can stop it. No kid in the header, so every key is a candidate.
    for key_alg in SIGNING_ALGS {
        let key = SigningKey::generate(key_alg).unwrap();
        let mut pinless = key.public_jwk();
        pinless.alg = None;
        let keys = [VerifyingKey::from_jwk(&pinless).unwrap()];
        for claimed in ALL {
            let fits = matches!(
                (key_alg, claimed),
                (Alg::ES256, Alg::ES256)
                    | (Alg::EdDSA, Alg::EdDSA)
                    | (Alg::RS256, Alg::RS256 | Alg::PS256)
            );
            if fits {
                continue;
            }
            let token = forge_claims(&json!({"alg": claimed.as_str()}), |input| {
                key.sign(input).unwrap()
            });
            assert_eq!(
                verify_jwt(&token, &keys, &ALL),
                Err(JoseError::NoMatchingKey {
                    alg: claimed,
                    kid: None
                }),
                "{key_alg} key, {claimed} token"
            );
        }
    }
}

#[test]
fn never_hmac_with_a_public_key() {
    let key = SigningKey::generate(Alg::RS256).unwrap();
    let jwk = key.public_jwk();
    let secrets: Vec<Vec<u8>> = vec![
        serde_json::to_vec(&jwk).unwrap(),
        B64.decode(jwk.n.as_deref().unwrap()).unwrap(),
        jwk.n.clone().unwrap().into_bytes(),
    ];
    for secret in secrets {
        for (alg, hmac_alg) in [
            ("HS256", hmac::HMAC_SHA256),
            ("HS384", hmac::HMAC_SHA384),
            ("HS512", hmac::HMAC_SHA512),
        ] {
            let token = forge_claims(&json!({"alg": alg, "kid": key.kid()}), |input| {
                hmac::sign(&hmac::Key::new(hmac_alg, &secret), input)
                    .as_ref()
                    .to_vec()
            });
            let err = verify_jwt(&token, &[vk(&key)], &ALL).unwrap_err();
            assert!(
                matches!(err, JoseError::AlgNotAllowed { .. }),
                "{alg}: {err}"
            );
        }
    }
    let token = forge_claims(&json!({"alg": "HS256"}), |_| vec![0; 32]);
    let err = verify_jwt(&token, &[vk(&key)], &[Alg::ES256, Alg::RS256]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "token alg `HS256` is not allowed (allowed: ES256, RS256)"
    );
}

#[test]
fn alg_none_and_unknown_algs_are_refused() {
    let key = SigningKey::generate(Alg::ES256).unwrap();
    for alg in [
        "none",
        "None",
        "NONE",
        "",
        "es256",
        "ES256 ",
        "RS512",
        "EdDSA\u{0}",
    ] {
        for sig in [vec![], key.sign(b"x").unwrap()] {
            let token = forge_claims(&json!({"alg": alg}), |_| sig.clone());
            let err = verify_jwt(&token, &[vk(&key)], &ALL).unwrap_err();
            assert!(
                matches!(err, JoseError::AlgNotAllowed { .. }),
                "{alg:?}: {err}"
            );
        }
    }
    let token = forge_claims(&json!({"alg": "none"}), |_| vec![]);
    assert_eq!(
        verify_jwt(&token, &[vk(&key)], &[])
            .unwrap_err()
            .to_string(),
        "token alg `none` is not allowed (allowed: no algorithm)"
    );
}

#[test]
fn alg_must_be_in_the_allowed_list() {
    let key = SigningKey::generate(Alg::ES256).unwrap();
    let token = key.sign_jwt("JWT", &claims()).unwrap();
    let err = verify_jwt(&token, &[vk(&key)], &[Alg::RS256, Alg::EdDSA]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "token alg `ES256` is not allowed (allowed: RS256, EdDSA)"
    );
    assert!(verify_jwt(&token, &[vk(&key)], &[]).is_err());
}

#[test]
fn a_keys_own_alg_must_equal_the_header_alg() {
    let key = SigningKey::generate(Alg::RS256).unwrap();
    let token = key.sign_jwt("JWT", &claims()).unwrap();
    let mut pinned_ps = key.public_jwk();
    pinned_ps.alg = Some("PS256".into());
    assert_eq!(
        verify_jwt(&token, &[VerifyingKey::from_jwk(&pinned_ps).unwrap()], &ALL),
        Err(JoseError::NoMatchingKey {
            alg: Alg::RS256,
            kid: Some(key.kid().into())
        })
    );
}

#[test]
fn header_kid_selects_keys() {
    let a = SigningKey::generate(Alg::ES256).unwrap();
    let b = SigningKey::generate(Alg::ES256).unwrap();
    let token = a.sign_jwt("JWT", &claims()).unwrap();

    // The right key is found among others.
    verify_jwt(&token, &[vk(&b), vk(&a)], &[Alg::ES256]).unwrap();

    // With a kid in the header, a key without a kid is not tried, even the right one.
    let mut anonymous = a.public_jwk();
    anonymous.kid = None;
    let anonymous = VerifyingKey::from_jwk(&anonymous).unwrap();
    assert_eq!(
        verify_jwt(&token, std::slice::from_ref(&anonymous), &[Alg::ES256]),
        Err(JoseError::NoMatchingKey {
            alg: Alg::ES256,
            kid: Some(a.kid().into())
        })
    );
    // An unknown kid finds nothing.
    assert!(matches!(
        verify_jwt(&token, &[vk(&b)], &[Alg::ES256]),
        Err(JoseError::NoMatchingKey { .. })
    ));

    // Without a kid, every key of a fitting type is tried.
    let no_kid = forge_claims(&json!({"alg": "ES256"}), |input| a.sign(input).unwrap());
    verify_jwt(&no_kid, &[vk(&b), anonymous], &[Alg::ES256]).unwrap();
    assert_eq!(
        verify_jwt(&no_kid, &[vk(&b)], &[Alg::ES256]),
        Err(JoseError::BadSignature)
    );
    assert_eq!(
        verify_jwt(&no_kid, &[], &[Alg::ES256]),
        Err(JoseError::NoMatchingKey {
            alg: Alg::ES256,
            kid: None
        })
    );
}

#[test]
fn crit_header_is_refused() {
    let key = SigningKey::generate(Alg::EdDSA).unwrap();
    for crit in [json!(["exp"]), json!([]), json!(null), json!("b64")] {
        let token = forge_claims(
            &json!({"alg": "EdDSA", "kid": key.kid(), "crit": crit, "exp": 1}),
            |input| key.sign(input).unwrap(),
        );
        assert_eq!(
            verify_jwt(&token, &[vk(&key)], &ALL),
            Err(JoseError::CritHeader),
            "{crit}"
        );
        // Routing may still look at it.
        assert!(
            decode_unverified_header(&token)
                .unwrap()
                .other
                .contains_key("crit")
        );
    }
}

#[test]
fn payload_must_be_a_json_object() {
    let key = SigningKey::generate(Alg::ES256).unwrap();
    let header = json!({"alg": "ES256", "kid": key.kid()});
    for payload in [
        &b"[1,2]"[..],
        b"\"sub\"",
        b"42",
        b"null",
        b"{",
        b"",
        b"\xff\xfe",
    ] {
        let token = forge(&header, payload, |input| key.sign(input).unwrap());
        assert_eq!(
            verify_jwt(&token, &[vk(&key)], &ALL),
            Err(JoseError::PayloadNotObject),
            "{payload:?}"
        );
    }
}

#[test]
fn malformed_tokens_are_errors_not_panics() {
    let key = SigningKey::generate(Alg::ES256).unwrap();
    let keys = [vk(&key)];
    let good = key.sign_jwt("JWT", &claims()).unwrap();
    let [h, p, s]: [&str; 3] = good.split('.').collect::<Vec<_>>().try_into().unwrap();
    let enc = |v: &str| B64.encode(v);

    let malformed = [
        String::new(),
        ".".into(),
        "..".into(),
        "...".into(),
        h.into(),
        format!("{h}.{p}"),
        format!("{h}.{p}.{s}."),
        format!("{h}.{p}.{s}.{s}.{s}"),
        format!("{h}=.{p}.{s}"),
        format!("{h}.{p}.{s}="),
        // The standard alphabet's `+` where the URL-safe one belongs. (Replacing `-`/`_` in
        // the signature left it unchanged, and the token valid, whenever it had neither:
        // about one run in 15.)
        format!("{h}.{p}.+{}", &s[1..]),
        format!("{h}.{p}.!!!"),
        format!("{h}.{p}.{}", &s[..s.len() - 1]),
        format!("{}.{p}.{s}", &h[1..]),
        format!("{}.{p}.{s}", enc("not json")),
        format!("{}.{p}.{s}", enc("[\"ES256\"]")),
        format!("{}.{p}.{s}", enc("{}")),
        format!("{}.{p}.{s}", enc(r#"{"alg":256}"#)),
        format!("{}.{p}.{s}", enc(r#"{"alg":null}"#)),
        format!("{}.{p}.{s}", enc(r#"{"alg":"ES256","kid":7}"#)),
        format!("{}.{p}.{s}", enc(r#"{"alg":"ES256","typ":["JWT"]}"#)),
        format!("{h}.{}.{s}", enc("{}")),
        "ä.ö.ü".into(),
        "\u{0}.\u{0}.\u{0}".into(),
    ];
    for token in &malformed {
        let result = verify_jwt(token, &keys, &ALL);
        assert!(result.is_err(), "{token:?} verified");
        let _ = decode_unverified_header(token);
        let _ = decode_unverified_claims(token);
    }
    assert!(matches!(
        verify_jwt(&format!("{h}.{p}"), &keys, &ALL),
        Err(JoseError::MalformedToken(m)) if m.contains("found 2")
    ));

    // Every prefix of a valid token, and every single-byte corruption of the header.
    for end in 0..good.len() {
        assert!(
            verify_jwt(&good[..end], &keys, &ALL).is_err(),
            "prefix {end}"
        );
    }
    for i in 0..h.len() {
        for c in [b'.', b'=', b' ', b'A', b'/', 0x7f] {
            let mut bad = good.clone().into_bytes();
            if bad[i] == c {
                // Not a corruption: the header (with its random kid) already has it there.
                continue;
            }
            bad[i] = c;
            if let Ok(bad) = String::from_utf8(bad) {
                assert!(verify_jwt(&bad, &keys, &ALL).is_err());
            }
        }
    }
}

#[test]
fn token_length_is_capped() {
    let key = SigningKey::generate(Alg::ES256).unwrap();
    let filler = "a".repeat(MAX_TOKEN_LEN);
    let long = forge_claims(&json!({"alg": "ES256", "pad": filler}), |input| {
        key.sign(input).unwrap()
    });
    assert!(long.len() > MAX_TOKEN_LEN);
    let err = verify_jwt(&long, &[vk(&key)], &ALL).unwrap_err();
    assert_eq!(
        err,
        JoseError::TokenTooLong {
            len: long.len(),
            max: MAX_TOKEN_LEN
        }
    );
    assert!(matches!(
        decode_unverified_header(&long),
        Err(JoseError::TokenTooLong { .. })
    ));
    assert!(matches!(
        decode_unverified_claims(&long),
        Err(JoseError::TokenTooLong { .. })
    ));

    // Just under the cap is fine.
    let base = key.sign_jwt("JWT", &json!({"pad": ""})).unwrap().len();
    let pad = (MAX_TOKEN_LEN - base) * 3 / 4 - 2;
    let near = key
        .sign_jwt("JWT", &json!({"pad": "a".repeat(pad)}))
        .unwrap();
    assert!(
        near.len() <= MAX_TOKEN_LEN && near.len() > MAX_TOKEN_LEN - 8,
        "{}",
        near.len()
    );
    verify_jwt(&near, &[vk(&key)], &ALL).unwrap();
}

#[test]
fn unverified_decoding_is_for_routing() {
    let key = SigningKey::generate(Alg::ES256).unwrap();
    let other = SigningKey::generate(Alg::ES256).unwrap();
    let token = key.sign_jwt("logout+jwt", &claims()).unwrap();
    let header = decode_unverified_header(&token).unwrap();
    assert_eq!(header.alg, "ES256");
    assert_eq!(header.kid.as_deref(), Some(key.kid()));
    assert!(header.typ_is("application/logout+jwt"));
    assert_eq!(
        decode_unverified_claims(&token).unwrap()["iss"],
        "https://id.example"
    );
    // Decoding works regardless of who signed; verification does not.
    assert!(verify_jwt(&token, &[vk(&other)], &ALL).is_err());
    let none = forge_claims(&json!({"alg": "none"}), |_| vec![]);
    assert_eq!(decode_unverified_header(&none).unwrap().alg, "none");
}

// --- JWK acceptance -----------------------------------------------------------------------------

#[test]
fn jwks_for_other_uses_are_refused() {
    let mut j = SigningKey::generate(Alg::ES256).unwrap().public_jwk();
    j.use_ = Some("enc".into());
    let err = VerifyingKey::from_jwk(&j).unwrap_err();
    assert_eq!(
        err.to_string(),
        "JWK `use` is `enc`; only `sig` keys can verify signatures"
    );
    j.use_ = None;
    VerifyingKey::from_jwk(&j).unwrap();
}

#[test]
fn small_rsa_keys_are_refused() {
    // A 1024-bit modulus (top bit set) and a 2047-bit one.
    for (n, bits) in [
        (vec![0xc5u8; 128], 1024),
        ([vec![0x7f], vec![0xc5; 255]].concat(), 2047),
    ] {
        let err = VerifyingKey::from_jwk(&jwk(json!({
            "kty": "RSA", "n": B64.encode(&n), "e": "AQAB"
        })))
        .unwrap_err();
        assert_eq!(err, JoseError::RsaKeySize { bits });
    }
    // A leading zero octet does not make a small key big.
    let padded = [vec![0u8; 200], vec![0xc5; 128]].concat();
    assert_eq!(
        VerifyingKey::from_jwk(&jwk(
            json!({"kty": "RSA", "n": B64.encode(&padded), "e": "AQAB"})
        ))
        .unwrap_err(),
        JoseError::RsaKeySize { bits: 1024 }
    );
}

#[test]
fn rsa_modulus_with_leading_zero_octet_is_accepted() {
    let key = SigningKey::generate(Alg::RS256).unwrap();
    let mut j = key.public_jwk();
    let n = B64.decode(j.n.as_deref().unwrap()).unwrap();
    j.n = Some(B64.encode([vec![0], n].concat()));
    let token = key.sign_jwt("JWT", &claims()).unwrap();
    verify_jwt(
        &token,
        &[VerifyingKey::from_jwk(&j).unwrap()],
        &[Alg::RS256],
    )
    .unwrap();
}

#[test]
fn bad_jwks_are_refused() {
    let ec = SigningKey::generate(Alg::ES256).unwrap().public_jwk();
    let x = ec.x.clone().unwrap();
    let y = ec.y.clone().unwrap();
    let cases = [
        json!({"kty": "oct", "k": "c2VjcmV0"}),
        json!({"kty": "EC", "crv": "P-521", "x": x, "y": y}),
        json!({"kty": "EC", "x": x, "y": y}),
        json!({"kty": "EC", "crv": "P-256", "x": x}),
        json!({"kty": "EC", "crv": "P-256", "x": x, "y": "!!"}),
        json!({"kty": "EC", "crv": "P-256", "x": x, "y": B64.encode([1u8; 32])}),
        json!({"kty": "EC", "crv": "P-256", "x": x[..40], "y": y[..40]}),
        json!({"kty": "EC", "crv": "P-384", "x": x, "y": y}),
        json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "alg": "RS256"}),
        json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "alg": "ES384"}),
        json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "alg": "HS256"}),
        json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "alg": "none"}),
        json!({"kty": "OKP", "crv": "X25519", "x": x}),
        json!({"kty": "OKP", "crv": "Ed448", "x": x}),
        json!({"kty": "OKP", "crv": "Ed25519", "x": y[..20]}),
        json!({"kty": "RSA", "e": "AQAB"}),
        json!({"kty": "RSA", "n": B64.encode([0xc5u8; 256]), "e": "AA"}),
        json!({"kty": "RSA", "n": B64.encode([0xc5u8; 256]), "e": "AQAB", "alg": "ES256"}),
        json!({"kty": "RSA", "n": B64.encode([0xc5u8; 1100]), "e": "AQAB"}),
    ];
    for case in cases {
        assert!(
            VerifyingKey::from_jwk(&jwk(case.clone())).is_err(),
            "{case}"
        );
    }
}
