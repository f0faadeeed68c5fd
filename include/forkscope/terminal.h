#pragma once
// Terminal rendering of results: the one-row-per-cell summary table and one
// cell's kernel phase tree.  Colour is the caller's choice (see stdout_is_tty).
#include <ostream>
#include <string>

#include "forkscope/analysis.h"

namespace forkscope {

void render_summary(const Run& run, std::ostream& out, bool color);
void render_phase_tree(const Cell& cell, std::ostream& out, bool color, const Calibration* cal = nullptr,
                       const std::string& backend = "");
// Per mode, smallest vs largest heap: how much the kernel time grew and which
// phases' self time the growth went to.  Prints nothing for single-heap runs.
void render_growth(const Run& run, std::ostream& out, bool color);
// "where dup_mmap's time goes, by mapping": the top rows per fork, then the finding.
// Nothing for a cell without per-mapping attribution.
void render_mappings(const Cell& cell, std::ostream& out, bool color, size_t top = 10);
// What `forkscope run` prints: summary, growth, and the phase tree of `tree_cell`
// with its per-mapping table.
void render_text_report(const Run& run, const Cell* tree_cell, std::ostream& out, bool color);
// Whether stdout deserves colour: a terminal, TERM is not "dumb", NO_COLOR unset.
bool stdout_is_tty();

// The observer effect: the calibrated cost per program run, and per cell the
// traced/untraced ratio (--overhead), or a line saying it was not measured.
void render_overhead(const Run& run, std::ostream& out);

}  // namespace forkscope
