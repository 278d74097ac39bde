//! The real `pforte` binary as a child process, for what only a process can show:
//! exit codes, configuration errors, signals, several nodes on one database.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct PforteProcess {
    pub child: Child,
    /// The configured public base URL (issuers are built from it).
    pub base_url: String,
    /// Where the process actually listens, e.g. `http://127.0.0.1:41234`.
    pub listen_url: String,
    stderr: Arc<Mutex<String>>,
}

impl PforteProcess {
    /// Starts `bin serve` with `args` and `envs` (listening on 127.0.0.1:0) and waits for
    /// its ready line. Panics with the process's stderr if it does not come up.
    pub fn spawn(bin: &Path, args: &[&str], envs: &[(&str, &str)]) -> PforteProcess {
        Self::spawn_command(bin, "serve", args, envs)
    }

    /// As [`PforteProcess::spawn`], for another subcommand (`dev`).
    pub fn spawn_command(
        bin: &Path,
        command: &str,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> PforteProcess {
        let mut cmd = Command::new(bin);
        cmd.arg(command)
            .args(args)
            .env("PFORTE_LISTEN", "127.0.0.1:0")
            .env("PFORTE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        // Drained continuously so a chatty child never blocks on a full pipe.
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let child_err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(child_err).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&line);
                    s.push('\n');
                }
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("pforte listening on ") {
                    let _ = tx.send(rest.to_owned());
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(rest) = rx.recv_timeout(Duration::from_millis(100)) {
                // "<addr>, base URL <url>"
                let (addr, base) = rest.split_once(", base URL ").unwrap_or((&rest, ""));
                return PforteProcess {
                    child,
                    base_url: base.trim().to_owned(),
                    listen_url: format!("http://{}", addr.trim()),
                    stderr,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                let err = stderr.lock().map(|s| s.clone()).unwrap_or_default();
                panic!("pforte exited early with {status}: {err}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("pforte did not become ready within 30 s");
            }
        }
    }

    /// What the process has written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap()
    }
}

impl Drop for PforteProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
