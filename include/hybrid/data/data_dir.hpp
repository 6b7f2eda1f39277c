// Where the data sets of scripts/fetch_data.sh live, shared by the loaders in hybrid/data/.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace hybrid::data {

// The HYBRID_DATA_DIR macro when the build defines it (the tests do), else the HYBRID_DATA_DIR environment
// variable, else "data" (the repository layout, for programs run from the repository root).
// Inline on purpose, even with HYBRID_COMPILED: the macro belongs to the program's build, so the loaders call
// this only in default arguments and inline overloads, which are compiled where they are called.
inline std::filesystem::path default_data_dir() {
#ifdef HYBRID_DATA_DIR
  return HYBRID_DATA_DIR;
#else
  if (const char* env = std::getenv("HYBRID_DATA_DIR"); env != nullptr && *env != '\0') return env;
  return "data";
#endif
}

// The error every loader throws when its files are absent.
inline std::runtime_error data_missing(const std::filesystem::path& what, const std::string& data_set) {
  return std::runtime_error(what.string() + " not found: run scripts/fetch_data.sh (after scripts/setup.sh) to build " +
                            data_set);
}

}  // namespace hybrid::data
