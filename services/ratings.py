"""The citizen's rating of the service at the return (satisfied / acceptable / dissatisfied)."""

from __future__ import annotations

from typing import Literal

from sqlalchemy.exc import IntegrityError

from services.context import Context
from services.errors import DomainError
from services.lookup import find_for_citizen
from states.events import RETURNED
from storage.models_api import Rating

Score = Literal["satisfied", "acceptable", "dissatisfied"]


class RatingNotAllowed(DomainError):
    code = "rating_not_allowed"
    http_status = 409


def rate(
    ctx: Context,
    code: str,
    digits: str,
    client: str,
    score: Score,
    comment: str | None,
    channel: str = "lookup",
) -> Rating:
    """Once per dossier, after the result is returned; the same code + 4 digits as the lookup."""
    dossier = find_for_citizen(ctx, code, digits, client)
    if dossier.status != RETURNED:
        raise RatingNotAllowed(
            "Chỉ đánh giá được sau khi đã nhận kết quả",
            "A rating is possible once the result has been returned",
        )
    rating = Rating(
        dossier_id=dossier.id,  # type: ignore[arg-type]
        score=score,
        comment=(comment or "").strip() or None,
        channel=channel,
        at=ctx.clock.now(),
    )
    try:
        with ctx.uow() as uow:
            uow.session.add(rating)
            uow.commit()
    except IntegrityError:
        raise RatingNotAllowed(
            "Hồ sơ này đã được đánh giá", "This dossier has already been rated"
        ) from None
    return rating
