# motcua — the two commands: `make run` (server with demo data) and `make test` (the suite).
SHELL := /bin/bash
# uv is looked up when the recipe runs (it may have just been installed by pip): on PATH, else
# through the pip package itself (`python3 -m uv`).
UV ?= $$(command -v uv 2>/dev/null || echo python3 -m uv)
APT_PACKAGES := graphviz fonts-dejavu-core chromium tesseract-ocr tesseract-ocr-vie
export UV_LINK_MODE := copy

.PHONY: setup run test lint bench services

setup: .venv/.synced

.venv/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@bash .ci/apt-install $(APT_PACKAGES)
	$(UV) sync --frozen
	@touch $@

services:
	@bash .ci/services

run: setup
	.venv/bin/motcua serve --demo --host 127.0.0.1 --port 8000

test: setup services
	.venv/bin/python -m pytest -q

bench: setup services
	.venv/bin/python -m benchmarks   # every benchmark, each writes its section of BENCHMARKS.md

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/lint-imports
