//! `apply PLANFILE`: the check of the credential embedded in the plan file (said, never repaired).

use crate::aws::verdict::Verdict;
use crate::credentials;
use crate::heal::facts::env_var;
use crate::log;
use crate::proxy::invocation::Invocation;

/// `apply PLANFILE` uses the backend settings saved in the plan file, credentials included: if that
/// credential is now rejected, terraform will fail, and only a new plan helps. Says so in one line;
/// changes nothing.
pub(super) fn check_plan_file(inv: &Invocation, plan: &std::ffi::OsStr) {
    let path = inv.work_dir().join(plan);
    let Ok(Some(plan_backend)) = crate::backends::planfile::read(&path) else {
        return;
    };
    // The same accessors as a saved backend's, to aim the check where terraform will.
    let backend = plan_backend.into_backend(&path);
    let Some(cred) = credentials::credential_of(
        &backend,
        inv.work_dir(),
        &env_var,
        crate::heal::facts::sts_timeout(),
    )
    .filter(|c| c.present() && c.checkable() == credentials::Checkable::Yes) else {
        return;
    };
    if let Verdict::Rejected { code } = cred.check() {
        log::warn(&format!(
            "the plan file {} embeds the {} {}, which {} now rejects ({code}); \
             terraform will fail to apply it: make a new plan with -out (a plan run through tfshim repairs the saved key first) and apply that",
            path.display(),
            cred.noun(),
            cred.label(),
            cred.judge(),
        ));
    }
}
