// The prebuilt float heads, optimisers and trainers of hybrid::compiled (see hybrid/core/compiled.hpp).
#include "hybrid/head/mlm.hpp"
#include "hybrid/optim/adam.hpp"
#include "hybrid/train/mlm_pretrainer.hpp"

namespace hybrid {
template class head::bert_for_masked_lm<float>;
template class optim::optimizer<float>;
template class optim::detail::adam_base<float, exec::tbb, false>;
template class optim::detail::adam_base<float, exec::tbb, true>;
template class train::mlm_pretrainer<float, exec::tbb>;
template std::vector<std::vector<std::int32_t>> train::tokenize_for_mlm<exec::tbb>(const io::wordpiece_tokenizer&,
                                                                                   std::span<const std::string>,
                                                                                   index_t);
}  // namespace hybrid
