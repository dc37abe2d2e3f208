#include "backends/mpi_allreduce_backend.h"

#include <climits>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "ffb/error.h"
#include "ffb/mpi_types.h"
#include "ffb/validation.h"

namespace ffb::bench {
namespace {

// fp16 and bf16 have no MPI type: reduce them with user-defined ops that convert to fp32, apply
// the op and round once per pairwise step (what MPI itself would do with a native type).
template <float (*ToF32)(std::uint16_t), std::uint16_t (*FromF32)(float), ReduceOp Op>
void half_op(void* in, void* inout, int* len, MPI_Datatype* /*type*/) {
  const auto* a = static_cast<const std::uint16_t*>(in);
  auto* b = static_cast<std::uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) {
    const float x = ToF32(a[i]);
    const float y = ToF32(b[i]);
    float r = 0;
    if constexpr (Op == ReduceOp::prod)
      r = x * y;
    else if constexpr (Op == ReduceOp::max)
      r = x > y ? x : y;
    else if constexpr (Op == ReduceOp::min)
      r = x < y ? x : y;
    else
      r = x + y;  // sum and avg (avg divides afterwards)
    b[i] = FromF32(r);
  }
}

template <float (*ToF32)(std::uint16_t), std::uint16_t (*FromF32)(float)>
MPI_User_function* half_function(ReduceOp op) {
  switch (op) {
    case ReduceOp::prod:
      return &half_op<ToF32, FromF32, ReduceOp::prod>;
    case ReduceOp::max:
      return &half_op<ToF32, FromF32, ReduceOp::max>;
    case ReduceOp::min:
      return &half_op<ToF32, FromF32, ReduceOp::min>;
    default:
      return &half_op<ToF32, FromF32, ReduceOp::sum>;
  }
}

// Reads Open MPI's coll parameters through the MPI tool interface: the values in force, defaults
// included, not only what the environment says.
nlohmann::json coll_settings() {
  nlohmann::json out = nlohmann::json::object();
  int provided = 0;
  if (MPI_T_init_thread(MPI_THREAD_SINGLE, &provided) != MPI_SUCCESS) return out;
  int num = 0;
  MPI_T_cvar_get_num(&num);
  for (int i = 0; i < num; ++i) {
    char name[256];
    char desc[16];
    int name_len = sizeof(name), desc_len = sizeof(desc), verbosity = 0, bind = 0, scope = 0;
    MPI_Datatype type = MPI_DATATYPE_NULL;
    MPI_T_enum enumtype = MPI_T_ENUM_NULL;
    if (MPI_T_cvar_get_info(i, name, &name_len, &verbosity, &type, &enumtype, desc, &desc_len,
                            &bind, &scope) != MPI_SUCCESS)
      continue;
    const std::string n(name);
    const bool wanted = n == "coll" || n.rfind("coll_tuned_allreduce", 0) == 0 ||
                        n == "coll_tuned_use_dynamic_rules" ||
                        n.rfind("coll_han_priority", 0) == 0 || n == "coll_tuned_priority" ||
                        n == "coll_base_verbose";
    if (!wanted || bind != MPI_T_BIND_NO_OBJECT) continue;
    MPI_T_cvar_handle handle = nullptr;
    int count = 0;
    if (MPI_T_cvar_handle_alloc(i, nullptr, &handle, &count) != MPI_SUCCESS) continue;
    if (type == MPI_INT && count == 1) {
      int v = 0;
      if (MPI_T_cvar_read(handle, &v) == MPI_SUCCESS) out[n] = v;
    } else if (type == MPI_CHAR && count > 0) {
      std::string v(static_cast<std::size_t>(count) + 1, '\0');
      if (MPI_T_cvar_read(handle, v.data()) == MPI_SUCCESS) out[n] = std::string(v.c_str());
    }
    MPI_T_cvar_handle_free(&handle);
  }
  MPI_T_finalize();
  return out;
}

}  // namespace

void MpiAllreduceBackend::setup(const ffb::BackendContext& ctx) {
  comm_ = ctx.comm;
  MPI_Comm_size(comm_, &nranks_);
  settings_ = coll_settings();
  // An invalid algorithm number only warns inside Open MPI and silently falls back (the tool
  // interface then reports the fallback): check what the user asked for, from the environment
  // mpirun's --mca passes on.
  if (const char* asked = std::getenv("OMPI_MCA_coll_tuned_allreduce_algorithm")) {
    settings_["requested_coll_tuned_allreduce_algorithm"] = asked;
    char* end = nullptr;
    const long alg = std::strtol(asked, &end, 10);
    if (end == asked || *end != '\0' || alg < 0 || alg > 6)
      throw ffb::UsageError(fmt::format(
          "coll_tuned_allreduce_algorithm={} is not an Open MPI allreduce algorithm; use 0 "
          "(default rules), 1 linear, 2 nonoverlapping, 3 recursive doubling, 4 ring, 5 "
          "segmented ring or 6 rabenseifner",
          asked));
  }
  MPI_Type_contiguous(2, MPI_BYTE, &half_type_);
  MPI_Type_commit(&half_type_);
  for (auto op : ffb::kAllReduceOps) {
    const auto i = static_cast<std::size_t>(op);
    MPI_Op_create(half_function<ffb::f16_to_f32, ffb::f32_to_f16>(op), 1, &f16_ops_[i]);
    MPI_Op_create(half_function<ffb::bf16_to_f32, ffb::f32_to_bf16>(op), 1, &bf16_ops_[i]);
  }
}

void MpiAllreduceBackend::run(const void* send, void* recv, std::size_t count, DataType t,
                              ReduceOp op) {
  const MPI_Datatype type = mpi_type(t);
  const MPI_Op mop = mpi_op(t, op);
  const std::size_t es = ffb::size_of(t);
  // MPI counts are int: split larger messages.
  constexpr std::size_t kMaxCount = INT_MAX / 8 * 8;
  for (std::size_t done = 0; done < count || (count == 0 && done == 0);) {
    const std::size_t n = std::min(kMaxCount, count - done);
    const void* s = send == recv ? MPI_IN_PLACE : static_cast<const char*>(send) + done * es;
    MPI_Allreduce(s, static_cast<char*>(recv) + done * es, static_cast<int>(n), type, mop, comm_);
    done += n;
    if (count == 0) break;
  }
  if (op == ReduceOp::avg) divide(recv, count, t);
}

void MpiAllreduceBackend::divide(void* buf, std::size_t count, DataType t) const {
  switch (t) {
    case DataType::f32:
      divide_as<float>(buf, count, static_cast<float>(nranks_));
      break;
    case DataType::f64:
      divide_as<double>(buf, count, nranks_);
      break;
    case DataType::i32:
      divide_as<std::int32_t>(buf, count, nranks_);
      break;
    case DataType::i64:
      divide_as<std::int64_t>(buf, count, nranks_);
      break;
    case DataType::u8:
      divide_as<std::uint8_t>(buf, count, static_cast<std::uint8_t>(nranks_));
      break;
    case DataType::i8:
      divide_as<std::int8_t>(buf, count, static_cast<std::int8_t>(nranks_));
      break;
    case DataType::u32:
      divide_as<std::uint32_t>(buf, count, static_cast<std::uint32_t>(nranks_));
      break;
    case DataType::u64:
      divide_as<std::uint64_t>(buf, count, static_cast<std::uint64_t>(nranks_));
      break;
    case DataType::f16:
      divide_half<ffb::f16_to_f32, ffb::f32_to_f16>(buf, count, static_cast<float>(nranks_));
      break;
    case DataType::bf16:
      divide_half<ffb::bf16_to_f32, ffb::f32_to_bf16>(buf, count, static_cast<float>(nranks_));
      break;
    default:
      break;
  }
}

void MpiAllreduceBackend::free_ops() {
  for (auto* ops : {&f16_ops_, &bf16_ops_})
    for (auto& op : *ops)
      if (op != MPI_OP_NULL) MPI_Op_free(&op);
  if (half_type_ != MPI_DATATYPE_NULL) MPI_Type_free(&half_type_);
}

}  // namespace ffb::bench
