"""The rate limiter's Lua scripts, loaded with `labs.lua.load("rate_limiter.lua", name)`."""
