"""The Web API client that seals every view's `private_metadata` on its way to Slack
(`flows.sealed`); `handlers.metadata` opens it when the view comes back."""

from __future__ import annotations

import json as jsonlib
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from adapters.metered_client import MeteredWebClient
from flows.sealed import MetadataSeal

VIEW_METHODS = frozenset({"views.open", "views.push", "views.update", "views.publish"})


class SealingWebClient(MeteredWebClient):
    """Seals views' metadata when given `seal`; counted when given `metrics`."""

    def __init__(self, seal: MetadataSeal | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seal = seal

    async def api_call(  # type: ignore[override]
        self, api_method: str, *, json: dict[str, Any] | None = None, **kwargs: Any
    ) -> AsyncSlackResponse:
        if api_method in VIEW_METHODS and json is not None and "view" in json:
            json = {**json, "view": self.sealed(json["view"])}
        return await super().api_call(api_method, json=json, **kwargs)

    def sealed(self, view: Any) -> Any:
        if self.seal is None:
            return view
        if isinstance(view, str):
            return jsonlib.dumps(self.sealed(jsonlib.loads(view)))
        if isinstance(view, dict) and view.get("private_metadata"):
            return {**view, "private_metadata": self.seal.seal(str(view["private_metadata"]))}
        return view


def seal_answer(client: AsyncWebClient, body: str) -> str:
    """A view submission's answer (`response_action` update or push, in the HTTP
    response rather than through the Web API) with its view's metadata sealed too."""
    if not isinstance(client, SealingWebClient) or '"response_action"' not in body:
        return body
    try:
        answer = jsonlib.loads(body)
    except ValueError:
        return body
    if not isinstance(answer, dict) or "view" not in answer:
        return body
    return jsonlib.dumps({**answer, "view": client.sealed(answer["view"])})
