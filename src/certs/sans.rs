//! The serving certificate's subject alternative names: every name the apiserver may use for the Service
//! (`<service>`, `<service>.<ns>`, `<service>.<ns>.svc`, `<service>.<ns>.svc.cluster.local`), then the extra
//! names of `--cert-extra-san` (an IP address for a server reached by URL, another cluster domain, ...).

use std::net::IpAddr;

use super::error::CertError;

pub(crate) fn for_service(
    service: &str,
    namespace: &str,
    extra: &[String],
) -> Result<Vec<String>, CertError> {
    if !is_label(service) {
        return Err(CertError::Flag {
            flag: "--service-name",
            value: format!("{service:?}"),
            problem: "must be a Service name: lower-case letters, digits and '-', starting with a letter, at most 63 characters".into(),
        });
    }
    if !is_label(namespace) {
        return Err(CertError::Flag {
            flag: "--namespace",
            value: format!("{namespace:?}"),
            problem: "must be a namespace name: lower-case letters, digits and '-', at most 63 characters".into(),
        });
    }
    let mut sans = vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ];
    for raw in extra {
        let v = raw.trim();
        if v.is_empty() {
            continue;
        }
        let canonical = match v.parse::<IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) if is_dns_name(v) => v.to_ascii_lowercase(),
            Err(_) => {
                return Err(CertError::Flag {
                    flag: "--cert-extra-san",
                    value: format!("{v:?}"),
                    problem: "is neither an IP address nor a DNS name (dot-separated labels of letters, digits and '-', each at most 63 characters; a leading '*.' is allowed)".into(),
                });
            }
        };
        if !sans.contains(&canonical) {
            sans.push(canonical);
        }
    }
    Ok(sans)
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_name(s: &str) -> bool {
    let body = s.strip_prefix("*.").unwrap_or(s);
    body.len() <= 253
        && body.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_then_extras_without_duplicates() {
        let s = for_service(
            "hook",
            "sys",
            &[
                "127.0.0.1".into(),
                "::1".into(),
                "Hook.Example.COM".into(),
                "hook".into(),
            ],
        )
        .unwrap();
        assert_eq!(
            s,
            [
                "hook",
                "hook.sys",
                "hook.sys.svc",
                "hook.sys.svc.cluster.local",
                "127.0.0.1",
                "::1",
                "hook.example.com"
            ]
        );
    }

    #[test]
    fn invalid_names_are_refused_naming_the_flag() {
        let e = for_service("hook", "sys", &["not a name".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--cert-extra-san \"not a name\": is neither an IP address nor a DNS name (dot-separated labels of letters, digits and '-', each at most 63 characters; a leading '*.' is allowed)"
        );
        let e = for_service("Hook", "sys", &[]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--service-name \"Hook\": must be a Service name"),
            "{e}"
        );
        let e = for_service("hook", "", &[]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--namespace \"\": must be a namespace name"),
            "{e}"
        );
        assert!(for_service("hook", "sys", &["*.apps.example".into()]).is_ok());
    }
}
