"""The network and what surrounds it: the log tokenizer, sessions as model input
(``session_corpus``), TinyLogBERT itself, training, batched inference with torch or ONNX Runtime,
the sequence cache, and the checkpoint folder format.
"""
