//! TLS test certificates: a throw-away CA and a server certificate for `localhost` and
//! 127.0.0.1, made with the openssl CLI (P-256 keys: quick to generate).

use crate::process::run_ok;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Test-only key material in a directory: the CA certificate, the server certificate and key.
pub struct TestCerts {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCerts {
    /// Makes a CA and a server certificate (valid two days) in `dir`.
    pub fn make(dir: &Path) -> TestCerts {
        let run = |args: &[&str]| {
            run_ok(Command::new("openssl").args(args).current_dir(dir));
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"]);
        run(&[&ca[..], &["-subj", "/CN=wangge-test-ca"]].concat());
        let mut csr = vec!["req"];
        csr.extend(ec);
        csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
        run(&[&csr[..], &["-subj", "/CN=localhost"]].concat());
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        // mosquitto started as root drops to its own user before reading the key: the files
        // must be world-readable (test-only key material).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        for f in ["ca.pem", "server.pem", "server.key"] {
            std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        TestCerts {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        }
    }

    /// The CA certificate's PEM bytes (what a client trusts).
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(&self.ca).unwrap()
    }
}
