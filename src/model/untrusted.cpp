#include "forkscope/untrusted.h"

#include <cstdint>
#include <cstdio>

namespace forkscope {

namespace {

// The code point of a valid UTF-8 sequence at s[i] and its length, or length 0
// when the bytes there are not valid UTF-8 (overlong forms and surrogates included).
struct Decoded {
  uint32_t cp = 0;
  size_t len = 0;
};

Decoded decode(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  if (c < 0x80) return {c, 1};
  size_t len = 0;
  uint32_t cp = 0, min = 0;
  if ((c & 0xe0) == 0xc0) {
    len = 2, cp = c & 0x1f, min = 0x80;
  } else if ((c & 0xf0) == 0xe0) {
    len = 3, cp = c & 0x0f, min = 0x800;
  } else if ((c & 0xf8) == 0xf0) {
    len = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return {};
  }
  if (i + len > s.size()) return {};
  for (size_t k = 1; k < len; k++) {
    if ((b(k) & 0xc0) != 0x80) return {};
    cp = (cp << 6) | (b(k) & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return {};
  return {cp, len};
}

// Code points a terminal or a text renderer acts on: C1 controls (some terminals
// take U+009B as CSI) and the bidirectional embeddings, overrides and isolates.
bool acting(uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

}  // namespace

std::string safe_text(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  char buf[12];
  for (size_t i = 0; i < raw.size();) {
    const auto c = static_cast<unsigned char>(raw[i]);
    if (c == '\\') {
      out += "\\\\";
      i++;
      continue;
    }
    if (c < 0x20 || c == 0x7f) {
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
      i++;
      continue;
    }
    const Decoded d = decode(raw, i);
    if (d.len == 0) {
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
      i++;
    } else if (acting(d.cp)) {
      std::snprintf(buf, sizeof buf, "\\u%04x", d.cp);
      out += buf;
      i += d.len;
    } else {
      out.append(raw.substr(i, d.len));
      i += d.len;
    }
  }
  return out;
}

bool is_safe_text(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) return false;
    const Decoded d = decode(text, i);
    if (d.len == 0 || acting(d.cp)) return false;
    i += d.len;
  }
  return true;
}

}  // namespace forkscope
