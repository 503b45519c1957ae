"""The run directory's tables, declared once: each CSV's file name and columns, in order, and the statuses.

runs.py writes and reads them; every row the sweep makes is one of
these shapes (a key a row lacks is written empty). Configuration is in columns
(impl, sizes, threads, ...), and `status` says what became of a case instead
of sentinel values.
"""
from __future__ import annotations

TIMING_COLUMNS = [
    "run_id", "scenario", "impl", "cell", "backend", "device", "device_name", "dtype", "batch", "seq_len", "hidden",
    "input", "layers", "phase", "rounds", "time_median_s", "time_iqr_s", "time_min_s", "tokens_per_s", "flops",
    "gflops_per_s", "gemm_peak_gflops_per_s", "peak_fraction", "peak_mem_bytes", "params", "status", "reason",
    # beyond the required columns
    "warmup", "threads", "seed", "time_mean_s", "time_max_s", "time_stddev_s", "host", "finished_utc", "case_id",
    "tf32",   # CUDA rows: whether float32 work could use TF32 (env.TF32); empty on CPU
    # the stack and variable lengths (models.Shape, implementations/lengths.py); tokens: the real tokens of one step
    # (tokens_per_s and flops count only these); random_outputs: dropout > 0, so no two steps compute alike
    "bidirectional", "proj_size", "dropout", "lengths", "lengths_mode", "tokens", "padding_fraction",
    "random_outputs",
    # the comparison group (harness/measure/timing.py): which, how it was timed, and the machine meanwhile
    "group_id", "section_index", "interleave", "order_seed", "rounds_wanted", "max_time_s",
    "median_ci_low_s", "median_ci_high_s",        # 95% interval of time_median_s (intervals.median_ci)
    "ratio_ref", "ratio", "ratio_ci_low", "ratio_ci_high",  # time / ratio_ref's time, 95% paired bootstrap
    "steal_fraction", "load_avg", "noisy",        # CPU steal and load over the group's rounds; noisy: steal > 5%,
    # or the canary (measure/canary.py) wider than +-5% or moved over 10% from the run's median; noisy_why says which
    "canary_median_s", "canary_ratio", "noisy_why",   # the canary's median, over the run's first group's
    # precision and compilers (implementations/compiled.py): autocast's dtype ("none"), what the step computed in (its
    # output's dtype); the compiler (inductor | torchscript | cudagraph) and torch.compile's mode; compile_s, the
    # first call less the steady median; recompiles and graph_breaks, from dynamo's counters. Blank when eager.
    "autocast", "compute_dtype", "compile_backend", "compile_mode", "compile_s", "recompiles", "graph_breaks",
    "max_compile_s",
    # the GEMM libraries (implementations/gemm.py): the one the step's GEMMs ran on (the case's gemm; for a library
    # kernel, its backend's), the one whose peak is the ceiling (the best measured: gemm_peak_gflops_per_s, which
    # peak_fraction divides by), and the best library's rate at the case's own GEMM shapes (flops.gemm_shapes,
    # FLOP-weighted) with the fraction of it the step reached
    "gemm", "gemm_peak_library", "shape_peak_gflops_per_s", "shape_peak_fraction",
    # the error pass (measure/accuracy.py): numerics ok | off (an error above err_tol, the tolerance of compute_dtype)
    # | unchecked (err_reason says why); out_err and grad_err, max |error| / max |float64 value| of the outputs and
    # final state, and of the parameter gradients (train); err_ref, the float64 reference and the batch it ran
    "numerics", "out_err", "grad_err", "err_tol", "err_ref", "err_reason",
]
ROUND_COLUMNS = ["run_id", "case_id", "group_id", "impl", "round", "position", "time_s"]
# round: 0, 1, ... (paired across a group's members); position: the member's place in that round's order
GRADIENT_COLUMNS = ["run_id", "impl", "cell", "init", "forget_bias", "nonlinearity", "hidden", "seq_len", "batch",
                    "dtype", "seed", "wrt", "step", "distance", "grad_norm", "status",
                    # beyond the required columns: where the curve was taken
                    "device", "input", "task", "train_step", "layers", "spectral_radius", "case_id", "autocast"]
DECAY_COLUMNS = ["run_id", "impl", "cell", "init", "forget_bias", "nonlinearity", "hidden", "seq_len", "batch",
                 "dtype", "device", "task", "train_step", "wrt", "seeds", "window_min", "window_max", "decay_factor",
                 "decay_ci_low", "decay_ci_high", "vanish_distance", "vanishes_within_T", "status", "reason", "layers",
                 "spectral_radius", "case_id", "autocast"]
TRAINING_COLUMNS = ["run_id", "task", "impl", "hidden", "seq_len", "forget_bias", "step", "train_loss", "eval_loss",
                    "baseline_loss", "eval_accuracy", "wall_s",
                    # beyond the required columns
                    "cell", "device", "dtype", "batch", "lr", "clip", "seed", "status", "reason", "layers", "init",
                    "nonlinearity", "spectral_radius", "steps", "case_id", "autocast", "early_stop"]
DYNAMICS_COLUMNS = ["run_id", "case_id", "task", "impl", "cell", "hidden", "seq_len", "init", "forget_bias",
                    "nonlinearity", "spectral_radius", "seed", "train_step", "t", "jacobian_norm", "forget_mean",
                    "forget_open"]
# dynamics.csv (measure/jacobian.py), one row per [[task]] case, checkpoint of training (train_step: 0, the
# middle, the end) and measured step t of the probe sequences: jacobian_norm, the largest singular value of
# the one-step Jacobian ds_t/ds_{t-1} (s = h, or (h, c) for an LSTM), averaged over the probe sequences;
# forget_mean and forget_open (the fraction above 0.9): the LSTM's forget gate at t, blank for an RNN
BREAKDOWN_COLUMNS = ["run_id", "case_id", "impl", "device", "dtype", "phase", "batch", "seq_len", "hidden", "input",
                     "layers", "bidirectional", "lengths", "lengths_mode", "category", "ms", "source", "gemm"]
# where one step's time goes (traces.CATEGORIES), ms per step; source: "pass" (the sweep's breakdown pass) or
# "trace" (read from a profiled case's trace)
TIMINGS, ROUNDS, BREAKDOWN = "timings.csv", "rounds.csv", "breakdown.csv"                   # [[throughput]]
GRADIENTS, DECAY = "gradients.csv", "decay.csv"                                           # [[gradients]]
TRAINING, DYNAMICS = "training.csv", "dynamics.csv"                                       # [[task]] (and gradients.csv)
TABLES = {TIMINGS: TIMING_COLUMNS, ROUNDS: ROUND_COLUMNS, BREAKDOWN: BREAKDOWN_COLUMNS, GRADIENTS: GRADIENT_COLUMNS,
          DECAY: DECAY_COLUMNS, TRAINING: TRAINING_COLUMNS, DYNAMICS: DYNAMICS_COLUMNS}     # file name -> its columns
FINAL_TABLES = (TIMINGS, DECAY, TRAINING)   # a case is done when its rows are in one of these (written last)
STATUSES = ("ok", "skipped", "failed", "oom")                  # a case's status (the `status` column)
RUN_STATUSES = ("pending", "running", "complete", "interrupted", "failed")
