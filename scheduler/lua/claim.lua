-- Claim up to N due jobs for one worker: promote due scheduled jobs, pop the best
-- ready ones, lease each (owner, attempts + 1, deadline in the leases set).
-- KEYS[1]: scheduled ZSET; KEYS[2]: ready ZSET; KEYS[3]: leases ZSET (id -> deadline ms)
-- KEYS[4]: sequence counter
-- ARGV[1]: now in ms, or "" to read Redis TIME
-- ARGV[2]: worker id; ARGV[3]: N; ARGV[4]: lease in ms
-- ARGV[5]: job hash key prefix (prefix .. id; same hash tag as KEYS, so same slot)
-- ARGV[6]: at most this many scheduled jobs promoted per call (bounds the script's work)
-- returns one {id, type, payload, priority, attempts, max_attempts, run_at, deadline}
--          per claimed job, best first; attempts (after the increment) is the fencing
--          token that heartbeat, ack and nack must present.

local function int(x) return string.format('%d', x) end

local now = tonumber(ARGV[1])
if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local worker, n, lease_ms, prefix = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]

local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', int(now), 'LIMIT', 0, ARGV[6])
for _, id in ipairs(due) do
    redis.call('ZREM', KEYS[1], id)
    local priority = tonumber(redis.call('HGET', prefix .. id, 'priority'))
    if priority then
        local seq = redis.call('INCR', KEYS[4])
        redis.call('ZADD', KEYS[2], int((9 - priority) * 562949953421312 + seq), id)
        redis.call('HSET', prefix .. id, 'state', 'queued')
    end
end

local out = {}
if n < 1 then return out end
local popped = redis.call('ZPOPMIN', KEYS[2], n)
local deadline = now + lease_ms
for i = 1, #popped, 2 do
    local id = popped[i]
    local key = prefix .. id
    if redis.call('EXISTS', key) == 1 then
        local attempts = redis.call('HINCRBY', key, 'attempts', 1)
        redis.call('HSET', key, 'owner', worker, 'state', 'running')
        redis.call('ZADD', KEYS[3], int(deadline), id)
        local f = redis.call('HMGET', key, 'type', 'payload', 'priority', 'max_attempts', 'run_at')
        out[#out + 1] = {id, f[1], f[2], f[3], attempts, f[4], f[5], int(deadline)}
    end
end
return out
