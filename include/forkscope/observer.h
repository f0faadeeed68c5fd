#pragma once
// The observer effect: what forkscope's own programs add to the times it
// measures, from the calibration (Calibration in results.h), and the times
// corrected for it.
#include <string>

#include "forkscope/results.h"

namespace forkscope {

// What the calibration says our programs added to a phase over all its launches:
// its tracepoint runs at the calibrated cost per run, its function-probe runs at
// half an entry+exit pair of the phase's own kind (else of the run's backend).
double observer_cost_ns(const Phase& p, const Calibration& cal, const std::string& backend);

// The calibrated cost of our programs per launch of a cell: the runs counted in its
// launches, priced by kind, plus the fixed part.
double observer_cost_per_launch(const Cell& cell, const Calibration& cal, const std::string& backend);

// --overhead: the cell's traced p50s (kernel and launch) less the calibrated cost,
// and their error against the untraced p50.  Leaves the cell as it is without an
// untraced measurement or a syscall phase.
void correct_for_observer(Cell& cell, const Calibration& cal, const std::string& backend);

}  // namespace forkscope
