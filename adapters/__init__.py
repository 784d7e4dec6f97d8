"""The outgoing side: the engine's ports (`flows.ports`, the notifiers) implemented on
Slack's Web API through slack_sdk, rendering with `cards`. Wired in `bot.app`."""
