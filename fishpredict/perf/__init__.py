"""Benchmark suites that print figures and ratios side by side from one run.

``fishpredict perf predictor`` (the core), ``fishpredict perf serving`` (the
backends against the seed's server) and ``fishpredict perf scaling``
(micro-batching, workers, bulk prediction, the socket backend against nginx).
Every figure a target speaks of is printed with its ratio, measured in the same
run on the same machine; nothing is asserted here, and no unit test times code.
"""
