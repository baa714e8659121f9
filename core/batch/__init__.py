"""Batch scoring that scales out on Ray: many files as one input, sessions merged in time order
across files (``batch_inputs``), and the Ray Data engine (``ray_engine``).
"""
