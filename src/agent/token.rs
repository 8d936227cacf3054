//! The projected service-account token: kubelet rewrites it before it expires (at 80 % of its life); the agent
//! only needs to notice the new content. Its `exp` claim is read (without verifying the signature, which is the
//! apiserver's job) to warn when the token is about to expire and kubelet has not refreshed it.

use std::path::Path;

use base64::Engine;
use jiff::Timestamp;

use super::error::AgentError;

const HINT: &str = "; is the projected service-account token volume mounted (see --token-file)?";

pub(crate) fn read(path: &Path) -> Result<String, AgentError> {
    let text = std::fs::read_to_string(path).map_err(|source| AgentError::Read {
        what: "service account token",
        path: path.to_path_buf(),
        source,
        hint: HINT,
    })?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(AgentError::Empty {
            what: "service account token",
            path: path.to_path_buf(),
            hint: HINT,
        });
    }
    Ok(token)
}

/// The `exp` claim of a JWT, if it has one.
pub(crate) fn expiry(jwt: &str) -> Option<Timestamp> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Timestamp::from_second(claims.get("exp")?.as_i64()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exp_without_verifying() {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"ES256"}"#),
            b64(r#"{"exp":1750000000}"#)
        );
        assert_eq!(expiry(&jwt).map(|t| t.as_second()), Some(1_750_000_000));
        assert_eq!(expiry("opaque-token"), None);
    }

    #[test]
    fn empty_or_missing_tokens_say_what_to_check() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("token");
        assert!(read(&p).unwrap_err().to_string().ends_with(HINT));
        std::fs::write(&p, "\n").unwrap();
        assert_eq!(
            read(&p).unwrap_err().to_string(),
            format!("service account token {} is empty{HINT}", p.display())
        );
        std::fs::write(&p, "abc\n").unwrap();
        assert_eq!(read(&p).unwrap(), "abc");
    }
}
