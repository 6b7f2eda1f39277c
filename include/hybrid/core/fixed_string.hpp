// fixed_string: a string usable as a template argument, so modalities and heads are named in types
// (`modality<"text", ...>`, `head::classify<"topic", 10>`) and looked up at compile time.
#pragma once
#include <algorithm>
#include <cstddef>
#include <string_view>

namespace hybrid {

template <std::size_t N>
struct fixed_string {
  char chars[N]{};
  constexpr fixed_string(const char (&s)[N]) { std::copy_n(s, N, chars); }  // NOLINT: implicit by design
  constexpr std::string_view view() const { return {chars, N - 1}; }
  constexpr operator std::string_view() const { return view(); }  // NOLINT
  template <std::size_t M>
  constexpr bool operator==(const fixed_string<M>& o) const {
    return view() == o.view();
  }
};

}  // namespace hybrid
