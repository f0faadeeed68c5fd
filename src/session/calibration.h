#pragma once
// The start-up calibration of the cost of forkscope's own programs (--overhead).
#include <atomic>
#include <cstdint>
#include <map>
#include <string>

#include "forkscope/probes.h"
#include "forkscope/results.h"

namespace forkscope {

// full_cell and lean_cell: two cells of the tracer the sweep does not use.
// probe_costs (Tracer::probe_costs) goes into the result as it is.  Stops early
// when *stop becomes true.
Calibration calibrate(Tracer& tracer, const std::string& child_program, std::map<std::string, double> probe_costs,
                      uint32_t full_cell, uint32_t lean_cell, const std::atomic<bool>* stop);

}  // namespace forkscope
