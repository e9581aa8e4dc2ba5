//! The real disk: a directory on the host file system.

use super::parent_directory;
use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A directory on the real file system that holds a node's files.
#[derive(Clone, Debug)]
pub struct OsDisk {
    root: PathBuf,
}

/// An open file on an [`OsDisk`].
#[derive(Debug)]
pub struct OsFile {
    file: fs::File,
}

impl OsDisk {
    pub(super) fn new(root: PathBuf) -> io::Result<OsDisk> {
        fs::create_dir_all(&root)?;
        Ok(OsDisk { root })
    }

    /// The directory this disk lives in.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub(super) fn open(&self, name: &str) -> io::Result<OsFile> {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        Ok(OsFile { file })
    }

    pub(super) fn exists(&self, name: &str) -> io::Result<bool> {
        self.path(name).try_exists()
    }

    pub(super) fn list(&self, directory: &str) -> io::Result<Vec<String>> {
        let entries = match fs::read_dir(self.path(directory)) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            names.push(if directory.is_empty() {
                file_name
            } else {
                format!("{directory}/{file_name}")
            });
        }
        names.sort();
        Ok(names)
    }

    pub(super) fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.path(name))
    }

    pub(super) fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let target = self.path(to);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::rename(self.path(from), target)
    }

    pub(super) fn sync_directory(&self, directory: &str) -> io::Result<()> {
        let path = self.path(directory);
        fs::create_dir_all(&path)?;
        fs::File::open(path)?.sync_all()?;
        // A directory created by create_dir_all is itself an entry of its parent.
        if !directory.is_empty() {
            fs::File::open(self.path(parent_directory(directory)))?.sync_all()?;
        }
        Ok(())
    }
}

impl OsFile {
    pub(super) fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    pub(super) fn read_exact_at(&self, offset: u64, buffer: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buffer, offset)
    }

    pub(super) fn write_all_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, offset)
    }

    pub(super) fn set_len(&self, length: u64) -> io::Result<()> {
        self.file.set_len(length)
    }

    pub(super) fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    pub(super) fn try_clone(&self) -> io::Result<OsFile> {
        Ok(OsFile {
            file: self.file.try_clone()?,
        })
    }
}
