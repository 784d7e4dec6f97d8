"""`SharingService`: what the sharing listeners call (SPEC §4, §5).

Every decision goes through `flows.permissions`; the service only applies the decisions
and keeps their traces. Its use cases live in one module each (share lists, links and
access requests, My buttons, the creation policy) on a common core (`flows.sharing.base`).
"""

from __future__ import annotations

from flows.sharing.access_requests import AccessRequests
from flows.sharing.admin_policy import CreationRules
from flows.sharing.buttons import ButtonShelf
from flows.sharing.share_lists import ShareLists


class SharingService(ShareLists, AccessRequests, ButtonShelf, CreationRules):
    """Share / unshare (a compare-and-swap on `FlowRecord.shares`, without a new definition
    version, one audit entry per change, recipients told through a `SharingNotifier`),
    `/flow users` and the audit trail, links and access requests, My buttons, and who may
    create flows."""
