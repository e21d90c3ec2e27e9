"""The HTTP API's endpoints.

Each request takes the served model once (``holder.current``) and uses only that
object, so a reload in the middle of a request changes nothing for it. Work that can
take more than a millisecond or waits on the disk (fold-in, database writes, the map
and bias views' first build, a reload) runs in the thread pool; the hot paths (a known
user's list, predictions of known users) run inline, which costs less than the hop.
Ids in paths arrive as text and are matched by the vocabulary's type; ids go out in
their own type. Every endpoint here needs the token when the server is private; writes
need it whenever there is one.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool

from collabfilter.errors import CollabFilterError, DataError, UnknownIdError
from collabfilter.interpret import item_biases, item_pca, search_items, similar_items
from collabfilter.recommend import check_ratings
from collabfilter.serve import schemas as s
from collabfilter.serve.lists import new_user_list, predict_pairs, user_list
from collabfilter.serve.security import JSONBody, token_matches
from collabfilter.serve.served import ItemList, ServedModel
from collabfilter.serve.store import StoreUnavailable

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": s.ErrorResponse} for code in (400, 401, 403, 404, 408, 409, 413, 421, 422)
}
STORE_ERRORS: dict[int | str, dict[str, Any]] = {**ERRORS, 503: {"model": s.ErrorResponse}}
"""What endpoints that use the ratings database may answer (503: busy, full, read-only)."""
N = Annotated[int, Query(ge=1, le=s.MAX_N, description="how many items")]
AMONG = Annotated[int, Query(ge=2, le=s.MAX_AMONG, description="the most rated items shown")]


def _service(request: Request) -> Any:
    return request.app.state.service


def require_token(request: Request) -> None:
    """The request must carry ``Authorization: Bearer <token>`` (when there is a token)."""
    token = _service(request).token
    if token is None:
        return
    header = request.headers.get("authorization")
    if header is None:
        raise HTTPException(
            401, "this endpoint needs 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )  # fmt: skip
    if not token_matches(header, token):
        raise HTTPException(403, "wrong token")


def require_reader(request: Request) -> None:
    """Reads need the token when the server is private."""
    if _service(request).private:
        require_token(request)


WRITER = [Depends(require_token)]
router = APIRouter(dependencies=[Depends(require_reader)])


@router.get("/health", response_model=s.HealthResponse, responses=ERRORS)
async def health(request: Request) -> JSONBody:
    """The model served (its file's name, not where it lives) and who may use it."""
    service = _service(request)
    database = {"writes_need_token": service.token is not None,
                "reads_need_token": service.private}  # fmt: skip
    body = {"status": "ok", "model": service.holder.current.describe(), "database": database}
    return JSONBody(body)


@router.get("/items", response_model=s.SearchResponse, responses=ERRORS)
async def search(
    request: Request,
    q: Annotated[str, Query(min_length=1, max_length=200, description="id or title words")],
    n: N = 10,
) -> JSONBody:
    """Items matching an id or title, forgivingly ("star wars", "the godfather")."""
    served = _service(request).holder.current
    found = search_items(served.model, q, k=n)
    return JSONBody({"query": q, "items": _found(served, found["item"].tolist())})


@router.get("/items/map", response_model=s.MapResponse, responses=ERRORS)
async def item_map(request: Request, among: AMONG = 500) -> JSONBody:
    """The most rated items on the first two principal components of their factors."""
    served = _service(request).holder.current
    body = await run_in_threadpool(served.view, ("map", among), lambda: _map(served, among))
    return JSONBody(body)


@router.get("/items/biases", response_model=s.BiasesResponse, responses=ERRORS)
async def biases(request: Request, among: AMONG = 500) -> JSONBody:
    """The learned item biases of the most rated items, lowest first."""
    served = _service(request).holder.current
    body = await run_in_threadpool(served.view, ("biases", among), lambda: _biases(served, among))
    return JSONBody(body)


@router.get("/items/{item_id}/similar", response_model=s.SimilarResponse, responses=ERRORS)
async def similar(
    request: Request,
    item_id: str,
    n: N = 10,
    min_ratings: Annotated[int | None, Query(ge=1, description="fewest ratings shown")] = None,
) -> JSONBody:
    """The items whose factors are closest to this one's (cosine)."""
    served = _service(request).holder.current
    row = served.items.row(item_id)
    if row is None:
        raise UnknownIdError(f"unknown item id {shown(item_id)}; search items with /items?q=")
    raw_id = served.items.raw_id(row)
    found = similar_items(served.model, raw_id, k=n, min_ratings=min_ratings)
    items = _found(served, found["item"].tolist())
    for entry, value in zip(items, found["similarity"].tolist(), strict=True):
        entry["similarity"] = round(float(value), 4)
    return JSONBody({"item": _found(served, [served.item_ids[row]])[0], "items": items})


@router.get(
    "/users/{user_id}/recommendations", response_model=s.ItemListResponse, responses=STORE_ERRORS
)
async def user_recommendations(request: Request, user_id: str, n: N = 10) -> JSONBody:
    """The best items for a user, never one they rated. A known user's ratings sent to
    this service are folded in with their training ratings; an unknown user is
    placed from what they sent alone."""
    service = _service(request)
    served = service.holder.current
    key = served.users.key(user_id)
    row = served.users.row(user_id)
    stored = service.store.ratings_of(key)
    if row is None and not stored:
        raise UnknownIdError(
            f"unknown user id {shown(user_id)}: not in the training data and no ratings sent "
            f"(POST /users/{user_id}/ratings, or POST /recommendations)"
        )
    if stored:  # fold-in: milliseconds the first time for these ratings
        listed = await run_in_threadpool(user_list, served, key, row, stored, n)
    else:
        listed = user_list(served, key, row, stored, n)
    return JSONBody(_list_body(served, listed, key, row is not None))


@router.post("/recommendations", response_model=s.ItemListResponse, responses=ERRORS)
async def new_user_recommendations(request: Request, body: s.NewUserRequest, n: N = 10) -> JSONBody:
    """The best items for someone known only by the ratings and side features sent
    (nothing is stored)."""
    served = _service(request).holder.current
    rated_idx, values = _rated(served, body.ratings)
    listed, unseen = await run_in_threadpool(
        new_user_list, served, rated_idx, values, n, body.features
    )
    return JSONBody(_list_body(served, listed, None, False) | {"unknown_feature_values": unseen})


@router.post("/predict", response_model=s.PredictResponse, responses=STORE_ERRORS)
async def predict(request: Request, body: s.PredictRequest) -> JSONBody:
    """Predicted ratings of (user, item) pairs, in their order. Users who sent ratings
    are folded in with them."""
    service = _service(request)
    served = service.holder.current
    if not served.model.predicts_ratings:
        raise CollabFilterError("this model ranks items; it does not predict ratings")
    users = served.users
    user_rows = [users.row(pair.user) for pair in body.pairs]
    user_keys = [
        users.raw_id(row) if row is not None else users.key(pair.user)
        for row, pair in zip(user_rows, body.pairs, strict=True)
    ]
    item_rows = _item_rows(served, [pair.item for pair in body.pairs])
    stored = service.store.ratings_of_users(user_keys)
    if stored or any(row is None for row in user_rows):
        predicted = await run_in_threadpool(
            predict_pairs, served, user_rows, user_keys, item_rows, stored
        )
    else:
        predicted = predict_pairs(served, user_rows, user_keys, item_rows, stored)
    return JSONBody({"predictions": np.round(predicted.astype(np.float64), 4).tolist()})


@router.post(
    "/users/{user_id}/ratings",
    response_model=s.StoredResponse,
    responses=STORE_ERRORS,
    dependencies=WRITER,
)
async def add_ratings(request: Request, user_id: str, body: s.RatingsRequest) -> JSONBody:
    """Store a user's ratings (known or new user); their lists reflect them at once."""
    service = _service(request)
    served = service.holder.current
    key = served.users.key(user_id)
    rated_idx, values = _rated(served, body.ratings)
    pairs = [(served.item_ids[i], v) for i, v in zip(rated_idx.tolist(), values.tolist(),
                                                     strict=True)]  # fmt: skip
    total = await run_in_threadpool(service.store.add, key, pairs)
    return JSONBody({"user": key, "stored": len(pairs), "total": total})


@router.delete(
    "/users/{user_id}/ratings",
    response_model=s.ForgetResponse,
    responses=STORE_ERRORS,
    dependencies=WRITER,
)
async def forget_ratings(request: Request, user_id: str) -> JSONBody:
    """Forget every rating this user sent (their training ratings stay in the model)."""
    service = _service(request)
    key = service.holder.current.users.key(user_id)
    deleted = await run_in_threadpool(service.store.forget, key)
    return JSONBody({"user": key, "deleted": deleted})


@router.post(
    "/admin/reload", response_model=s.ReloadResponse, responses=STORE_ERRORS, dependencies=WRITER
)
async def reload(request: Request) -> JSONBody:
    """Load the model file again now; the other workers follow within a second or so
    (they watch the database's model generation)."""
    service = _service(request)
    try:
        served = await run_in_threadpool(service.holder.reload)
    except (FileNotFoundError, CollabFilterError) as error:
        raise CollabFilterError(f"{error}; still serving the previous model") from None
    try:
        service.holder.generation = await run_in_threadpool(service.store.bump_model_generation)
    except StoreUnavailable as error:
        raise StoreUnavailable(
            f"reloaded in this worker only, the others were not told: {error}",
            error.retry_after,
        ) from None
    return JSONBody({"reloaded": True, "model": served.describe()})


# ----------------------------------------------------------------------------- helpers
def shown(value: object) -> str:
    """A value a client sent, quoted for a message: escaped, and cut when long."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:50]}... ({len(str(value))} characters)"


def _found(served: ServedModel, item_ids: Any) -> list[dict[str, Any]]:
    rows = [served.items.row(item_id) for item_id in item_ids]
    return [
        {"item": served.item_ids[r], "title": served.labels[r], "ratings": int(served.counts[r])}
        for r in rows
        if r is not None
    ]


def _item_rows(served: ServedModel, item_ids: list[Any]) -> np.ndarray:
    rows = [served.items.row(item_id) for item_id in item_ids]
    unknown = sorted({shown(i) for i, r in zip(item_ids, rows, strict=True) if r is None})
    if unknown:
        raise DataError(
            f"{len(unknown)} unknown item id(s): {', '.join(unknown[:5])}; the model has "
            f"items like {served.item_ids[:3]} (search them with /items?q=)"
        )
    return np.array(rows, dtype=np.int64)


def _rated(served: ServedModel, ratings: list[s.Rated]) -> tuple[np.ndarray, np.ndarray]:
    """Rows and values of rated items, checked by the library's rule: known items, each
    once, on the scale."""
    rows = _item_rows(served, [rated.item for rated in ratings])
    values = np.array([rated.rating for rated in ratings], dtype=np.float64)
    check_ratings(served.model, rows, values)
    return rows, values


def _list_body(served: ServedModel, listed: ItemList, user: Any, known: bool) -> dict[str, Any]:
    items, cold = [], served.model.cold_items()
    for item, score, because, rating in zip(
        listed.item_idx.tolist(), listed.scores.tolist(), listed.because.tolist(),
        listed.because_rating.tolist(), strict=True,
    ):  # fmt: skip
        reason = None
        if because >= 0:
            reason = {"item": served.item_ids[because], "title": served.labels[because],
                      "rating": float(rating)}  # fmt: skip
        items.append({"item": served.item_ids[item], "title": served.labels[item],
                      "score": round(score, 4), "because": reason,
                      "cold": bool(cold[item])})  # fmt: skip
    scores = "predicted rating" if served.scores_are_ratings else "ranking score"
    return {"user": user, "known": known, "rated": listed.rated, "scores": scores,
            "items": items}  # fmt: skip


def _map(served: ServedModel, among: int) -> dict[str, Any]:
    pca = item_pca(served.model, 2, among=among)
    items = _found(served, served.model.items.id_of(pca.item_idx).tolist())
    for entry, (x, y) in zip(items, pca.coordinates[:, :2].tolist(), strict=True):
        entry["x"], entry["y"] = round(x, 5), round(y, 5)
    return {"explained": [round(float(v), 5) for v in pca.explained], "items": items}


def _biases(served: ServedModel, among: int) -> dict[str, Any]:
    table = item_biases(served.model, among=among)
    items = _found(served, table["item"].tolist())
    for entry, bias, mean in zip(items, table["bias"].tolist(), table["mean rating"].tolist(),
                                 strict=True):  # fmt: skip
        entry["bias"] = round(float(bias), 4)
        entry["mean_rating"] = round(float(mean), 4) if np.isfinite(mean) else None
    return {"items": items}
