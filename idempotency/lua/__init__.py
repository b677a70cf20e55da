"""The redis-lock strategy's Lua scripts, loaded with `labs.lua.load("idempotency.lua", name)`."""
