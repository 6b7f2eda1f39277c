// libFuzzer target: config.json. Arbitrary bytes -> nlohmann::json::parse -> bert_config_from_json (and, when
// the pipeline header exists, the classifier's label_config_from_json). Parse errors must be exceptions; an
// accepted config must satisfy what the parser promises and survive bert_config_to_json unchanged.
#include <hybrid/io/hf_bert.hpp>
#if __has_include(<hybrid/pipeline/text_classifier.hpp>)
#include <hybrid/pipeline/text_classifier.hpp>
#define FUZZ_LABELS 1
#endif

#include <exception>

#include "fuzz_common.hpp"

using namespace hybrid;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(data, data + size);
  } catch (const std::exception&) {
    return 0;
  }
  try {
    const enc::bert_config c = io::bert_config_from_json(j);
    FUZZ_CHECK(c.vocab > 0 && c.hidden > 0 && c.layers > 0 && c.heads > 0 && c.ffn > 0 && c.max_positions > 0 &&
               c.type_vocab > 0);
    FUZZ_CHECK(c.hidden % c.heads == 0);
    for (index_t rows : {c.vocab, c.max_positions, c.type_vocab, c.ffn, c.hidden}) {  // every matrix addressable
      index_t n = 0;
      FUZZ_CHECK(!__builtin_mul_overflow(rows, c.hidden, &n) && !__builtin_mul_overflow(n, index_t{8}, &n));
    }
    FUZZ_CHECK(c.layer_norm_eps >= 0 && c.layer_norm_eps < 1 && c.dropout >= 0 && c.dropout < 1 &&
               c.attention_dropout >= 0 && c.attention_dropout < 1);
    const enc::bert_config d = io::bert_config_from_json(io::bert_config_to_json(c));
    FUZZ_CHECK(d.vocab == c.vocab && d.hidden == c.hidden && d.layers == c.layers && d.heads == c.heads &&
               d.ffn == c.ffn && d.max_positions == c.max_positions && d.type_vocab == c.type_vocab &&
               d.layer_norm_eps == c.layer_norm_eps && d.dropout == c.dropout &&
               d.attention_dropout == c.attention_dropout && d.pooler == c.pooler);
  } catch (const std::exception&) {
  }
#ifdef FUZZ_LABELS
  try {
    const pipeline::label_config l = pipeline::label_config_from_json(j);
    FUZZ_CHECK(!l.labels.empty());
  } catch (const std::exception&) {
  }
#endif
  return 0;
}
