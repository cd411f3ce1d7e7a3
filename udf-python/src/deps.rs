//! A job's Python dependencies, PyFlink's keys: `python.files`, `python.archives`,
//! `python.requirements`, `python.pythonpath` and `python.executable` (which may point into an
//! extracted archive). They are prepared once per job, before its first worker starts, in the
//! job's private directory (removed with it when the job ends):
//!
//! ```text
//! weir-<job>-<random>/
//!   files/<n>/...       each python.files entry, copied (a module's directory, a directory, or a zip/wheel/egg)
//!   requirements/       `pip install --target` of python.requirements, by the workers' interpreter
//!   work/               the workers' working directory; python.archives extracted into work/<target>
//! ```
//!
//! The copying, extracting and pip run in `deps.py`, a standard-library script run by
//! `python.client.executable`: Python's `zipfile`/`tarfile` already know every archive form
//! PyFlink users bring (and the worker interpreter may only exist once an archive is out).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use weir_engine::error::{EngineError, Result};

/// The keys, as read from a job's configuration.
pub mod keys {
    pub const FILES: &str = "python.files";
    pub const ARCHIVES: &str = "python.archives";
    pub const REQUIREMENTS: &str = "python.requirements";
    pub const PYTHONPATH: &str = "python.pythonpath";
    pub const CLIENT_EXECUTABLE: &str = "python.client.executable";
}

const SCRIPT: &str = include_str!("deps.py");

/// What a job asks for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DepsConfig {
    /// The workers' interpreter as configured (`python.executable`).
    pub python: String,
    client: String,
    files: Vec<String>,
    archives: Vec<(String, Option<String>)>,
    requirements: Option<(String, Option<String>)>,
    pythonpath: Vec<String>,
}

/// What the workers of a job get.
#[derive(Clone, Debug)]
pub struct Deps {
    /// The interpreter to start, resolved (inside `work/` when it came from an archive).
    pub python: String,
    /// Entries put before the interpreter's own on `PYTHONPATH`.
    pub path: Vec<String>,
    /// The workers' working directory.
    pub cwd: PathBuf,
}

fn list(v: Option<&String>, sep: char) -> Vec<String> {
    v.map(|s| {
        s.split(sep)
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect()
    })
    .unwrap_or_default()
}

/// `path#target` (`#` splits at the last one; an empty target is none).
fn split_hash(s: &str) -> (String, Option<String>) {
    match s.rsplit_once('#') {
        Some((p, t)) if !t.trim().is_empty() => (p.trim().to_string(), Some(t.trim().to_string())),
        Some((p, _)) => (p.trim().to_string(), None),
        None => (s.trim().to_string(), None),
    }
}

impl DepsConfig {
    pub fn from_config(config: &BTreeMap<String, String>, python: &str) -> Result<Self> {
        let requirements = match config.get(keys::REQUIREMENTS).map(|s| s.trim()) {
            None | Some("") => None,
            Some(r) => {
                let (file, cache) = split_hash(r);
                if file.is_empty() {
                    return Err(EngineError::Config(format!(
                        "{}: `{r}` names no requirements file (`requirements.txt` or `requirements.txt#cache_dir`)",
                        keys::REQUIREMENTS
                    )));
                }
                Some((file, cache))
            }
        };
        let archives = list(config.get(keys::ARCHIVES), ',')
            .iter()
            .map(|a| split_hash(a))
            .collect();
        Ok(Self {
            python: python.to_string(),
            client: config
                .get(keys::CLIENT_EXECUTABLE)
                .cloned()
                .unwrap_or_else(|| "python3".into()),
            files: list(config.get(keys::FILES), ','),
            archives,
            requirements,
            pythonpath: list(config.get(keys::PYTHONPATH), ':'),
        })
    }

    /// Jobs of one name with different dependencies get different directories.
    pub fn key(&self) -> String {
        format!("{self:?}")
    }

    fn needs_script(&self) -> bool {
        !self.files.is_empty() || !self.archives.is_empty() || self.requirements.is_some()
    }

    /// Prepares the dependencies in `dir`; the error is the reason, naming the key.
    pub async fn prepare(&self, dir: &Path) -> std::result::Result<Deps, String> {
        let work = dir.join("work");
        if !self.needs_script() {
            std::fs::create_dir_all(&work)
                .map_err(|e| format!("creating {}: {e}", work.display()))?;
            let python = if self.python.contains('/') && !Path::new(&self.python).is_absolute() {
                std::path::absolute(&self.python)
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| self.python.clone())
            } else {
                self.python.clone()
            };
            return Ok(Deps {
                python,
                path: self.pythonpath.clone(),
                cwd: work,
            });
        }
        let abs = |p: &str| {
            std::path::absolute(p)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| p.to_string())
        };
        let request = serde_json::json!({
            "dir": dir.display().to_string(),
            "files": self.files.iter().map(|f| abs(f)).collect::<Vec<_>>(),
            "archives": self.archives.iter().map(|(a, t)| (abs(a), t.clone())).collect::<Vec<_>>(),
            "requirements": self.requirements.as_ref().map(|(f, c)| (abs(f), c.as_deref().map(abs))),
            "executable": self.python,
            "pythonpath": self.pythonpath,
        });
        let mut child = tokio::process::Command::new(&self.client)
            .arg("-c")
            .arg(SCRIPT)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start `{}` ({}) to prepare python.files, python.archives and python.requirements: {e}",
                    self.client,
                    keys::CLIENT_EXECUTABLE
                )
            })?;
        let mut stdin = child.stdin.take().expect("piped");
        let body = request.to_string();
        let write = async move {
            let r = stdin.write_all(body.as_bytes()).await;
            drop(stdin);
            r
        };
        let (written, out) = tokio::join!(write, child.wait_with_output());
        let out = out.map_err(|e| format!("preparing the Python dependencies: {e}"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(if err.is_empty() {
                format!(
                    "preparing the Python dependencies with `{}` failed ({})",
                    self.client, out.status
                )
            } else {
                err
            });
        }
        written.map_err(|e| format!("preparing the Python dependencies: {e}"))?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("preparing the Python dependencies: unreadable answer: {e}"))?;
        let text = |k: &str| v[k].as_str().map(String::from);
        Ok(Deps {
            python: text("executable").unwrap_or_else(|| self.python.clone()),
            path: v["path"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            cwd: text("cwd").map(PathBuf::from).unwrap_or(work),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pyflink_forms() {
        let mut c = BTreeMap::new();
        c.insert(keys::FILES.into(), "a.py, dir/ ,,b.zip".into());
        c.insert(keys::ARCHIVES.into(), "venv.zip#venv,data.tar.gz".into());
        c.insert(keys::REQUIREMENTS.into(), "req.txt#cache".into());
        c.insert(keys::PYTHONPATH.into(), "/x:/y".into());
        let d = DepsConfig::from_config(&c, "python3").unwrap();
        assert_eq!(d.files, ["a.py", "dir/", "b.zip"]);
        assert_eq!(
            d.archives,
            [
                ("venv.zip".to_string(), Some("venv".to_string())),
                ("data.tar.gz".to_string(), None)
            ]
        );
        assert_eq!(
            d.requirements,
            Some(("req.txt".to_string(), Some("cache".to_string())))
        );
        assert_eq!(d.pythonpath, ["/x", "/y"]);
        assert!(d.needs_script());
        c.insert(keys::REQUIREMENTS.into(), "#cache".into());
        assert!(DepsConfig::from_config(&c, "python3")
            .unwrap_err()
            .to_string()
            .contains("names no requirements file"));
        assert!(!DepsConfig::from_config(&BTreeMap::new(), "python3")
            .unwrap()
            .needs_script());
    }
}
