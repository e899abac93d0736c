//! `apply PLANFILE`: the check of the key embedded in the plan file (said, never repaired).

use crate::aws::verdict::Verdict;
use crate::log;
use crate::proxy::invocation::Invocation;

/// `apply PLANFILE` uses the backend settings saved in the plan file, keys included: if that key is
/// now rejected, terraform will fail, and only a new plan helps. Says so in one line; changes nothing.
pub(super) fn check_plan_file(inv: &Invocation, plan: &std::ffi::OsStr) {
    let path = inv.work_dir().join(plan);
    let Ok(Some(plan_backend)) = crate::backends::planfile::read(&path) else {
        return;
    };
    // The same accessors as a saved backend's, to aim the check where terraform will.
    let backend = plan_backend.into_backend(&path);
    let Some(creds) = backend.s3_static_credentials() else {
        return;
    };
    let target = crate::heal::facts::target_of(&backend, inv.work_dir());
    let verdict = match target.map(crate::aws::sts::Session::new) {
        Ok(Ok(session)) => session.check_static(&creds),
        _ => return,
    };
    if let Verdict::Rejected { code } = verdict {
        log::warn(&format!(
            "the plan file {} embeds the S3 backend key {}, which STS now rejects ({code}); \
             terraform will fail to apply it: make a new plan (`terraform plan -out=…`) and apply that",
            path.display(),
            creds.access_key
        ));
    }
}
