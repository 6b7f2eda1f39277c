// A batch for a composed model: named inputs per modality, each with a per-sample presence mask,
// and named labels per task. Plain runtime data, shared by static models and any_model.
#pragma once
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "hybrid/enc/bert.hpp"
#include "hybrid/enc/encoder.hpp"
#include "hybrid/head/head.hpp"

namespace hybrid {

struct modality_batch {
  std::variant<enc::text_input, enc::dense_input> input;
  std::vector<std::uint8_t> present;  // per sample: 1 present, 0 absent; empty = all present
};

struct batch {
  index_t size = 0;
  std::map<std::string, modality_batch, std::less<>> inputs;      // by modality name; a missing
                                                                   // modality is absent for every sample
  std::map<std::string, head::task_labels, std::less<>> labels;   // by head name; a missing task adds no loss
};

}  // namespace hybrid
