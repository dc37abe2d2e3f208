// Host-only builds: the copy stage is memcpy; device buffers need the CUDA build.
#include "copy/copy_stage.h"
#include "hfreduce/hfreduce.h"

namespace hfreduce::copy {

std::unique_ptr<CopyStage> make_copy_stage(bool device_buffers, int /*device*/) {
  if (device_buffers)
    throw Error(Status::unsupported,
                "hfreduce: device buffers need libhfreduce built with the CUDA toolkit");
  return std::make_unique<HostCopyStage>();
}

}  // namespace hfreduce::copy
