// Threading of qlinear's weight rows (qlinear.cpp, ggml_panels.cpp): the
// active level's qlinear_rows over ranges of units of `unit` weight rows on
// the pool, prepared inputs in `in`.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/qlinear.h"
#include "kernels/qlinear_input.h"

namespace nm {

// y rows [0, M) of a for weight rows [0, N): range k covers units
// [unit_ends[k - 1], unit_ends[k]). scratch_bytes: the per-thread scratch
// the rows need (-1: none; 0 still gives them a valid pointer). A decode-sized call (in.stream, int8 inputs) on a
// thread that allows it (cpu::recompute_allowed: an engine decode step) runs
// as recomputable work, with its own copies of the inputs and staging for
// the workers' outputs: a worker the machine stalls then costs the call
// only the time to compute its range again on the calling thread
// (bench/NOTES.md). Outputs of more than 1 MB (a batch-8 lm_head) are not
// staged: those calls wait for their workers.
void run_qlinear_rows(const QLinearArgs& a, const QInput& in, int64_t unit, std::vector<int64_t> unit_ends,
                      int64_t scratch_bytes);

}  // namespace nm
