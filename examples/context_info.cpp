// context_info.cpp — liblvmmed from C++: a small RAII owner for the context
// and exceptions carrying the library's message.
//
//   c++ context_info.cpp $(pkg-config --cflags --libs lvmmed) -o context_info_cpp
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>

#include <lvmmed/lvmmed.h>

namespace {

struct CtxDeleter {
  void operator()(lvmmed_ctx *ctx) const { lvmmed_ctx_release(ctx); }
};
using Ctx = std::unique_ptr<lvmmed_ctx, CtxDeleter>;

void check(lvmmed_status st, const lvmmed_ctx *ctx) {
  if (st != LVMMED_OK)
    throw std::runtime_error(std::string(lvmmed_status_name(st)) + ": " + lvmmed_ctx_last_error(ctx));
}

Ctx make_context() {
  lvmmed_ctx *raw = nullptr;
  check(lvmmed_ctx_create(&raw), nullptr);
  return Ctx(raw);
}

}  // namespace

int main() {
  try {
    Ctx ctx = make_context();
    check(lvmmed_ctx_set_option(ctx.get(), LVMMED_CTX_OPT_SEED, 7), ctx.get());
    int64_t seed = 0;
    check(lvmmed_ctx_get_option(ctx.get(), LVMMED_CTX_OPT_SEED, &seed), ctx.get());
    std::printf("liblvmmed %s from C++: seed=%lld\n", lvmmed_version_string(), static_cast<long long>(seed));
    try {
      check(lvmmed_ctx_set_option(ctx.get(), LVMMED_CTX_OPT_LOG_LEVEL, 99), ctx.get());
      return 1;  // must not be reached: 99 is out of range
    } catch (const std::runtime_error &e) {
      std::printf("expected failure: %s\n", e.what());
    }
  } catch (const std::exception &e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
