//! `PUT /v1/system-settings`: any patch applied to the default system settings, and any stored
//! form read back.
//!
//! Checks: nothing panics; an error names a field of the patch; accepted settings read back
//! equal from their stored form, applying the same patch again changes nothing, and the view
//! `GET` answers is itself a patch that is accepted and changes nothing (a client may send back
//! what it read).
#![no_main]

use herald_shared::domain::SystemSettings;
use herald_fuzz::{assert_names_a_field, json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = SystemSettings::from_stored(text);
    }
    let Some(patch) = json(data) else {
        return;
    };
    let next = match SystemSettings::default().apply_patch(&patch) {
        Ok(next) => next,
        Err(error) => {
            assert_names_a_field(&error, &patch, &[]);
            return;
        }
    };
    let stored = next.to_stored();
    assert_eq!(
        SystemSettings::from_stored(&stored).ok().as_ref(),
        Some(&next),
        "stored form {stored}"
    );
    assert_eq!(
        next.apply_patch(&patch).as_ref(),
        Ok(&next),
        "patch applied twice"
    );
    let view = next.to_view();
    assert_eq!(next.apply_patch(&view).as_ref(), Ok(&next), "view {view}");
});
