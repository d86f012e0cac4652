//! A request path cut into its segments once per decision, for the tries to walk by index.
//!
//! A decision walks the deny trie, then the allow trie, backtracking in each; splitting the path
//! again at every step of every walk scanned the same bytes up to four times and mispredicted the
//! end of each segment every time (12% of the walk's time in perf). Only as many segments are cut
//! as the deepest rule can consume: past them only `**` matches, and it needs no segment.

use super::canonical::CanonicalTarget;
use super::rule::MAX_RULE_SEGMENTS;

/// The first segments of a path, as offsets into it. `u16` holds any offset of a canonical
/// target (`MAX_TARGET_LEN`, 8 KiB), and keeps the table to 128 bytes, set up per decision.
pub(super) struct CutPath<'a> {
    /// The whole path, its leading `/` included.
    path: &'a str,
    /// Where each cut segment ends in `path`; the next one starts a byte later.
    ends: [u16; MAX_RULE_SEGMENTS],
    len: usize,
    /// Whether the path goes on past the last segment cut.
    goes_on: bool,
}

const _: () = assert!(super::canonical::MAX_TARGET_LEN <= u16::MAX as usize);

impl<'a> CutPath<'a> {
    /// `target`'s path cut into at most `depth` segments (capped at [`MAX_RULE_SEGMENTS`], the
    /// deepest a rule can be), as [`CanonicalTarget::segments`] splits it.
    pub(super) fn cut(target: &CanonicalTarget<'a>, depth: usize) -> CutPath<'a> {
        let path = target.path();
        let mut cut = CutPath {
            path,
            ends: [0; MAX_RULE_SEGMENTS],
            len: 0,
            goes_on: false,
        };
        // The first segment starts after the leading `/`, each next one after the `/` ending
        // the one before.
        let mut start = 1;
        for segment in target.segments().take(depth.min(MAX_RULE_SEGMENTS)) {
            let end = start + segment.len();
            // `end` <= `path.len()` <= MAX_TARGET_LEN, which fits (asserted above).
            cut.ends[cut.len] = end as u16;
            cut.len += 1;
            start = end + 1;
        }
        cut.goes_on = start < path.len();
        cut
    }

    /// The segment at `index`, if it was cut.
    pub(super) fn segment(&self, index: usize) -> Option<&'a str> {
        let end = usize::from(*self.ends.get(..self.len)?.get(index)?);
        let start = match index {
            0 => 1,
            _ => usize::from(self.ends[index - 1]) + 1,
        };
        self.path.get(start..end)
    }

    /// Whether the path ends after its first `count` segments.
    pub(super) fn ends_after(&self, count: usize) -> bool {
        count == self.len && !self.goes_on
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::canonicalise;
    use proptest::prelude::*;

    fn cut_all(raw: &str, depth: usize) -> (Vec<String>, bool) {
        let target = canonicalise(raw.as_bytes()).expect("canonical");
        let cut = CutPath::cut(&target, depth);
        let segments: Vec<String> = (0..)
            .map_while(|index| cut.segment(index))
            .map(str::to_owned)
            .collect();
        let ends = cut.ends_after(segments.len());
        (segments, ends)
    }

    #[test]
    fn paths_are_cut_at_their_slashes_up_to_the_depth_asked() {
        assert_eq!(cut_all("/", 4), (vec![], true));
        assert_eq!(cut_all("/a", 4), (vec!["a".to_owned()], true));
        assert_eq!(
            cut_all("/cases/42/video?x=1", 4),
            (
                vec!["cases".to_owned(), "42".to_owned(), "video".to_owned()],
                true
            )
        );
        assert_eq!(
            cut_all("/cases/42/video", 2),
            (vec!["cases".to_owned(), "42".to_owned()], false)
        );
        assert_eq!(cut_all("/cases/42", 0), (vec![], false));
        assert_eq!(cut_all("/", 0), (vec![], true));
    }

    proptest! {
        /// The cut is the path's segments as `CanonicalTarget::segments` splits them, as many as
        /// asked, and says whether any are left.
        #[test]
        fn the_cut_is_the_first_segments_of_the_path(
            segments in proptest::collection::vec("[a-z0-9._-]{1,6}", 0..10),
            depth in 0usize..12,
        ) {
            let raw = format!("/{}", segments.join("/"));
            let Ok(target) = canonicalise(raw.as_bytes()) else {
                return Ok(());
            };
            let all: Vec<&str> = target.segments().collect();
            let cut = CutPath::cut(&target, depth);
            let taken = all.len().min(depth);
            for (index, segment) in all.iter().take(taken).enumerate() {
                prop_assert_eq!(cut.segment(index), Some(*segment));
            }
            prop_assert_eq!(cut.segment(taken), None);
            prop_assert_eq!(cut.ends_after(taken), all.len() <= depth);
            for count in 0..taken {
                prop_assert!(!cut.ends_after(count));
            }
        }
    }
}
