// The library's version, as macros (for #if) and as a constexpr string. The single source of truth:
// CMakeLists.txt reads the numbers from here for project(), the package config and the pkg-config file.
#pragma once

#define HYBRID_VERSION_MAJOR 0
#define HYBRID_VERSION_MINOR 2
#define HYBRID_VERSION_PATCH 0
// One number that orders versions: MAJOR * 10000 + MINOR * 100 + PATCH.
#define HYBRID_VERSION (HYBRID_VERSION_MAJOR * 10000 + HYBRID_VERSION_MINOR * 100 + HYBRID_VERSION_PATCH)

namespace hybrid {
#define HYBRID_DETAIL_STR2(x) #x
#define HYBRID_DETAIL_STR(x) HYBRID_DETAIL_STR2(x)
inline constexpr const char* version_string = HYBRID_DETAIL_STR(HYBRID_VERSION_MAJOR) "." HYBRID_DETAIL_STR(
    HYBRID_VERSION_MINOR) "." HYBRID_DETAIL_STR(HYBRID_VERSION_PATCH);
#undef HYBRID_DETAIL_STR
#undef HYBRID_DETAIL_STR2
}  // namespace hybrid
