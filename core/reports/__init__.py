"""What front ends show beside the scores: the timeline (flagged sessions and lines per period),
the templates table (each distinct line with its counts here and in training) and the one way a
threshold or a count is written (``display``). Tables from a ``ScoreResult``; no Streamlit.
"""
