"""Live scoring (``tinylogbert watch``): read a growing log or a stream as it is written
(``follow``) and close and score sessions as they end (``session_tracker``).
"""
