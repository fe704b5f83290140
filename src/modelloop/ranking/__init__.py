"""Ranking: what recommendation needs beyond a scored row. Offline metrics of ranked lists
(``ranking.metrics``) and online comparison of two rankers by interleaving with a sequential
test (``ranking.interleaving``). Modules import numpy/pandas, so this package imports nothing
itself: import the module you need."""
