"""Tables, engine, object store. Each area's tables module is imported here so that the metadata
(Alembic, tests) always holds every table."""

from storage import models  # noqa: F401
from storage import models_api  # noqa: F401
from storage import models_workflows  # noqa: F401
from storage import models_metrics  # noqa: F401
from storage import models_documents  # noqa: F401
from storage import models_feedback  # noqa: F401
