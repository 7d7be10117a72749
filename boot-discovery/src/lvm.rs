//! LVM2 (placeholder until the reader lands).
use crate::view::Segment;
use block_source::BlockSource;
use std::sync::Arc;

/// A logical volume: `vg/lv` and where its bytes live on the PV.
pub struct LogicalVolume {
    pub name: String,
    pub segments: Vec<Segment>,
}

pub fn logical_volumes(_pv: &Arc<dyn BlockSource>, notes: &mut Vec<String>) -> Vec<LogicalVolume> {
    notes.push("LVM2 physical volume found, but LVM is not supported yet".into());
    Vec::new()
}
