"""HTTP routers. Each area adds its router here, one line each; ``api.app.create_app`` mounts them."""

from __future__ import annotations

from fastapi import APIRouter

ROUTERS: list[APIRouter] = []
