"""Content negotiation: does the client's ``Accept`` header prefer CSV over JSON?"""

JSON_MEDIA = "application/json"
CSV_MEDIA = "text/csv"
# CSV responses carry the warnings (``tinylogbert.scoring.fit_check``) in this header, ' | '-joined.
WARNINGS_HEADER = "X-TinyLogBERT-Warnings"



def prefers_csv(accept: str | None) -> bool:
    """True when ``Accept`` ranks ``text/csv`` above ``application/json`` (q-value, then how
    specifically it was named); JSON otherwise, including when Accept is absent or ``*/*``."""
    return _preference(accept, CSV_MEDIA) > _preference(accept, JSON_MEDIA)


def _preference(accept: str | None, media: str) -> tuple[float, int]:
    kind = media.split("/")[0]
    best = (0.0, -1)
    for item in (accept or "").split(","):
        name, *params = [part.strip().lower() for part in item.split(";")]
        specificity = {media: 2, f"{kind}/*": 1, "*/*": 0}.get(name)
        if specificity is None or specificity < best[1]:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        best = (quality, specificity)
    return best if best[0] > 0 else (0.0, -1)


