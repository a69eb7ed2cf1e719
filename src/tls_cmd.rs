//! `ynni tls selfsigned`: a certificate and key for MQTTS and HTTPS on a LAN, where no public CA will
//! sign for `emonpi.local`. Devices then trust this certificate (or skip verification).

use std::path::{Path, PathBuf};

use anyhow::Context;
use ynni_config::Settings;

use crate::cli::SelfSignedArgs;

/// The default pair's paths under the data directory.
pub fn default_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("tls");
    (dir.join("mqtt-cert.pem"), dir.join("mqtt-key.pem"))
}

pub fn selfsigned(settings: &Settings, args: &SelfSignedArgs) -> anyhow::Result<()> {
    let (cert_path, key_path) = default_paths(&settings.data_dir);
    if !args.force && (cert_path.exists() || key_path.exists()) {
        anyhow::bail!(
            "{} already exists (use --force to replace it)",
            cert_path.display()
        );
    }
    let mut names = args.names.clone();
    if names.is_empty() {
        names.push("localhost".into());
        if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
            let host = host.trim();
            if !host.is_empty() {
                names.push(host.to_string());
                names.push(format!("{host}.local"));
            }
        }
    }
    let pair =
        rcgen::generate_simple_self_signed(names.clone()).context("generating the certificate")?;
    let dir = cert_path.parent().context("certificate directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(&cert_path, pair.cert.pem())
        .with_context(|| format!("writing {}", cert_path.display()))?;
    write_private(&key_path, pair.key_pair.serialize_pem().as_bytes())?;
    println!(
        "{}",
        serde_json::json!({
            "cert": cert_path,
            "key": key_path,
            "names": names,
        })
    );
    Ok(())
}

/// Writes the key readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}
