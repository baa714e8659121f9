"""Inputs larger than memory or than one machine: ``streaming`` scores one file in bounded memory
(the in-memory path's files, byte for byte); on Ray, many files as one input with sessions merged
in time order across files (``batch_inputs``) and the Ray Data engine (``ray_engine``).
"""
