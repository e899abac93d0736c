//! The live line on stderr while a sweep runs.

use std::io::{self, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The live line on stderr (a terminal only; nothing otherwise): roots found, keys checked, repairs.
pub(super) struct Progress {
    state: Option<Mutex<Counts>>,
}

#[derive(Default)]
pub(super) struct Counts {
    pub(super) roots: usize,
    pub(super) keys_total: usize,
    pub(super) keys_checked: usize,
    pub(super) repairs_due: usize,
    pub(super) repaired: usize,
    drawn_at: Option<Instant>,
    /// Characters on the line now (0: nothing drawn).
    width: usize,
}

impl Counts {
    fn line(&self) -> String {
        let mut line = format!(
            "tfshim: sweep: {} roots found, {}/{} keys checked",
            self.roots, self.keys_checked, self.keys_total
        );
        if self.repairs_due > 0 {
            line.push_str(&format!(
                ", {}/{} repaired",
                self.repaired, self.repairs_due
            ));
        }
        line
    }
}

/// Redraws at most this often while walking a big tree.
const REDRAW: Duration = Duration::from_millis(50);

impl Progress {
    pub(super) fn new(on: bool) -> Progress {
        Progress {
            state: on.then(|| Mutex::new(Counts::default())),
        }
    }

    /// Applies `change` and redraws: at once when `now` (a finished phase, a checked key, a repair),
    /// otherwise at most every [`REDRAW`].
    pub(super) fn update(&self, now: bool, change: impl FnOnce(&mut Counts)) {
        let Some(state) = &self.state else { return };
        let Ok(mut c) = state.lock() else { return };
        change(&mut c);
        if !now && c.drawn_at.is_some_and(|t| t.elapsed() < REDRAW) {
            return;
        }
        let line = c.line();
        // Spaces rather than an erase sequence, which not every terminal understands.
        let pad = " ".repeat(c.width.saturating_sub(line.chars().count()));
        let mut err = io::stderr().lock();
        let _ = write!(err, "\r{line}{pad}");
        let _ = err.flush();
        c.drawn_at = Some(Instant::now());
        c.width = line.chars().count();
    }

    pub(super) fn clear(&self) {
        let Some(state) = &self.state else { return };
        let Ok(mut c) = state.lock() else { return };
        if c.width > 0 {
            let mut err = io::stderr().lock();
            let _ = write!(err, "\r{}\r", " ".repeat(c.width));
            let _ = err.flush();
            c.width = 0;
            c.drawn_at = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line() {
        let mut c = Counts {
            roots: 200,
            keys_total: 3,
            keys_checked: 1,
            ..Counts::default()
        };
        assert_eq!(c.line(), "tfshim: sweep: 200 roots found, 1/3 keys checked");
        c.repairs_due = 4;
        c.repaired = 2;
        assert!(c.line().ends_with(", 2/4 repaired"));
        // Off a terminal nothing is kept, so nothing can be drawn.
        assert!(Progress::new(false).state.is_none());
    }
}
