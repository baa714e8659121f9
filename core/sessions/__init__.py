"""Lines to sessions: the session rules (``grouping``: an id in the line, windows of lines or of
time) and sessions as model input (``session_corpus``: distinct lines and distinct sequences).
"""
