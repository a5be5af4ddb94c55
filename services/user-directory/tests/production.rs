//! In production (as the container images start) the directory's client
//! secret has no default: without one it refuses to start, saying why,
//! instead of quietly using the development value.

use std::process::Command;

#[test]
fn without_a_client_secret_the_directory_does_not_start_in_production() {
    let out = Command::new(env!("CARGO_BIN_EXE_user-directory"))
        .env_clear()
        .env("APP_ENV", "production")
        .env("IDENTITY_PROVIDER", "authenticator")
        // Never reached: the settings are refused first.
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .expect("the binary runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("DIRECTORY_CLIENT_SECRET") && stderr.contains("production"),
        "{stderr}"
    );
}
