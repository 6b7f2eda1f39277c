// The prebuilt float encoders of hybrid::compiled (see hybrid/core/compiled.hpp).
#include "hybrid/enc/bert.hpp"

template class hybrid::enc::bert_model<float>;
