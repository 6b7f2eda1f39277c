// Optional separate compilation: with HYBRID_COMPILED defined (CMake: link hybrid::compiled), the float
// instantiations of the encoders, heads, optimisers and trainers come prebuilt from libhybrid_compiled.
#pragma once

// Why: a program instantiates and optimises every layer it reaches for float, in every translation unit that
// reaches it; most of the flagship's compile time was spent there (docs/performance.md, 5.1). Headers declare
// those instantiations `extern` in this mode (HYBRID_EXTERN_FLOAT at their end), the library's sources (src/)
// define them once. Their entry points are defined outside the class body on purpose: a member defined inside
// is implicitly inline, and compilers instantiate inline members of an extern template anyway, to inline them.
// Header-only use (no HYBRID_COMPILED) is unchanged, and other element types (double in the tests) or
// configurations are always instantiated where they are used.
#if defined(HYBRID_COMPILED)
#define HYBRID_EXTERN_FLOAT(...) extern template __VA_ARGS__;
#else
#define HYBRID_EXTERN_FLOAT(...)
#endif

// Non-template functions (file formats, data sets, the tokenizer) are declared HYBRID_DECL and their bodies
// compiled where HYBRID_DEFINE is 1: in every translation unit when header-only (as inline functions), only in
// the library's src/definitions.cpp (which defines HYBRID_COMPILED_DEFINITIONS) when HYBRID_COMPILED is set.
// Headers include what only those bodies need (nlohmann/json, libpng) under HYBRID_DEFINE as well.
#if defined(HYBRID_COMPILED)
#define HYBRID_DECL
#if defined(HYBRID_COMPILED_DEFINITIONS)
#define HYBRID_DEFINE 1
#else
#define HYBRID_DEFINE 0
#endif
#else
#define HYBRID_DECL inline
#define HYBRID_DEFINE 1
#endif
