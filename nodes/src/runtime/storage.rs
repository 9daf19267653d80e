//! The storage seam: the bytes under a node's durable log.
//!
//! A node never opens files itself. Its entry point receives a [`Storage`]: in real mode a
//! [`FileStorage`] (append + fsync), in simulation a harness-owned disk image that outlives
//! restarts and loses whatever was not synced when the node crashes.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Append-only bytes with an explicit durability point.
pub trait Storage: Send {
    /// Everything currently stored, synced or not.
    fn read_all(&mut self) -> io::Result<Vec<u8>>;
    /// Appends bytes; they are durable only after [`Storage::sync`].
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes every appended byte durable.
    fn sync(&mut self) -> io::Result<()>;
    /// Cuts the stored bytes to `len` (used to drop a damaged tail on recovery).
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

/// Real-mode storage: one file, fsync on [`Storage::sync`].
pub struct FileStorage {
    path: PathBuf,
    file: File,
}

impl FileStorage {
    /// Opens (creating if needed) the file at `path`, creating its directory too.
    pub fn open(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        Ok(FileStorage {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Where the file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Storage for FileStorage {
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.file.seek(SeekFrom::Start(0))?;
        self.file.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.file.sync_data()
    }
}

/// Storage for nodes that keep nothing durable (the KV store and registry are in-memory,
/// as in the seed): appends succeed and are forgotten.
pub struct Nowhere;

impl Storage for Nowhere {
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        Ok(Vec::new())
    }

    fn append(&mut self, _bytes: &[u8]) -> io::Result<()> {
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn truncate(&mut self, _len: u64) -> io::Result<()> {
        Ok(())
    }
}
