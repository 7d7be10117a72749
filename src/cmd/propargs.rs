//! `--prop KEY=VALUE` and `--prop-file FILE`, shared by `run` and
//! `inspect`. The file format is in docs/ovf-environment.md.

use clap::Args;
use ovf_loader::properties::prop_file::{read_prop_file, PropFileError};
use ovf_loader::properties::Assignment;
use std::path::PathBuf;

#[derive(Args, Debug, Default, Clone)]
pub struct PropArgs {
    /// Set a ProductSection property (repeatable): KEY is the property's
    /// key or its CLASS.KEY.INSTANCE form (see ovf-run inspect). Given
    /// after --prop-file values, so it wins over them.
    #[arg(long = "prop", value_name = "KEY=VALUE")]
    pub prop: Vec<Assignment>,
    /// Read KEY=VALUE lines from FILE (repeatable; '#' comments; values
    /// may be 'single' or "double" quoted over several lines; see
    /// docs/ovf-environment.md).
    #[arg(long = "prop-file", value_name = "FILE")]
    pub prop_file: Vec<PathBuf>,
}

impl PropArgs {
    /// The files' assignments in order, then the --prop ones.
    pub fn assignments(&self) -> Result<Vec<Assignment>, PropFileError> {
        let mut out = Vec::new();
        for f in &self.prop_file {
            out.extend(read_prop_file(f)?);
        }
        out.extend(self.prop.iter().cloned());
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.prop.is_empty() && self.prop_file.is_empty()
    }
}
