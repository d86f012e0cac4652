//! A throwaway PKI made at test time: a CA and a `localhost` certificate signed by it, written to a
//! fresh directory, and a gateway config that serves TLS with them.

use std::path::PathBuf;

pub struct TestPki {
    pub ca_pem: String,
    pub dir: PathBuf,
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
        let dir = std::env::temp_dir().join(format!(
            "casegate-tls-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), format!("{}{}", leaf.pem(), ca.pem())).unwrap();
        std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();
        TestPki {
            ca_pem: ca.pem(),
            dir,
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

/// Keeps directories of tests running in parallel apart.
fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}
