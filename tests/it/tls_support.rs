//! A throw-away certificate authority made with `openssl` for the TLS tests (Redis over TLS,
//! the LLM endpoint over HTTPS): `ca.crt`/`ca.key` and a server certificate signed by it,
//! `server.crt`/`server.key`, valid for `localhost` and `127.0.0.1`. Callers check
//! `limit_support::tool_available(test, "openssl")` first.

use std::path::Path;
use std::process::Command;

/// Writes the CA and the server certificate into `dir`.
pub fn throwaway_ca(dir: &Path) {
    let sh = |args: &str| {
        let out = Command::new("sh")
            .arg("-c")
            .arg(args)
            .current_dir(dir)
            .output()
            .expect("running openssl");
        assert!(
            out.status.success(),
            "{args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sh(
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 \
        -subj /CN=qerrors-test-ca 2>/dev/null",
    );
    sh(
        "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
        -subj /CN=localhost 2>/dev/null",
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    sh(
        "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
        -out server.crt -days 2 -extfile san.ext 2>/dev/null",
    );
}
