"""A signed, stateless token for "refine this search": the query's embedding and predicted tags.

The shopper's photo is not kept; the refine form carries this token instead, so any web process can
rerun the search with filters. Signed, so a client cannot inject vectors; float16 keeps it ~3.5 KB.
"""

from __future__ import annotations

import base64
import json

import numpy as np
from django.core import signing
from numpy.typing import NDArray

from catalog.errors import CatalogError
from recognition.recognizers import Prediction

SALT = "catalog.query-token"
MAX_AGE_S = 6 * 3600
TAGS_KEPT_PER_ATTRIBUTE = 5


class InvalidQueryToken(CatalogError):
    code = "invalid_query_token"


def query_token_make(embedding: NDArray[np.float32], predictions: dict[str, list[Prediction]]) -> str:
    payload = {
        "e": base64.b64encode(embedding.astype(np.float16).tobytes()).decode("ascii"),
        "p": {
            attribute: [[p.tag, round(p.score, 4)] for p in ranked[:TAGS_KEPT_PER_ATTRIBUTE]]
            for attribute, ranked in predictions.items()
        },
    }
    return signing.dumps(payload, salt=SALT, compress=True)


def query_token_read(token: str) -> tuple[NDArray[np.float32], dict[str, list[Prediction]]]:
    try:
        payload = signing.loads(token, salt=SALT, max_age=MAX_AGE_S)
        embedding = np.frombuffer(base64.b64decode(payload["e"]), dtype=np.float16).astype(np.float32)
        predictions = {a: [Prediction(tag, float(score)) for tag, score in rows] for a, rows in payload["p"].items()}
    except signing.SignatureExpired:
        raise InvalidQueryToken("This search has expired; upload the photo again.") from None
    except (signing.BadSignature, KeyError, TypeError, ValueError, json.JSONDecodeError):
        raise InvalidQueryToken("This search could not be refined; upload the photo again.") from None
    return embedding / max(float(np.linalg.norm(embedding)), 1e-12), predictions
