//! What the demo prints: on a terminal, one frame (the nodes' table and the recent events)
//! redrawn in place with ANSI cursor movement; otherwise plain lines, one per event and a
//! status line per node every second, so a log or a test can read it.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::fleet::NodeView;

/// Events kept on screen in terminal mode.
const EVENTS_SHOWN: usize = 8;
/// How often plain mode prints the nodes' status.
const PLAIN_STATUS_EVERY: Duration = Duration::from_secs(1);

/// The demo's output.
pub(crate) struct View {
    terminal: bool,
    started: Instant,
    header: String,
    events: Vec<String>,
    lines_drawn: usize,
    last_plain_status: Option<Instant>,
    summary: Option<String>,
}

impl View {
    /// A view redrawn in place when `terminal`, else plain lines.
    pub(crate) fn new(terminal: bool, header: String) -> Self {
        Self {
            terminal,
            started: Instant::now(),
            header,
            events: Vec::new(),
            lines_drawn: 0,
            last_plain_status: None,
            summary: None,
        }
    }

    /// Records an event: printed at once in plain mode, kept in the frame on a terminal.
    pub(crate) fn event(&mut self, text: impl Into<String>) {
        let line = format!(
            "[{:>5.1}s] {}",
            self.started.elapsed().as_secs_f64(),
            text.into()
        );
        if self.terminal {
            self.events.push(line);
        } else {
            println!("{line}");
        }
    }

    /// Shows the nodes' current state.
    pub(crate) fn show(&mut self, nodes: &[(String, NodeView)]) {
        if self.terminal {
            self.redraw(nodes);
            return;
        }
        let due = self
            .last_plain_status
            .is_none_or(|last| last.elapsed() >= PLAIN_STATUS_EVERY);
        if due {
            self.last_plain_status = Some(Instant::now());
            for (name, node) in nodes {
                println!(
                    "[{:>5.1}s]   {}",
                    self.started.elapsed().as_secs_f64(),
                    row(name, node)
                );
            }
        }
    }

    /// Remembers the result line, printed below the final frame (again, in plain mode).
    pub(crate) fn summary(&mut self, text: &str) {
        self.summary = Some(text.to_owned());
    }

    /// Prints the final frame (terminal) and leaves the cursor below it.
    pub(crate) fn finish(&mut self, nodes: &[(String, NodeView)]) {
        if self.terminal {
            self.redraw(nodes);
            self.lines_drawn = 0;
        }
        if let Some(summary) = &self.summary {
            println!("{summary}");
        }
    }

    fn redraw(&mut self, nodes: &[(String, NodeView)]) {
        let mut frame = vec![
            format!(
                "poa-demo  t={:.1}s  {}",
                self.started.elapsed().as_secs_f64(),
                self.header
            ),
            format!(
                "{:<8} {:<10} {:<6} {:>7} {:>6} {:>9}  redis nodes (last outcome)",
                "node", "role", "leader", "height", "epoch", "produced"
            ),
        ];
        frame.extend(nodes.iter().map(|(name, node)| row(name, node)));
        frame.push(String::new());
        let skip = self.events.len().saturating_sub(EVENTS_SHOWN);
        frame.extend(self.events.iter().skip(skip).cloned());
        let mut out = std::io::stdout().lock();
        if self.lines_drawn > 0 {
            // Back to the first line of the previous frame, then clear everything below.
            let _ = write!(out, "\x1b[{}F\x1b[J", self.lines_drawn);
        }
        for line in &frame {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
        self.lines_drawn = frame.len();
    }
}

/// One node as one line.
fn row(name: &str, node: &NodeView) -> String {
    let epoch = node
        .epoch
        .map_or_else(|| "-".to_owned(), |epoch| epoch.to_string());
    let leader = if node.is_leader { "*" } else { "" };
    let redis = if node.redis.is_empty() {
        "-".to_owned()
    } else {
        node.redis.join(" ")
    };
    if !node.answered {
        return format!("{name:<8} {:<10}", node.role);
    }
    format!(
        "{name:<8} {:<10} {leader:<6} {:>7} {epoch:>6} {:>9}  {redis}",
        node.role, node.height, node.blocks_produced
    )
}
