//! A throwaway PKI made at test time: a CA and a `localhost` certificate signed by it, written to a
//! fresh directory, and a gateway config that serves TLS with them.

use std::path::PathBuf;

pub struct TestPki {
    pub ca_pem: String,
    pub dir: PathBuf,
    /// Removes the directory, and the test key in it, when the test is done with the PKI.
    _home: tempfile::TempDir,
}

impl TestPki {
    /// A CA and a localhost certificate signed by it, written to a fresh directory.
    pub fn new() -> TestPki {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "casegate test CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
        let home = tempfile::Builder::new()
            .prefix("casegate-tls-")
            .tempdir()
            .unwrap();
        let dir = home.path().to_path_buf();
        std::fs::write(dir.join("cert.pem"), format!("{}{}", leaf.pem(), ca.pem())).unwrap();
        std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();
        TestPki {
            ca_pem: ca.pem(),
            dir,
            _home: home,
        }
    }

    /// The `[server.tls]` table that serves this PKI's certificate.
    pub fn server_tls_table(&self) -> String {
        format!(
            "[server.tls]\ncert = \"{}\"\nkey = \"{}\"",
            self.dir.join("cert.pem").display(),
            self.dir.join("key.pem").display()
        )
    }
}
