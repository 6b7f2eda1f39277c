// The non-template functions of hybrid::compiled (file formats, data sets, the tokenizer), compiled once here
// (see hybrid/core/compiled.hpp: HYBRID_DECL, HYBRID_DEFINE).
#define HYBRID_COMPILED_DEFINITIONS
#include "hybrid/core/compiled.hpp"

#include "hybrid/data/fashion_mnist.hpp"
#include "hybrid/data/text_corpus.hpp"
#include "hybrid/io/atomic_file.hpp"
#include "hybrid/io/checkpoint.hpp"
#include "hybrid/io/hf_bert.hpp"
#include "hybrid/io/idx.hpp"
#include "hybrid/io/peft.hpp"
#include "hybrid/io/safetensors.hpp"
#include "hybrid/io/wav.hpp"
#include "hybrid/train/progress.hpp"

// The parts that need an optional library: libpng (hybrid::io defines HYBRID_WITH_PNG when CMake finds it) and
// utf8proc (linked by hybrid::io when found; its header comes with it).
#if defined(HYBRID_WITH_PNG)
#include "hybrid/data/emoji.hpp"
#include "hybrid/io/png.hpp"
#endif
#if __has_include(<utf8proc.h>)
#include "hybrid/io/wordpiece.hpp"
#endif
