//! Invariants 1 and 2 of the repair (stated at the top of `repair.rs`), as pure functions over two
//! saved backends: what a repair's result must be, checked by the repair after terraform ran and by
//! the data dir's recovery after a killed one. Apart from both so that neither imports the other
//! (the repair uses the data dir; the data dir's recovery needs only these checks). No I/O.

use serde_json::{Map, Value};

use crate::backends::saved::SavedBackend;

/// `value` without its nulls, inside nested objects too (`None`: it is null).
pub fn without_nulls(value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Object(m) => Some(Value::Object(
            m.iter()
                .filter_map(|(k, v)| without_nulls(v).map(|v| (k.clone(), v)))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

/// Whether the reconfigure was made by another terraform version than the one that saved the old
/// file. Terraform 1.x's `workdir.BackendState` records `terraform_version` (omitted when empty);
/// 1.0.3 wrote none, so a file without it that comes back with one was written by another version.
/// The `hash` covers the backend block as decoded by that version's backend schema, so a new version
/// gives a new hash for the same `.tf` block (measured 1.0.3 → 1.11.4, docs/terraform-backend.md):
/// then a changed hash is expected, and invariant 1 (every setting identical but the credentials)
/// is what proves that the same state is addressed (#11 item 4).
fn upgraded(old: &SavedBackend, new: &SavedBackend) -> bool {
    match (old.terraform_version(), new.terraform_version()) {
        (None, None) => false,
        (before, after) => before != after,
    }
}

/// Invariant 2's violation: the hash changed where no upgrade is known to explain it.
pub const HASH_CHANGED: &str =
    "the backend hash changed (the .tf backend block no longer matches the saved one)";

/// Checks invariants 1 and 2. `credential_attrs` are the attributes allowed to change and
/// `expected_credentials` gives each one's expected new value (`None`: unset). Messages name
/// attributes, never values. Pure.
pub fn check_invariants(
    old: &SavedBackend,
    new: &SavedBackend,
    credential_attrs: &[&str],
    expected_credentials: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    if old.kind != new.kind {
        return Err("the backend type changed".into());
    }
    if old.hash != new.hash && !upgraded(old, new) {
        return Err(HASH_CHANGED.into());
    }
    let mut names: Vec<&String> = old.config.keys().chain(new.config.keys()).collect();
    names.sort();
    names.dedup();
    let mut changed = Vec::new();
    for name in names {
        let before = normalized(old.config.get(name));
        let after = normalized(new.config.get(name));
        if credential_attrs.contains(&name.as_str()) {
            let want = expected_credentials(name).map(Value::String);
            if after != want {
                changed.push(name.as_str());
            }
        } else if before != after {
            changed.push(name.as_str());
        }
    }
    if changed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "these attributes came out different: {}",
            changed.join(", ")
        ))
    }
}

/// Null, absent and (inside objects) null-valued members are the same thing to terraform.
fn normalized(value: Option<&Value>) -> Option<Value> {
    value.and_then(without_nulls)
}

/// What a repair that changes the attributes `changes` (its credential attributes) hands back to
/// terraform: every attribute of `old` that is set and not in `changes`, nulls dropped. These are the
/// settings that select the state; the repair's result holds every one of them unchanged. Pure.
pub fn kept_settings(old: &SavedBackend, changes: &[&str]) -> Map<String, Value> {
    old.config
        .iter()
        .filter(|(k, _)| !changes.contains(&k.as_str()))
        .filter_map(|(k, v)| without_nulls(v).map(|v| (k.clone(), v)))
        .collect()
}

/// The names (never values) of the kept settings of `old` (see [`kept_settings`]) that `new` does
/// not hold as they were, and "the backend type" if that changed. Empty: terraform, re-initialising
/// with those settings, could have written `new`; else somebody else did. Pure.
pub fn settings_changed(old: &SavedBackend, new: &SavedBackend, changes: &[&str]) -> Vec<String> {
    if old.kind != new.kind {
        return vec!["the backend type".into()];
    }
    kept_settings(old, changes)
        .into_iter()
        .filter(|(name, value)| normalized(new.config.get(name)).as_ref() != Some(value))
        .map(|(name, _)| name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::saved::testing::saved;

    #[test]
    fn a_re_pointed_backend_is_told_from_a_repaired_one() {
        let creds = &["password"];
        let old = saved(
            "http",
            r#"{"address":"http://h/state/team-A","password":"p","username":"u","retry_max":null}"#,
            1,
        );
        // The repair's result: the password gone, another version's nulls around it.
        let repaired = saved(
            "http",
            r#"{"address":"http://h/state/team-A","password":null,"username":"u","lock_address":null}"#,
            1,
        );
        assert!(settings_changed(&old, &repaired, creds).is_empty());
        // A new hash alone (another .tf block) is still something the repair could have written.
        let rehashed = saved(
            "http",
            r#"{"address":"http://h/state/team-A","username":"u"}"#,
            2,
        );
        assert!(settings_changed(&old, &rehashed, creds).is_empty());
        let moved = saved(
            "http",
            r#"{"address":"http://h/state/team-B","password":"q","username":"u"}"#,
            2,
        );
        assert_eq!(settings_changed(&old, &moved, creds), ["address"]);
        let dropped = saved("http", r#"{"address":"http://h/state/team-A"}"#, 1);
        assert_eq!(settings_changed(&old, &dropped, creds), ["username"]);
        let other = saved("s3", r#"{"bucket":"b"}"#, 1);
        assert_eq!(settings_changed(&old, &other, creds), ["the backend type"]);
    }
}
