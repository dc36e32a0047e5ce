//! Every file of the report's prose, `templates/*.md`, compiled in: the report's frame and one
//! file per case. [`crate::prose`] fills their sections; this module only names them.

use crate::prose::Prose;

/// A template file under `templates/`, compiled in.
macro_rules! template {
    ($file:literal) => {
        Prose::new($file, include_str!(concat!("../templates/", $file)))
    };
}

/// The report's frame: header, machine table, the servers' keys.
pub(crate) const REPORT: Prose = template!("report.md");
/// Case `limit`.
pub(crate) const LIMIT: Prose = template!("limit.md");
/// Case `publish`.
pub(crate) const PUBLISH: Prose = template!("publish.md");
/// Case `degraded`.
pub(crate) const DEGRADED: Prose = template!("degraded.md");
/// Case `naive`.
pub(crate) const NAIVE: Prose = template!("naive.md");
/// Case `lease`.
pub(crate) const LEASE: Prose = template!("lease.md");
/// Case `end-to-end`.
pub(crate) const END_TO_END: Prose = template!("end-to-end.md");
/// Case `failover`.
pub(crate) const FAILOVER: Prose = template!("failover.md");
/// Case `scale`.
pub(crate) const SCALE: Prose = template!("scale.md");
/// Case `relay`.
pub(crate) const RELAY: Prose = template!("relay.md");
/// Case `soak`.
pub(crate) const SOAK: Prose = template!("soak.md");

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::cases::CASES;

    const ALL: [Prose; 11] = [
        REPORT, LIMIT, PUBLISH, DEGRADED, NAIVE, LEASE, END_TO_END, FAILOVER, SCALE, RELAY, SOAK,
    ];

    #[test]
    fn templates__when_read__then_every_file_has_sections_with_distinct_names() {
        for prose in ALL {
            // given / when
            let names = prose.section_names();

            // then
            assert!(!names.is_empty(), "{prose:?}");
            let distinct: HashSet<&str> = names.iter().copied().collect();
            assert_eq!(distinct.len(), names.len(), "{names:?}");
        }
    }

    #[test]
    fn about__when_every_case_asks__then_a_paragraph_without_values() {
        for case in CASES {
            // given / when
            let about = case.prose.text("about");

            // then
            let about = about.unwrap_or_else(|error| panic!("{}: {error:#}", case.name));
            assert!(!about.contains('\n'), "{}: {about}", case.name);
        }
    }
}
