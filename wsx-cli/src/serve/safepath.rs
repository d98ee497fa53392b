//! Mapping URL paths onto a directory without leaving it: what `--exec-dir` (`exec.rs`) and
//! `--static` (`static_files.rs`) share. A leaf: it knows paths, not requests.

use std::path::{Path, PathBuf};

/// `path` with its `%XX` escapes decoded; `None` when an escape is malformed, or the result is
/// not UTF-8 or holds a NUL.
pub(super) fn percent_decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().filter(|s| !s.contains('\0'))
}

/// Whether a decoded path segment may name a file: not empty, not starting with `.` (`.`, `..`,
/// hidden files), no backslash (a separator elsewhere) and no NUL.
pub(super) fn plain_segment(segment: &str) -> bool {
    !segment.is_empty()
        && !segment.starts_with('.')
        && !segment.contains('\\')
        && !segment.contains('\0')
}

/// `at` with every symbolic link resolved, if it exists and is still inside `dir` (canonical):
/// a link inside `dir` pointing inside it is fine, one pointing out is `None`.
pub(super) fn inside(dir: &Path, at: &Path) -> Option<PathBuf> {
    let real = std::fs::canonicalize(at).ok()?;
    real.starts_with(dir).then_some(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("/a%20b/%2e%2E").as_deref(), Some("/a b/.."));
        assert_eq!(percent_decode("/%2F").as_deref(), Some("//"));
        assert!(percent_decode("/%").is_none());
        assert!(percent_decode("/%zz").is_none());
        assert!(percent_decode("/%00").is_none());
        assert!(percent_decode("/%ff").is_none(), "not UTF-8");
    }

    #[test]
    fn plain_segments() {
        assert!(plain_segment("index.html"));
        for refused in ["", ".", "..", ".env", "a\\..", "a\0"] {
            assert!(!plain_segment(refused), "{refused:?}");
        }
    }
}
