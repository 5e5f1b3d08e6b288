//! SIP over TLS: the rustls configurations built once at start-up from
//! Kamailio's tls module parameters (certificate, private key, CA list,
//! verification, protocol versions), with ring as the crypto provider.
//! rustls is sans-IO: tcp.rs feeds each TLS connection the bytes its
//! socket gave and writes what it has to send, so a handshake never
//! blocks the reactor (docs/decisions.md §19). This file reads the PEM
//! files (a start-up step, in `setup` before the reactor exists) and
//! knows nothing of SIP.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use std::path::PathBuf;
use std::sync::Arc;

/// Which TLS versions `tls_method` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersions {
    /// TLS 1.2 and 1.3 (`TLSv1.2+`, also what `SSLv23`, `TLSv1+` and
    /// `TLSv1.1+` give here: rustls has nothing older).
    #[default]
    Tls12Plus,
    /// `TLSv1.2` only.
    Tls12,
    /// `TLSv1.3` / `TLSv1.3+` only.
    Tls13,
}

impl TlsVersions {
    /// Kamailio's `tls_method` names; None for one that allows only
    /// versions rustls does not speak (SSLv3, TLSv1, TLSv1.1).
    pub fn parse(s: &str) -> Option<TlsVersions> {
        Some(match s.to_ascii_uppercase().as_str() {
            "TLSV1.2+" | "SSLV23" | "TLSV1+" | "TLSV1.1+" => TlsVersions::Tls12Plus,
            "TLSV1.2" => TlsVersions::Tls12,
            "TLSV1.3" | "TLSV1.3+" => TlsVersions::Tls13,
            _ => return None,
        })
    }

    fn list(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static BOTH: [&rustls::SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        static V12: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
        static V13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            TlsVersions::Tls12Plus => &BOTH,
            TlsVersions::Tls12 => &V12,
            TlsVersions::Tls13 => &V13,
        }
    }
}

/// `modparam("tls", …)`: one profile for the server and the client side,
/// as Kamailio's default domains without a tls.cfg.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsParams {
    /// PEM certificate chain, ours (server side, and client side when
    /// present).
    pub certificate: Option<PathBuf>,
    pub private_key: Option<PathBuf>,
    /// PEM CA certificates that peers' certificates must chain to.
    pub ca_list: Option<PathBuf>,
    /// Kamailio's default 0: no verification of the peer's certificate.
    pub verify_certificate: bool,
    /// Server side: a client must present a certificate (verified against
    /// `ca_list`).
    pub require_certificate: bool,
    pub versions: TlsVersions,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls: cannot read {what} {path}: {err}")]
    Read {
        what: &'static str,
        path: PathBuf,
        err: String,
    },
    #[error("tls: {what} {path} holds no PEM {what}")]
    Empty { what: &'static str, path: PathBuf },
    #[error(
        "tls: listen=tls needs modparam(\"tls\", \"certificate\", …) and (\"tls\", \"private_key\", …)"
    )]
    NoCertificate,
    #[error(
        "tls: verify_certificate or require_certificate needs modparam(\"tls\", \"ca_list\", …)"
    )]
    NoCaList,
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("tls: client certificate verifier: {0}")]
    Verifier(String),
}

/// The built configurations: `server` when a certificate is configured.
#[derive(Debug, Clone)]
pub struct TlsContext {
    pub server: Option<Arc<ServerConfig>>,
    pub client: Arc<ClientConfig>,
}

/// ring, not aws-lc-rs (which needs cmake to build). rustls marks ring's
/// provider deprecated only because it has no post-quantum key exchange.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &PathBuf) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |err: String| TlsError::Read {
        what: "certificate",
        path: path.clone(),
        err,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| read(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| read(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what: "certificate",
            path: path.clone(),
        });
    }
    Ok(certs)
}

fn key(path: &PathBuf) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Read {
        what: "private key",
        path: path.clone(),
        err: e.to_string(),
    })
}

fn roots(p: &TlsParams) -> Result<Option<Arc<RootCertStore>>, TlsError> {
    let Some(path) = &p.ca_list else {
        return Ok(None);
    };
    let mut store = RootCertStore::empty();
    for c in certs(path)? {
        store.add(c)?;
    }
    Ok(Some(Arc::new(store)))
}

impl TlsContext {
    /// Reads the files and builds both sides; `serve` says a `listen=tls`
    /// needs the server side.
    pub fn load(p: &TlsParams, serve: bool) -> Result<TlsContext, TlsError> {
        let roots = roots(p)?;
        let own = match (&p.certificate, &p.private_key) {
            (Some(c), Some(k)) => Some((certs(c)?, key(k)?)),
            _ => None,
        };
        let server = match &own {
            Some((chain, key)) => {
                let b = ServerConfig::builder_with_provider(provider())
                    .with_protocol_versions(p.versions.list())?;
                let b = if p.require_certificate {
                    let roots = roots.clone().ok_or(TlsError::NoCaList)?;
                    let v = WebPkiClientVerifier::builder_with_provider(roots, provider())
                        .build()
                        .map_err(|e| TlsError::Verifier(e.to_string()))?;
                    b.with_client_cert_verifier(v)
                } else {
                    b.with_no_client_auth()
                };
                Some(Arc::new(
                    b.with_single_cert(chain.clone(), key.clone_key())?,
                ))
            }
            None if serve => return Err(TlsError::NoCertificate),
            None => None,
        };
        let b = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(p.versions.list())?;
        let b = if p.verify_certificate {
            let roots = roots.ok_or(TlsError::NoCaList)?;
            b.with_root_certificates(roots)
        } else {
            b.dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
        };
        let client = match own {
            Some((chain, key)) => b.with_client_auth_cert(chain, key)?,
            None => b.with_no_client_auth(),
        };
        Ok(TlsContext {
            server,
            client: Arc::new(client),
        })
    }

    /// A server-side session for an accepted connection.
    pub fn accept(&self) -> Option<rustls::Connection> {
        let cfg = self.server.clone()?;
        rustls::ServerConnection::new(cfg)
            .ok()
            .map(rustls::Connection::Server)
    }

    /// A client-side session to `to` (named by its address: SIP next hops
    /// here are addresses by the time a connection is opened).
    pub fn connect(&self, to: std::net::IpAddr) -> Result<rustls::Connection, rustls::Error> {
        rustls::ClientConnection::new(self.client.clone(), ServerName::from(to))
            .map(rustls::Connection::Client)
    }
}

/// `verify_certificate=0` (Kamailio's default): the server's certificate
/// is not checked, only the handshake's signatures are.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_method_names() {
        for (name, want) in [
            ("TLSv1.2+", Some(TlsVersions::Tls12Plus)),
            ("SSLv23", Some(TlsVersions::Tls12Plus)),
            ("tlsv1.2", Some(TlsVersions::Tls12)),
            ("TLSv1.3", Some(TlsVersions::Tls13)),
            ("TLSv1", None),
            ("SSLv3", None),
        ] {
            assert_eq!(TlsVersions::parse(name), want, "{name}");
        }
    }

    #[test]
    fn a_server_needs_a_certificate_and_verification_a_ca_list() {
        let p = TlsParams::default();
        assert!(matches!(
            TlsContext::load(&p, true),
            Err(TlsError::NoCertificate)
        ));
        assert!(TlsContext::load(&p, false).is_ok(), "client side alone");
        let p = TlsParams {
            verify_certificate: true,
            ..TlsParams::default()
        };
        assert!(matches!(
            TlsContext::load(&p, false),
            Err(TlsError::NoCaList)
        ));
        let p = TlsParams {
            certificate: Some("/nonexistent/cert.pem".into()),
            private_key: Some("/nonexistent/key.pem".into()),
            ..TlsParams::default()
        };
        let e = TlsContext::load(&p, true).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/cert.pem"), "{e}");
    }
}
