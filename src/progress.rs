//! Progress bars for long jobs, one look for all of them.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting `len` units of work, named `unit`, on standard error.
pub fn bar(len: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!("{{bar:30}} {{pos}}/{{len}} {unit} {{elapsed_precise}} (eta {{eta}}) {{msg}}"))
            .expect("valid template"),
    );
    bar
}
