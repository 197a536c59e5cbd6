//! Records the source revision for `<service>_build_info`: `ALERTHAVEN_REVISION` from the build's environment (a
//! container build has no `.git`), else `git rev-parse`, else "unknown".

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=ALERTHAVEN_REVISION");
    // A commit rewrites the HEAD log, so the revision follows every commit.
    println!("cargo:rerun-if-changed=../.git/logs/HEAD");
    let revision = std::env::var("ALERTHAVEN_REVISION").ok().filter(|value| !value.is_empty()).unwrap_or_else(|| {
        Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned())
    });
    println!("cargo:rustc-env=ALERTHAVEN_REVISION={revision}");
}
