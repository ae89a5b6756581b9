//! Dropping root once the capture device is open (`kmsscope live --user NAME`, like `tcpdump -Z`):
//! supplementary groups, group, then user, through nix's safe wrappers. Called before any other
//! thread starts and before the output files are created, so they belong to that user.

use std::ffi::CString;

use nix::unistd::{self, Gid, Uid, User};

/// Why the privileges could not be dropped. `Display` is one line.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// No such user in the password database.
    #[error("--user {0}: no such user")]
    NoUser(String),
    /// The lookup or one of the calls failed.
    #[error("--user {name}: {step} failed: {err}")]
    Failed {
        name: String,
        step: &'static str,
        err: nix::Error,
    },
    /// After the change, root could still be regained: refuse to go on.
    #[error("--user {0}: privileges were not dropped (root can still be regained)")]
    NotDropped(String),
}

/// The user and group ids the process runs as after [`drop_to_user`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dropped {
    pub uid: u32,
    pub gid: u32,
}

/// Switches the process to user `name` and its groups. Must run while the process has one thread,
/// after the capture handle is open.
pub fn drop_to_user(name: &str) -> Result<Dropped, PrivilegeError> {
    let fail = |step, err| PrivilegeError::Failed {
        name: name.to_owned(),
        step,
        err,
    };
    let user = User::from_name(name)
        .map_err(|e| fail("user lookup", e))?
        .ok_or_else(|| PrivilegeError::NoUser(name.to_owned()))?;
    set_groups(name, user.gid).map_err(|e| fail("setting the supplementary groups", e))?;
    unistd::setgid(user.gid).map_err(|e| fail("setgid", e))?;
    unistd::setuid(user.uid).map_err(|e| fail("setuid", e))?;
    if !user.uid.is_root()
        && (unistd::setuid(Uid::from_raw(0)).is_ok() || unistd::geteuid().is_root())
    {
        return Err(PrivilegeError::NotDropped(name.to_owned()));
    }
    Ok(Dropped {
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
    })
}

#[cfg(not(any(target_vendor = "apple", target_os = "redox", target_os = "haiku")))]
fn set_groups(name: &str, gid: Gid) -> nix::Result<()> {
    match CString::new(name) {
        Ok(c) => unistd::initgroups(&c, gid),
        Err(_) => unistd::setgroups(&[gid]),
    }
}

#[cfg(any(target_vendor = "apple", target_os = "redox", target_os = "haiku"))]
fn set_groups(name: &str, gid: Gid) -> nix::Result<()> {
    // No initgroups/setgroups wrapper here; keep the groups and change group and user only.
    let _ = (CString::new(name), gid);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_user_is_reported() {
        let e = drop_to_user("kmsscope-no-such-user-x").unwrap_err();
        assert!(matches!(e, PrivilegeError::NoUser(_)), "{e}");
        assert_eq!(
            e.to_string(),
            "--user kmsscope-no-such-user-x: no such user"
        );
    }
}
