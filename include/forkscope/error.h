#pragma once
// One error type for the whole tool: what went wrong, what to do, and the exit
// code main() returns (DESIGN.md: 2 bad usage/input, 3 privilege or kernel feature,
// 1 anything else).  Thrown at the failure point, printed once by main().
#include <stdexcept>
#include <string>

namespace forkscope {

enum ExitCode : int { kExitOk = 0, kExitFailure = 1, kExitUsage = 2, kExitPrivilege = 3 };

class Error : public std::runtime_error {
 public:
  Error(int exit_code, const std::string& message) : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

inline Error usage_error(const std::string& m) { return Error(kExitUsage, m); }
inline Error privilege_error(const std::string& m) { return Error(kExitPrivilege, m); }

}  // namespace forkscope
