-- Extend the leases a worker still holds; a lease it lost (reclaimed, or now another
-- worker's delivery) is left alone.
-- KEYS[1]: leases ZSET; KEYS[1 + i]: job i's hash
-- ARGV[1]: now in ms, or "" to read Redis TIME
-- ARGV[2]: worker id; ARGV[3]: lease in ms; ARGV[3 + i]: job i's fencing token (attempts)
-- returns one 1 (extended) or 0 (lost) per job, in order.

local function int(x) return string.format('%d', x) end

local now = tonumber(ARGV[1])
if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local deadline = int(now + tonumber(ARGV[3]))
local out = {}
for i = 2, #KEYS do
    local f = redis.call('HMGET', KEYS[i], 'owner', 'attempts', 'state', 'id')
    local held = f[1] == ARGV[2] and f[2] == ARGV[2 + i] and f[3] == 'running'
        and redis.call('ZSCORE', KEYS[1], f[4])
    if held then
        redis.call('ZADD', KEYS[1], 'XX', deadline, f[4])
        out[#out + 1] = 1
    else
        out[#out + 1] = 0
    end
end
return out
