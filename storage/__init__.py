"""Tables, engine, object store. Each area's tables module is imported here so that the metadata
(Alembic, tests) always holds every table."""

from storage import (
    models,  # noqa: F401
    models_api,  # noqa: F401
    models_assignments,  # noqa: F401
    models_documents,  # noqa: F401
    models_feedback,  # noqa: F401
    models_metrics,  # noqa: F401
    models_workflows,  # noqa: F401
)
