//! Translated page content: the site's translation memory and the segments it is keyed by.
//!
//! Owns: the PO translation memory of a site and locale (`memory`) and the segmenter that turns
//! runs of inline HTML into placeholder strings and translations back into HTML (`segment`).
//! The streaming replacer the rewriter calls, and the offline `extract` and `fill` commands,
//! build on these two.

pub mod extract;
pub mod fill;
pub mod memory;
pub mod replace;
pub mod segment;

pub use memory::{CoverageSummary, Memory, PoError};
pub use replace::Coverage;
pub use segment::{Segment, SegmentBuilder};
