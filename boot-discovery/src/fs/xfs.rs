//! XFS (placeholder until the reader lands).
use super::BootFs;
use crate::error::FsError;
use block_source::BlockSource;
use std::sync::Arc;

pub struct XfsFs;

impl XfsFs {
    pub fn open(_src: Arc<dyn BlockSource>) -> Result<Self, String> {
        Err("XFS is not supported yet".into())
    }
}

impl BootFs for XfsFs {
    fn kind(&self) -> &'static str {
        "xfs"
    }
    fn uuid(&self) -> Option<String> {
        None
    }
    fn read_file(&self, _: &str, _: u64) -> Result<Option<Vec<u8>>, FsError> {
        Ok(None)
    }
    fn list_dir(&self, _: &str) -> Result<Option<Vec<String>>, FsError> {
        Ok(None)
    }
    fn read_link(&self, _: &str) -> Result<Option<String>, FsError> {
        Ok(None)
    }
}
