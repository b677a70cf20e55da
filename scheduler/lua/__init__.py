"""The scheduler's Lua scripts, loaded with `labs.lua.load("scheduler.lua", name)`."""
