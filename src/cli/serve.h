#pragma once
// `forkscope serve` runs in a process of its own, forkscope-serve: prometheus-cpp
// and civetweb are shared libraries that would double the mappings of forkscope's
// runner, and every mapping is copied by each fork it measures.  forkscope checks
// the options, then execs forkscope-serve (same pid) with them.
#include <CLI/CLI.hpp>

#include "session/serve.h"

namespace forkscope {

// The options, on `forkscope serve` or on forkscope-serve's own app.
void add_serve_options(CLI::App& app, ServeOptions& o, bool& all);
// Everything a user can get wrong; throws usage_error.  -p becomes its thread group.
void validate_serve(ServeOptions& o, bool all);
// The arguments that give forkscope-serve these options.
std::vector<std::string> serve_arguments(const ServeOptions& o);

}  // namespace forkscope
