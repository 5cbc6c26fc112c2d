//! Emulator processes for the connector tests: started on a free port under a watchdog
//! shell that ends them when the test process ends.

#![allow(dead_code)] // each test file uses its own subset

use std::net::{TcpListener, TcpStream};
use std::path::{Path as FsPath, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One emulator process of this test process, on `port`. Its watchdog shell ends it when
/// this process ends (statics are never dropped).
pub struct Emulator {
    pub port: u16,
    _child: std::sync::Mutex<Child>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// `program` on PATH, or `None`.
pub fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

pub fn missing(what: &str) -> ! {
    panic!("{what} not found: run `make deps` (scripts/install-deps.sh installs it)")
}

/// Start `program args…` (with `{port}` in args replaced by a free port) under a watchdog
/// that kills it when this test process is gone (then removes its log and `cleanup`, its
/// working directory), and wait until the port accepts.
pub fn start(name: &str, program: &FsPath, args: &[&str], cleanup: Option<&FsPath>) -> Emulator {
    let mut last_err = String::new();
    for _attempt in 0..3 {
        let port = free_port();
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("{port}", &port.to_string()))
            .collect();
        let log =
            std::env::temp_dir().join(format!("heimdex-{name}-{}-{port}.log", std::process::id()));
        let script = r#"parent=$1; log=$2; extra=$3; shift 3; "$@" & child=$!
while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.5; done
kill "$child" 2>/dev/null; wait "$child" 2>/dev/null
if ! kill -0 "$parent" 2>/dev/null; then rm -rf "$log" $extra; fi"#;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .arg("sh")
            .arg(std::process::id().to_string())
            .arg(&log)
            .arg(cleanup.map(|p| p.display().to_string()).unwrap_or_default())
            .arg(program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("emulator log"))
            .stderr(std::fs::File::create(&log).expect("emulator log"));
        if let Some(d) = cleanup {
            cmd.current_dir(d);
        }
        let mut child = cmd.spawn().expect("spawn sh");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                last_err = format!(
                    "{name} exited ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
                let _ = std::fs::remove_file(&log);
                break;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                // Still ours (not another process that took the port meanwhile)?
                std::thread::sleep(Duration::from_millis(100));
                if matches!(child.try_wait(), Ok(None)) {
                    return Emulator {
                        port,
                        _child: std::sync::Mutex::new(child),
                    };
                }
                continue;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                last_err = format!("{name} did not listen on {port} within 60 s");
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("could not start {name}: {last_err}");
}

/// A unique lower-case name for a bucket, container or folder.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
