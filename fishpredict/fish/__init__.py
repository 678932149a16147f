"""The seed's fish: the 49 built-in fish, their models, synthetic fish, fish files, the k sweep.

The only package that knows a fish has a length and a weight. Everything else
takes any model's named columns (:mod:`fishpredict.models.signature`).
"""
