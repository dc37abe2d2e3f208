// memcpy with non-temporal stores for results that are not read again soon (the copy-out into the
// user's receive buffer): the destination is not read into the cache first, which saves one
// memory read per byte written on large messages.
#pragma once

#include <cstddef>

namespace hfreduce::copy {

void stream_copy(void* dst, const void* src, std::size_t bytes);

}  // namespace hfreduce::copy
