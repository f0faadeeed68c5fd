#pragma once
// What the run and trace sessions share around their results.
#include "forkscope/probes.h"
#include "forkscope/results.h"

namespace forkscope {

// The results' header: tool version, start time, host, backend, phase availability, map memory.
Run start_results(const Tracer& tracer);

}  // namespace forkscope
