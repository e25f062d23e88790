//! The snapshot file: a RocksDB checkpoint directory packed into one file.
//!
//! Layout: the magic `CLSNAP01`, a big-endian `u32` length and the strictly
//! encoded [`SnapshotHeader`], then one record per file — tag `1`, `u16`
//! name length, name, `u64` data length, data — and the end tag `0`. Files
//! are streamed with `std::io::copy`, never held in memory. Unpacking refuses
//! names that are not plain file names, lengths that do not match, unknown
//! tags and trailing bytes.

use crate::types::{NodeId, PeerNode};
use openraft::{LogId, StoredMembership};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

const MAGIC: &[u8; 8] = b"CLSNAP01";
const TAG_FILE: u8 = 1;
const TAG_END: u8 = 0;
const MAX_HEADER: u32 = 1 << 20;
const MAX_NAME: u16 = 255;
const MAX_FILES: usize = 100_000;

/// What a snapshot says about the state it holds (also stored inside the
/// checkpoint's ledger metadata; the two are checked against each other).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapshotHeader {
    /// Last applied log id.
    pub applied: Option<LogId<NodeId>>,
    /// Last applied membership.
    pub membership: StoredMembership<NodeId, PeerNode>,
    /// Ledger tip height.
    pub tip_height: u64,
    /// Ledger tip hash.
    pub tip_hash: ledger::Hash32,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Pack the regular files of `dir` (a RocksDB checkpoint) into `out`.
pub(crate) fn pack(dir: &Path, header: &SnapshotHeader, out: &Path) -> io::Result<()> {
    let file = File::create(out)?;
    let mut w = BufWriter::new(file);
    w.write_all(MAGIC)?;
    let h = ledger::codec::encode(header).map_err(|e| bad(e.to_string()))?;
    let hlen = u32::try_from(h.len()).map_err(|_| bad("snapshot header too large"))?;
    w.write_all(&hlen.to_be_bytes())?;
    w.write_all(&h)?;
    let mut names = Vec::new();
    for ent in fs::read_dir(dir)? {
        let ent = ent?;
        if !ent.file_type()?.is_file() {
            return Err(bad(format!(
                "checkpoint holds a non-file {:?}",
                ent.file_name()
            )));
        }
        let name = ent
            .file_name()
            .into_string()
            .map_err(|n| bad(format!("non-UTF-8 file name {n:?}")))?;
        if !valid_name(&name) {
            return Err(bad(format!("unexpected file name {name:?}")));
        }
        names.push(name);
    }
    names.sort();
    for name in names {
        let mut f = File::open(dir.join(&name))?;
        let len = f.metadata()?.len();
        w.write_all(&[TAG_FILE])?;
        let nlen = u16::try_from(name.len()).map_err(|_| bad("file name too long"))?;
        w.write_all(&nlen.to_be_bytes())?;
        w.write_all(name.as_bytes())?;
        w.write_all(&len.to_be_bytes())?;
        let copied = io::copy(&mut (&mut f).take(len), &mut w)?;
        if copied != len {
            return Err(bad(format!("{name} shrank while packing")));
        }
    }
    w.write_all(&[TAG_END])?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

fn read_exact_array<const N: usize>(r: &mut impl Read) -> io::Result<[u8; N]> {
    let mut b = [0u8; N];
    r.read_exact(&mut b)?;
    Ok(b)
}

/// Read only the header of a packed snapshot.
pub(crate) fn read_header(r: &mut impl Read) -> io::Result<SnapshotHeader> {
    if &read_exact_array::<8>(r)? != MAGIC {
        return Err(bad("not a snapshot file (bad magic)"));
    }
    let hlen = u32::from_be_bytes(read_exact_array(r)?);
    if hlen > MAX_HEADER {
        return Err(bad(format!("snapshot header of {hlen} bytes")));
    }
    let mut h = vec![0u8; hlen as usize];
    r.read_exact(&mut h)?;
    ledger::codec::decode(&h).map_err(|e| bad(format!("snapshot header: {e}")))
}

/// Unpack a snapshot into the new directory `dir` (must not exist),
/// returning its header. Files are fsynced.
pub(crate) fn unpack(src: File, dir: &Path) -> io::Result<SnapshotHeader> {
    let mut r = BufReader::new(src);
    let header = read_header(&mut r)?;
    fs::create_dir(dir)?;
    let mut count = 0usize;
    loop {
        let [tag] = read_exact_array::<1>(&mut r)?;
        match tag {
            TAG_END => break,
            TAG_FILE => {}
            t => return Err(bad(format!("unknown record tag {t}"))),
        }
        count += 1;
        if count > MAX_FILES {
            return Err(bad("too many files in snapshot"));
        }
        let nlen = u16::from_be_bytes(read_exact_array(&mut r)?);
        if nlen == 0 || nlen > MAX_NAME {
            return Err(bad(format!("file name length {nlen}")));
        }
        let mut name = vec![0u8; nlen as usize];
        r.read_exact(&mut name)?;
        let name = String::from_utf8(name).map_err(|_| bad("non-UTF-8 file name"))?;
        if !valid_name(&name) {
            return Err(bad(format!("refused file name {name:?}")));
        }
        let len = u64::from_be_bytes(read_exact_array(&mut r)?);
        let path = dir.join(&name);
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        let copied = io::copy(&mut (&mut r).take(len), &mut out)?;
        if copied != len {
            return Err(bad(format!("{name}: snapshot ends early")));
        }
        out.sync_all()?;
    }
    let mut rest = [0u8; 1];
    if r.read(&mut rest)? != 0 {
        return Err(bad("trailing bytes after snapshot"));
    }
    sync_dir(dir)?;
    Ok(header)
}

/// fsync a directory so renames and new files in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> SnapshotHeader {
        SnapshotHeader {
            applied: None,
            membership: StoredMembership::default(),
            tip_height: 3,
            tip_hash: ledger::Hash32::ZERO,
        }
    }

    #[test]
    fn pack_unpack_round_trip_and_corruptions_fail() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("CURRENT"), b"MANIFEST-1\n").unwrap();
        fs::write(src.join("000001.sst"), vec![7u8; 100_000]).unwrap();
        let packed = tmp.path().join("snap");
        pack(&src, &header(), &packed).unwrap();
        let dst = tmp.path().join("dst");
        let h = unpack(File::open(&packed).unwrap(), &dst).unwrap();
        assert_eq!(h, header());
        assert_eq!(
            fs::read(dst.join("000001.sst")).unwrap(),
            vec![7u8; 100_000]
        );
        assert_eq!(fs::read(dst.join("CURRENT")).unwrap(), b"MANIFEST-1\n");

        let bytes = fs::read(&packed).unwrap();
        // Truncated anywhere: error, never panic.
        for cut in [0, 5, 12, bytes.len() / 2, bytes.len() - 1] {
            let p = tmp.path().join(format!("cut{cut}"));
            fs::write(&p, &bytes[..cut]).unwrap();
            assert!(unpack(File::open(&p).unwrap(), &tmp.path().join(format!("d{cut}"))).is_err());
        }
        // Trailing byte.
        let mut t = bytes.clone();
        t.push(0);
        let p = tmp.path().join("trailing");
        fs::write(&p, &t).unwrap();
        assert!(unpack(File::open(&p).unwrap(), &tmp.path().join("dt")).is_err());
        // Path traversal in a name.
        let evil = tmp.path().join("evil");
        let mut e = Vec::new();
        e.extend_from_slice(MAGIC);
        let h = ledger::codec::encode(&header()).unwrap();
        e.extend_from_slice(&(h.len() as u32).to_be_bytes());
        e.extend_from_slice(&h);
        e.push(TAG_FILE);
        e.extend_from_slice(&5u16.to_be_bytes());
        e.extend_from_slice(b"../x1");
        e.extend_from_slice(&0u64.to_be_bytes());
        e.push(TAG_END);
        fs::write(&evil, &e).unwrap();
        assert!(unpack(File::open(&evil).unwrap(), &tmp.path().join("de")).is_err());
        assert!(!tmp.path().join("x1").exists());
    }
}
