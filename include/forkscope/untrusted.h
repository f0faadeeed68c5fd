#pragma once
// Strings forkscope did not write itself (process names from the kernel, mapping
// paths, a traced command's arguments, host names) are made safe once, where they
// enter, so every output (terminal, CSV, HTML, SVG, JSON) can print them as they
// are and every file forkscope writes reads back.
#include <string>
#include <string_view>

namespace forkscope {

// A visible, reversible-by-eye form of raw bytes: control characters (C0, DEL and
// C1), invalid UTF-8 and the bidirectional-override code points become escapes
// (\x1b, \xff, \u202e); a backslash becomes \\ so an escape in the input cannot
// pass for one of ours.  Everything else (printable ASCII and valid UTF-8) is kept.
std::string safe_text(std::string_view raw);

// True when safe_text would leave the text unchanged apart from backslashes: no
// control character, valid UTF-8, no bidirectional override.
bool is_safe_text(std::string_view text);

}  // namespace forkscope
