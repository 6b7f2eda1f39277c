// The non-template functions of hybrid::compiled (file formats, data sets, the tokenizer), compiled once here
// (see hybrid/core/compiled.hpp: HYBRID_DECL, HYBRID_DEFINE).
#define HYBRID_COMPILED_DEFINITIONS
#include "hybrid/core/compiled.hpp"
