//! Admission requests sent straight to one replica, as the apiserver would send them, and the apiserver's
//! part played by the test: apply the returned patch and create the Pod (or, on purpose, never create it).

use base64::Engine;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::ChaosError;

/// The AdmissionReview the apiserver sends for a Pod CREATE (`pod` is the object as the client sent it).
pub fn review(uid: &str, namespace: &str, pod: &Value, dry_run: bool) -> Value {
    let gvk = json!({"group": "", "version": "v1", "kind": "Pod"});
    let gvr = json!({"group": "", "version": "v1", "resource": "pods"});
    let mut request = json!({
        "uid": uid,
        "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
        "namespace": namespace,
        "operation": "CREATE",
        "userInfo": {"username": "chaos-load-generator", "groups": ["system:authenticated"]},
        "object": pod,
        "oldObject": null,
        "dryRun": dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    });
    if let Some(name) = pod.pointer("/metadata/name").and_then(Value::as_str) {
        request["name"] = json!(name);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

/// A replica's answer.
#[derive(Debug)]
pub enum Answer {
    /// Allowed with a JSON patch.
    Patched(json_patch::Patch),
    /// Allowed, nothing changed.
    Allowed,
    /// Refused, with the message.
    Denied(String),
}

/// Parses an AdmissionReview response body for the request `uid`.
pub fn answer(uid: &str, body: &[u8]) -> Result<Answer, ChaosError> {
    let bad =
        |why: String| ChaosError::Admission(format!("{why}: {}", String::from_utf8_lossy(body)));
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(format!("not JSON ({e})")))?;
    let resp = v.get("response").ok_or_else(|| bad("no response".into()))?;
    if resp.get("uid").and_then(Value::as_str) != Some(uid) {
        return Err(bad(format!("answer for another request (want uid {uid})")));
    }
    if resp.get("allowed").and_then(Value::as_bool) != Some(true) {
        let msg = resp
            .pointer("/status/message")
            .and_then(Value::as_str)
            .unwrap_or("(no message)");
        return Ok(Answer::Denied(msg.to_string()));
    }
    // Go reads a []byte from a base64 string or from an array of numbers; kube-rs writes the array.
    let bytes: Vec<u8> = match resp.get("patch") {
        None | Some(Value::Null) => return Ok(Answer::Allowed),
        Some(Value::String(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| bad(format!("patch is not base64 ({e})")))?,
        Some(other) => serde_json::from_value(other.clone())
            .map_err(|e| bad(format!("patch is neither base64 nor bytes ({e})")))?,
    };
    let patch: json_patch::Patch = serde_json::from_slice(&bytes)
        .map_err(|e| bad(format!("patch is not a JSON patch ({e})")))?;
    Ok(Answer::Patched(patch))
}

/// The Pod as the apiserver would store it: the client's object with the webhook's patch applied.
pub fn patched(pod: &Value, patch: &json_patch::Patch) -> Result<Pod, ChaosError> {
    let mut doc = pod.clone();
    json_patch::patch(&mut doc, patch)
        .map_err(|e| ChaosError::Admission(format!("applying the webhook's patch: {e}")))?;
    serde_json::from_value(doc).map_err(|e| ChaosError::Admission(format!("patched Pod: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_parsed_and_patches_applied() {
        let pod = json!({"metadata": {"name": "p", "annotations": {"a": "b"}}, "spec": {"containers": []}});
        let r = review("u1", "ns", &pod, false);
        assert_eq!(r["request"]["name"], "p");
        assert_eq!(r["request"]["operation"], "CREATE");
        let req: kube::core::admission::AdmissionReview<Pod> =
            serde_json::from_value(r).expect("a review kube can read");
        let req: kube::core::admission::AdmissionRequest<Pod> = req.try_into().expect("request");
        assert_eq!((req.uid.as_str(), req.dry_run), ("u1", false));

        let patch = json!([{"op": "add", "path": "/metadata/annotations/ip", "value": "10.0.0.5"}]);
        let b64 = base64::engine::general_purpose::STANDARD.encode(patch.to_string());
        let body = json!({"response": {"uid": "u1", "allowed": true, "patch": b64, "patchType": "JSONPatch"}});
        let Answer::Patched(p) = answer("u1", body.to_string().as_bytes()).expect("answer") else {
            panic!("expected a patch");
        };
        let stored = patched(&pod, &p).expect("patched");
        assert_eq!(
            stored
                .metadata
                .annotations
                .unwrap()
                .get("ip")
                .map(String::as_str),
            Some("10.0.0.5")
        );
        // What nadipam (kube-rs) sends: the patch as an array of bytes.
        let bytes: Vec<u8> = patch.to_string().into_bytes();
        let body = json!({"response": {"uid": "u1", "allowed": true, "patch": bytes, "patchType": "JSONPatch"}});
        assert!(matches!(
            answer("u1", body.to_string().as_bytes()),
            Ok(Answer::Patched(_))
        ));

        let denied =
            json!({"response": {"uid": "u1", "allowed": false, "status": {"message": "no"}}});
        assert!(matches!(
            answer("u1", denied.to_string().as_bytes()),
            Ok(Answer::Denied(m)) if m == "no"
        ));
        assert!(answer("u2", denied.to_string().as_bytes()).is_err());
    }
}
