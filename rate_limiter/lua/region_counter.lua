-- Multi-region fixed window: a window-stamped G-counter of the units each region admitted.
-- KEYS[1]: hash {w = window index, <region> = units that region admitted in window w}
-- ARGV[1]: the deciding region's name (the field it increments)
-- ARGV[2]: cost in units
-- ARGV[3]: limit in units per window
-- ARGV[4]: window length in microseconds
-- ARGV[5]: now in microseconds, or "" to read Redis TIME (production: the only clock)
-- returns {allowed (1/0), units counted in the window after this check, ms until it ends,
--          the window's index (now / window length, or a newer stamp already stored)}
-- A hash stamped with an older window is reset; one stamped with a newer window (a
-- region whose clock lags) is counted in, so a lagging clock never reopens a window.
local now
if ARGV[5] == '' then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
    now = tonumber(ARGV[5])
end
local period = tonumber(ARGV[4])
local window = math.floor(now / period)
local stored = tonumber(redis.call('HGET', KEYS[1], 'w'))
if stored == nil or stored < window then
    redis.call('DEL', KEYS[1])
    redis.call('HSET', KEYS[1], 'w', string.format('%d', window))
else
    window = stored
end
local total = 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
    if fields[i] ~= 'w' then total = total + tonumber(fields[i + 1]) end
end
local cost = tonumber(ARGV[2])
local allowed = total + cost <= tonumber(ARGV[3])
if allowed then
    redis.call('HINCRBY', KEYS[1], ARGV[1], cost)
    total = total + cost
end
local ends_ms = math.max(0, math.ceil(((window + 1) * period - now) / 1000))
redis.call('PEXPIRE', KEYS[1], string.format('%d', ends_ms + 1000))
return {allowed and 1 or 0, total, ends_ms, window}
