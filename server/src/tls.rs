//! TLS on `tls-port`, with rustls (ring provider), configured as Redis 7.0's `tls-*` parameters
//! say: the server's certificate and key (`tls-cert-file`, `tls-key-file`), the authorities
//! client certificates are checked against (`tls-ca-cert-file`, `tls-ca-cert-dir`) and whether
//! clients must present one (`tls-auth-clients yes|no|optional`), the protocol versions
//! (`tls-protocols`), the TLS 1.2 and 1.3 suites (`tls-ciphers`, `tls-ciphersuites`) and whose
//! suite order wins (`tls-prefer-server-ciphers`); an encrypted key is read with
//! `tls-key-file-pass`.
//!
//! The configuration is built whole and swapped in: CONFIG SET of any of them (new certificate
//! files, say) takes effect for the next connection without a restart, and a configuration that
//! does not load is refused with the old one kept.

use std::sync::{Arc, RwLock};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, server::WebPkiClientVerifier, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::config_store::ConfigStore;

/// The parameters a TLS configuration is built from.
pub const PARAMETERS: [&str; 10] = [
    "tls-cert-file",
    "tls-key-file",
    "tls-key-file-pass",
    "tls-ca-cert-file",
    "tls-ca-cert-dir",
    "tls-auth-clients",
    "tls-protocols",
    "tls-ciphers",
    "tls-ciphersuites",
    "tls-prefer-server-ciphers",
];

/// The acceptor in force (None until a certificate is configured).
#[derive(Default)]
pub struct Tls {
    acceptor: RwLock<Option<TlsAcceptor>>,
}

impl Tls {
    /// The acceptor for a new connection on the TLS port.
    pub fn acceptor(&self) -> Option<TlsAcceptor> {
        self.acceptor.read().expect("tls lock").clone()
    }

    /// Builds the configuration `cfg` describes and puts it in force; on an error the one in
    /// force stays.
    pub fn reload(&self, cfg: &ConfigStore) -> Result<(), String> {
        let acceptor = server_config(cfg)?.map(|c| TlsAcceptor::from(Arc::new(c)));
        *self.acceptor.write().expect("tls lock") = acceptor;
        Ok(())
    }
}

/// Whether any TLS parameter differs between two configurations.
pub fn changed(before: &ConfigStore, after: &ConfigStore) -> bool {
    PARAMETERS.iter().any(|p| before.get(p) != after.get(p))
}

fn server_config(cfg: &ConfigStore) -> Result<Option<ServerConfig>, String> {
    let cert_file = cfg.get("tls-cert-file");
    if cert_file.is_empty() {
        return Ok(None);
    }
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the certificate file {cert_file}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {cert_file}"));
    }
    let key = private_key(cfg.get("tls-key-file"), cfg.get("tls-key-file-pass"))?;

    // ring, as the brief of this server asks (aws-lc-rs, rustls's default, needs cmake to
    // build); rustls 0.23.48 deprecated ring's constructor for lacking post-quantum exchange.
    #[allow(deprecated)]
    let mut provider = rustls::crypto::ring::default_provider();
    let suites = cfg.get("tls-ciphersuites");
    if !suites.is_empty() {
        // OpenSSL's TLS 1.3 names (TLS_AES_256_GCM_SHA384) against rustls's (TLS13_...); TLS 1.2
        // suites are tls-ciphers' business.
        let wanted: Vec<String> = suites
            .split(':')
            .map(|s| s.trim().replacen("TLS_", "TLS13_", 1))
            .collect();
        provider.cipher_suites.retain(|s| {
            s.version() != &rustls::version::TLS13 || wanted.contains(&format!("{:?}", s.suite()))
        });
        if !provider
            .cipher_suites
            .iter()
            .any(|s| s.version() == &rustls::version::TLS13)
        {
            return Err(format!("no TLS 1.3 cipher suite known in '{suites}'"));
        }
    }
    let ciphers = cfg.get("tls-ciphers");
    if !ciphers.trim().is_empty() {
        let order = tls12_suites(ciphers)?;
        // Kept in the list's order (it decides with tls-prefer-server-ciphers); TLS 1.3 suites
        // first, as they were.
        let mut suites = std::mem::take(&mut provider.cipher_suites);
        suites.sort_by_key(|s| {
            let name = format!("{:?}", s.suite());
            order.iter().position(|o| *o == name).unwrap_or(0)
        });
        provider.cipher_suites = suites
            .into_iter()
            .filter(|s| {
                s.version() == &rustls::version::TLS13
                    || order.contains(&format!("{:?}", s.suite()))
            })
            .collect();
    }
    let versions = protocol_versions(cfg.get("tls-protocols"))?;
    let verifier = client_verifier(cfg, &provider)?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS protocols: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| format!("the certificate and key do not make a pair: {e}"))?;
    config.ignore_client_order = cfg.get_bool("tls-prefer-server-ciphers");
    Ok(Some(config))
}

/// The server's private key: plain PEM (PKCS#8, PKCS#1 or SEC1), or with `tls-key-file-pass`
/// an `ENCRYPTED PRIVATE KEY` (PKCS#8 with PBES2), as OpenSSL writes them. A pass given for a
/// plain key is not needed and is ignored, as OpenSSL does.
fn private_key(key_file: &str, pass: &str) -> Result<PrivateKeyDer<'static>, String> {
    let cannot =
        |e: &dyn std::fmt::Display| format!("cannot read the private key file {key_file}: {e}");
    let pem = std::fs::read_to_string(key_file).map_err(|e| cannot(&e))?;
    if !pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| cannot(&e));
    }
    if pass.is_empty() {
        return Err(format!(
            "the private key file {key_file} is encrypted: set tls-key-file-pass"
        ));
    }
    let (_, der) = pkcs8::Document::from_pem(&pem).map_err(|e| cannot(&e))?;
    let encrypted =
        pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_bytes()).map_err(|e| cannot(&e))?;
    let plain = encrypted.decrypt(pass.as_bytes()).map_err(|_| {
        format!("cannot decrypt the private key file {key_file} with tls-key-file-pass")
    })?;
    Ok(PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into()))
}

/// The TLS 1.2 suites rustls offers, by their OpenSSL names, with the words of OpenSSL's
/// cipher-list language that select them (key exchange, authentication, cipher, digest, and
/// the groups every one of them belongs to).
const TLS12_SUITES: [(&str, &str, &str); 6] = [
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "ECDHE EECDH kECDHE ECDSA aECDSA AES AES256 AESGCM SHA384",
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "ECDHE EECDH kECDHE ECDSA aECDSA AES AES128 AESGCM SHA256",
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE EECDH kECDHE ECDSA aECDSA CHACHA20",
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "ECDHE EECDH kECDHE RSA aRSA AES AES256 AESGCM SHA384",
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "ECDHE EECDH kECDHE RSA aRSA AES AES128 AESGCM SHA256",
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE EECDH kECDHE RSA aRSA CHACHA20",
    ),
];

/// `tls-ciphers`: the TLS 1.2 suites an OpenSSL cipher list selects, in its order (rustls's
/// names). Words are separated by `:`, `,` or spaces; `A+B` selects the suites with both; `!`
/// and `-` take suites out (`!` for good), `+` alone moves them to the end; suite names,
/// `ALL`, `DEFAULT`, `HIGH` and the component words above are understood, other words (suites
/// rustls does not have, such as DHE or CBC ones) select nothing, as unknown names do in
/// OpenSSL. A list that selects no suite is refused, as OpenSSL refuses it.
fn tls12_suites(list: &str) -> Result<Vec<String>, String> {
    let selects = |word: &str, (name, _, words): &(&str, &str, &str)| {
        word.split('+').all(|w| {
            w.eq_ignore_ascii_case(name)
                || ["ALL", "DEFAULT", "HIGH"].contains(&w)
                || words.split(' ').any(|x| x == w)
        })
    };
    let mut chosen: Vec<usize> = Vec::new();
    let mut banned: Vec<usize> = Vec::new();
    for word in list
        .split([':', ',', ' '])
        .filter(|w| !w.is_empty() && !w.starts_with('@'))
    {
        let (op, word) = match word.as_bytes()[0] {
            b'!' | b'-' | b'+' => (word.as_bytes()[0], &word[1..]),
            _ => (b' ', word),
        };
        let matched = (0..TLS12_SUITES.len()).filter(|&i| selects(word, &TLS12_SUITES[i]));
        for i in matched {
            match op {
                b'!' => {
                    banned.push(i);
                    chosen.retain(|&c| c != i);
                }
                b'-' => chosen.retain(|&c| c != i),
                b'+' => {
                    if let Some(at) = chosen.iter().position(|&c| c == i) {
                        chosen.remove(at);
                        chosen.push(i);
                    }
                }
                _ => {
                    if !chosen.contains(&i) && !banned.contains(&i) {
                        chosen.push(i);
                    }
                }
            }
        }
    }
    if chosen.is_empty() {
        return Err(format!(
            "no TLS 1.2 cipher suite matches tls-ciphers '{list}'"
        ));
    }
    Ok(chosen
        .iter()
        .map(|&i| TLS12_SUITES[i].1.to_string())
        .collect())
}

/// `tls-protocols`: TLSv1.2 and TLSv1.3 (both when empty); the older ones rustls does not offer.
fn protocol_versions(
    value: &str,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    if value.trim().is_empty() {
        return Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]);
    }
    let mut versions = Vec::new();
    for word in value.split_whitespace() {
        match word.to_ascii_lowercase().as_str() {
            "tlsv1.2" => versions.push(&rustls::version::TLS12),
            "tlsv1.3" => versions.push(&rustls::version::TLS13),
            "tlsv1" | "tlsv1.1" => {}
            _ => return Err(format!("invalid tls-protocols value '{word}'")),
        }
    }
    if versions.is_empty() {
        return Err("tls-protocols: only TLSv1.2 and TLSv1.3 are supported".into());
    }
    Ok(versions)
}

/// `tls-auth-clients`: no asks for no certificate; yes requires one signed by an authority of
/// `tls-ca-cert-file` / `tls-ca-cert-dir`; optional checks one if given.
fn client_verifier(
    cfg: &ConfigStore,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    let mode = cfg.get("tls-auth-clients");
    if mode == "no" {
        return Ok(WebPkiClientVerifier::no_client_auth());
    }
    let mut roots = RootCertStore::empty();
    let mut add_file = |path: &str| -> Result<(), String> {
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| format!("{path}: {e}"))? {
            let cert = cert.map_err(|e| format!("{path}: {e}"))?;
            roots.add(cert).map_err(|e| format!("{path}: {e}"))?;
        }
        Ok(())
    };
    let ca_file = cfg.get("tls-ca-cert-file");
    if !ca_file.is_empty() {
        add_file(ca_file)?;
    }
    let ca_dir = cfg.get("tls-ca-cert-dir");
    if !ca_dir.is_empty() {
        let entries = std::fs::read_dir(ca_dir).map_err(|e| format!("{ca_dir}: {e}"))?;
        for entry in entries.flatten() {
            let path = entry.path();
            // The directory may hold other files (OpenSSL's hash links point at the same ones).
            if path.is_file() {
                let _ = add_file(&path.to_string_lossy());
            }
        }
    }
    if roots.is_empty() {
        return Err("tls-auth-clients needs tls-ca-cert-file or tls-ca-cert-dir".into());
    }
    let builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::new(provider.clone()));
    let builder = if mode == "optional" {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    builder
        .build()
        .map_err(|e| format!("client verification: {e}"))
}

#[cfg(test)]
mod tests {
    use super::tls12_suites;

    #[test]
    fn cipher_lists_select_like_openssl() {
        assert_eq!(
            tls12_suites("ECDHE-RSA-AES128-GCM-SHA256").unwrap(),
            ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]
        );
        let high = tls12_suites("HIGH:!aNULL:!MD5").unwrap();
        assert_eq!(high.len(), 6);
        assert_eq!(
            tls12_suites("ECDHE+AESGCM:!ECDSA").unwrap(),
            [
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
            ]
        );
        assert_eq!(
            tls12_suites("DEFAULT:!CHACHA20:-AES256").unwrap(),
            [
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
            ]
        );
        assert!(tls12_suites("DHE-RSA-AES256-SHA256:RC4").is_err());
    }
}
