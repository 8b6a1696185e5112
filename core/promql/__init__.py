"""PromQL for Watchkeeper's pure core: a sample store, the evaluator and promtool's series notation.

Semantics follow Prometheus 2.42 (the Debian promtool these files are checked against).
"""
