//! The pictures folder (`engine.pictures_dir`): image files a caller of the native API names must lie in it. A
//! relative path is taken inside the folder; an absolute path must lie inside it (as configured, or once its
//! symbolic links are resolved); a `..` component is refused outright, before the file system is asked anything;
//! and once every symbolic link is resolved the file must still lie inside the resolved folder, so a link that
//! leads out is refused.
//!
//! The native API checks a request's paths with [`confine`] before anything is stored or started, and the loader
//! checks them again, and opens the path it checked, each time it reads one ([`super::load`]).

use std::path::{Component, Path, PathBuf};

/// Why a path is not one the pictures folder lets a caller read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Escape {
    /// The path has a `..` component.
    ParentDir,
    /// An absolute path outside the folder, or one that leads out of it through a symbolic link.
    Outside,
    /// The folder or the file cannot be resolved (it does not exist, or cannot be searched); the words are for
    /// the log, never for a caller (they name the folder).
    Unresolved(String),
}

/// The file `location` names within `folder`, with every symbolic link resolved: a relative `location` is taken
/// inside `folder`, an absolute one must lie inside it. Blocking (it resolves links on the file system); it
/// opens nothing.
pub fn confine(folder: &Path, location: &str) -> Result<PathBuf, Escape> {
    resolve(folder, location).map(|(file, _)| file)
}

/// [`confine`], and the resolved folder with it.
pub(super) fn resolve(folder: &Path, location: &str) -> Result<(PathBuf, PathBuf), Escape> {
    let path = Path::new(location);
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(Escape::ParentDir);
    }
    let real_folder = std::fs::canonicalize(folder).map_err(|e| {
        Escape::Unresolved(format!(
            "pictures folder {} cannot be resolved: {e}",
            folder.display()
        ))
    })?;
    let candidate = if path.is_absolute() {
        if !(path.starts_with(folder) || path.starts_with(&real_folder)) {
            return Err(Escape::Outside);
        }
        path.to_path_buf()
    } else {
        real_folder.join(path)
    };
    let file = std::fs::canonicalize(&candidate).map_err(|e| {
        Escape::Unresolved(format!("{} cannot be resolved: {e}", candidate.display()))
    })?;
    if !file.starts_with(&real_folder) {
        return Err(Escape::Outside);
    }
    Ok((file, real_folder))
}

/// Whether the pictures folder governs `location` (a file path): it is relative, or absolute and inside the
/// folder as configured or as resolved. Other absolute paths are the operator's own (`[pictures]`,
/// `zego.image_presets`) and are read as they are. Blocking when `location` is absolute (it resolves the folder).
pub fn governs(folder: &Path, location: &str) -> bool {
    let path = Path::new(location);
    path.is_relative()
        || path.starts_with(folder)
        || std::fs::canonicalize(folder).is_ok_and(|real| path.starts_with(real))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::unix::fs::symlink;

    /// A pictures folder with `a.png` and `sub/b.png` in it, and `secret.png` beside it (outside).
    struct Layout {
        _root: tempfile::TempDir,
        folder: PathBuf,
        outside: PathBuf,
    }

    fn layout() -> Layout {
        let root = tempfile::tempdir().unwrap();
        let folder = root.path().join("pictures");
        std::fs::create_dir_all(folder.join("sub")).unwrap();
        std::fs::write(folder.join("a.png"), b"a").unwrap();
        std::fs::write(folder.join("sub/b.png"), b"b").unwrap();
        let outside = root.path().join("secret.png");
        std::fs::write(&outside, b"secret").unwrap();
        Layout {
            folder,
            outside,
            _root: root,
        }
    }

    fn real(p: &Path) -> PathBuf {
        std::fs::canonicalize(p).unwrap()
    }

    #[test]
    fn files_inside_the_folder_are_found() {
        let l = layout();
        let a = real(&l.folder.join("a.png"));
        let b = real(&l.folder.join("sub/b.png"));
        assert_eq!(confine(&l.folder, "a.png").unwrap(), a);
        assert_eq!(confine(&l.folder, "./a.png").unwrap(), a);
        assert_eq!(confine(&l.folder, "sub/b.png").unwrap(), b);
        assert_eq!(
            confine(&l.folder, l.folder.join("a.png").to_str().unwrap()).unwrap(),
            a
        );
        // The folder's resolved form counts as inside too.
        assert_eq!(confine(&l.folder, a.to_str().unwrap()).unwrap(), a);
        // A link inside that stays inside is followed.
        symlink(l.folder.join("sub/b.png"), l.folder.join("link.png")).unwrap();
        assert_eq!(confine(&l.folder, "link.png").unwrap(), b);
    }

    #[test]
    fn parent_components_are_refused_before_anything_is_resolved() {
        let l = layout();
        for location in [
            "../secret.png",
            "sub/../a.png",
            "sub/../../secret.png",
            "..",
        ] {
            assert_eq!(
                confine(&l.folder, location),
                Err(Escape::ParentDir),
                "{location}"
            );
        }
        let through = format!("{}/../secret.png", l.folder.display());
        assert_eq!(confine(&l.folder, &through), Err(Escape::ParentDir));
        // Refused even when the folder does not exist: nothing was asked of the file system.
        assert_eq!(
            confine(Path::new("/nonexistent/pictures"), "../x.png"),
            Err(Escape::ParentDir)
        );
    }

    #[test]
    fn absolute_paths_elsewhere_are_refused() {
        let l = layout();
        // A sibling whose name starts like the folder's is not inside it.
        let sibling = format!("{}2/a.png", l.folder.display());
        for location in [l.outside.to_str().unwrap(), "/etc/passwd", &sibling] {
            assert_eq!(
                confine(&l.folder, location),
                Err(Escape::Outside),
                "{location}"
            );
        }
    }

    #[test]
    fn links_that_lead_out_are_refused() {
        let l = layout();
        symlink(&l.outside, l.folder.join("out.png")).unwrap();
        symlink(l.outside.parent().unwrap(), l.folder.join("up")).unwrap();
        symlink("/etc/passwd", l.folder.join("passwd.png")).unwrap();
        for location in [
            "out.png",
            "up/secret.png",
            "passwd.png",
            l.folder.join("out.png").to_str().unwrap(),
        ] {
            assert_eq!(
                confine(&l.folder, location),
                Err(Escape::Outside),
                "{location}"
            );
        }
    }

    #[test]
    fn what_does_not_exist_is_unresolved() {
        let l = layout();
        assert!(matches!(
            confine(&l.folder, "nope.png"),
            Err(Escape::Unresolved(_))
        ));
        assert!(matches!(
            confine(&l.folder.join("missing"), "a.png"),
            Err(Escape::Unresolved(_))
        ));
    }

    #[test]
    fn the_folder_governs_relative_paths_and_those_inside_it() {
        let l = layout();
        assert!(governs(&l.folder, "a.png"));
        assert!(governs(&l.folder, l.folder.join("a.png").to_str().unwrap()));
        assert!(governs(
            &l.folder,
            real(&l.folder).join("x").to_str().unwrap()
        ));
        assert!(!governs(&l.folder, l.outside.to_str().unwrap()));
        assert!(!governs(&l.folder, "/srv/logo.png"));
    }
}
