"""Thin Slack listeners: take team and user from the payload, call one use case in `flows`,
render with `cards`. Each module has its `/flow` subcommands as a `SUBCOMMANDS` list and
`register(app, deps)` for its actions, views and events; `bot.app` wires them."""
