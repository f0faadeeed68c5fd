#pragma once
// Helpers for the SVG and HTML the report library writes by hand.
#include <cstdint>
#include <string>
#include <string_view>

namespace forkscope::markup {

// Text and attribute values: & < > " ' as entities.
std::string escape(std::string_view text);
// Coordinates with one decimal: enough for a screen, stable for golden files.
std::string num(double v);
// FNV-1a: a colour per name that is the same in every report.
uint32_t hash(std::string_view text);
// A categorical colour (Tableau 10), cycling.
const char* palette(size_t i);

}  // namespace forkscope::markup
