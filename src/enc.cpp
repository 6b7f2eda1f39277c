// The prebuilt float encoders of hybrid::compiled (see hybrid/core/compiled.hpp).
#include "hybrid/audio/log_mel.hpp"
#include "hybrid/enc/audio.hpp"
#include "hybrid/enc/bert.hpp"
#include "hybrid/enc/conv_image.hpp"

namespace hybrid {
template class audio::log_mel<float>;
template class enc::audio_model<float>;
template tensor<float> enc::precompute_features<exec::tbb>(const enc::audio_config&,
                                                           const std::vector<std::vector<float>>&, index_t);
template class enc::bert_model<float>;
template class enc::conv_image_model<float>;
}  // namespace hybrid
