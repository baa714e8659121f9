"""From model outputs to answers: the estimator (``detector``), anomaly scores and the label-free
threshold, the severity prior, result tables, evaluation, fit warnings and user feedback.
"""
