#pragma once
// The start-up calibration's shape (run --overhead): rounds of three blocks of
// kCalibrationBlock fork launches each (untraced, traced, traced without the
// allocation landmarks), kCalibrationRounds at most and kCalibrationMinRounds at
// least.  The runtime tests check the launches it counts against these.

namespace forkscope {

inline constexpr int kCalibrationRounds = 30;
inline constexpr int kCalibrationMinRounds = 8;
inline constexpr int kCalibrationBlock = 20;
inline constexpr int kCalibrationBlocksPerRound = 3;

}  // namespace forkscope
