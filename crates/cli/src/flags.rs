//! Small pieces of flag handling and prompting that several commands share.

use std::collections::HashMap;
use std::io::{BufRead, Write};

/// `key=value` items of a list flag into a map (`key` alone maps to ""), as docker's map flags.
pub fn kv_map(items: &[String]) -> HashMap<String, String> {
    items
        .iter()
        .map(|i| match i.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (i.clone(), String::new()),
        })
        .collect()
}

/// Prints `warning` and docker's `Are you sure you want to continue? [y/N]`; true on y/yes.
pub fn confirm(warning: &str) -> bool {
    prompt(&format!("{warning}\nAre you sure you want to continue?"))
}

/// docker's `PromptForConfirmation`: `question [y/N] `; true on y/yes.
pub fn prompt(question: &str) -> bool {
    print!("{question} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}
