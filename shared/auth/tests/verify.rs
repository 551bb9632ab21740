//! Tokens that must be refused are refused, with a reason.

use auth::testing::*;
use auth::{AuthError, Authenticator};
use base64::Engine;
use serde_json::json;

fn authenticator() -> Authenticator {
    Authenticator::new(&test_config())
}

#[tokio::test]
async fn valid_tokens_give_the_subject_and_role() {
    let a = authenticator();
    let p = a.verify(&token_for("alice", false)).await.unwrap();
    assert_eq!((p.user_id.as_str(), p.admin), ("alice", false));
    assert!(a.verify(&token_for("root", true)).await.unwrap().admin);
}

#[tokio::test]
async fn expired_forged_and_unsigned_tokens_are_refused() {
    let a = authenticator();
    assert!(matches!(
        a.verify(&expired_token_for("alice")).await,
        Err(AuthError::Invalid(_))
    ));
    let forged = sign(
        &json!({"sub": "alice", "exp": 4_000_000_000u64}),
        "another-secret-another-secret-0000",
    );
    assert!(a.verify(&forged).await.is_err());
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(json!({"sub": "alice", "exp": 4_000_000_000u64}))
    );
    assert!(a.verify(&none).await.is_err());
    assert!(a.verify("not.a.jwt").await.is_err());
}

#[tokio::test]
async fn audience_and_issuer_are_checked_when_configured() {
    let mut config = test_config();
    config.audience = Some("todo".into());
    config.issuer = Some("https://issuer".into());
    let a = Authenticator::new(&config);
    let good = sign(
        &json!({"sub": "u", "exp": 4_000_000_000u64, "aud": "todo", "iss": "https://issuer"}),
        TEST_SECRET,
    );
    let wrong_aud = sign(
        &json!({"sub": "u", "exp": 4_000_000_000u64, "aud": "other", "iss": "https://issuer"}),
        TEST_SECRET,
    );
    let wrong_iss = sign(
        &json!({"sub": "u", "exp": 4_000_000_000u64, "aud": "todo", "iss": "https://evil"}),
        TEST_SECRET,
    );
    assert!(a.verify(&good).await.is_ok());
    assert!(a.verify(&wrong_aud).await.is_err());
    assert!(a.verify(&wrong_iss).await.is_err());
}

#[tokio::test]
async fn header_must_be_bearer() {
    let a = authenticator();
    assert!(matches!(
        a.verify_header(None).await,
        Err(AuthError::Missing)
    ));
    assert!(matches!(
        a.verify_header(Some("Basic abc")).await,
        Err(AuthError::NotBearer)
    ));
    let ok = format!("Bearer {}", token_for("bob", false));
    assert_eq!(a.verify_header(Some(&ok)).await.unwrap().user_id, "bob");
    // The scheme's case does not matter (RFC 9110 §11.1); an empty
    // credential is no credential.
    for scheme in ["BEARER", "bEaReR"] {
        let value = format!("{scheme} {}", token_for("bob", false));
        assert_eq!(a.verify_header(Some(&value)).await.unwrap().user_id, "bob");
    }
    assert!(matches!(
        a.verify_header(Some("Bearer   ")).await,
        Err(AuthError::Missing)
    ));
    assert!(matches!(
        a.verify_header(Some("Bearertoken")).await,
        Err(AuthError::NotBearer)
    ));
}

#[tokio::test]
async fn a_subject_with_control_characters_is_refused() {
    let a = authenticator();
    for sub in ["a\u{0}b", "line\nbreak"] {
        let token = sign(&json!({"sub": sub, "exp": 4_000_000_000u64}), TEST_SECRET);
        assert!(a.verify(&token).await.is_err(), "{sub:?}");
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn an_issuer_array_is_refused_even_when_it_names_ours() {
    let mut config = test_config();
    config.audience = Some("todo-api".into());
    config.issuer = Some("https://idp.example".into());
    let a = Authenticator::new(&config);
    let with_iss = |iss: serde_json::Value| {
        let claims = json!({"sub": "u", "exp": 4_000_000_000u64, "aud": "todo-api", "iss": iss});
        sign(&claims, TEST_SECRET)
    };
    assert!(
        a.verify(&with_iss(json!("https://idp.example")))
            .await
            .is_ok()
    );
    for iss in [
        json!(["https://idp.example", "evil"]),
        json!(["https://idp.example"]),
        json!(7),
        json!({"iss": "https://idp.example"}),
    ] {
        match a.verify(&with_iss(iss.clone())).await {
            Err(AuthError::Invalid(why)) => assert!(why.contains("iss"), "{iss}: {why}"),
            other => panic!("iss {iss} gave {other:?}"),
        }
    }
    // Without a configured issuer, a present `iss` must still be a string.
    let a = Authenticator::new(&test_config());
    let claims = json!({"sub": "u", "exp": 4_000_000_000u64, "iss": ["a", "b"]});
    assert!(a.verify(&sign(&claims, TEST_SECRET)).await.is_err());
}

#[tokio::test]
async fn a_configured_issuer_and_audience_must_be_present() {
    let mut config = test_config();
    config.audience = Some("todo".into());
    config.issuer = Some("https://issuer".into());
    let a = Authenticator::new(&config);
    let full = json!({"sub": "root", "exp": 4_000_000_000u64, "aud": "todo",
                      "iss": "https://issuer", "roles": ["admin"]});
    assert!(a.verify(&sign(&full, TEST_SECRET)).await.unwrap().admin);
    for omitted in [&["aud"][..], &["iss"], &["aud", "iss"]] {
        let mut claims = full.clone();
        for name in omitted {
            claims.as_object_mut().unwrap().remove(*name);
        }
        let refused = a.verify(&sign(&claims, TEST_SECRET)).await;
        assert!(
            matches!(refused, Err(AuthError::Invalid(_))),
            "an admin token without {omitted:?} was accepted"
        );
    }
    // Only what is configured is required.
    let mut only_aud = test_config();
    only_aud.audience = Some("todo".into());
    let no_iss = json!({"sub": "u", "exp": 4_000_000_000u64, "aud": "todo"});
    let a = Authenticator::new(&only_aud);
    assert!(a.verify(&sign(&no_iss, TEST_SECRET)).await.is_ok());
}

#[tokio::test]
async fn not_before_is_checked_with_the_leeway() {
    let mut config = test_config();
    config.leeway_s = 30;
    let a = Authenticator::new(&config);
    let with_nbf = |nbf: serde_json::Value| {
        sign(
            &json!({"sub": "u", "exp": now() + 7200, "nbf": nbf}),
            TEST_SECRET,
        )
    };
    for (nbf, accepted) in [
        (json!(now() + 3600), false),
        (json!(now() + 120), false),
        (json!(now() + 10), true),
        (json!(now() - 10), true),
        (json!("soon"), false),
    ] {
        let result = a.verify(&with_nbf(nbf.clone())).await;
        assert_eq!(result.is_ok(), accepted, "nbf {nbf}: {result:?}");
    }
}

#[tokio::test]
async fn a_plausible_email_claim_is_carried_and_anything_else_ignored() {
    let a = authenticator();
    let with = |email: serde_json::Value| {
        sign(
            &json!({"sub": "alice", "exp": 4_000_000_000u64, "email": email}),
            TEST_SECRET,
        )
    };
    let p = a.verify(&with(json!("alice@example.test"))).await.unwrap();
    assert_eq!(p.email.as_deref(), Some("alice@example.test"));
    assert_eq!(
        a.verify(&token_for("alice", false)).await.unwrap().email,
        None
    );
    let too_long = format!("{}@example.test", "a".repeat(320));
    for bad in [
        json!("no-at-sign"),
        json!("@example.test"),
        json!("alice@"),
        json!("a@b@c"),
        json!("alice @example.test"),
        json!("alice@example.test\r\nBcc: x@y"),
        json!("ali\u{0}ce@example.test"),
        json!(too_long),
        json!(["alice@example.test"]),
        json!(42),
    ] {
        // The token stays valid; only the claim is dropped.
        let p = a.verify(&with(bad.clone())).await.unwrap();
        assert_eq!(p.email, None, "{bad}");
    }
}

#[tokio::test]
async fn the_expiry_is_carried_and_a_fractional_exp_is_floored() {
    let a = authenticator();
    let exp = now() + 120;
    let whole = sign(&json!({"sub": "alice", "exp": exp}), TEST_SECRET);
    assert_eq!(a.verify(&whole).await.unwrap().expires_at, exp as i64);
    // RFC 7519 NumericDate may have a fraction; the library accepts it.
    let fractional = sign(
        &json!({"sub": "alice", "exp": exp as f64 + 0.75}),
        TEST_SECRET,
    );
    assert_eq!(a.verify(&fractional).await.unwrap().expires_at, exp as i64);
}
