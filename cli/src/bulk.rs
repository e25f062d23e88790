//! `customsctl submit` with many events: files, directories of `*.json`
//! files (in name order) and `-` (JSON lines on standard input), submitted
//! in order over one connection, with a progress bar and one result line
//! per event: `committed` (or `accepted` with `--no-wait`), `REJECTED`
//! (the node refused it, with its reason) or `FAILED` (unreadable or
//! malformed here). The rest go on; the command fails if any did not
//! commit.

use crate::client::status_error;
use crate::Conn;
use anyhow::{bail, Context, Result};
use std::io::BufRead;
use std::path::PathBuf;

/// One event to submit: where it came from and its JSON.
pub(crate) struct Item {
    pub name: String,
    pub text: String,
}

/// The events `paths` name, in order.
pub(crate) fn expand(paths: &[PathBuf]) -> Result<Vec<Item>> {
    let mut out = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            let stdin = std::io::stdin();
            for (i, line) in stdin.lock().lines().enumerate() {
                let line = line.context("reading standard input")?;
                if line.trim().is_empty() {
                    continue;
                }
                out.push(Item {
                    name: format!("stdin:{}", i + 1),
                    text: line,
                });
            }
        } else if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot list {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            for f in files {
                out.push(read(&f)?);
            }
        } else {
            out.push(read(p)?);
        }
    }
    if out.is_empty() {
        bail!("no events to submit");
    }
    Ok(out)
}

fn read(p: &PathBuf) -> Result<Item> {
    Ok(Item {
        name: p.display().to_string(),
        text: std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
    })
}

/// Submit every item in order; one line each, then a summary.
pub(crate) async fn submit_all(conn: &Conn, items: &[Item], wait: bool) -> Result<()> {
    let mut c = conn.client().await?;
    let cfg = conn.current_config(&mut c).await?;
    let bar = crate::progress_of(items.len() as u64, "submitting", "events");
    let mut failed = 0usize;
    for it in items {
        let line = match crate::seal_event(conn, &cfg, &it.name, &it.text) {
            Err(e) => {
                failed += 1;
                format!("FAILED    {}: {e:#}", it.name)
            }
            Ok(stx) => {
                let id = stx.id()?;
                match crate::send(&mut c, &stx, wait).await? {
                    Err(s) => {
                        // The node refused it (the message starts with its
                        // reason code).
                        failed += 1;
                        format!("REJECTED  {} tx {id}: {}", it.name, status_error(s))
                    }
                    Ok(r) => {
                        if let Some(rj) = r.rejections.first() {
                            failed += 1;
                            format!("REJECTED  {} tx {id}: {}: {}", it.name, rj.code, rj.message)
                        } else if wait {
                            format!(
                                "committed {} tx {id} at height {} index {}",
                                it.name, r.height, r.index
                            )
                        } else {
                            format!("accepted  {} tx {id}", it.name)
                        }
                    }
                }
            }
        };
        bar.suspend(|| println!("{line}"));
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "{} of {} events {}; {failed} failed",
        items.len() - failed,
        items.len(),
        if wait { "committed" } else { "accepted" }
    );
    if failed > 0 {
        bail!("{failed} of {} events failed", items.len());
    }
    Ok(())
}
