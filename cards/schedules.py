"""Messages about scheduled and automated flows: skipped slots, webhook address and token."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from cards.common import Message, context, escape, message, section


def _when(moment: datetime, timezone: str) -> str:
    local = moment.astimezone(ZoneInfo(timezone))
    return local.strftime("%Y-%m-%d %H:%M") + f" ({timezone})"


def skipped_message(
    flow_name: str,
    count: int,
    capped: bool,
    first: datetime,
    last: datetime,
    timezone: str,
    next_run: datetime | None,
    catchup_window: str | None = None,
) -> Message:
    """To the owners: scheduled runs were missed during downtime and not run: by the
    flow's misfire policy `skip`, or (with `catchup_window` given) because under
    `run_once` the newest was older than the catch-up window."""
    name = escape(flow_name)
    runs = f"more than {count}" if capped else str(count)
    plural = "run" if count == 1 and not capped else "runs"
    if count == 1 and not capped:
        span = f"planned for {_when(first, timezone)}"
    else:
        span = f"planned from {_when(first, timezone)} to {_when(last, timezone)}"
    text = f"{name}: {runs} scheduled {plural} skipped while Flowbot was unavailable."
    missed = (
        f":fast_forward: *{name}* missed {runs} scheduled {plural} ({span}) while Flowbot "
        "was unavailable."
    )
    if catchup_window is None:
        details = f"{missed} Its misfire policy is *skip*, so they were not run."
        hint = (
            "To run once after downtime instead, set `misfire: run_once` in the schedule "
            "(`/flow edit`). Owners can also run it now with `/flow run`."
        )
    else:
        details = (
            f"{missed} Its misfire policy is *run_once*, but the newest was more than "
            f"its catch-up window (*{escape(catchup_window)}*) late, so none was run."
        )
        hint = (
            "To catch up after longer downtime, raise `catchup_window` in the schedule "
            "(`/flow edit`). Owners can also run it now with `/flow run`."
        )
    after = f"Next run: {_when(next_run, timezone)}." if next_run is not None else "No next run."
    return message(text, section(details), context(f"{after} {hint}"))


def webhook_message(
    flow_name: str,
    flow_id: str,
    enabled: bool,
    token: str | None,
    token_header: str,
    base_url: str | None = None,
    base_url_setting: str | None = None,
) -> Message:
    """The address of a webhook flow; `token` only right after it was regenerated. Without
    `base_url`, how to complete the address (and the setting that would show it whole)."""
    name = escape(flow_name)
    path = f"/hooks/{flow_id}"
    url = f"{base_url.rstrip('/')}{path}" if base_url else f"https://<flowbot host>{path}"
    lines = [
        f"*{name}* starts on `POST {url}` with its secret token in the `{token_header}` "
        "header and a JSON body (`trigger.body` in templates, at most 256 KiB).",
    ]
    if not enabled:
        lines.append(":warning: The flow is off: calls get HTTP 409 until `/flow on`.")
    blocks = [section("\n".join(lines))]
    if token:
        blocks.append(
            section(
                ":key: *New token* (shown only now; Flowbot keeps only a hash of it, and the "
                f"old token no longer works):\n```{token}```"
            )
        )
        example = (
            f"curl -X POST '{url}' -H '{token_header}: {token}' "
            "-H 'Content-Type: application/json' -d '{\"text\": \"hello\"}'"
        )
        blocks.append(section(f"```{example}```"))
        text = f"New webhook token for {name}: {token}"
    else:
        blocks.append(
            context(
                "The token is never shown again. Lost it? "
                f'`/flow webhook "{name}" regenerate` makes a new one '
                "(the old one stops working)."
            )
        )
        text = f"{name} starts on POST {url}"
    if not base_url:
        blocks.append(context("The host is the one Slack sends events to (your Request URL)."))
        if base_url_setting:
            blocks.append(
                context(
                    f"Prefix `{path}` with the bot's public URL; set "
                    f"`{base_url_setting}` to have the full address shown here."
                )
            )
    return message(text, *blocks)
