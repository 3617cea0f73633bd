"""Imports every domain's tables so that ``Base.metadata`` is complete (Alembic, tests)."""

from opsdesk.alerts import models as alerts_models
from opsdesk.audit import models as audit_models
from opsdesk.auth import models as auth_models
from opsdesk.changes import models as changes_models
from opsdesk.cmdb import models as cmdb_models
from opsdesk.core.db import Base
from opsdesk.incidents import models as incidents_models
from opsdesk.metrics import models as metrics_models
from opsdesk.monitoring import models as monitoring_models
from opsdesk.notify import models as notify_models
from opsdesk.oncall import models as oncall_models

__all__ = [
    "Base",
    "alerts_models",
    "audit_models",
    "auth_models",
    "changes_models",
    "cmdb_models",
    "incidents_models",
    "metrics_models",
    "monitoring_models",
    "notify_models",
    "oncall_models",
]
