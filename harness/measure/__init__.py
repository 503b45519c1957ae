"""One case measured: nothing here knows of files; the sweep (harness/run/) writes what these return.

    timing      a throughput case built, and a comparison group timed round-robin (fixed or adaptive rounds)
    canary      the machine's own speed: a fixed piece of work timed with every comparison group
    memory      peak memory of one step, and whether a case fits
    accuracy    a timed row's error against float64, at its own sizes, and the tolerance it is held to
    flops       the FLOP model, each GEMM library's peak, and its rate at a case's own shapes
    gradients   gradient norms over distance, the decay fit
    tasks       the adding and copy-memory tasks, trained
    jacobian    inside a model while a task trains: the one-step Jacobian's norm, the forget gate
    profiling   torch.profiler, live: which backend ran, a case's profiled pass for TensorBoard
"""
