"""Card-fraud reference workload: the handbook's simulator, its features, drift, the baseline.

Modules are imported explicitly (``from modelloop.examples.fraud.simulator import simulate``);
this package imports nothing, so ``import modelloop`` stays light.
"""
