#pragma once
// Terminal rendering of results: the one-row-per-cell summary table and one
// cell's kernel phase tree.  Colour is the caller's choice (see stdout_is_tty).
#include <ostream>

#include "forkscope/results.h"

namespace forkscope {

void render_summary(const Run& run, std::ostream& out, bool color);
void render_phase_tree(const Cell& cell, std::ostream& out, bool color);
// Per mode, smallest vs largest heap: how much the kernel time grew and which
// phases' self time the growth went to.  Prints nothing for single-heap runs.
void render_growth(const Run& run, std::ostream& out, bool color);
// Whether stdout deserves colour: a terminal, TERM is not "dumb", NO_COLOR unset.
bool stdout_is_tty();

}  // namespace forkscope
