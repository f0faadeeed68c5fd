// forkscope-serve: `forkscope serve` in a process of its own (see cli/serve.h).
#include "cli/commands.h"
#include "cli/preflight.h"
#include "cli/serve.h"
#include "forkscope/error.h"

int main(int argc, char** argv) {
  CLI::App app{"forkscope-serve: what `forkscope serve` runs; see forkscope serve --help", "forkscope-serve"};
  forkscope::ServeOptions opts;
  bool all = false;
  forkscope::add_serve_options(app, opts, all);
  try {
    app.parse(argc, argv);
    forkscope::validate_serve(opts, all);
    forkscope::check_kernel_access();
    return forkscope::serve_session(opts);
  } catch (...) {
    return forkscope::failure_exit(app, "forkscope serve");
  }
}
