//! The Dockerfile front end of the classic builder (docs/design/build.md §1): parsing on top of
//! `parse-dockerfile`, Docker's error wording, BuildKit's shell-word expansion, the stage graph and
//! the Go formatting that cache keys and history need. Pure: no I/O.

mod errors;
pub mod gofmt;
pub mod instructions;
mod parse;
pub mod stages;
pub mod words;

pub use errors::ParseError;
pub use gofmt::{format_go_duration, go_quote, go_rune_literal, parse_go_duration};
pub use instructions::{
    run_heredoc_script, Command, CopyArgs, HealthcheckArgs, Heredoc, Instruction, Step,
};
pub use parse::{empty_continuation_warning, parse};
pub use stages::{needed_stages, stage_dependencies, target_stage};
pub use words::{process_word, process_words, Env, FnEnv, WordError};

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    /// The `# escape=` directive (`\` by default); word expansion uses it.
    pub escape: char,
    /// ARGs before the first FROM: visible only to FROM lines.
    pub meta_args: Vec<Step>,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub index: usize,
    /// `AS name`, lower-cased as Docker does.
    pub name: Option<String>,
    pub from: Step,
    pub steps: Vec<Step>,
}
