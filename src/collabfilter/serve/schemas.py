"""Request and response bodies of the HTTP API (they make the OpenAPI schema).

Requests are validated strictly: ids are JSON integers within int64 (as the library's
:func:`~collabfilter.data.encoding.parse_integer_id` allows) or strings of 1 to
:data:`MAX_ID_LENGTH` characters of valid Unicode (never booleans, fractions, null or
objects), ratings finite numbers, unknown fields refused, and every list bounded.
Responses are built by the routes directly (no per-request validation on the hot
path); the tests check them against these models.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, NoReturn

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, StrictFloat, model_validator

from collabfilter.data.encoding import parse_integer_id

MAX_PAIRS = 10_000
"""Pairs in one ``POST /predict``."""
MAX_RATINGS = 1_000
"""Ratings in one request."""
MAX_N = 100
"""Items in one list (``n``)."""
MAX_AMONG = 2_000
"""Items on the map or in the bias table."""
MAX_ID_LENGTH = 200
"""Characters in a text id (and digits in an integer id sent as text)."""
MAX_FEATURES = 100
"""Side features of one new user."""


def valid_unicode(text: str) -> str:
    """``text`` if it can be written as UTF-8 (JSON's ``"\\ud800"`` decodes to a lone
    surrogate, which no id, title or answer can hold).

    Raises:
        ValueError: naming the first position that is not a character.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"not valid Unicode: a lone surrogate at character {error.start}"
        ) from None
    return text


def raw_id(value: object) -> int | str:
    """A raw id as a request may send it: a JSON integer within int64, or a string of 1
    to :data:`MAX_ID_LENGTH` characters of valid Unicode.

    Raises:
        ValueError: saying what an id is and what was received instead.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        # the library's rule for integer ids (its vocabularies hold no other)
        if value.bit_length() > 64 or parse_integer_id(str(value)) is None:
            raise ValueError("integer ids are within int64, -2**63+1 to 2**63-1")
        return value
    if isinstance(value, str):
        if not 1 <= len(value) <= MAX_ID_LENGTH:
            raise ValueError(f"text ids are 1 to {MAX_ID_LENGTH} characters, got {len(value)}")
        return valid_unicode(value)
    kinds = {bool: "a boolean", float: "a fraction", list: "an array", dict: "an object"}
    kind = "null" if value is None else kinds.get(type(value), type(value).__name__)
    raise ValueError(f"an id is a JSON integer or string, got {kind}")


RawId = Annotated[
    int | str,
    PlainValidator(raw_id, json_schema_input_type=int | str),
    Field(description="a raw id, in the data's own type"),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Pair(Strict):
    user: RawId
    item: RawId


class PredictRequest(Strict):
    pairs: list[Pair] = Field(min_length=1, max_length=MAX_PAIRS)


class PredictResponse(BaseModel):
    predictions: list[float] = Field(description="predicted ratings, in the order of the pairs")


class Rated(Strict):
    item: RawId
    rating: StrictFloat = Field(description="on the model's rating scale (see /health)")


class RatingsRequest(Strict):
    ratings: list[Rated] = Field(min_length=1, max_length=MAX_RATINGS)


def feature_text(value: object) -> str | float:
    """A side feature's value: a number, or text of at most :data:`MAX_ID_LENGTH`
    characters of valid Unicode.

    Raises:
        ValueError: saying what a value is and what was received instead.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any float
            _refuse("a finite number")
        return number if math.isfinite(number) else _refuse("a finite number")
    if isinstance(value, str):
        if len(value) > MAX_ID_LENGTH:
            raise ValueError(f"feature values are at most {MAX_ID_LENGTH} characters")
        return valid_unicode(value)
    return _refuse("a number or a string")


def _refuse(expected: str) -> NoReturn:
    raise ValueError(f"a feature value is {expected}")


FeatureValue = Annotated[
    str | float,
    PlainValidator(feature_text, json_schema_input_type=str | float),
    Field(description="a value of the feature, as in the training data's table"),
]
FeatureName = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]


class NewUserRequest(Strict):
    ratings: list[Rated] = Field(default_factory=list, max_length=MAX_RATINGS)
    features: dict[FeatureName, FeatureValue] | None = Field(
        default=None, max_length=MAX_FEATURES,
        description="side features, for a model trained with user features (see /health)",
    )  # fmt: skip

    @model_validator(mode="after")
    def _someone(self) -> NewUserRequest:
        if not self.ratings and not self.features:
            raise ValueError("a new user needs ratings, or features for a model that reads them")
        return self


class Because(BaseModel):
    item: RawId
    title: str
    rating: float


class ListedItem(BaseModel):
    item: RawId
    title: str
    score: float
    because: Because | None = Field(
        description="the liked item the user rated that is most like this one"
    )
    cold: bool = Field(default=False, description="whether the item has no training rating")


class ItemListResponse(BaseModel):
    user: RawId | None
    known: bool = Field(description="whether the model was trained on this user's ratings")
    rated: int = Field(description="items the user rated (excluded from the list)")
    unknown_feature_values: int = Field(
        default=0, description="sent feature values the training data never had (ignored)"
    )
    scores: Literal["predicted rating", "ranking score"]
    items: list[ListedItem]


class FoundItem(BaseModel):
    item: RawId
    title: str
    ratings: int = Field(description="training ratings of the item")


class SearchResponse(BaseModel):
    query: str
    items: list[FoundItem]


class SimilarItem(FoundItem):
    similarity: float


class SimilarResponse(BaseModel):
    item: FoundItem
    items: list[SimilarItem]


class MapPoint(FoundItem):
    x: float
    y: float


class MapResponse(BaseModel):
    explained: list[float] = Field(description="share of variance of each component")
    items: list[MapPoint]


class BiasRow(FoundItem):
    bias: float
    mean_rating: float | None


class BiasesResponse(BaseModel):
    items: list[BiasRow]


class StoredResponse(BaseModel):
    user: RawId
    stored: int = Field(description="ratings stored by this request")
    total: int = Field(description="ratings this user has sent, all requests")


class ForgetResponse(BaseModel):
    user: RawId
    deleted: int


class HealthResponse(BaseModel):
    status: Literal["ok"]
    model: dict[str, object]
    database: dict[str, object]


class ReloadResponse(BaseModel):
    reloaded: bool
    model: dict[str, object]


class ErrorResponse(BaseModel):
    detail: str
