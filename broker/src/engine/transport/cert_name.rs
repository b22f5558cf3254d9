//! A client certificate's name as the connection's username (`cert_as_username`): the
//! subject's Common Name, or its first DNS, e-mail or URI Subject Alternative Name. The
//! certificate was verified against the listener's CA during the handshake; this only
//! reads it (x509-parser).

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Which name of the certificate becomes the username.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertName {
    /// The subject's Common Name.
    Cn,
    /// The first DNS name, e-mail address or URI among the Subject Alternative Names.
    San,
}

/// The name `which` of DER certificate `der`, or why there is none.
pub fn username(der: &[u8], which: CertName) -> Result<String, String> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| format!("the client certificate cannot be read: {e}"))?;
    let name = match which {
        CertName::Cn => cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned),
        CertName::San => cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .and_then(|san| {
                san.value.general_names.iter().find_map(|n| match n {
                    GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                        Some((*s).to_owned())
                    }
                    _ => None,
                })
            }),
    };
    match name {
        Some(n) if !n.is_empty() => Ok(n),
        _ => Err(format!(
            "the client certificate has no {} to use as the username",
            match which {
                CertName::Cn => "Common Name",
                CertName::San => "DNS, e-mail or URI Subject Alternative Name",
            }
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: Option<&str>, sans: Vec<rcgen::SanType>) -> Vec<u8> {
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        }
        p.subject_alt_names = sans;
        let key = rcgen::KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn names_come_from_the_subject_or_the_alternative_names() {
        let dns = rcgen::SanType::DnsName("dev-7.fleet.example".try_into().unwrap());
        let mail = rcgen::SanType::Rfc822Name("ops@example.com".try_into().unwrap());
        let ip = rcgen::SanType::IpAddress("192.0.2.1".parse().unwrap());
        let c = cert(Some("sensor-42"), vec![ip.clone(), dns]);
        assert_eq!(username(&c, CertName::Cn).unwrap(), "sensor-42");
        assert_eq!(
            username(&c, CertName::San).unwrap(),
            "dev-7.fleet.example",
            "IPs skipped"
        );
        let c = cert(None, vec![mail]);
        assert_eq!(username(&c, CertName::San).unwrap(), "ops@example.com");
        let e = username(&c, CertName::Cn).unwrap_err();
        assert!(e.contains("no Common Name"), "{e}");
        let c = cert(Some("x"), vec![ip]);
        assert!(username(&c, CertName::San).is_err());
        assert!(username(b"not a certificate", CertName::Cn).is_err());
    }
}
