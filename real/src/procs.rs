//! The real cluster's processes, and the faults applied to them from outside: crash is
//! SIGKILL, restart the same command again (same data dir, same history file), pause and
//! resume SIGSTOP and SIGCONT, shutdown SIGINT. Every process is killed when the set is
//! dropped, so no node outlives the runner (ctrl-c included: see `main`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether a server is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Running.
    Up,
    /// Stopped by SIGSTOP.
    Paused,
    /// Not running (crashed, shut down, or it exited).
    Down,
}

/// One server: the command that starts it and, while it runs, its process.
pub struct Server {
    /// The binary.
    pub program: PathBuf,
    /// Its flags (extra start-up flags such as the clock's come from `extra`).
    pub args: Vec<String>,
    /// Flags added at every start (the clock seam's error, once a skew set it).
    pub extra: Vec<String>,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    child: Option<Child>,
    state: State,
}

/// Every server of the run, by name.
#[derive(Default)]
pub struct Procs {
    servers: BTreeMap<String, Server>,
    /// Processes that exited on their own (no fault stopped them): name and why, in the
    /// order noticed.
    exits: Vec<(String, String)>,
}

impl Procs {
    /// Adds server `name`, not started yet.
    pub fn add(&mut self, name: &str, program: PathBuf, args: Vec<String>, log: PathBuf) {
        let server = Server {
            program,
            args,
            extra: Vec::new(),
            log,
            child: None,
            state: State::Down,
        };
        self.servers.insert(name.to_string(), server);
    }

    /// The server `name`.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Server> {
        self.servers.get_mut(name)
    }

    /// `name`'s state, after noticing a process that exited on its own.
    pub fn state(&mut self, name: &str) -> State {
        let Some(server) = self.servers.get_mut(name) else {
            return State::Down;
        };
        if let Some(child) = &mut server.child {
            if let Ok(Some(status)) = child.try_wait() {
                server.child = None;
                server.state = State::Down;
                let said = std::fs::read_to_string(&server.log)
                    .ok()
                    .and_then(|out| {
                        out.lines()
                            .rev()
                            .find(|l| !l.trim().is_empty())
                            .map(str::to_string)
                    })
                    .unwrap_or_default();
                self.exits.push((
                    name.to_string(),
                    format!("exited on its own ({status}): {said}"),
                ));
            }
        }
        server.state
    }

    /// The processes that exited on their own since the last call, with why.
    pub fn take_exits(&mut self) -> Vec<(String, String)> {
        for name in self.servers.keys().cloned().collect::<Vec<_>>() {
            self.state(&name);
        }
        std::mem::take(&mut self.exits)
    }

    /// Names of the servers that are up.
    pub fn live(&mut self) -> Vec<String> {
        let names: Vec<String> = self.servers.keys().cloned().collect();
        names
            .into_iter()
            .filter(|n| self.state(n) == State::Up)
            .collect()
    }

    /// Starts (or restarts) `name` with its command.
    pub fn start(&mut self, name: &str) -> Result<(), String> {
        if self.state(name) != State::Down {
            return Err(format!("{name} is already running"));
        }
        let server = self
            .servers
            .get_mut(name)
            .ok_or_else(|| format!("no server {name}"))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&server.log)
            .map_err(|e| format!("{}: {e}", server.log.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&server.program)
            .args(&server.args)
            .args(&server.extra)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", server.program.display()))?;
        server.child = Some(child);
        server.state = State::Up;
        Ok(())
    }

    /// SIGKILL.
    pub fn crash(&mut self, name: &str) -> Result<(), String> {
        self.running(name)?;
        let server = self.servers.get_mut(name).ok_or("no such server")?;
        if let Some(mut child) = server.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        server.state = State::Down;
        Ok(())
    }

    /// SIGINT, then up to 5 s for the node to stop on its own (SIGKILL after that).
    pub fn shutdown(&mut self, name: &str) -> Result<(), String> {
        if self.state(name) != State::Up {
            return Err(format!("{name} is not running"));
        }
        self.signal(name, libc::SIGINT)?;
        let server = self.servers.get_mut(name).ok_or("no such server")?;
        if let Some(mut child) = server.child.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        server.state = State::Down;
        Ok(())
    }

    /// SIGSTOP.
    pub fn pause(&mut self, name: &str) -> Result<(), String> {
        if self.state(name) != State::Up {
            return Err(format!("{name} is not running"));
        }
        self.signal(name, libc::SIGSTOP)?;
        self.set(name, State::Paused);
        Ok(())
    }

    /// SIGCONT.
    pub fn resume(&mut self, name: &str) -> Result<(), String> {
        if self.state(name) != State::Paused {
            return Err(format!("{name} is not paused"));
        }
        self.signal(name, libc::SIGCONT)?;
        self.set(name, State::Up);
        Ok(())
    }

    /// Kills every process (a paused one too: SIGKILL needs no SIGCONT).
    pub fn kill_all(&mut self) {
        for server in self.servers.values_mut() {
            if let Some(mut child) = server.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            server.state = State::Down;
        }
    }

    /// Process ids of every running process (for the ctrl-c handler).
    pub fn pids(&self) -> Vec<u32> {
        self.servers
            .values()
            .filter_map(|s| s.child.as_ref().map(Child::id))
            .collect()
    }

    fn running(&mut self, name: &str) -> Result<(), String> {
        match self.state(name) {
            State::Down => Err(format!("{name} is not running")),
            _ => Ok(()),
        }
    }

    fn set(&mut self, name: &str, state: State) {
        if let Some(server) = self.servers.get_mut(name) {
            server.state = state;
        }
    }

    fn signal(&mut self, name: &str, signal: libc::c_int) -> Result<(), String> {
        let pid = self
            .servers
            .get(name)
            .and_then(|s| s.child.as_ref())
            .map(Child::id)
            .ok_or_else(|| format!("{name} is not running"))?;
        send_signal(pid, signal)
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Sends `signal` to process `pid`.
pub fn send_signal(pid: u32, signal: libc::c_int) -> Result<(), String> {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let sent = unsafe { libc::kill(pid as libc::pid_t, signal) };
    if sent == 0 {
        Ok(())
    } else {
        Err(format!(
            "kill({pid}, {signal}): {}",
            std::io::Error::last_os_error()
        ))
    }
}
