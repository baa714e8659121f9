"""Lines to sessions: the session rules (``grouping``: an id in the line, windows of lines or of
time). Sessions as model input (distinct lines and sequences) are ``model.session_corpus``.
"""
