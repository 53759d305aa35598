//! Whole-or-nothing file writes: every file afx writes (audio, models, checkpoints, logs, knob
//! files, plots) goes through [`write_atomic`], so a failure never leaves a partial file and
//! never damages an old one.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Writes a file at `path` with `fill`, replacing any file there. The bytes go to a temporary
/// file in the same directory (with the usual `0o666 & !umask` permissions of a new file on
/// Unix), which is synced and then renamed onto `path`. A symlink at `path` is replaced by the
/// file, not written through.
pub fn write_atomic(path: &Path, fill: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
    let dir = directory_of(path);
    let mut builder = tempfile::Builder::new();
    builder.prefix(".afx-").suffix(".part");
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut temp = builder.tempfile_in(dir).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => io::Error::new(e.kind(), format!("directory {} does not exist", dir.display())),
        _ => io::Error::new(e.kind(), format!("cannot create a file in {}: {e}", dir.display())),
    })?;
    fill(temp.as_file_mut())?;
    temp.as_file_mut().flush()?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// [`write_atomic`] of a byte buffer.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic(path, |file| file.write_all(bytes))
}

/// The directory a file at `path` lives in (`.` for a bare file name).
pub fn directory_of(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_debris() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        write_bytes_atomic(&path, b"old").unwrap();
        let failed = write_atomic(&path, |file| {
            file.write_all(b"partial")?;
            Err(io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "the temporary file is removed");
        write_bytes_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn a_missing_directory_is_named() {
        let error = write_bytes_atomic(Path::new("/nonexistent-afx-dir/x.bin"), b"x").unwrap_err();
        assert!(error.to_string().contains("/nonexistent-afx-dir"), "{error}");
    }
}
