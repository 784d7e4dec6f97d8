"""Sharing (SPEC §4, §5): co-owners, run-only buttons, groups, admins, My buttons.

- `service`: `SharingService`, what the sharing listeners call, built from one module per
  use case: `share_lists` (share / unshare / users / audit), `access_requests` (links and
  requests for access), `buttons` (My buttons), `admin_policy` (who may create flows).
- `model`: stored records and results; `ports`: its stores and notifier; `errors`: its
  refusals as data (worded in `cards.sharing`).
"""

from __future__ import annotations

from flows.sharing.errors import (
    BadCreatorsList,
    LinkNotPosted,
    NotAButton,
    RequestGone,
    SharingConflict,
    SharingError,
    SharingRefused,
)
from flows.sharing.model import (
    AccessRequest,
    AuditEntry,
    AuditKind,
    ButtonItem,
    ButtonState,
    ButtonStatus,
    DecisionResult,
    LinkOpened,
    LinkPosted,
    MyButtons,
    PrincipalRefusal,
    RequestResult,
    RequestStatus,
    ShareChange,
    ShareLine,
    ShareResult,
    UnshareResult,
    UsersView,
    WorkspacePolicy,
    default_role,
)
from flows.sharing.ports import (
    AccessRequestStore,
    AuditStore,
    ButtonStore,
    PolicyStore,
    SharedFlowStore,
    SharingNotifier,
)
from flows.sharing.service import SharingService

__all__ = [
    "AccessRequest",
    "AccessRequestStore",
    "AuditEntry",
    "AuditKind",
    "AuditStore",
    "BadCreatorsList",
    "ButtonItem",
    "ButtonState",
    "ButtonStatus",
    "ButtonStore",
    "DecisionResult",
    "LinkNotPosted",
    "LinkOpened",
    "LinkPosted",
    "MyButtons",
    "NotAButton",
    "PolicyStore",
    "PrincipalRefusal",
    "RequestGone",
    "RequestResult",
    "RequestStatus",
    "ShareChange",
    "ShareLine",
    "ShareResult",
    "SharedFlowStore",
    "SharingConflict",
    "SharingError",
    "SharingNotifier",
    "SharingRefused",
    "SharingService",
    "UnshareResult",
    "UsersView",
    "WorkspacePolicy",
    "default_role",
]
