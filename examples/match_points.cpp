// match_points.cpp — graph matching two point sets from C++17, with small
// RAII owners (std::unique_ptr with deleters that call the library's free
// functions) and exceptions that carry the library's error message.
//
//   c++ -std=c++17 match_points.cpp $(pkg-config --cflags --libs lvmmed) -o match_points_cpp
//
// A cloud of 2-D points is shuffled and jittered; the program recovers which
// point became which. lvmmed_affinity builds LVM-Med's graph pair from the
// two sets (kNN graphs, here without a GCN, so nodes keep their coordinates):
//   unary   c_v[i][a] = cos(p_i, q_a)                 (centred positions)
//   edges   c_e[e][f] = cos(p_i - p_j, q_a - q_b)     for kNN edges e = i→j, f = a→b
// and lvmmed_gm_solver finds the permutation maximising the sum of both.
// Matching the unary term alone (LAP) confuses points in the same direction
// from the centre; the edge term tells them apart.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <lvmmed/lvmmed.h>

namespace {

// ---- RAII wrappers --------------------------------------------------------

// A deleter calling the library's release function Free (a C function pointer).
template <auto Free>
struct FreeWith {
  template <typename T>
  void operator()(T *p) const noexcept { Free(p); }
};
using Ctx = std::unique_ptr<lvmmed_ctx, FreeWith<lvmmed_ctx_release>>;
using Affinity = std::unique_ptr<lvmmed_affinity, FreeWith<lvmmed_affinity_free>>;
using Solver = std::unique_ptr<lvmmed_gm_solver, FreeWith<lvmmed_gm_solver_free>>;

struct Error : std::runtime_error {
  lvmmed_status status;
  Error(lvmmed_status st, const std::string &message)
      : std::runtime_error(std::string(lvmmed_status_name(st)) + ": " + message), status(st) {}
};

// Throws an Error with the context's message when a call failed.
void check(lvmmed_status st, const lvmmed_ctx *ctx) {
  if (st != LVMMED_OK) throw Error(st, ctx ? lvmmed_ctx_last_error(ctx) : "");
}

Ctx make_context(int64_t seed) {
  lvmmed_ctx *raw = nullptr;
  check(lvmmed_ctx_create(&raw), nullptr);
  Ctx ctx(raw);  // owned from here on, released on every path
  check(lvmmed_ctx_set_option(ctx.get(), LVMMED_CTX_OPT_SEED, seed), ctx.get());
  return ctx;
}

Affinity make_affinity(lvmmed_ctx *ctx) {
  lvmmed_affinity *raw = nullptr;
  check(lvmmed_affinity_create(ctx, &raw), ctx);
  return Affinity(raw);  // holds its own reference on ctx
}

Solver make_solver(lvmmed_ctx *ctx) {
  lvmmed_gm_solver *raw = nullptr;
  check(lvmmed_gm_solver_create(ctx, &raw), ctx);
  return Solver(raw);
}

// ---- the problem ------------------------------------------------------------

// A small deterministic generator (the same numbers on every platform).
struct Random {
  uint64_t state;
  double uniform() {  // [0, 1)
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>(state >> 11) * (1.0 / 9007199254740992.0);
  }
};

struct Problem {
  std::vector<float> source, target;  // n x 2 each, centred
  std::vector<int32_t> truth;         // source point i is target point truth[i]
};

Problem make_problem(size_t n, double jitter, uint64_t seed) {
  Random rng{seed};
  Problem pr;
  pr.truth.resize(n);
  for (size_t i = 0; i < n; i++) pr.truth[i] = static_cast<int32_t>(i);
  for (size_t i = n - 1; i > 0; i--)  // Fisher–Yates shuffle
    std::swap(pr.truth[i], pr.truth[static_cast<size_t>(rng.uniform() * static_cast<double>(i + 1))]);
  std::vector<double> p(2 * n), q(2 * n);
  for (size_t i = 0; i < n; i++) {
    for (size_t d = 0; d < 2; d++) {
      p[2 * i + d] = rng.uniform();
      q[2 * static_cast<size_t>(pr.truth[i]) + d] = p[2 * i + d] + jitter * (rng.uniform() - 0.5);
    }
  }
  // Centre both sets (cosines of positions are then translation invariant).
  for (auto *set : {&p, &q}) {
    double mean[2] = {0, 0};
    for (size_t i = 0; i < n; i++)
      for (size_t d = 0; d < 2; d++) mean[d] += (*set)[2 * i + d] / static_cast<double>(n);
    for (size_t i = 0; i < n; i++)
      for (size_t d = 0; d < 2; d++) (*set)[2 * i + d] -= mean[d];
  }
  pr.source.assign(p.begin(), p.end());
  pr.target.assign(q.begin(), q.end());
  return pr;
}

size_t count_correct(const std::vector<int32_t> &found, const std::vector<int32_t> &truth) {
  size_t correct = 0;
  for (size_t i = 0; i < truth.size(); i++) correct += found[i] == truth[i];
  return correct;
}

}  // namespace

int main() {
  const size_t n = 24, k = 4;  // points, neighbours per point
  try {
    Ctx ctx = make_context(1);
    Problem pr = make_problem(n, 0.04, 2024);

    // One group of n "images" whose features are the 2-D positions: no GCN
    // (0 layers), no feature maps (so c_v is the plain cosine).
    Affinity aff = make_affinity(ctx.get());
    check(lvmmed_affinity_set_option(aff.get(), LVMMED_AFFINITY_OPT_GROUP_SIZE, static_cast<double>(n)), ctx.get());
    check(lvmmed_affinity_set_option(aff.get(), LVMMED_AFFINITY_OPT_KNN, static_cast<double>(k)), ctx.get());
    check(lvmmed_affinity_set_option(aff.get(), LVMMED_AFFINITY_OPT_FEATURE_DIM, 2), ctx.get());
    check(lvmmed_affinity_set_option(aff.get(), LVMMED_AFFINITY_OPT_GCN_LAYERS, 0), ctx.get());
    size_t graphs = 0, nodes = 0, edges = 0;
    check(lvmmed_affinity_shape(aff.get(), n, &graphs, &nodes, &edges, nullptr), ctx.get());

    std::vector<float> unary(graphs * nodes * nodes), edge_affinity(graphs * edges * edges);
    std::vector<int32_t> src_edges(graphs * edges * 2), tgt_edges(graphs * edges * 2);
    check(lvmmed_affinity_forward(aff.get(), n, pr.source.data(), pr.target.data(), nullptr, nullptr, 0, 0, 0,
                                  nullptr, nullptr, unary.data(), edge_affinity.data(), src_edges.data(),
                                  tgt_edges.data()),
          ctx.get());

    Solver solver = make_solver(ctx.get());
    check(lvmmed_gm_set_problem(solver.get(), n, unary.data(), edges, src_edges.data(), edges, tgt_edges.data(),
                                edge_affinity.data()),
          ctx.get());
    auto solve = [&](lvmmed_gm_method method, std::vector<int32_t> &perm) {
      check(lvmmed_gm_solver_set_option(solver.get(), LVMMED_GM_OPT_METHOD, method), ctx.get());
      double objective = 0;
      check(lvmmed_gm_solve(solver.get(), perm.data(), &objective), ctx.get());
      std::printf("%-6s objective %9.4f, %2zu of %zu points matched correctly\n", lvmmed_gm_method_name(method),
                  objective, count_correct(perm, pr.truth), n);
      return objective;
    };
    std::printf("%zu points, kNN graphs with %zu edges each\n", n, edges);
    std::vector<int32_t> lap(n), gm(n);
    double lap_objective = solve(LVMMED_GM_LAP, lap);   // unary term only
    double gm_objective = solve(LVMMED_GM_AUTO, gm);    // unary + edges (the default method)
    double truth_objective = 0;
    check(lvmmed_gm_objective(solver.get(), pr.truth.data(), &truth_objective), ctx.get());
    std::printf("truth  objective %9.4f\n", truth_objective);

    // Errors come back as exceptions with the library's explanation.
    try {
      std::vector<int32_t> unused(n);
      solve(LVMMED_GM_BRUTE, unused);  // exhaustive search is limited to n <= 9
    } catch (const Error &e) {
      std::printf("expected failure: %s\n", e.what());
    }

    // AUTO starts from the LAP solution and only improves it.
    if (gm_objective < lap_objective || count_correct(gm, pr.truth) < count_correct(lap, pr.truth)) {
      std::fprintf(stderr, "match_points: graph matching did worse than the unary term alone\n");
      return 1;
    }
  } catch (const std::exception &e) {
    std::fprintf(stderr, "match_points: %s\n", e.what());
    return 1;
  }
  return 0;
}
