"""HTTP routers. Each area adds its router here, one line each; ``api.app.create_app`` mounts
them."""

from __future__ import annotations

from fastapi import APIRouter

ROUTERS: list[APIRouter] = []

from api.routes import documents as _documents  # noqa: E402

ROUTERS.append(_documents.router)

from api.routes import callbacks as _callbacks  # noqa: E402

ROUTERS.append(_callbacks.router)

from api.routes import feedback as _feedback  # noqa: E402
from api.routes import payments as _payments  # noqa: E402

ROUTERS.append(_feedback.router)
ROUTERS.append(_payments.router)

from api.routes import dashboard as _dashboard  # noqa: E402

ROUTERS.append(_dashboard.router)
ROUTERS.append(_documents.pages_router)

from api.routes import search as _search  # noqa: E402

ROUTERS.append(_search.router)

from api.routes import assignments as _assignments  # noqa: E402

ROUTERS.append(_assignments.router)
ROUTERS.append(_assignments.pages_router)
